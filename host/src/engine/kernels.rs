//! The WGSL kernels: their sources (from `shaders/`, variants made by the
//! preprocessor in `preprocess.rs`), their compiled pipelines, and the
//! `Params` each one takes — `#[repr(C)]` structs that mirror the WGSL
//! structs field for field.

pub mod preprocess;

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};

use super::quant::TensorType;

macro_rules! embedded {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $path)))),*]
    };
}

/// Every file under `shaders/`, by its path there: what `#include` can name.
const SHADERS: &[(&str, &str)] = embedded![
    "attention.wgsl",
    "distribution.wgsl",
    "embed.wgsl",
    "kv.wgsl",
    "matmul.wgsl",
    "matmul_tiled.wgsl",
    "matrix.wgsl",
    "matvec.wgsl",
    "quant.wgsl",
    "quant/f16.wgsl",
    "quant/f32.wgsl",
    "quant/q4_0.wgsl",
    "quant/q4_1.wgsl",
    "quant/q4_nibbles.wgsl",
    "quant/q8_0.wgsl",
    "reduce.wgsl",
    "rms_norm.wgsl",
    "rope_kv.wgsl",
    "sample.wgsl",
    "sum_shared.wgsl",
    "sum_subgroup.wgsl",
];

fn shader(path: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(name, _)| *name == path).map(|(_, source)| *source)
}

/// The name `shaders/quant.wgsl` picks a weight type's loaders by.
fn weights_define(ty: TensorType) -> &'static str {
    match ty {
        TensorType::F32 => "WEIGHTS_F32",
        TensorType::F16 => "WEIGHTS_F16",
        TensorType::Q4_0 => "WEIGHTS_Q4_0",
        TensorType::Q4_1 => "WEIGHTS_Q4_1",
        TensorType::Q8_0 => "WEIGHTS_Q8_0",
    }
}

/// A kernel variant: the family, and the weight type where the family has several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// One invocation per (row, token): best on CPU adapters (lavapipe).
    MatMul(TensorType),
    /// 64 rows × 8 tokens per workgroup: prefill.
    MatMulTiled(TensorType),
    /// One workgroup per row, reduced with subgroups when `true`: decode on GPUs.
    MatVec(TensorType, bool),
    Embed(TensorType),
    RmsNorm,
    /// `true`: the KV cache holds f16.
    RopeKv(bool),
    Attention(bool),
    Sample,
    Distribution,
}

impl Kernel {
    /// The shader file the variant starts from, and the names its `#if`s see.
    fn shader(self) -> (&'static str, Vec<&'static str>) {
        match self {
            Kernel::MatMul(ty) => ("matmul.wgsl", vec![weights_define(ty)]),
            Kernel::MatMulTiled(ty) => ("matmul_tiled.wgsl", vec![weights_define(ty)]),
            Kernel::MatVec(ty, false) => ("matvec.wgsl", vec![weights_define(ty)]),
            Kernel::MatVec(ty, true) => ("matvec.wgsl", vec![weights_define(ty), "SUBGROUPS"]),
            Kernel::Embed(ty) => ("embed.wgsl", vec![weights_define(ty)]),
            Kernel::RmsNorm => ("rms_norm.wgsl", vec![]),
            Kernel::RopeKv(half) => ("rope_kv.wgsl", if half { vec!["KV_F16"] } else { vec![] }),
            Kernel::Attention(half) => ("attention.wgsl", if half { vec!["KV_F16"] } else { vec![] }),
            Kernel::Sample => ("sample.wgsl", vec![]),
            Kernel::Distribution => ("distribution.wgsl", vec![]),
        }
    }

    /// The variant's WGSL. The embedded sources are checked by the tests, so
    /// a failure here is a bug in them.
    fn source(self) -> String {
        let (file, defines) = self.shader();
        preprocess::preprocess(file, &defines, &shader).unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }

    /// The matrix kernels share one explicit bind-group layout, so a layer's
    /// bind group serves whichever of them a batch needs.
    fn is_matrix(self) -> bool {
        matches!(self, Kernel::MatMul(_) | Kernel::MatMulTiled(_) | Kernel::MatVec(..))
    }
}

/// Compiled pipelines, one per kernel variant.
pub struct Kernels {
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
    /// Weights (quants, scales), input, output, params: the matrix kernels' bindings.
    pub matrix_layout: wgpu::BindGroupLayout,
    matrix_pipeline_layout: wgpu::PipelineLayout,
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only }, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Self {
        let uniform = wgpu::BindGroupLayoutEntry {
            binding: 4,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None },
            count: None,
        };
        let matrix_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("matrix"),
            entries: &[storage_entry(0, true), storage_entry(1, true), storage_entry(2, true), storage_entry(3, false), uniform],
        });
        let matrix_pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("matrix"),
            bind_group_layouts: &[Some(&matrix_layout)],
            immediate_size: 0,
        });
        Self { pipelines: HashMap::new(), matrix_layout, matrix_pipeline_layout }
    }

    /// The pipeline of `kernel`, compiled the first time it is asked for.
    pub fn get(&mut self, device: &wgpu::Device, kernel: Kernel) -> &wgpu::ComputePipeline {
        let layout = kernel.is_matrix().then_some(&self.matrix_pipeline_layout);
        self.pipelines.entry(kernel).or_insert_with(|| {
            let label = format!("{kernel:?}");
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&label),
                source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        })
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MatMulParams {
    pub k: u32,
    pub n: u32,
    pub tokens: u32,
    pub x_stride: u32,
    pub out_stride: u32,
    pub out_offset: u32,
    pub mode: u32,
    pub _pad: u32,
}

/// `MatMulParams::mode`.
pub const MATMUL_STORE: u32 = 0;
pub const MATMUL_ADD: u32 = 1;
pub const MATMUL_SWIGLU: u32 = 2;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct EmbedParams {
    pub dim: u32,
    pub tokens: u32,
    pub _pad: [u32; 2],
}

/// An id with this bit set names an embedding slot, not a token.
pub const EMBED_SLOT_FLAG: u32 = 0x8000_0000;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RmsNormParams {
    pub dim: u32,
    pub rows: u32,
    pub eps: f32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RopeKvParams {
    pub tokens: u32,
    pub n_head: u32,
    pub n_kv_head: u32,
    pub head_dim: u32,
    pub rope_dim: u32,
    pub neox: u32,
    pub freq_base: f32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct AttentionParams {
    pub tokens: u32,
    pub n_head: u32,
    pub n_kv_head: u32,
    pub head_dim: u32,
    pub page_size: u32,
    pub scale: f32,
    pub _pad: [u32; 2],
}

/// One input token as the rope/KV-write and attention kernels see it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
pub struct GpuToken {
    pub position: u32,
    pub kv_slot: u32,
    pub ctx_len: u32,
    pub table_offset: u32,
    pub mask_offset: u32,
    pub _pad: [u32; 3],
}

/// `GpuToken::mask_offset` of a token that attends to every slot before it.
pub const NO_MASK: u32 = u32::MAX;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SampleParams {
    pub vocab: u32,
    pub samplers: u32,
    pub _pad: [u32; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
pub struct GpuSampler {
    pub row: u32,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub min_p: f32,
    pub uniform: f32,
    pub _pad: [u32; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct DistributionParams {
    pub vocab: u32,
    pub requests: u32,
    pub cap: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
pub struct GpuDistributionRequest {
    pub row: u32,
    pub temperature: f32,
    pub k: u32,
    pub _pad: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host structs must be as large as their WGSL twins (uniforms: multiples of 16).
    #[test]
    fn params_match_their_wgsl_sizes() {
        assert_eq!(size_of::<MatMulParams>(), 32);
        assert_eq!(size_of::<EmbedParams>(), 16);
        assert_eq!(size_of::<RmsNormParams>(), 16);
        assert_eq!(size_of::<RopeKvParams>(), 32);
        assert_eq!(size_of::<AttentionParams>(), 32);
        assert_eq!(size_of::<GpuToken>(), 32);
        assert_eq!(size_of::<SampleParams>(), 16);
        assert_eq!(size_of::<GpuSampler>(), 32);
        assert_eq!(size_of::<DistributionParams>(), 16);
        assert_eq!(size_of::<GpuDistributionRequest>(), 16);
    }

    /// `#include` can only name what is embedded: every shader file must be.
    #[test]
    fn every_shader_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
        let mut found = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "wgsl") {
                    found.push(path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"));
                }
            }
        }
        found.sort();
        let embedded: Vec<String> = SHADERS.iter().map(|(name, _)| name.to_string()).collect();
        assert_eq!(found, embedded);
    }

    /// Every variant's WGSL parses and validates (naga, no GPU needed).
    #[test]
    fn every_kernel_validates() {
        use TensorType::*;
        let mut kernels = vec![Kernel::RmsNorm, Kernel::Sample, Kernel::Distribution];
        for half in [false, true] {
            kernels.extend([Kernel::RopeKv(half), Kernel::Attention(half)]);
        }
        for ty in [F32, F16, Q4_0, Q4_1, Q8_0] {
            kernels.extend([Kernel::MatMul(ty), Kernel::MatMulTiled(ty), Kernel::MatVec(ty, false), Kernel::MatVec(ty, true), Kernel::Embed(ty)]);
        }
        for kernel in kernels {
            // `unpack2x16float` (F16 weights) needs only what every wgpu backend has.
            let base = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
            let capabilities = match kernel {
                Kernel::MatVec(_, true) => base | naga::valid::Capabilities::SUBGROUP,
                Kernel::RopeKv(true) | Kernel::Attention(true) => base | naga::valid::Capabilities::SHADER_FLOAT16,
                _ => base,
            };
            let module = naga::front::wgsl::parse_str(&kernel.source())
                .unwrap_or_else(|e| panic!("{kernel:?}: {}", e.emit_to_string(&kernel.source())));
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
                .validate(&module)
                .unwrap_or_else(|e| panic!("{kernel:?}: {e:?}"));
        }
    }
}
