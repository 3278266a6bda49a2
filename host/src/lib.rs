//! Crust: a programmable LLM serving system. Users send inferlets —
//! WebAssembly components that drive the model through `inferlet:core` —
//! instead of prompts.

pub mod api;
pub mod cli;
pub mod compiled;
pub mod config;
pub mod engine;
pub mod messaging;
pub mod model_store;
pub mod models;
pub mod oci;
pub mod providers;
pub mod runtime;
pub mod server;

/// The host's version, as `runtime.get-version` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
