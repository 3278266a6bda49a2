//! Llama-family models: config from metadata, tensors by GGUF name, the GPU
//! forward, and a plain-Rust reference of the same forward.

pub mod config;
pub mod llama;
// The plain-Rust reference the GPU forward is tested against.
#[cfg(any(test, feature = "test-support"))]
pub mod reference;
pub mod weights;

pub use config::{ConfigError, LlamaConfig};
pub use llama::{Capacity, KernelShape, Llama};
#[cfg(any(test, feature = "test-support"))]
pub use reference::Reference;
pub use weights::{ModelTensors, WeightsError};
