//! Paged attention: each token's query heads over its visible KV slots, read
//! through its pass's page table and mask, in two shapes over
//! `shaders/attention_common.wgsl`: a workgroup per (head, token) for GPUs
//! (`attention.wgsl`) and an invocation per (token, head) for CPU adapters
//! (`attention_per_query.wgsl`). They share one bind-group layout, so a
//! layer's bind group serves either.

use bytemuck::{Pod, Zeroable};

use super::{Choice, Kernel, Kernels, KvType, storage_entry, uniform_entry};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub n_head: u32,
    pub n_kv_head: u32,
    pub head_dim: u32,
    pub page_size: u32,
    pub scale: f32,
    /// A sliding-window layer's span in slots (its own included); 0: the whole context.
    pub window: u32,
    pub _pad: u32,
}

/// An attention kernel variant: its shape and the cache's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// A workgroup per (head, token), 64 slots per step: GPUs, and short
    /// batches on CPU adapters (where it keeps more invocations busy).
    Chunked(KvType),
    /// An invocation per (token, head), no workgroup memory: longer batches
    /// on CPU adapters.
    PerQuery(KvType),
}

impl Variant {
    pub(super) fn file(self) -> &'static str {
        match self {
            Variant::Chunked(_) => "attention.wgsl",
            Variant::PerQuery(_) => "attention_per_query.wgsl",
        }
    }

    pub(super) fn kv(self) -> KvType {
        match self {
            Variant::Chunked(kv) | Variant::PerQuery(kv) => kv,
        }
    }

    fn grid(self, n_head: u32, tokens: u32) -> [u32; 2] {
        match self {
            Variant::Chunked(_) => [n_head, tokens],
            Variant::PerQuery(_) => [tokens.div_ceil(64), n_head],
        }
    }
}

/// q|k|v, the K and V caches, page table, tokens, masks (read), out, params.
pub(super) fn bind_group_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    let mut entries: Vec<_> = (0..6).map(|binding| storage_entry(binding, true)).collect();
    entries.extend([storage_entry(6, false), uniform_entry(7)]);
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("attention"), entries: &entries })
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
        // Either variant names the shared layout.
        kernels.bind_group(Kernel::Attention(Variant::Chunked(self.kv)), "attention", &buffers)
    }
}

/// Every query head of `tokens` tokens, with the variant `choice` picks for them.
pub fn dispatch(
    pass: &mut wgpu::ComputePass,
    kernels: &mut Kernels,
    choice: Choice,
    kv: KvType,
    group: &wgpu::BindGroup,
    n_head: usize,
    tokens: u32,
) {
    let variant = choice.attention(kv, tokens);
    kernels.dispatch(pass, Kernel::Attention(variant), group, variant.grid(n_head as u32, tokens));
}
