//! RMSNorm of chosen rows (`shaders/rms_norm.wgsl`): the output rows before
//! the LM head, gathered into one packed buffer, and every row before a
//! layer's q|k|v and gate|up where their matrix kernel does not fold the norm
//! in (`Choice::folds_norms`).

use bytemuck::{Pod, Zeroable};

use super::{Kernel, Kernels};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub dim: u32,
    pub rows: u32,
    pub eps: f32,
    /// 1: add the result into `out` (Gemma's post-norms into the residual).
    pub add: u32,
}

pub struct Bindings<'a> {
    pub x: &'a wgpu::Buffer,
    pub weight: &'a wgpu::Buffer,
    /// Which rows of `x` to normalize, in order.
    pub rows: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels, label: &str) -> wgpu::BindGroup {
        kernels.bind_group(Kernel::RmsNorm, label, &[self.x, self.weight, self.rows, self.out, self.params])
    }
}

/// One workgroup per row.
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, group: &wgpu::BindGroup, rows: u32) {
    kernels.dispatch(pass, Kernel::RmsNorm, group, [rows, 1]);
}
