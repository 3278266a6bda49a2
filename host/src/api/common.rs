//! `inferlet:core/common`: models, queues, blobs and the KV resource calls.
//!
//! A model is opened on the GPU by its first queue. Resource calls go
//! through the instance's [`Holdings`] on the queue's model (`engine/holdings.rs`).

use std::sync::Arc;

use tokio::sync::oneshot;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::bindings::inferlet::core::common::{
    Host, HostBlob, HostBlobResult, HostDebugQueryResult, HostModel, HostQueue, HostSynchronizationResult, Pointer, Priority,
};
use super::{InferletView, misuse};
use crate::engine::holdings::{Holdings, HoldingsError};
use crate::engine::service::{self, ModelService, ResourceKind};
use crate::models::{Model, ModelMetadata};

/// An instance's handle to one of the host's models.
pub struct ModelHandle {
    pub model: Arc<Model>,
}

/// A command queue on a model: its passes keep their order; its priority
/// orders them among everyone's waiting work.
pub struct QueueHandle {
    pub service_id: u32,
    pub service: Arc<ModelService>,
    pub priority: service::Priority,
}

/// The answer to a debug query; Crust's answers are known at once.
pub struct DebugQueryResult {
    answer: Option<String>,
}

impl DebugQueryResult {
    pub fn ready(answer: String) -> Self {
        Self { answer: Some(answer) }
    }
}

#[async_trait::async_trait]
impl Pollable for DebugQueryResult {
    async fn ready(&mut self) {}
}

/// Resolves once every pass submitted to the queue before it has run.
pub struct SynchronizationResult {
    barrier: Option<oneshot::Receiver<()>>,
    done: bool,
}

#[async_trait::async_trait]
impl Pollable for SynchronizationResult {
    async fn ready(&mut self) {
        // Polled and dropped until ready: keep the receiver until it answers.
        if let Some(barrier) = &mut self.barrier {
            let _ = barrier.await;
            self.barrier = None;
            self.done = true;
        }
    }
}

/// Bytes an inferlet hands around (`blob`).
pub struct Blob(pub Vec<u8>);

/// A blob on its way from the instance's client (`message.receive-blob`).
pub struct BlobResult {
    pub blob: Option<Blob>,
    /// Where it comes from; `None`: nothing will ever arrive, the pollable never resolves.
    pub from: Option<crate::messaging::BlobInbox>,
    /// The client is gone: ready, with nothing to get.
    pub closed: bool,
}

#[async_trait::async_trait]
impl Pollable for BlobResult {
    async fn ready(&mut self) {
        if self.blob.is_some() || self.closed {
            return;
        }
        let Some(from) = &self.from else { return std::future::pending().await };
        // Cancel-safe: a dropped wait loses no blob.
        match from.lock().await.recv().await {
            Some(bytes) => self.blob = Some(Blob(bytes)),
            None => self.closed = true,
        }
    }
}

/// Resource type 0 and 1; anything else is named in the error.
pub(super) fn kind(resource_type: u32, call: &str) -> Result<ResourceKind, String> {
    match resource_type {
        0 => Ok(ResourceKind::KvPage),
        1 => Ok(ResourceKind::EmbeddingSlot),
        2 => Err(format!("not supported: {call} of resource type 2 (adapters)")),
        other => Err(format!("{call}: unknown resource type {other} (0 = KV page, 1 = embedding slot)")),
    }
}

impl InferletView<'_> {
    async fn metadata(&mut self, model: &Resource<ModelHandle>, call: &str) -> wasmtime::Result<Arc<ModelMetadata>> {
        let model = self.table.get(model)?.model.clone();
        match model.metadata().await {
            Ok(metadata) => Ok(metadata),
            Err(e) => misuse(format!("{call}: {e}")),
        }
    }

    /// The instance's holdings on the queue's model.
    pub(crate) fn holdings(&mut self, queue: &Resource<QueueHandle>) -> wasmtime::Result<&mut Holdings> {
        let queue = self.table.get(queue)?;
        Ok(self.ctx.holdings_on(queue.service_id, &queue.service))
    }

    pub(super) fn resource_call<T>(
        &mut self,
        queue: &Resource<QueueHandle>,
        resource_type: u32,
        call: &str,
        f: impl FnOnce(&mut Holdings, ResourceKind) -> Result<T, HoldingsError>,
    ) -> wasmtime::Result<T> {
        let kind = match kind(resource_type, call) {
            Ok(kind) => kind,
            Err(e) => return misuse(e),
        };
        f(self.holdings(queue)?, kind).or_else(|e| misuse(format!("{call}: {e}")))
    }
}

impl HostDebugQueryResult for InferletView<'_> {
    async fn pollable(&mut self, this: Resource<DebugQueryResult>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(self.table, this)
    }

    async fn get(&mut self, this: Resource<DebugQueryResult>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get_mut(&this)?.answer.take())
    }

    async fn drop(&mut self, this: Resource<DebugQueryResult>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl HostModel for InferletView<'_> {
    async fn get_name(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.model.name.clone())
    }

    async fn get_traits(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<Vec<String>> {
        Ok(self.table.get(&this)?.model.traits.clone())
    }

    async fn get_description(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.model.description.clone())
    }

    async fn get_prompt_template(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<String> {
        Ok(self.metadata(&this, "common.model.get-prompt-template").await?.prompt_template.clone())
    }

    async fn get_stop_tokens(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<Vec<String>> {
        Ok(self.metadata(&this, "common.model.get-stop-tokens").await?.stop_tokens.clone())
    }

    async fn get_service_id(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&this)?.model.service_id)
    }

    async fn get_kv_page_size(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&this)?.model.page_size)
    }

    async fn create_queue(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<Resource<QueueHandle>> {
        let model = self.table.get(&this)?.model.clone();
        let service = match model.service().await {
            Ok(service) => service,
            Err(e) => return misuse(format!("common.model.create-queue: {e}")),
        };
        let queue = QueueHandle { service_id: model.service_id, service, priority: service::Priority::Normal };
        Ok(self.table.push(queue)?)
    }

    async fn drop(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl HostQueue for InferletView<'_> {
    async fn get_service_id(&mut self, this: Resource<QueueHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&this)?.service_id)
    }

    async fn synchronize(&mut self, this: Resource<QueueHandle>) -> wasmtime::Result<Resource<SynchronizationResult>> {
        let barrier = self.table.get(&this)?.service.barrier();
        Ok(self.table.push(SynchronizationResult { barrier: Some(barrier), done: false })?)
    }

    async fn set_priority(&mut self, this: Resource<QueueHandle>, priority: Priority) -> wasmtime::Result<()> {
        let asked = match priority {
            Priority::Low => service::Priority::Low,
            Priority::Normal => service::Priority::Normal,
            Priority::High => service::Priority::High,
        };
        // Capped, not refused: Pie's SDK asks for high priority as a matter of course.
        self.table.get_mut(&this)?.priority = asked.min(self.ctx.max_priority);
        Ok(())
    }

    async fn debug_query(&mut self, this: Resource<QueueHandle>, query: String) -> wasmtime::Result<Resource<DebugQueryResult>> {
        let answer = self.queue_debug_answer(&this, query.trim())?;
        Ok(self.table.push(DebugQueryResult::ready(answer))?)
    }

    async fn drop(&mut self, this: Resource<QueueHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl InferletView<'_> {
    /// The queue's debug queries: `ping`, `kv-pages`, `batches`.
    fn queue_debug_answer(&mut self, queue: &Resource<QueueHandle>, query: &str) -> wasmtime::Result<String> {
        let service = self.table.get(queue)?.service.clone();
        Ok(match query {
            "ping" => "pong".into(),
            "kv-pages" => {
                let held = self.holdings(queue)?.held(ResourceKind::KvPage);
                let free = service.free_pages();
                format!("held {held}, free {free}, total {}", service.capacity.kv_pages)
            }
            "batches" => {
                let s = &service.stats;
                let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                format!("batches {}, passes {}, tokens {}", load(&s.batches), load(&s.batched_passes), load(&s.batched_tokens))
            }
            other => format!("unknown debug query `{other}`; known: ping, kv-pages, batches"),
        })
    }
}

impl HostBlob for InferletView<'_> {
    async fn new(&mut self, init: Vec<u8>) -> wasmtime::Result<Resource<Blob>> {
        self.charge("common.blob", init.len())?;
        Ok(self.table.push(Blob(init))?)
    }

    async fn read(&mut self, this: Resource<Blob>, offset: u64, n: u64) -> wasmtime::Result<Vec<u8>> {
        let bytes = &self.table.get(&this)?.0;
        let start = (offset as usize).min(bytes.len());
        let end = start.saturating_add(n as usize).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }

    async fn size(&mut self, this: Resource<Blob>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.0.len() as u64)
    }

    async fn drop(&mut self, this: Resource<Blob>) -> wasmtime::Result<()> {
        let blob = self.table.delete(this)?;
        self.refund(blob.0.len());
        Ok(())
    }
}

impl HostBlobResult for InferletView<'_> {
    async fn pollable(&mut self, this: Resource<BlobResult>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(self.table, this)
    }

    async fn get(&mut self, this: Resource<BlobResult>) -> wasmtime::Result<Option<Resource<Blob>>> {
        let result = self.table.get_mut(&this)?;
        if result.blob.is_none()
            && let Some(Ok(mut from)) = result.from.as_ref().map(|f| f.try_lock())
        {
            result.blob = from.try_recv().ok().map(Blob);
        }
        match result.blob.take() {
            Some(blob) => {
                self.charge("message.receive-blob", blob.0.len())?;
                Ok(Some(self.table.push(blob)?))
            }
            None => Ok(None),
        }
    }

    async fn drop(&mut self, this: Resource<BlobResult>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl HostSynchronizationResult for InferletView<'_> {
    async fn pollable(&mut self, this: Resource<SynchronizationResult>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(self.table, this)
    }

    async fn get(&mut self, this: Resource<SynchronizationResult>) -> wasmtime::Result<Option<bool>> {
        let sync = self.table.get_mut(&this)?;
        if !sync.done
            && let Some(barrier) = &mut sync.barrier
            && barrier.try_recv().is_ok()
        {
            sync.barrier = None;
            sync.done = true;
        }
        Ok(sync.done.then_some(true))
    }

    async fn drop(&mut self, this: Resource<SynchronizationResult>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl Host for InferletView<'_> {
    async fn allocate_resources(&mut self, queue: Resource<QueueHandle>, resource_type: u32, count: u32) -> wasmtime::Result<Vec<Pointer>> {
        self.resource_call(&queue, resource_type, "common.allocate-resources", |h, kind| h.allocate(kind, count))
    }

    async fn deallocate_resources(&mut self, queue: Resource<QueueHandle>, resource_type: u32, ptrs: Vec<Pointer>) -> wasmtime::Result<()> {
        self.resource_call(&queue, resource_type, "common.deallocate-resources", |h, kind| h.deallocate(kind, &ptrs))
    }

    async fn get_all_exported_resources(&mut self, queue: Resource<QueueHandle>, resource_type: u32) -> wasmtime::Result<Vec<(String, u32)>> {
        self.resource_call(&queue, resource_type, "common.get-all-exported-resources", |h, kind| Ok(h.exports(kind)))
    }

    async fn release_exported_resources(&mut self, queue: Resource<QueueHandle>, resource_type: u32, name: String) -> wasmtime::Result<()> {
        self.resource_call(&queue, resource_type, "common.release-exported-resources", |h, kind| {
            h.release_export(kind, &name);
            Ok(())
        })
    }

    async fn export_resources(&mut self, queue: Resource<QueueHandle>, resource_type: u32, ptrs: Vec<Pointer>, name: String) -> wasmtime::Result<()> {
        self.resource_call(&queue, resource_type, "common.export-resources", |h, kind| h.export(kind, &ptrs, &name))
    }

    async fn import_resources(&mut self, queue: Resource<QueueHandle>, resource_type: u32, name: String) -> wasmtime::Result<Vec<Pointer>> {
        self.resource_call(&queue, resource_type, "common.import-resources", |h, kind| h.import(kind, &name))
    }
}
