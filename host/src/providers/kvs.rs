//! The configured kvs provider: one shared instance holding every user's
//! spaces (`crust:host/kvs-store`); `api/kvs.rs` decides which space an
//! inferlet's call reaches. The default provider keeps the store in
//! `<data dir>/kvs`, preopened read-write as `/data`.

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
pub use bindings::exports::crust::host::kvs_store::{Quota, Space};

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
        Ok(Self { shared: SharedInstance::new("kvs", engine, component, linker, 1, wasi) })
    }

    pub async fn get(&self, space: &Space, key: &str) -> Result<Option<String>, ProviderError> {
        self.shared.call(0, "get", async |l| l.bindings.crust_host_kvs_store().call_get(&mut l.store, space, key).await).await
    }

    /// `Ok(Err)`: refused, over `quota`; nothing was written.
    pub async fn set(&self, space: &Space, key: &str, value: &str, quota: Quota) -> Result<Result<(), String>, ProviderError> {
        self.shared.call(0, "set", async |l| l.bindings.crust_host_kvs_store().call_set(&mut l.store, space, key, value, quota).await).await
    }

    pub async fn delete(&self, space: &Space, key: &str) -> Result<(), ProviderError> {
        self.shared.call(0, "delete", async |l| l.bindings.crust_host_kvs_store().call_delete(&mut l.store, space, key).await).await
    }

    pub async fn exists(&self, space: &Space, key: &str) -> Result<bool, ProviderError> {
        self.shared.call(0, "exists", async |l| l.bindings.crust_host_kvs_store().call_exists(&mut l.store, space, key).await).await
    }

    pub async fn list_keys(&self, space: &Space) -> Result<Vec<String>, ProviderError> {
        self.shared.call(0, "list-keys", async |l| l.bindings.crust_host_kvs_store().call_list_keys(&mut l.store, space).await).await
    }
}
