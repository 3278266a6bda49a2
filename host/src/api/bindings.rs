//! The host's `bindgen!` for inferlets: `inferlet:core` as the host implements it.
//!
//! Each WIT resource maps to a host type in the module of its interface, so
//! every host function can be found by its WIT name under `api/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "crust:inferlet/host",
    imports: { default: async | trappable },
    with: {
        "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
        "inferlet:core/common.model": crate::api::common::ModelHandle,
        "inferlet:core/common.queue": crate::api::common::QueueHandle,
        "inferlet:core/common.blob": crate::api::common::Blob,
        "inferlet:core/common.blob-result": crate::api::common::BlobResult,
        "inferlet:core/common.synchronization-result": crate::api::common::SynchronizationResult,
        "inferlet:core/common.debug-query-result": crate::api::common::DebugQueryResult,
        "inferlet:core/forward.forward-pass": crate::api::forward::PassBuilder,
        "inferlet:core/forward.forward-pass-result": crate::api::forward::PassOutcome,
        "inferlet:core/tokenize.tokenizer": crate::providers::tokenize::TokenizerHandle,
        "crust:host/messaging.client-message": crate::api::messaging::ClientMessage,
        "crust:host/messaging.topic-subscription": crate::api::messaging::TopicSubscription,
    },
});
