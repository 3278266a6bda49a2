//! The embedding gather (`shaders/embed.wgsl`): each input row becomes its
//! token's embedding, dequantized, or an embedding slot's contents.

use bytemuck::{Pod, Zeroable};

use super::{BoundMatrix, Kernel, Kernels};
use crate::engine::quant::TensorType;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub dim: u32,
    pub tokens: u32,
    /// Token rows are scaled by it (Gemma's √d; 1 for others).
    pub scale: f32,
    /// The rows this dispatch's part of the embedding holds.
    pub first_row: u32,
    pub rows: u32,
    pub _pad: [u32; 3],
}

/// An id with this bit set names an embedding slot, not a token.
pub const EMBED_SLOT_FLAG: u32 = 0x8000_0000;

pub struct Bindings<'a> {
    /// The embedding matrix, in `ty`.
    pub ty: TensorType,
    pub quants: &'a wgpu::Buffer,
    pub scales: &'a wgpu::Buffer,
    pub ids: &'a wgpu::Buffer,
    pub slots: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels) -> BoundMatrix {
        let buffers = [self.quants, self.scales, self.ids, self.slots, self.out, self.params];
        BoundMatrix { ty: self.ty, swiglu: false, qkv: false, group: kernels.bind_group(Kernel::Embed(self.ty), "embed", &buffers) }
    }
}

/// One invocation per (column, token).
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, embed: &BoundMatrix, dim: usize, tokens: u32) {
    kernels.dispatch(pass, Kernel::Embed(embed.ty), &embed.group, [(dim as u32).div_ceil(64), tokens]);
}
