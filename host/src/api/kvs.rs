//! `inferlet:core/kvs`: each call reaches one space of the kvs provider.
//! A key is the calling program's own, unless it starts with
//! [`USER_SPACE`]: then it is in its user's space, shared by all of that
//! user's programs. The user is the instance's namespace (a server user;
//! the local user under `crust run`), so no key of one user is ever
//! reachable by another, and each user's keys and bytes are held to a quota.

use std::sync::Arc;

use super::InferletView;
use super::bindings::inferlet::core::kvs::Host;
use super::misuse;
use crate::providers::kvs::{KvsProvider, Quota, Space};

/// Keys under this prefix are the user's, shared by all of its programs.
pub const USER_SPACE: &str = "@user/";

/// The spaces an instance's keys live in, and its user's quota.
pub struct KvsScope {
    program: Space,
    user: Space,
    quota: Quota,
}

impl KvsScope {
    /// `user`: the instance's namespace. A program is told apart by its
    /// digest, so another program cannot pass for it.
    pub fn new(user: &str, program: &blake3::Hash, quota: Quota) -> Self {
        Self {
            program: Space { user: user.to_string(), name: format!("program/{}", program.to_hex()) },
            user: Space { user: user.to_string(), name: "user".to_string() },
            quota,
        }
    }

    /// The space `key` names, and the key within it.
    fn locate<'k>(&self, key: &'k str) -> (&Space, &'k str) {
        match key.strip_prefix(USER_SPACE) {
            Some(shared) => (&self.user, shared),
            None => (&self.program, key),
        }
    }
}

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
        let (space, key) = self.ctx.kvs.locate(&key);
        answer(CALL, self.kvs_provider(CALL).await?.get(space, key).await)
    }

    async fn store_set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        const CALL: &str = "kvs.store-set";
        let (space, key) = self.ctx.kvs.locate(&key);
        match answer(CALL, self.kvs_provider(CALL).await?.set(space, key, &value, self.ctx.kvs.quota).await)? {
            Ok(()) => Ok(()),
            Err(refused) => misuse(format!("{CALL}: {refused} (limits.kvs_mib_per_user, limits.kvs_keys_per_user)")),
        }
    }

    async fn store_delete(&mut self, key: String) -> wasmtime::Result<()> {
        const CALL: &str = "kvs.store-delete";
        let (space, key) = self.ctx.kvs.locate(&key);
        answer(CALL, self.kvs_provider(CALL).await?.delete(space, key).await)
    }

    async fn store_exists(&mut self, key: String) -> wasmtime::Result<bool> {
        const CALL: &str = "kvs.store-exists";
        let (space, key) = self.ctx.kvs.locate(&key);
        answer(CALL, self.kvs_provider(CALL).await?.exists(space, key).await)
    }

    /// The program's own keys (the user's shared ones are not listed).
    async fn store_list_keys(&mut self) -> wasmtime::Result<Vec<String>> {
        const CALL: &str = "kvs.store-list-keys";
        answer(CALL, self.kvs_provider(CALL).await?.list_keys(&self.ctx.kvs.program).await)
    }
}
