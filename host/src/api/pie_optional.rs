//! Pie's optional packages — `inferlet:adapter` (LoRA), `inferlet:zo`
//! (adapter evolution), `inferlet:image` (image input). Pie's SDK imports
//! them, so they are linked for its inferlets to instantiate; Crust has no
//! adapters or image input, so every call ends the instance, named.

use wasmtime::component::Resource;

use super::InferletView;
use super::bindings::inferlet::core::common::{Blob, BlobResult, Pointer, Queue};
use super::bindings::inferlet::core::forward::ForwardPass;
use super::bindings::inferlet::{adapter, image, zo};

fn not_supported<T>(function: &str) -> wasmtime::Result<T> {
    Err(wasmtime::format_err!("not supported: {function} (Crust has no LoRA adapters or image input)"))
}

impl adapter::common::Host for InferletView<'_> {
    async fn set_adapter(&mut self, _: Resource<ForwardPass>, _: Pointer) -> wasmtime::Result<()> {
        not_supported("inferlet:adapter/common.set-adapter")
    }

    async fn download_adapter(&mut self, _: Resource<Queue>, _: Pointer, _: String) -> wasmtime::Result<Resource<BlobResult>> {
        not_supported("inferlet:adapter/common.download-adapter")
    }

    async fn upload_adapter(&mut self, _: Resource<Queue>, _: Pointer, _: String, _: Resource<Blob>) -> wasmtime::Result<()> {
        not_supported("inferlet:adapter/common.upload-adapter")
    }
}

impl zo::evolve::Host for InferletView<'_> {
    async fn set_adapter_seed(&mut self, _: Resource<ForwardPass>, _: i64) -> wasmtime::Result<()> {
        not_supported("inferlet:zo/evolve.set-adapter-seed")
    }

    async fn initialize_adapter(&mut self, _: Resource<Queue>, _: Pointer, _: u32, _: f32, _: u32, _: f32, _: f32) -> wasmtime::Result<()> {
        not_supported("inferlet:zo/evolve.initialize-adapter")
    }

    async fn update_adapter(&mut self, _: Resource<Queue>, _: Pointer, _: Vec<f32>, _: Vec<i64>, _: f32) -> wasmtime::Result<()> {
        not_supported("inferlet:zo/evolve.update-adapter")
    }
}

impl image::image::Host for InferletView<'_> {
    async fn embed_image(&mut self, _: Resource<Queue>, _: Vec<Pointer>, _: Vec<u8>, _: u32) -> wasmtime::Result<()> {
        not_supported("inferlet:image/image.embed-image")
    }

    async fn calculate_embed_size(&mut self, _: Resource<Queue>, _: u32, _: u32) -> wasmtime::Result<u32> {
        not_supported("inferlet:image/image.calculate-embed-size")
    }
}
