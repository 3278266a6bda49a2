//! Forwarding `inferlet:core/tokenize` to the tokenize provider component.
//!
//! The provider runs in its own store; inferlets hold host-side handles
//! that name a `tokenizer` resource inside it. If the provider traps, it is
//! replaced by a fresh instance and handles re-acquire their resource.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Component, Linker, Resource, ResourceAny, ResourceType};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx};

use super::ProviderState;
use crate::api::common::ModelHandle;
use crate::models::Model;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "crust:inferlet/tokenize-provider",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
            "inferlet:core/common": crate::api::bindings::inferlet::core::common,
        },
    });
}

pub const COMPONENT_FILE: &str = "tokenize_provider.wasm";

/// An inferlet's `tokenizer`: the model, and its resource in the provider
/// (acquired on first use; re-acquired after the provider was replaced).
pub struct TokenizerHandle {
    pub model: Arc<Model>,
    remote: Option<(u64, ResourceAny)>,
}

impl TokenizerHandle {
    pub fn new(model: Arc<Model>) -> Self {
        Self { model, remote: None }
    }
}

struct Live {
    store: Store<ProviderState>,
    provider: bindings::TokenizeProvider,
    generation: u64,
}

pub struct TokenizeProvider {
    engine: Engine,
    component: Component,
    linker: Linker<ProviderState>,
    /// Holds `<model>.json`, preopened read-only in the provider as `/tokenizers`.
    dir: PathBuf,
    written: Mutex<HashSet<String>>,
    live: tokio::sync::Mutex<Option<Live>>,
    generations: std::sync::atomic::AtomicU64,
}

fn err(context: &str, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}

impl TokenizeProvider {
    /// Compiles (or takes from the cache) and links the provider component.
    pub fn new(engine: &Engine, component: Component, dir: PathBuf) -> Result<Self, String> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| err("linking WASI", e))?;
        let mut common = linker.instance("inferlet:core/common").map_err(|e| err("linking common", e))?;
        common
            .resource("model", ResourceType::host::<ModelHandle>(), |_, _| Ok(()))
            .map_err(|e| err("linking common.model", e))?;
        common
            .func_wrap("[method]model.get-name", |store: wasmtime::StoreContextMut<'_, ProviderState>, (model,): (Resource<ModelHandle>,)| {
                Ok((store.data().table.get(&model)?.model.name.clone(),))
            })
            .map_err(|e| err("linking common.model.get-name", e))?;
        std::fs::create_dir_all(&dir).map_err(|e| err(&format!("creating {}", dir.display()), e))?;
        Ok(Self {
            engine: engine.clone(),
            component,
            linker,
            dir,
            written: Mutex::new(HashSet::new()),
            live: tokio::sync::Mutex::new(None),
            generations: Default::default(),
        })
    }

    /// Writes the model's `tokenizer.json` where the provider reads it (once per process).
    async fn publish(&self, model: &Arc<Model>) -> Result<(), String> {
        if self.written.lock().unwrap().contains(&model.name) {
            return Ok(());
        }
        let metadata = model.metadata().await?;
        let path = self.dir.join(format!("{}.json", model.name));
        let tmp = self.dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
        std::fs::write(&tmp, metadata.tokenizer_json.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| err(&format!("writing {}", path.display()), e))?;
        self.written.lock().unwrap().insert(model.name.clone());
        Ok(())
    }

    async fn instantiate(&self) -> Result<Live, String> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr()
            .preopened_dir(&self.dir, "/tokenizers", FsPerms::ReadOnly)
            .map_err(|e| err("preopening the tokenizers directory", e))?;
        let mut store = Store::new(&self.engine, ProviderState { wasi: wasi.build(), table: Default::default() });
        store.epoch_deadline_async_yield_and_update(1);
        let provider = bindings::TokenizeProvider::instantiate_async(&mut store, &self.component, &self.linker)
            .await
            .map_err(|e| err("instantiating the tokenize provider", format!("{e:#}")))?;
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Live { store, provider, generation })
    }

    /// Runs `call` on the provider with the handle's resource, acquiring it
    /// first when needed. A trap replaces the provider and fails only this call.
    async fn with_tokenizer<T>(
        &self,
        handle: &mut TokenizerHandle,
        what: &str,
        call: impl AsyncFnOnce(&mut Live, ResourceAny) -> wasmtime::Result<T>,
    ) -> Result<T, String> {
        self.publish(&handle.model).await?;
        let mut live = self.live.lock().await;
        if live.is_none() {
            *live = Some(self.instantiate().await?);
        }
        let l = live.as_mut().unwrap();
        let result = async {
            let remote = match handle.remote {
                Some((generation, remote)) if generation == l.generation => remote,
                _ => {
                    let model = l.store.data_mut().table.push(ModelHandle { model: handle.model.clone() })?;
                    let rep = model.rep();
                    let remote = l.provider.inferlet_core_tokenize().call_get_tokenizer(&mut l.store, model).await?;
                    // The provider only borrowed it.
                    l.store.data_mut().table.delete(Resource::<ModelHandle>::new_own(rep))?;
                    handle.remote = Some((l.generation, remote));
                    remote
                }
            };
            call(l, remote).await
        }
        .await;
        result.map_err(|e| {
            // The instance may be poisoned: start afresh next time.
            *live = None;
            handle.remote = None;
            format!("the tokenize provider failed in {what}: {e:#}")
        })
    }

    pub async fn tokenize(&self, handle: &mut TokenizerHandle, text: &str) -> Result<Vec<u32>, String> {
        self.with_tokenizer(handle, "tokenize", async |l, t| {
            l.provider.inferlet_core_tokenize().tokenizer().call_tokenize(&mut l.store, t, text).await
        })
        .await
    }

    pub async fn detokenize(&self, handle: &mut TokenizerHandle, tokens: &[u32]) -> Result<String, String> {
        self.with_tokenizer(handle, "detokenize", async |l, t| {
            l.provider.inferlet_core_tokenize().tokenizer().call_detokenize(&mut l.store, t, tokens).await
        })
        .await
    }

    pub async fn get_vocabs(&self, handle: &mut TokenizerHandle) -> Result<(Vec<u32>, Vec<Vec<u8>>), String> {
        self.with_tokenizer(handle, "get-vocabs", async |l, t| {
            l.provider.inferlet_core_tokenize().tokenizer().call_get_vocabs(&mut l.store, t).await
        })
        .await
    }

    /// Drops the handle's resource in the provider, if it is still there.
    pub async fn release(&self, handle: TokenizerHandle) {
        let Some((generation, remote)) = handle.remote else { return };
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_mut().filter(|l| l.generation == generation) {
            if remote.resource_drop_async(&mut l.store).await.is_err() {
                *live = None;
            }
        }
    }
}
