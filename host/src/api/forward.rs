//! `inferlet:core/forward`: arrives with the engine.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::bindings::inferlet::core::common::{Pointer, Queue};
use super::bindings::inferlet::core::forward::{ForwardPass, ForwardPassResult, Host, HostForwardPass, HostForwardPassResult};
use super::not_implemented;
use crate::runtime::InstanceState;

type Pass = Resource<ForwardPass>;

impl HostForwardPass for InstanceState {
    async fn execute(&mut self, _: Pass) -> wasmtime::Result<Option<Resource<ForwardPassResult>>> {
        not_implemented("forward.forward-pass.execute")
    }

    async fn drop(&mut self, _: Pass) -> wasmtime::Result<()> {
        not_implemented("forward.forward-pass.drop")
    }
}

impl HostForwardPassResult for InstanceState {
    async fn pollable(&mut self, _: Resource<ForwardPassResult>) -> wasmtime::Result<Resource<DynPollable>> {
        not_implemented("forward.forward-pass-result.pollable")
    }

    async fn get_distributions(
        &mut self,
        _: Resource<ForwardPassResult>,
    ) -> wasmtime::Result<Option<Vec<(Vec<u32>, Vec<f32>)>>> {
        not_implemented("forward.forward-pass-result.get-distributions")
    }

    async fn get_tokens(&mut self, _: Resource<ForwardPassResult>) -> wasmtime::Result<Option<Vec<u32>>> {
        not_implemented("forward.forward-pass-result.get-tokens")
    }

    async fn drop(&mut self, _: Resource<ForwardPassResult>) -> wasmtime::Result<()> {
        not_implemented("forward.forward-pass-result.drop")
    }
}

impl Host for InstanceState {
    async fn create_forward_pass(&mut self, _: Resource<Queue>) -> wasmtime::Result<Pass> {
        not_implemented("forward.create-forward-pass")
    }

    async fn attention_mask(&mut self, _: Pass, _: Vec<Vec<u32>>) -> wasmtime::Result<()> {
        not_implemented("forward.attention-mask")
    }

    async fn kv_cache(&mut self, _: Pass, _: Vec<Pointer>, _: u32) -> wasmtime::Result<()> {
        not_implemented("forward.kv-cache")
    }

    async fn input_embeddings(&mut self, _: Pass, _: Vec<Pointer>, _: Vec<u32>) -> wasmtime::Result<()> {
        not_implemented("forward.input-embeddings")
    }

    async fn input_tokens(&mut self, _: Pass, _: Vec<u32>, _: Vec<u32>) -> wasmtime::Result<()> {
        not_implemented("forward.input-tokens")
    }

    async fn output_embeddings(&mut self, _: Pass, _: Vec<Pointer>, _: Vec<u32>) -> wasmtime::Result<()> {
        not_implemented("forward.output-embeddings")
    }

    async fn output_distributions(&mut self, _: Pass, _: Vec<u32>, _: f32, _: Option<u32>) -> wasmtime::Result<()> {
        not_implemented("forward.output-distributions")
    }

    async fn output_tokens(&mut self, _: Pass, _: Vec<u32>, _: f32) -> wasmtime::Result<()> {
        not_implemented("forward.output-tokens")
    }

    async fn output_tokens_top_k(&mut self, _: Pass, _: Vec<u32>, _: f32, _: u32) -> wasmtime::Result<()> {
        not_implemented("forward.output-tokens-top-k")
    }

    async fn output_tokens_top_p(&mut self, _: Pass, _: Vec<u32>, _: f32, _: f32) -> wasmtime::Result<()> {
        not_implemented("forward.output-tokens-top-p")
    }

    async fn output_tokens_min_p(&mut self, _: Pass, _: Vec<u32>, _: f32, _: f32) -> wasmtime::Result<()> {
        not_implemented("forward.output-tokens-min-p")
    }

    async fn output_tokens_top_k_top_p(&mut self, _: Pass, _: Vec<u32>, _: f32, _: u32, _: f32) -> wasmtime::Result<()> {
        not_implemented("forward.output-tokens-top-k-top-p")
    }
}
