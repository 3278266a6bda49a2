//! The `inferlet:core` interfaces as the host implements them: one module per
//! interface, each only trait impls (on [`InferletView`]) and WIT↔Rust
//! conversions, delegating to the engine and the providers. `tokenize` and
//! `kvs` forward to their provider components; `message` is not linked here
//! at all: the message provider is composed into each inferlet that imports
//! it, and serves it over `crust:host/messaging` (`messaging.rs`).

pub mod bindings;
pub mod common;
mod context;
mod exports;
pub mod forward;
mod host_memory;
mod kvs;
pub mod messaging;
mod pie_optional;
mod runtime;
mod tokenize;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpView;

use bindings::{crust, inferlet};
pub use context::{HasInferlet, InferletCtx, InferletHost, InferletView};
pub use host_memory::HostMemory;
pub use kvs::KvsScope;

/// WASI p2, outgoing `wasi:http`, and every interface an inferlet may import
/// (`inferlet:core/message` through the composed message provider). `view`
/// borrows the api's part of the store's data.
pub fn add_to_linker<T>(linker: &mut Linker<T>, view: fn(&mut T) -> InferletView<'_>) -> wasmtime::Result<()>
where
    T: WasiView + WasiHttpView + Send + 'static,
{
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    inferlet::core::common::add_to_linker::<_, HasInferlet>(linker, view)?;
    inferlet::core::runtime::add_to_linker::<_, HasInferlet>(linker, view)?;
    inferlet::core::forward::add_to_linker::<_, HasInferlet>(linker, view)?;
    inferlet::core::tokenize::add_to_linker::<_, HasInferlet>(linker, view)?;
    inferlet::core::kvs::add_to_linker::<_, HasInferlet>(linker, view)?;
    crust::host::messaging::add_to_linker::<_, HasInferlet>(linker, view)?;
    crust::host::exports::add_to_linker::<_, HasInferlet>(linker, view)?;
    inferlet::adapter::common::add_to_linker::<_, HasInferlet>(linker, view)?;
    inferlet::zo::evolve::add_to_linker::<_, HasInferlet>(linker, view)?;
    inferlet::image::image::add_to_linker::<_, HasInferlet>(linker, view)?;
    Ok(())
}

/// Ends the instance with a message that names the call and the bad value.
pub(crate) fn misuse<T>(message: String) -> wasmtime::Result<T> {
    Err(wasmtime::format_err!("{message}"))
}
