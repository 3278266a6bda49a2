//! The inference engine: GGUF models on the GPU through WGSL compute
//! kernels over wgpu, a paged KV cache, batched forward passes and GPU
//! sampling. The engine never sees WIT bindings; `api/forward.rs` turns
//! inferlet calls into [`batch::Pass`]es.

pub mod batch;
pub mod check;
pub mod chunks;
pub mod counters;
pub mod device;
pub mod exports;
pub mod gguf;
pub mod holdings;
pub mod kernels;
pub mod model;
pub mod namespace;
pub mod owner;
pub mod plan;
pub mod pool;
pub mod quant;
pub mod scheduler;
pub mod sequence;
pub mod service;
pub mod synthetic;
pub mod tokenizer;
