//! What one instance's `Store` holds: WASI and HTTP contexts, the resource
//! table, the limits' state, and the api's context, each handed out as the
//! view its interfaces borrow.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limits::{LimitExceeded, MemoryLimiter};
use crate::api::{InferletCtx, InferletView};

pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    /// Where its outgoing requests may go (`outbound.rs`).
    pub(crate) outbound: super::outbound::OutboundHooks,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    /// Set when the wall-time or CPU-time limit stopped the guest.
    pub(crate) time_exceeded: Option<LimitExceeded>,
    pub inferlet: InferletCtx,
}

impl InstanceState {
    /// What the `inferlet:core` host functions borrow.
    pub(crate) fn inferlet_view(&mut self) -> InferletView<'_> {
        InferletView { ctx: &mut self.inferlet, table: &mut self.table }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}
