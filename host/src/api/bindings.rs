//! The only host `bindgen!`: `inferlet:core` as the host implements it.
//!
//! Each WIT resource maps to a host type in the module of its interface, so
//! every host function can be found by its WIT name under `api/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "crust:inferlet/host",
    imports: { default: async | trappable },
    with: {
        "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
        "inferlet:core/common.debug-query-result": crate::api::common::DebugQueryResult,
        "inferlet:core/common.model": crate::api::common::ModelHandle,
    },
});


