//! The matrix kernels: out (+)= W · x for a quantized W, in five shapes
//! (`shaders/matmul.wgsl`, `matmul_blocked.wgsl`, `matmul_tiled.wgsl`,
//! `matvec_rows.wgsl`, `matvec.wgsl`, each over `shaders/matrix.wgsl`), with
//! the RMSNorm of their input folded in where a layer norms it first, and
//! RoPE with the paged KV write folded into q|k|v where the kernel holds both
//! rows of a pair. They share one bind-group layout, so a matrix's bind group
//! serves whichever shape a batch picks.

use bytemuck::{Pod, Zeroable};

use super::{BoundMatrix, Choice, Kernel, Kernels, KvType, storage_entry, uniform_entry, weights_define};
use crate::engine::model::LlamaConfig;
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
    /// [`Mode::QkvRope`]: the q and k|v row counts, the head size, the dims
    /// of a head that rotate, RoPE's base, and 1 when the KV cache is f16.
    pub q_rows: u32,
    pub kv_rows: u32,
    pub head_dim: u32,
    pub rope_dim: u32,
    pub freq_base: f32,
    pub kv_f16: u32,
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
    /// W is [q; k; v] stacked: q and k rotated by RoPE (adjacent pairs) at
    /// each token's position, k and v also written to its KV slot.
    QkvRope = 3,
    /// W is [gate; up] stacked (2n rows); writes gelu(gate) * up (GELU's
    /// tanh form, Gemma's GeGLU).
    GeGlu = 4,
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
            q_rows: 0,
            kv_rows: 0,
            head_dim: 0,
            rope_dim: 0,
            freq_base: 0.0,
            kv_f16: 0,
            _pad: 0,
        }
    }

    /// q|k|v of `tokens` rows with RoPE and the KV write folded in.
    pub fn qkv_rope(c: &LlamaConfig, tokens: u32, kv: KvType) -> Self {
        Self {
            q_rows: (c.n_head * c.head_dim) as u32,
            kv_rows: (c.n_kv_head * c.head_dim) as u32,
            head_dim: c.head_dim as u32,
            rope_dim: c.rope_dim as u32,
            freq_base: c.rope_base,
            kv_f16: (kv == KvType::F16) as u32,
            ..Self::new(c.d_model, c.qkv_width(), tokens, Mode::QkvRope)
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

    /// Whether the kernel does [`Mode::QkvRope`]: it holds both rows of a
    /// RoPE pair in one invocation or workgroup.
    pub fn folds_rope(self) -> bool {
        matches!(self, Variant::MatVecRows(_) | Variant::MatVec(..) | Variant::MatMulTiled(_) | Variant::MatMulBlocked(_))
    }

    /// Workgroups for `n` output rows over `tokens` inputs (`swiglu`: from
    /// 2`n` weight rows; `pairs`: RoPE pairs of rows, [`Mode::QkvRope`]).
    fn grid(self, n: usize, tokens: u32, swiglu: bool, pairs: bool) -> [u32; 2] {
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
            // Rows (or pairs) past 65535 (the most one dimension may hold) wrap into y.
            Variant::MatVec(..) => {
                let groups = if pairs { n / 2 } else { n };
                [groups.min(65535), groups.div_ceil(65535)]
            }
        }
    }
}

/// Weights (quants, scales), input, output, params, the input norm's gain,
/// and for q|k|v (`qkv`) the tokens and the layer's KV cache.
pub(super) fn bind_group_layout(device: &wgpu::Device, qkv: bool) -> wgpu::BindGroupLayout {
    let entries = [
        storage_entry(0, true),
        storage_entry(1, true),
        storage_entry(2, true),
        storage_entry(3, false),
        uniform_entry(4),
        storage_entry(5, true),
        storage_entry(6, true),
        storage_entry(7, false),
        storage_entry(8, false),
    ];
    let used = if qkv { entries.len() } else { 6 };
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("matrix"), entries: &entries[..used] })
}

/// What q|k|v's folded RoPE and KV write need: the batch's tokens and the
/// layer's keys and values.
#[derive(Clone, Copy)]
pub struct KvWrite<'a> {
    pub tokens: &'a wgpu::Buffer,
    pub k_cache: &'a wgpu::Buffer,
    pub v_cache: &'a wgpu::Buffer,
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
    /// For q|k|v, whose params may ask for RoPE and the KV write.
    pub kv: Option<KvWrite<'a>>,
}

impl Bindings<'_> {
    pub fn bind(&self, kernels: &mut Kernels, label: &str) -> BoundMatrix {
        // Without a norm the gain is never read: the input fills its binding.
        let gain = self.norm.unwrap_or(self.x);
        let mut buffers = vec![self.quants, self.scales, self.x, self.out, self.params, gain];
        if let Some(kv) = &self.kv {
            buffers.extend([kv.tokens, kv.k_cache, kv.v_cache]);
        }
        // Any variant names its family's shared layout.
        let kernel = family(Variant::MatMul(self.ty), self.kv.is_some());
        BoundMatrix { ty: self.ty, swiglu: false, qkv: self.kv.is_some(), group: kernels.bind_group(kernel, label, &buffers) }
    }
}

/// `n` output rows over `tokens` input rows, with the variant `choice` picks for them.
pub fn dispatch(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, choice: Choice, matrix: &BoundMatrix, n: usize, tokens: u32) {
    dispatch_pairs(pass, kernels, choice, matrix, n, tokens, false);
}

/// The same, over RoPE pairs of rows when `pairs`: q|k|v in [`Mode::QkvRope`]
/// (when `choice.folds_rope(tokens)`).
pub fn dispatch_pairs(pass: &mut wgpu::ComputePass, kernels: &mut Kernels, choice: Choice, matrix: &BoundMatrix, n: usize, tokens: u32, pairs: bool) {
    let variant = choice.matrix(matrix.ty, tokens);
    debug_assert!(!pairs || (matrix.qkv && variant.folds_rope()), "{variant:?} has no RoPE mode here");
    kernels.dispatch(pass, family(variant, matrix.qkv), &matrix.group, variant.grid(n, tokens, matrix.swiglu, pairs));
}

/// The kernel of `variant` for q|k|v (with its RoPE mode and bindings) or for the other matrices.
fn family(variant: Variant, qkv: bool) -> Kernel {
    if qkv { Kernel::MatrixQkv(variant) } else { Kernel::Matrix(variant) }
}
