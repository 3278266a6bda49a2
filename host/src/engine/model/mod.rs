//! Llama-family models: config from metadata, tensors by GGUF name, the GPU
//! forward, and a plain-Rust reference of the same forward.

mod bindings;
mod buffers;
pub mod capacity;
pub mod config;
mod gpu_weights;
mod kv_cache;
pub mod llama;
mod readback;
pub mod reference;
mod uniforms;
pub mod weights;

pub use capacity::Capacity;
pub use config::{ConfigError, LlamaConfig};
pub use llama::{KernelShape, Llama};
pub use reference::Reference;
pub use weights::{ModelTensors, WeightsError};
