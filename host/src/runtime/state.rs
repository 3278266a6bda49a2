//! What one instance's `Store` holds.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limits::{LimitExceeded, MemoryLimiter};
use crate::models::ModelRegistry;

/// Host-wide state every instance can read.
pub struct HostShared {
    pub version: String,
    pub models: ModelRegistry,
}

/// Per-instance state behind the `inferlet:core` interfaces.
pub struct InstanceContext {
    pub id: String,
    pub arguments: Vec<String>,
    pub return_value: Option<String>,
    pub host: Arc<HostShared>,
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
