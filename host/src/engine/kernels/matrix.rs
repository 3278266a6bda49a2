//! The matrix kernels: out (+)= W · x for a quantized W, in five shapes
//! (`shaders/matmul.wgsl`, `matmul_blocked.wgsl`, `matmul_tiled.wgsl`,
//! `matvec_rows.wgsl`, `matvec.wgsl`, each over `shaders/matrix.wgsl`), with
//! the RMSNorm of their input folded in where a layer norms it first. They
//! share one bind-group layout, so a matrix's bind group serves whichever
//! shape a batch picks.

use bytemuck::{Pod, Zeroable};

use super::{BoundMatrix, Choice, Kernel, Kernels, storage_entry, uniform_entry, weights_define};
use crate::engine::quant::TensorType;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub k: u32,
    pub n: u32,
    pub tokens: u32,
    pub x_stride: u32,
    pub out_stride: u32,
    pub out_offset: u32,
    /// A [`Mode`].
    pub mode: u32,
    /// 1: the input is RMS-normalized with `eps` and the gain bound beside it.
    pub norm: u32,
    pub eps: f32,
    pub _pad: [u32; 3],
}

/// What a kernel does with each output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Store = 0,
    /// Adds into `out`: the residual stream.
    Add = 1,
    /// W is [gate; up] stacked (2n rows); writes silu(gate) * up.
    SwiGlu = 2,
}

impl Params {
    /// `tokens` rows of width `k` in, rows of width `n` out, packed.
    pub fn new(k: usize, n: usize, tokens: u32, mode: Mode) -> Self {
        Self {
            k: k as u32,
            n: n as u32,
            tokens,
            x_stride: k as u32,
            out_stride: n as u32,
            out_offset: 0,
            mode: mode as u32,
            norm: 0,
            eps: 0.0,
            _pad: [0; 3],
        }
    }

    /// The input RMS-normalized first (with the gain bound as the matrix's `norm`).
    pub fn normalized(self, eps: f32) -> Self {
        Self { norm: 1, eps, ..self }
    }
}

/// A matrix kernel variant: its shape and weight type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// One invocation per (row, token): best on CPU adapters (lavapipe).
    MatMul(TensorType),
    /// 64 rows × 8 tokens per workgroup: prefill on GPUs.
    MatMulTiled(TensorType),
    /// One invocation per 4 rows × 8 tokens, in registers: prefill and
    /// batched decode on CPU adapters.
    MatMulBlocked(TensorType),
    /// One invocation per 8 rows of one token, workgroups of 8: decode on
    /// CPU adapters.
    MatVecRows(TensorType),
    /// One workgroup per row, reduced with subgroups when `true`: decode on GPUs.
    MatVec(TensorType, bool),
}

impl Variant {
    pub(super) fn file(self) -> &'static str {
        match self {
            Variant::MatMul(_) => "matmul.wgsl",
            Variant::MatMulTiled(_) => "matmul_tiled.wgsl",
            Variant::MatMulBlocked(_) => "matmul_blocked.wgsl",
            Variant::MatVecRows(_) => "matvec_rows.wgsl",
            Variant::MatVec(..) => "matvec.wgsl",
        }
    }

    pub(super) fn defines(self) -> Vec<&'static str> {
        match self {
            Variant::MatMul(ty) | Variant::MatMulTiled(ty) | Variant::MatMulBlocked(ty) | Variant::MatVecRows(ty) | Variant::MatVec(ty, false) => {
                vec![weights_define(ty)]
            }
            Variant::MatVec(ty, true) => vec![weights_define(ty), "SUBGROUPS"],
        }
    }

    /// Workgroups for `n` output rows over `tokens` inputs (`swiglu`: from
    /// 2`n` weight rows).
    fn grid(self, n: usize, tokens: u32, swiglu: bool) -> [u32; 2] {
        let n = n as u32;
        match self {
            Variant::MatMul(_) => [n.div_ceil(64), tokens],
            Variant::MatMulTiled(_) => [n.div_ceil(64), tokens.div_ceil(8)],
            Variant::MatMulBlocked(_) => {
                let per_invocation = if swiglu { 2 } else { 4 };
                [n.div_ceil(per_invocation * 64), tokens.div_ceil(8)]
            }
            Variant::MatVecRows(_) => {
                let per_invocation = if swiglu { 4 } else { 8 };
                [n.div_ceil(per_invocation * 8), tokens]
            }
            // Rows past 65535 (the most one dimension may hold) wrap into y.
            Variant::MatVec(..) => [n.min(65535), n.div_ceil(65535)],
        }
    }
}

/// Weights (quants, scales), input, output, params, the input norm's gain.
pub(super) fn bind_group_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("matrix"),
        entries: &[
            storage_entry(0, true),
            storage_entry(1, true),
            storage_entry(2, true),
            storage_entry(3, false),
            uniform_entry(4),
            storage_entry(5, true),
        ],
    })
}

pub struct Bindings<'a> {
    /// The weights, in `ty`.
    pub ty: TensorType,
    pub quants: &'a wgpu::Buffer,
    pub scales: &'a wgpu::Buffer,
    pub x: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
    /// The gain of the RMSNorm folded into the input, if the params ask for one.
    pub norm: Option<&'a wgpu::Buffer>,
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels, label: &str) -> BoundMatrix {
        // Any variant names the shared layout.
        let kernel = Kernel::Matrix(Variant::MatMul(self.ty));
        // Without a norm the gain is never read: the input fills its binding.
        let gain = self.norm.unwrap_or(self.x);
        BoundMatrix {
            ty: self.ty,
            swiglu: false,
            group: kernels.bind_group(kernel, label, &[self.quants, self.scales, self.x, self.out, self.params, gain]),
        }
    }
}

/// `n` output rows over `tokens` input rows, with the variant `choice` picks for them.
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, choice: Choice, matrix: &BoundMatrix, n: usize, tokens: u32) {
    let variant = choice.matrix(matrix.ty, tokens);
    kernels.dispatch(pass, Kernel::Matrix(variant), &matrix.group, variant.grid(n, tokens, matrix.swiglu));
}
