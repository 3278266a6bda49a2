//! Top-k distributions (`shaders/distribution.wgsl`): per request, the
//! tokens at or above its k-th probability, at most `cap` of them, unsorted.

use bytemuck::{Pod, Zeroable};

use super::{Kernel, Kernels};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub vocab: u32,
    pub requests: u32,
    /// Room per request in `ids` and `probs`.
    pub cap: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
pub struct GpuDistributionRequest {
    pub row: u32,
    pub temperature: f32,
    pub k: u32,
    pub _pad: u32,
}

pub struct Bindings<'a> {
    pub logits: &'a wgpu::Buffer,
    pub requests: &'a wgpu::Buffer,
    pub ids: &'a wgpu::Buffer,
    pub probs: &'a wgpu::Buffer,
    /// How many of its `cap` entries each request filled.
    pub counts: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels) -> wgpu::BindGroup {
        kernels.bind_group(Kernel::Distribution, "distribution", &[self.logits, self.requests, self.ids, self.probs, self.counts, self.params])
    }
}

/// One workgroup per request.
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, group: &wgpu::BindGroup, requests: usize) {
    kernels.dispatch(pass, Kernel::Distribution, group, [requests as u32, 1]);
}
