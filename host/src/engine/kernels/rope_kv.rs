//! RoPE and the paged KV write (`shaders/rope_kv.wgsl`): rotates each token's
//! query and key heads in place, then stores its keys and values in its KV slot.

use bytemuck::{Pod, Zeroable};

use super::{Kernel, Kernels, KvType};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub n_head: u32,
    pub n_kv_head: u32,
    pub head_dim: u32,
    pub rope_dim: u32,
    pub neox: u32,
    pub freq_base: f32,
    pub _pad: u32,
}

pub struct Bindings<'a> {
    pub kv: KvType,
    /// Read and rotated in place.
    pub qkv: &'a wgpu::Buffer,
    pub tokens: &'a wgpu::Buffer,
    pub k_cache: &'a wgpu::Buffer,
    pub v_cache: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels) -> wgpu::BindGroup {
        kernels.bind_group(Kernel::RopeKv(self.kv), "rope_kv", &[self.qkv, self.tokens, self.k_cache, self.v_cache, self.params])
    }
}

/// One workgroup per token.
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, kv: KvType, group: &wgpu::BindGroup, tokens: u32) {
    kernels.dispatch(pass, Kernel::RopeKv(kv), group, [tokens, 1]);
}
