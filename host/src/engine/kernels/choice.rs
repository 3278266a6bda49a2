//! Which kernel variant a batch runs: by the adapter's shape (a CPU adapter
//! such as lavapipe, or a GPU), the batch's size, and what the device offers.

use super::attention::Variant as AttentionVariant;
use super::kv::KvType;
use super::matrix::Variant as MatrixVariant;
use crate::engine::device::Gpu;
use crate::engine::quant::TensorType;

/// What suits the adapter: a CPU adapter (lavapipe) is fastest with work per
/// invocation in registers and no barriers; a GPU wants a workgroup per row.
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

/// On CPU adapters, batches of at least this many input rows use the kernels
/// made for them: below it, most of the blocked matrix kernel's 8 token slots
/// and of the per-query attention kernel's invocations would be idle.
const CPU_TUNED_MIN_TOKENS: u32 = 4;

/// How a model picks its kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub shape: KernelShape,
    /// Reduce with subgroup operations (GPU-shaped decode).
    pub subgroups: bool,
    /// CPU adapters may use the kernels made for them (the register-blocked
    /// matrix kernel and the per-query attention kernel for longer batches,
    /// 8 rows per invocation for shorter ones); off, the first ones — the
    /// baseline `crust bench-engine` measures them against.
    pub cpu_tuned: bool,
}

impl Choice {
    fn cpu_tuned_for(self, tokens: u32) -> bool {
        self.shape == KernelShape::Cpu && self.cpu_tuned && tokens >= CPU_TUNED_MIN_TOKENS
    }

    pub fn matrix(self, ty: TensorType, tokens: u32) -> MatrixVariant {
        match self.shape {
            _ if self.cpu_tuned_for(tokens) => MatrixVariant::MatMulBlocked(ty),
            KernelShape::Cpu if self.cpu_tuned => MatrixVariant::MatVecRows(ty),
            KernelShape::Cpu => MatrixVariant::MatMul(ty),
            KernelShape::Gpu if tokens > TILED_MIN_TOKENS => MatrixVariant::MatMulTiled(ty),
            KernelShape::Gpu => MatrixVariant::MatVec(ty, self.subgroups),
        }
    }

    /// Whether the matrix kernel `tokens` rows get folds a layer's RMSNorm
    /// into its input. All do but the CPU-blocked one: there the gain would
    /// cost a multiply per weight vec4 and the squares a barrier (≈ 30% of
    /// batched decode on lavapipe, measured), where the norm's own dispatch
    /// costs ≈ 40 µs.
    pub fn folds_norms(self, tokens: u32) -> bool {
        !self.cpu_tuned_for(tokens)
    }

    /// Whether the matrix kernel `tokens` rows get folds RoPE and the paged
    /// KV write into q|k|v (the shape, not the weight type, decides).
    pub fn folds_rope(self, tokens: u32) -> bool {
        self.matrix(TensorType::F32, tokens).folds_rope()
    }

    pub fn attention(self, kv: KvType, tokens: u32) -> AttentionVariant {
        if self.cpu_tuned_for(tokens) { AttentionVariant::PerQuery(kv) } else { AttentionVariant::Chunked(kv) }
    }
}
