//! RoPE and the paged KV write (`shaders/rope_kv.wgsl`): adds each token's
//! q|k|v biases, normalizes its query and key heads where the model does,
//! rotates them in place, then stores its keys and values in its KV slot.

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
    pub qk_norm: u32,
    pub eps: f32,
    pub _pad: [u32; 3],
}

pub struct Bindings<'a> {
    pub kv: KvType,
    /// Read and rotated in place.
    pub qkv: &'a wgpu::Buffer,
    pub tokens: &'a wgpu::Buffer,
    pub k_cache: &'a wgpu::Buffer,
    pub v_cache: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
    /// The layer's q|k|v biases, then its query and key head norms' gains.
    pub extras: &'a wgpu::Buffer,
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels) -> wgpu::BindGroup {
        kernels.bind_group(Kernel::RopeKv(self.kv), "rope_kv", &[self.qkv, self.tokens, self.k_cache, self.v_cache, self.params, self.extras])
    }
}

/// One workgroup per token.
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, kv: KvType, group: &wgpu::BindGroup, tokens: u32) {
    kernels.dispatch(pass, Kernel::RopeKv(kv), group, [tokens, 1]);
}
