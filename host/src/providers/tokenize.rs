//! Forwarding `inferlet:core/tokenize` to the tokenize provider component.
//!
//! Inferlets hold host-side handles that name a `tokenizer` resource inside
//! one member of the provider's pool, acquired on first use (on the member
//! [`SharedInstance::pick`] gives) and re-acquired if that member was
//! replaced after a trap. Handles on different members tokenize in parallel.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Component, Linker, Resource, ResourceAny, ResourceType};
use wasmtime::{Engine, Store};
use wasmtime_wasi::FsPerms;

use super::shared::{Live, ProviderBindings, SharedInstance, wasi_with_dir};
use super::{ProviderError, ProviderState};
use crate::models::Model;

/// The model a tokenizer is asked for, as the provider sees it: only its name.
pub struct ProviderModel {
    name: String,
}

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "crust:inferlet/tokenize-provider",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
            "inferlet:core/common.model": super::ProviderModel,
        },
    });
}

use bindings::TokenizeProvider as Bindings;

impl ProviderBindings for Bindings {
    async fn instantiate(store: &mut Store<ProviderState>, component: &Component, linker: &Linker<ProviderState>) -> wasmtime::Result<Self> {
        Bindings::instantiate_async(store, component, linker).await
    }
}

pub const COMPONENT_FILE: &str = "tokenize_provider.wasm";

/// Instances in the pool: one per core, up to 8 (each holds its own parsed
/// tokenizers, a few MiB per model).
fn pool_size() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// An inferlet's `tokenizer`: the model, and its resource in the provider.
pub struct TokenizerHandle {
    pub model: Arc<Model>,
    remote: Option<Remote>,
}

/// A `tokenizer` resource inside one pool member's instance.
#[derive(Clone, Copy)]
struct Remote {
    member: usize,
    generation: u64,
    resource: ResourceAny,
}

impl TokenizerHandle {
    pub fn new(model: Arc<Model>) -> Self {
        Self { model, remote: None }
    }
}

pub struct TokenizeProvider {
    shared: SharedInstance<Bindings>,
    /// Holds `<model>.json`, preopened read-only in the provider as `/tokenizers`.
    dir: PathBuf,
    written: Mutex<HashSet<String>>,
}

impl TokenizeProvider {
    pub fn new(engine: &Engine, component: Component, dir: PathBuf) -> Result<Self, ProviderError> {
        let err = |what: &str, e: wasmtime::Error| ProviderError::Unavailable(format!("linking {what}: {e}"));
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| err("WASI", e))?;
        // The provider uses `common` only for the model type and its name.
        let mut common = linker.instance("inferlet:core/common").map_err(|e| err("common", e))?;
        common.resource("model", ResourceType::host::<ProviderModel>(), |_, _| Ok(())).map_err(|e| err("common.model", e))?;
        common
            .func_wrap("[method]model.get-name", |store: wasmtime::StoreContextMut<'_, ProviderState>, (model,): (Resource<ProviderModel>,)| {
                Ok((store.data().table.get(&model)?.name.clone(),))
            })
            .map_err(|e| err("common.model.get-name", e))?;
        std::fs::create_dir_all(&dir).map_err(|e| ProviderError::Unavailable(format!("creating {}: {e}", dir.display())))?;
        let preopen = dir.clone();
        let wasi = move || wasi_with_dir(&preopen, "/tokenizers", FsPerms::ReadOnly);
        Ok(Self { shared: SharedInstance::new("tokenize", engine, component, linker, pool_size(), wasi), dir, written: Mutex::new(HashSet::new()) })
    }

    /// Writes the model's `tokenizer.json` where the provider reads it (once per process).
    async fn publish(&self, model: &Arc<Model>) -> Result<(), ProviderError> {
        if self.written.lock().unwrap().contains(&model.name) {
            return Ok(());
        }
        let metadata = model.metadata().await.map_err(|e| ProviderError::Model(e.to_string()))?;
        let path = self.dir.join(format!("{}.json", model.name));
        let tmp = self.dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
        std::fs::write(&tmp, metadata.tokenizer_json.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| ProviderError::Unavailable(format!("writing {}: {e}", path.display())))?;
        self.written.lock().unwrap().insert(model.name.clone());
        Ok(())
    }

    /// Runs `call` with the handle's resource, acquiring it when needed.
    async fn with_tokenizer<T>(
        &self,
        handle: &mut TokenizerHandle,
        what: &str,
        call: impl AsyncFnOnce(&mut Live<Bindings>, ResourceAny) -> wasmtime::Result<T>,
    ) -> Result<T, ProviderError> {
        self.publish(&handle.model).await?;
        let name = handle.model.name.clone();
        let member = handle.remote.map_or_else(|| self.shared.pick(), |r| r.member);
        let remote = &mut handle.remote;
        let result = self
            .shared
            .call(member, what, async |l| {
                let resource = match *remote {
                    Some(r) if r.generation == l.generation => r.resource,
                    _ => {
                        let m = l.store.data_mut().table.push(ProviderModel { name })?;
                        let rep = m.rep();
                        let resource = l.bindings.inferlet_core_tokenize().call_get_tokenizer(&mut l.store, m).await?;
                        // The provider only borrowed the model.
                        l.store.data_mut().table.delete(Resource::<ProviderModel>::new_own(rep))?;
                        *remote = Some(Remote { member, generation: l.generation, resource });
                        resource
                    }
                };
                call(l, resource).await
            })
            .await;
        if result.is_err() {
            handle.remote = None;
        }
        result
    }

    pub async fn tokenize(&self, handle: &mut TokenizerHandle, text: &str) -> Result<Vec<u32>, ProviderError> {
        self.with_tokenizer(handle, "tokenize", async |l, t| {
            l.bindings.inferlet_core_tokenize().tokenizer().call_tokenize(&mut l.store, t, text).await
        })
        .await
    }

    pub async fn detokenize(&self, handle: &mut TokenizerHandle, tokens: &[u32]) -> Result<String, ProviderError> {
        self.with_tokenizer(handle, "detokenize", async |l, t| {
            l.bindings.inferlet_core_tokenize().tokenizer().call_detokenize(&mut l.store, t, tokens).await
        })
        .await
    }

    pub async fn get_vocabs(&self, handle: &mut TokenizerHandle) -> Result<(Vec<u32>, Vec<Vec<u8>>), ProviderError> {
        self.with_tokenizer(handle, "get-vocabs", async |l, t| l.bindings.inferlet_core_tokenize().tokenizer().call_get_vocabs(&mut l.store, t).await)
            .await
    }

    /// Drops the handle's resource in the provider, if that instance still lives.
    pub async fn release(&self, handle: TokenizerHandle) {
        let Some(Remote { member, generation, resource }) = handle.remote else { return };
        self.shared.call_if_live(member, generation, async |l| resource.resource_drop_async(&mut l.store).await).await;
    }

    /// How many instances the pool may run.
    pub fn pool_size(&self) -> usize {
        self.shared.size()
    }

    /// How many of the pool's instances are running.
    pub async fn live_instances(&self) -> usize {
        self.shared.live_members().await
    }
}
