//! The matrix kernels: out (+)= W · x for a quantized W, in three shapes
//! (`shaders/matmul.wgsl`, `matmul_tiled.wgsl`, `matvec.wgsl`, each over
//! `shaders/matrix.wgsl`). They share one bind-group layout, so a matrix's
//! bind group serves whichever shape a batch picks.

use bytemuck::{Pod, Zeroable};

use super::{BoundMatrix, Kernel, Kernels, storage_entry, uniform_entry, weights_define};
use crate::engine::device::Gpu;
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
    pub _pad: u32,
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
        Self { k: k as u32, n: n as u32, tokens, x_stride: k as u32, out_stride: n as u32, out_offset: 0, mode: mode as u32, _pad: 0 }
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
    /// One workgroup per row, reduced with subgroups when `true`: decode on GPUs.
    MatVec(TensorType, bool),
}

impl Variant {
    pub(super) fn file(self) -> &'static str {
        match self {
            Variant::MatMul(_) => "matmul.wgsl",
            Variant::MatMulTiled(_) => "matmul_tiled.wgsl",
            Variant::MatMulBlocked(_) => "matmul_blocked.wgsl",
            Variant::MatVec(..) => "matvec.wgsl",
        }
    }

    pub(super) fn defines(self) -> Vec<&'static str> {
        match self {
            Variant::MatMul(ty) | Variant::MatMulTiled(ty) | Variant::MatMulBlocked(ty) | Variant::MatVec(ty, false) => vec![weights_define(ty)],
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
            // Rows past 65535 (the most one dimension may hold) wrap into y.
            Variant::MatVec(..) => [n.min(65535), n.div_ceil(65535)],
        }
    }
}

/// Which matrix kernels suit the adapter: a CPU adapter (lavapipe) is fastest
/// with one invocation per output; a GPU wants a workgroup per row.
/// `CRUST_KERNEL_SHAPE=cpu|gpu` overrides the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelShape {
    Cpu,
    Gpu,
}

impl KernelShape {
    pub fn for_adapter(gpu: &Gpu) -> Self {
        match std::env::var("CRUST_KERNEL_SHAPE").as_deref() {
            Ok("cpu") => Self::Cpu,
            Ok("gpu") => Self::Gpu,
            _ if gpu.is_cpu() => Self::Cpu,
            _ => Self::Gpu,
        }
    }
}

/// On GPUs, batches with more input rows than this use the tiled (prefill) kernel.
const TILED_MIN_TOKENS: u32 = 8;

/// On CPU adapters, batches of at least this many input rows use the blocked
/// kernel (below it, most of its 8 token slots would be idle).
const BLOCKED_MIN_TOKENS: u32 = 4;

/// How a model picks its matrix kernels: by the adapter's shape, and whether it reduces with subgroups.
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    pub shape: KernelShape,
    pub subgroups: bool,
    /// CPU adapters may use the blocked kernel.
    pub blocked: bool,
}

impl Choice {
    pub fn variant(self, ty: TensorType, tokens: u32) -> Variant {
        match self.shape {
            // Barriers are costly on a CPU adapter: no workgroup memory, sums in registers.
            KernelShape::Cpu if self.blocked && tokens >= BLOCKED_MIN_TOKENS => Variant::MatMulBlocked(ty),
            KernelShape::Cpu => Variant::MatMul(ty),
            KernelShape::Gpu if tokens > TILED_MIN_TOKENS => Variant::MatMulTiled(ty),
            KernelShape::Gpu => Variant::MatVec(ty, self.subgroups),
        }
    }
}

/// Weights (quants, scales), input, output, params.
pub(super) fn bind_group_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("matrix"),
        entries: &[storage_entry(0, true), storage_entry(1, true), storage_entry(2, true), storage_entry(3, false), uniform_entry(4)],
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
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels, label: &str) -> BoundMatrix {
        // Any variant names the shared layout.
        let kernel = Kernel::Matrix(Variant::MatMul(self.ty));
        BoundMatrix {
            ty: self.ty,
            swiglu: false,
            group: kernels.bind_group(kernel, label, &[self.quants, self.scales, self.x, self.out, self.params]),
        }
    }
}

/// `n` output rows over `tokens` input rows, with the variant `choice` picks for them.
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, choice: Choice, matrix: &BoundMatrix, n: usize, tokens: u32) {
    let variant = choice.variant(matrix.ty, tokens);
    kernels.dispatch(pass, Kernel::Matrix(variant), &matrix.group, variant.grid(n, tokens, matrix.swiglu));
}
