//! What one instance's `Store` holds.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limits::{LimitExceeded, MemoryLimiter};
use crate::api::holdings::Holdings;
use crate::models::ModelRegistry;
use crate::providers::Providers;
use crate::providers::kvs::KvsProvider;
use crate::providers::tokenize::TokenizeProvider;

/// Host-wide state every instance can read.
pub struct HostShared {
    pub version: String,
    pub models: ModelRegistry,
    pub providers: Providers,
    /// Topics and subscribers of `message.broadcast`/`subscribe`.
    pub bus: crate::api::messaging::Bus,
}

/// An instance's link to its client: where its messages go, where the
/// client's come from.
pub struct ClientLink {
    pub output: Option<super::OutputSink>,
    pub inbox: crate::api::messaging::Inbox,
    pub blobs: crate::api::messaging::BlobInbox,
}

impl ClientLink {
    pub fn send(&self, stream: super::Stream, bytes: Vec<u8>) {
        if let Some(output) = &self.output {
            output.send(stream, bytes);
        }
    }
}

impl HostShared {
    /// The tokenize provider; an error says which component and what is wrong.
    pub async fn tokenize_provider(&self) -> Result<Arc<TokenizeProvider>, String> {
        self.providers.tokenize().await
    }

    pub async fn kvs_provider(&self) -> Result<Arc<KvsProvider>, String> {
        self.providers.kvs().await
    }
}

/// Per-instance state behind the `inferlet:core` interfaces.
pub struct InstanceContext {
    pub id: String,
    pub arguments: Vec<String>,
    pub return_value: Option<String>,
    pub host: Arc<HostShared>,
    /// Orders this instance's passes among everyone's (unique per process).
    pub owner: u64,
    /// What the instance holds on each model it opened a queue on, by service id.
    pub holdings: HashMap<u32, Holdings>,
    /// KV pages and embedding slots one instance may hold per model.
    pub quotas: [usize; 2],
    /// Whose export names the instance sees: `""`, everyone's (see `Launch::export_scope`).
    pub export_scope: String,
    pub client: ClientLink,
}

pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    /// Set when the wall-time deadline stopped the guest.
    pub(crate) wall_time_exceeded: Option<LimitExceeded>,
    pub inferlet: InstanceContext,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: Default::default() }
    }
}
