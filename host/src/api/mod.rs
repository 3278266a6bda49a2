//! The `inferlet:core` interfaces as the host implements them: one module per
//! interface, each only trait impls and WIT↔Rust conversions. `tokenize` and
//! `kvs` forward to their provider components; `message` is not linked here
//! at all: the message provider is composed into each inferlet that imports
//! it, and serves it over `crust:host/messaging` (`messaging.rs`).

pub mod bindings;
pub mod common;
pub mod forward;
pub mod holdings;
mod kvs;
pub mod messaging;
mod pie_optional;
mod runtime;
mod tokenize;

use wasmtime::component::{HasSelf, Linker};

use crate::runtime::InstanceState;
use bindings::{crust, inferlet};

fn this(state: &mut InstanceState) -> &mut InstanceState {
    state
}

/// WASI p2, outgoing `wasi:http`, and every interface an inferlet may import
/// (`inferlet:core/message` through the composed message provider).
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    inferlet::core::common::add_to_linker::<_, HasSelf<_>>(linker, this)?;
    inferlet::core::runtime::add_to_linker::<_, HasSelf<_>>(linker, this)?;
    inferlet::core::forward::add_to_linker::<_, HasSelf<_>>(linker, this)?;
    inferlet::core::tokenize::add_to_linker::<_, HasSelf<_>>(linker, this)?;
    inferlet::core::kvs::add_to_linker::<_, HasSelf<_>>(linker, this)?;
    crust::host::messaging::add_to_linker::<_, HasSelf<_>>(linker, this)?;
    inferlet::adapter::common::add_to_linker::<_, HasSelf<_>>(linker, this)?;
    inferlet::zo::evolve::add_to_linker::<_, HasSelf<_>>(linker, this)?;
    inferlet::image::image::add_to_linker::<_, HasSelf<_>>(linker, this)?;
    Ok(())
}
