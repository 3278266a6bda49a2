//! Paged attention (`shaders/attention.wgsl`): each token's query heads over
//! its visible KV slots, read through its pass's page table and mask.

use bytemuck::{Pod, Zeroable};

use super::{Kernel, Kernels, KvType};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub n_head: u32,
    pub n_kv_head: u32,
    pub head_dim: u32,
    pub page_size: u32,
    pub scale: f32,
    pub _pad: [u32; 2],
}

pub struct Bindings<'a> {
    pub kv: KvType,
    pub qkv: &'a wgpu::Buffer,
    pub k_cache: &'a wgpu::Buffer,
    pub v_cache: &'a wgpu::Buffer,
    pub page_table: &'a wgpu::Buffer,
    pub tokens: &'a wgpu::Buffer,
    pub masks: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels) -> wgpu::BindGroup {
        let buffers = [self.qkv, self.k_cache, self.v_cache, self.page_table, self.tokens, self.masks, self.out, self.params];
        kernels.bind_group(Kernel::Attention(self.kv), "attention", &buffers)
    }
}

/// One workgroup per (query head, token).
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, kv: KvType, group: &wgpu::BindGroup, n_head: usize, tokens: u32) {
    kernels.dispatch(pass, Kernel::Attention(kv), group, [n_head as u32, tokens]);
}
