//! `inferlet:core/kvs`: forwarded to the kvs provider component.

use std::sync::Arc;

use super::InferletView;
use super::bindings::inferlet::core::kvs::Host;
use super::misuse;
use crate::providers::kvs::KvsProvider;

impl InferletView<'_> {
    fn kvs_provider(&self, call: &'static str) -> impl Future<Output = wasmtime::Result<Arc<KvsProvider>>> + Send + 'static {
        let host = self.ctx.host.clone();
        async move { host.kvs_provider().await.or_else(|e| misuse(format!("{call}: {e}"))) }
    }
}

/// The provider's answer, or the end of the instance with the call named.
fn answer<T>(call: &str, result: Result<T, crate::providers::ProviderError>) -> wasmtime::Result<T> {
    result.or_else(|e| misuse(format!("{call}: {e}")))
}

impl Host for InferletView<'_> {
    async fn store_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        const CALL: &str = "kvs.store-get";
        answer(CALL, self.kvs_provider(CALL).await?.get(&key).await)
    }

    async fn store_set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        const CALL: &str = "kvs.store-set";
        answer(CALL, self.kvs_provider(CALL).await?.set(&key, &value).await)
    }

    async fn store_delete(&mut self, key: String) -> wasmtime::Result<()> {
        const CALL: &str = "kvs.store-delete";
        answer(CALL, self.kvs_provider(CALL).await?.delete(&key).await)
    }

    async fn store_exists(&mut self, key: String) -> wasmtime::Result<bool> {
        const CALL: &str = "kvs.store-exists";
        answer(CALL, self.kvs_provider(CALL).await?.exists(&key).await)
    }

    async fn store_list_keys(&mut self) -> wasmtime::Result<Vec<String>> {
        const CALL: &str = "kvs.store-list-keys";
        answer(CALL, self.kvs_provider(CALL).await?.list_keys().await)
    }
}
