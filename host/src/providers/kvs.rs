//! Forwarding `inferlet:core/kvs` to the configured kvs provider: one shared
//! instance, so every inferlet sees the same store. The default provider keeps
//! it in `<data dir>/kvs`, preopened read-write as `/data`.

use std::path::PathBuf;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::FsPerms;

use super::shared::{ProviderBindings, SharedInstance, wasi_with_dir};
use super::{ProviderError, ProviderState};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "crust:inferlet/kvs-provider",
        exports: { default: async },
    });
}

use bindings::KvsProvider as Bindings;

impl ProviderBindings for Bindings {
    async fn instantiate(store: &mut Store<ProviderState>, component: &Component, linker: &Linker<ProviderState>) -> wasmtime::Result<Self> {
        Bindings::instantiate_async(store, component, linker).await
    }
}

pub const COMPONENT_FILE: &str = "kvs_provider.wasm";

pub struct KvsProvider {
    shared: SharedInstance<Bindings>,
}

impl KvsProvider {
    pub fn new(engine: &Engine, component: Component, data_dir: PathBuf) -> Result<Self, ProviderError> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| ProviderError::Unavailable(format!("linking WASI: {e}")))?;
        std::fs::create_dir_all(&data_dir).map_err(|e| ProviderError::Unavailable(format!("creating {}: {e}", data_dir.display())))?;
        let wasi = move || wasi_with_dir(&data_dir, "/data", FsPerms::ReadWrite);
        Ok(Self { shared: SharedInstance::new("kvs", engine, component, linker, wasi) })
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, ProviderError> {
        self.shared.call("store-get", async |l| l.bindings.inferlet_core_kvs().call_store_get(&mut l.store, key).await).await
    }

    pub async fn set(&self, key: &str, value: &str) -> Result<(), ProviderError> {
        self.shared.call("store-set", async |l| l.bindings.inferlet_core_kvs().call_store_set(&mut l.store, key, value).await).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), ProviderError> {
        self.shared.call("store-delete", async |l| l.bindings.inferlet_core_kvs().call_store_delete(&mut l.store, key).await).await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, ProviderError> {
        self.shared.call("store-exists", async |l| l.bindings.inferlet_core_kvs().call_store_exists(&mut l.store, key).await).await
    }

    pub async fn list_keys(&self) -> Result<Vec<String>, ProviderError> {
        self.shared.call("store-list-keys", async |l| l.bindings.inferlet_core_kvs().call_store_list_keys(&mut l.store).await).await
    }
}
