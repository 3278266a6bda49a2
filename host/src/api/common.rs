//! `inferlet:core/common`: models, queues, blobs and KV resources.
//!
//! Model queries and debug queries answer now; queues, blobs and the KV
//! resource calls arrive with the engine.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::bindings::inferlet::core::common::{
    Blob, BlobResult, Host, HostBlob, HostBlobResult, HostDebugQueryResult, HostModel, HostQueue,
    HostSynchronizationResult, Pointer, Priority, Queue, SynchronizationResult,
};
use super::not_implemented;
use crate::runtime::InstanceState;

/// An instance's handle to one of the host's models.
pub struct ModelHandle {
    pub name: String,
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

impl HostDebugQueryResult for InstanceState {
    async fn pollable(&mut self, this: Resource<DebugQueryResult>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(&mut self.table, this)
    }

    async fn get(&mut self, this: Resource<DebugQueryResult>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get_mut(&this)?.answer.take())
    }

    async fn drop(&mut self, this: Resource<DebugQueryResult>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl HostModel for InstanceState {
    async fn get_name(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.name.clone())
    }

    async fn get_traits(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<Vec<String>> {
        let name = &self.table.get(&this)?.name;
        Ok(self.inferlet.host.models.get(name).map(|m| m.traits.clone()).unwrap_or_default())
    }

    async fn get_description(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<String> {
        let name = &self.table.get(&this)?.name;
        Ok(self.inferlet.host.models.get(name).map(|m| m.description.clone()).unwrap_or_default())
    }

    async fn get_prompt_template(&mut self, _: Resource<ModelHandle>) -> wasmtime::Result<String> {
        not_implemented("common.model.get-prompt-template")
    }

    async fn get_stop_tokens(&mut self, _: Resource<ModelHandle>) -> wasmtime::Result<Vec<String>> {
        not_implemented("common.model.get-stop-tokens")
    }

    async fn get_service_id(&mut self, _: Resource<ModelHandle>) -> wasmtime::Result<u32> {
        not_implemented("common.model.get-service-id")
    }

    async fn get_kv_page_size(&mut self, _: Resource<ModelHandle>) -> wasmtime::Result<u32> {
        not_implemented("common.model.get-kv-page-size")
    }

    async fn create_queue(&mut self, _: Resource<ModelHandle>) -> wasmtime::Result<Resource<Queue>> {
        not_implemented("common.model.create-queue")
    }

    async fn drop(&mut self, this: Resource<ModelHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl HostQueue for InstanceState {
    async fn get_service_id(&mut self, _: Resource<Queue>) -> wasmtime::Result<u32> {
        not_implemented("common.queue.get-service-id")
    }

    async fn synchronize(&mut self, _: Resource<Queue>) -> wasmtime::Result<Resource<SynchronizationResult>> {
        not_implemented("common.queue.synchronize")
    }

    async fn set_priority(&mut self, _: Resource<Queue>, _: Priority) -> wasmtime::Result<()> {
        not_implemented("common.queue.set-priority")
    }

    async fn debug_query(&mut self, _: Resource<Queue>, _: String) -> wasmtime::Result<Resource<DebugQueryResult>> {
        not_implemented("common.queue.debug-query")
    }

    async fn drop(&mut self, _: Resource<Queue>) -> wasmtime::Result<()> {
        not_implemented("common.queue.drop")
    }
}

impl HostBlob for InstanceState {
    async fn new(&mut self, _: Vec<u8>) -> wasmtime::Result<Resource<Blob>> {
        not_implemented("common.blob.constructor")
    }

    async fn read(&mut self, _: Resource<Blob>, _: u64, _: u64) -> wasmtime::Result<Vec<u8>> {
        not_implemented("common.blob.read")
    }

    async fn size(&mut self, _: Resource<Blob>) -> wasmtime::Result<u64> {
        not_implemented("common.blob.size")
    }

    async fn drop(&mut self, _: Resource<Blob>) -> wasmtime::Result<()> {
        not_implemented("common.blob.drop")
    }
}

impl HostBlobResult for InstanceState {
    async fn pollable(&mut self, _: Resource<BlobResult>) -> wasmtime::Result<Resource<DynPollable>> {
        not_implemented("common.blob-result.pollable")
    }

    async fn get(&mut self, _: Resource<BlobResult>) -> wasmtime::Result<Option<Resource<Blob>>> {
        not_implemented("common.blob-result.get")
    }

    async fn drop(&mut self, _: Resource<BlobResult>) -> wasmtime::Result<()> {
        not_implemented("common.blob-result.drop")
    }
}

impl HostSynchronizationResult for InstanceState {
    async fn pollable(&mut self, _: Resource<SynchronizationResult>) -> wasmtime::Result<Resource<DynPollable>> {
        not_implemented("common.synchronization-result.pollable")
    }

    async fn get(&mut self, _: Resource<SynchronizationResult>) -> wasmtime::Result<Option<bool>> {
        not_implemented("common.synchronization-result.get")
    }

    async fn drop(&mut self, _: Resource<SynchronizationResult>) -> wasmtime::Result<()> {
        not_implemented("common.synchronization-result.drop")
    }
}

impl Host for InstanceState {
    async fn allocate_resources(&mut self, _: Resource<Queue>, _: u32, _: u32) -> wasmtime::Result<Vec<Pointer>> {
        not_implemented("common.allocate-resources")
    }

    async fn deallocate_resources(&mut self, _: Resource<Queue>, _: u32, _: Vec<Pointer>) -> wasmtime::Result<()> {
        not_implemented("common.deallocate-resources")
    }

    async fn get_all_exported_resources(
        &mut self,
        _: Resource<Queue>,
        _: u32,
    ) -> wasmtime::Result<Vec<(String, u32)>> {
        not_implemented("common.get-all-exported-resources")
    }

    async fn release_exported_resources(&mut self, _: Resource<Queue>, _: u32, _: String) -> wasmtime::Result<()> {
        not_implemented("common.release-exported-resources")
    }

    async fn export_resources(
        &mut self,
        _: Resource<Queue>,
        _: u32,
        _: Vec<Pointer>,
        _: String,
    ) -> wasmtime::Result<()> {
        not_implemented("common.export-resources")
    }

    async fn import_resources(&mut self, _: Resource<Queue>, _: u32, _: String) -> wasmtime::Result<Vec<Pointer>> {
        not_implemented("common.import-resources")
    }
}
