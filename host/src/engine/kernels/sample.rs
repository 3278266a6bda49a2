//! Sampling on the GPU (`shaders/sample.wgsl`): one token per sampler, drawn
//! from its logits row with temperature, top-k, top-p and min-p.

use bytemuck::{Pod, Zeroable};

use super::{Kernel, Kernels};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub vocab: u32,
    pub samplers: u32,
    pub _pad: [u32; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
pub struct GpuSampler {
    pub row: u32,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub min_p: f32,
    pub uniform: f32,
    pub _pad: [u32; 2],
}

pub struct Bindings<'a> {
    pub logits: &'a wgpu::Buffer,
    pub samplers: &'a wgpu::Buffer,
    /// One token id per sampler.
    pub sampled: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels) -> wgpu::BindGroup {
        kernels.bind_group(Kernel::Sample, "sample", &[self.logits, self.samplers, self.sampled, self.params])
    }
}

/// One workgroup per sampler.
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, group: &wgpu::BindGroup, samplers: usize) {
    kernels.dispatch(pass, Kernel::Sample, group, [samplers as u32, 1]);
}
