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
mod recording;
// The plain-Rust reference the GPU forward is tested against.
#[cfg(any(test, feature = "test-support"))]
pub mod reference;
mod uniforms;
pub mod weights;

pub use capacity::Capacity;
pub use config::{ConfigError, LlamaConfig};
pub use llama::{KernelShape, Llama};
#[cfg(any(test, feature = "test-support"))]
pub use reference::Reference;
pub use weights::{ModelTensors, WeightsError};
