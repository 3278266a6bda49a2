//! Llama-family models: config from metadata, tensors by GGUF name, the GPU
//! forward, and a plain-Rust reference of the same forward.

pub mod capacity;
pub mod config;
pub mod llama;
pub mod reference;
pub mod weights;

pub use capacity::Capacity;
pub use config::{ConfigError, LlamaConfig};
pub use llama::{KernelShape, Llama};
pub use reference::Reference;
pub use weights::{ModelTensors, WeightsError};
