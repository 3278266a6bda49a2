//! The WGSL kernels, one host module per shader family: its `Params` (a
//! `#[repr(C)]` twin of the WGSL struct), its variant key, its bind group and
//! its `dispatch`. This module holds what they share: the embedded `shaders/`
//! sources, which the preprocessor turns into a variant's WGSL, and the
//! pipeline cache.

pub mod attention;
pub mod choice;
pub mod distribution;
pub mod embed;
pub mod kv;
pub mod matrix;
pub mod preprocess;
pub mod rms_norm;
pub mod rope_kv;
pub mod sample;

use std::collections::HashMap;

pub use choice::{Choice, KernelShape};
pub use distribution::GpuDistributionRequest;
pub use embed::EMBED_SLOT_FLAG;
pub use kv::{GpuToken, KvType, NO_MASK};
pub use sample::GpuSampler;

use super::quant::TensorType;

macro_rules! embedded {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $path)))),*]
    };
}

/// Every file under `shaders/`, by its path there: what `#include` can name.
const SHADERS: &[(&str, &str)] = embedded![
    "attention.wgsl",
    "attention_common.wgsl",
    "attention_per_query.wgsl",
    "distribution.wgsl",
    "embed.wgsl",
    "kv.wgsl",
    "matmul.wgsl",
    "matmul_blocked.wgsl",
    "matmul_tiled.wgsl",
    "matrix.wgsl",
    "matvec.wgsl",
    "matvec_rows.wgsl",
    "quant.wgsl",
    "quant/affine.wgsl",
    "quant/f16.wgsl",
    "quant/f32.wgsl",
    "quant/nibbles.wgsl",
    "quant/q6_k.wgsl",
    "quant/q8_0.wgsl",
    "quant/symmetric.wgsl",
    "quant/unscaled.wgsl",
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

/// The name `shaders/quant.wgsl` picks a weight type's loaders by. The
/// K-quants with mins are repacked to the 32-weight layouts they reduce to.
fn weights_define(ty: TensorType) -> &'static str {
    match ty {
        TensorType::F32 => "WEIGHTS_F32",
        TensorType::F16 => "WEIGHTS_F16",
        TensorType::Q4_0 => "WEIGHTS_Q4_0",
        TensorType::Q4_1 | TensorType::Q4_K => "WEIGHTS_Q4_1",
        TensorType::Q5_0 => "WEIGHTS_Q5_0",
        TensorType::Q5_1 | TensorType::Q5_K => "WEIGHTS_Q5_1",
        TensorType::Q6_K => "WEIGHTS_Q6_K",
        TensorType::Q8_0 => "WEIGHTS_Q8_0",
    }
}

/// A kernel variant, the key of its pipeline: the family, and the family's
/// variant where it has several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    Embed(TensorType),
    RmsNorm,
    Matrix(matrix::Variant),
    /// The matrix kernel for q|k|v: also RoPE and the KV write (mode 3).
    MatrixQkv(matrix::Variant),
    RopeKv(KvType),
    Attention(attention::Variant),
    Sample,
    Distribution,
}

impl Kernel {
    /// The shader file the variant starts from.
    fn file(self) -> &'static str {
        match self {
            Kernel::Embed(_) => "embed.wgsl",
            Kernel::RmsNorm => "rms_norm.wgsl",
            Kernel::Matrix(variant) | Kernel::MatrixQkv(variant) => variant.file(),
            Kernel::RopeKv(_) => "rope_kv.wgsl",
            Kernel::Attention(variant) => variant.file(),
            Kernel::Sample => "sample.wgsl",
            Kernel::Distribution => "distribution.wgsl",
        }
    }

    /// The names its shader's `#if`s see.
    fn defines(self) -> Vec<&'static str> {
        match self {
            Kernel::Embed(ty) => vec![weights_define(ty)],
            Kernel::Matrix(variant) => variant.defines(),
            Kernel::MatrixQkv(variant) => [variant.defines(), vec!["QKV"]].concat(),
            Kernel::RopeKv(kv) => kv.defines(),
            Kernel::Attention(variant) => variant.kv().defines(),
            Kernel::RmsNorm | Kernel::Sample | Kernel::Distribution => vec![],
        }
    }

    /// The variant's WGSL. The embedded sources are checked by the tests, so
    /// a failure here is a bug in them.
    pub fn source(self) -> String {
        preprocess::preprocess(self.file(), &self.defines(), &shader).unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

/// A bind group over a weight matrix, with the matrix's type: together they
/// pick the kernel variant (`embed`, `matrix`).
pub struct BoundMatrix {
    pub ty: TensorType,
    pub group: wgpu::BindGroup,
    /// Its rows are [gate; up] stacked, for the SwiGLU mode: the CPU-blocked
    /// kernel then makes 2 outputs per invocation, not 4.
    pub swiglu: bool,
    /// Bound for [`Kernel::MatrixQkv`].
    pub qkv: bool,
}

/// Compiled pipelines, one per kernel variant, made the first time each is asked for.
pub struct Kernels {
    device: wgpu::Device,
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
    layouts: SharedLayouts,
    /// Dispatches recorded since [`Self::take_dispatched`] last asked.
    dispatched: u64,
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Self {
        Self {
            device: device.clone(),
            pipelines: HashMap::new(),
            layouts: SharedLayouts {
                matrix: SharedLayout::new(device, matrix::bind_group_layout(device, false)),
                matrix_qkv: SharedLayout::new(device, matrix::bind_group_layout(device, true)),
                attention: SharedLayout::new(device, attention::bind_group_layout(device)),
            },
            dispatched: 0,
        }
    }

    fn pipeline(&mut self, kernel: Kernel) -> &wgpu::ComputePipeline {
        let layout = self.layouts.of(kernel).map(|shared| &shared.pipeline);
        let device = &self.device;
        self.pipelines.entry(kernel).or_insert_with(|| {
            let label = format!("{kernel:?}");
            let module = device
                .create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(&label), source: wgpu::ShaderSource::Wgsl(kernel.source().into()) });
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

    /// A bind group for `kernel` with `buffers` at bindings 0, 1, … in order,
    /// in its family's shared layout or, for the other families, the one wgpu
    /// derives from the WGSL (which compiles the pipeline now).
    fn bind_group(&mut self, kernel: Kernel, label: &str, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let layout = match self.layouts.of(kernel) {
            Some(shared) => shared.group.clone(),
            None => self.pipeline(kernel).get_bind_group_layout(0),
        };
        let entries: Vec<wgpu::BindGroupEntry> =
            buffers.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() }).collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout: &layout, entries: &entries })
    }

    /// Runs `kernel` over `x` × `y` workgroups; an empty grid records nothing.
    fn dispatch(&mut self, pass: &mut wgpu::ComputePass, kernel: Kernel, group: &wgpu::BindGroup, [x, y]: [u32; 2]) {
        if x > 0 && y > 0 {
            pass.set_pipeline(self.pipeline(kernel));
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(x, y, 1);
            self.dispatched += 1;
        }
    }

    /// How many dispatches were recorded since the last call.
    pub fn take_dispatched(&mut self) -> u64 {
        std::mem::take(&mut self.dispatched)
    }
}

/// The matrix kernels share one explicit layout, so a matrix's bind group
/// serves whichever of them a batch picks (q|k|v's kernels another, with its
/// extra bindings); so do the attention kernels.
struct SharedLayouts {
    matrix: SharedLayout,
    matrix_qkv: SharedLayout,
    attention: SharedLayout,
}

impl SharedLayouts {
    /// The layout `kernel`'s family shares, if it has one.
    fn of(&self, kernel: Kernel) -> Option<&SharedLayout> {
        match kernel {
            Kernel::Matrix(_) => Some(&self.matrix),
            Kernel::MatrixQkv(_) => Some(&self.matrix_qkv),
            Kernel::Attention(_) => Some(&self.attention),
            _ => None,
        }
    }
}

/// A bind-group layout several kernel variants are built with.
struct SharedLayout {
    group: wgpu::BindGroupLayout,
    pipeline: wgpu::PipelineLayout,
}

impl SharedLayout {
    fn new(device: &wgpu::Device, group: wgpu::BindGroupLayout) -> Self {
        let pipeline =
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: None, bind_group_layouts: &[Some(&group)], immediate_size: 0 });
        Self { group, pipeline }
    }
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    buffer_entry(binding, wgpu::BufferBindingType::Storage { read_only })
}

fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    buffer_entry(binding, wgpu::BufferBindingType::Uniform)
}

fn buffer_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::quant::TensorType::*;

    fn every_kernel() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::RmsNorm, Kernel::Sample, Kernel::Distribution];
        for kv in [KvType::F32, KvType::F16] {
            kernels.extend([
                Kernel::RopeKv(kv),
                Kernel::Attention(attention::Variant::Chunked(kv)),
                Kernel::Attention(attention::Variant::PerQuery(kv)),
            ]);
        }
        for ty in [F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K] {
            let variants = [
                matrix::Variant::MatMul(ty),
                matrix::Variant::MatMulTiled(ty),
                matrix::Variant::MatMulBlocked(ty),
                matrix::Variant::MatVecRows(ty),
                matrix::Variant::MatVec(ty, false),
                matrix::Variant::MatVec(ty, true),
            ];
            kernels.extend(variants.map(Kernel::Matrix));
            kernels.extend(variants.map(Kernel::MatrixQkv));
            kernels.push(Kernel::Embed(ty));
        }
        kernels
    }

    fn module(kernel: Kernel) -> naga::Module {
        let source = kernel.source();
        naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{kernel:?}: {}", e.emit_to_string(&source)))
    }

    /// Every variant's WGSL parses and validates (naga, no GPU needed).
    #[test]
    fn every_kernel_validates() {
        for kernel in every_kernel() {
            // `unpack2x16float` (F16 weights) needs only what every wgpu backend has.
            let base = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
            let capabilities = match kernel {
                Kernel::Matrix(matrix::Variant::MatVec(_, true)) | Kernel::MatrixQkv(matrix::Variant::MatVec(_, true)) => {
                    base | naga::valid::Capabilities::SUBGROUP
                }
                Kernel::RopeKv(KvType::F16) => base | naga::valid::Capabilities::SHADER_FLOAT16,
                Kernel::Attention(variant) if variant.kv() == KvType::F16 => base | naga::valid::Capabilities::SHADER_FLOAT16,
                _ => base,
            };
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
                .validate(&module(kernel))
                .unwrap_or_else(|e| panic!("{kernel:?}: {e:?}"));
        }
    }

    /// The host structs must be as large as their WGSL twins (uniforms: multiples of 16).
    #[test]
    fn params_match_their_wgsl_sizes() {
        assert_eq!(size_of::<matrix::Params>(), 64);
        assert_eq!(size_of::<embed::Params>(), 32);
        assert_eq!(size_of::<rms_norm::Params>(), 16);
        assert_eq!(size_of::<rope_kv::Params>(), 48);
        assert_eq!(size_of::<attention::Params>(), 32);
        assert_eq!(size_of::<GpuToken>(), 32);
        assert_eq!(size_of::<sample::Params>(), 16);
        assert_eq!(size_of::<GpuSampler>(), 32);
        assert_eq!(size_of::<distribution::Params>(), 16);
        assert_eq!(size_of::<GpuDistributionRequest>(), 16);

        // And those sizes are the ones naga lays the WGSL structs out with.
        let twins: [(Kernel, &str, usize); 10] = [
            (Kernel::Matrix(matrix::Variant::MatMul(F32)), "Params", size_of::<matrix::Params>()),
            (Kernel::Embed(F32), "Params", size_of::<embed::Params>()),
            (Kernel::RmsNorm, "Params", size_of::<rms_norm::Params>()),
            (Kernel::RopeKv(KvType::F32), "Params", size_of::<rope_kv::Params>()),
            (Kernel::Attention(attention::Variant::Chunked(KvType::F32)), "Params", size_of::<attention::Params>()),
            (Kernel::Attention(attention::Variant::PerQuery(KvType::F32)), "Token", size_of::<GpuToken>()),
            (Kernel::Sample, "Params", size_of::<sample::Params>()),
            (Kernel::Sample, "Sampler", size_of::<GpuSampler>()),
            (Kernel::Distribution, "Params", size_of::<distribution::Params>()),
            (Kernel::Distribution, "Request", size_of::<GpuDistributionRequest>()),
        ];
        for (kernel, name, host_size) in twins {
            let module = module(kernel);
            let mut layouter = naga::proc::Layouter::default();
            layouter.update(module.to_ctx()).unwrap();
            let (handle, _) =
                module.types.iter().find(|(_, ty)| ty.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("{kernel:?} has no `{name}`"));
            assert_eq!(layouter[handle].size as usize, host_size, "{kernel:?}: `{name}`");
        }
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

    /// The variants differ where the shaders say: a spot check that each `#if` took effect.
    #[test]
    fn defines_pick_the_variant() {
        let source = |kernel: Kernel| kernel.source();
        assert!(source(Kernel::Matrix(matrix::Variant::MatVec(F32, true))).contains("subgroupAdd"));
        assert!(!source(Kernel::Matrix(matrix::Variant::MatVec(F32, false))).contains("subgroupAdd"));
        // `enable` must come before any declaration.
        let first_code_line = |s: &str| s.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("//")).map(str::to_string);
        assert_eq!(first_code_line(&source(Kernel::RopeKv(KvType::F16))).as_deref(), Some("enable f16;"));
        assert!(source(Kernel::Attention(attention::Variant::PerQuery(KvType::F32))).contains("alias KV_T = f32;"));
        assert!(!source(Kernel::Embed(Q4_0)).contains("fn block_dot"));
        assert!(source(Kernel::Matrix(matrix::Variant::MatMul(Q4_1))).contains("fn block_dot"));
        assert!(source(Kernel::Matrix(matrix::Variant::MatMulBlocked(Q8_0))).contains("fn norm_scale"));
        assert!(source(Kernel::MatrixQkv(matrix::Variant::MatVecRows(Q4_0))).contains("k_cache"));
        assert!(!source(Kernel::Matrix(matrix::Variant::MatVecRows(Q4_0))).contains("k_cache"));
    }
}
