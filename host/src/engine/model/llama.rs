//! A Llama model on the GPU. `forward` reads top to bottom: embed → per layer
//! [norm, q|k|v, RoPE + paged KV write, attention, out-proj + residual, norm,
//! gate|up + SwiGLU, down + residual] → final norm of the rows asked for →
//! LM head → sampling and distributions, all in one submission.

use std::sync::Arc;

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::capacity::Capacity;
use super::config::LlamaConfig;
use super::weights::{GpuMatrix, ModelTensors, WeightsError, storage};
use crate::engine::batch::{BatchError, Pass, PassResult};
use crate::engine::device::Gpu;
use crate::engine::kernels::*;
use crate::engine::plan::{BatchPlan, PlanLimits, plan};

struct Layer {
    attn_norm: wgpu::Buffer,
    qkv: GpuMatrix,
    o: GpuMatrix,
    ffn_norm: wgpu::Buffer,
    gate_up: GpuMatrix,
    down: GpuMatrix,
    k_cache: wgpu::Buffer,
    v_cache: wgpu::Buffer,
}

/// Per-batch data and activations, allocated once at their capacity.
struct Buffers {
    ids: wgpu::Buffer,
    tokens: wgpu::Buffer,
    page_table: wgpu::Buffer,
    masks: wgpu::Buffer,
    all_rows: wgpu::Buffer,
    logit_rows: wgpu::Buffer,
    samplers: wgpu::Buffer,
    requests: wgpu::Buffer,
    slots: wgpu::Buffer,
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    qkv: wgpu::Buffer,
    attn: wgpu::Buffer,
    ffn: wgpu::Buffer,
    h_out: wgpu::Buffer,
    logits: wgpu::Buffer,
    sampled: wgpu::Buffer,
    dist_ids: wgpu::Buffer,
    dist_probs: wgpu::Buffer,
    dist_counts: wgpu::Buffer,
    readback: wgpu::Buffer,
}

/// One uniform buffer per distinct parameter block of a step.
struct Uniforms {
    embed: wgpu::Buffer,
    norm: wgpu::Buffer,
    norm_out: wgpu::Buffer,
    qkv: wgpu::Buffer,
    o: wgpu::Buffer,
    gate_up: wgpu::Buffer,
    down: wgpu::Buffer,
    head: wgpu::Buffer,
    rope: wgpu::Buffer,
    attention: wgpu::Buffer,
    sample: wgpu::Buffer,
    distribution: wgpu::Buffer,
}

struct LayerBindings {
    attn_norm: wgpu::BindGroup,
    qkv: wgpu::BindGroup,
    rope: wgpu::BindGroup,
    attention: wgpu::BindGroup,
    o: wgpu::BindGroup,
    ffn_norm: wgpu::BindGroup,
    gate_up: wgpu::BindGroup,
    down: wgpu::BindGroup,
}

struct Bindings {
    embed: wgpu::BindGroup,
    layers: Vec<LayerBindings>,
    output_norm: wgpu::BindGroup,
    head: wgpu::BindGroup,
    sample: wgpu::BindGroup,
    distribution: wgpu::BindGroup,
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

/// On GPUs, batches with more input rows than this use the tiled (prefill) matrix kernel.
const TILED_MIN_TOKENS: u32 = 8;

pub struct Llama {
    pub config: LlamaConfig,
    pub shape: KernelShape,
    /// Reduce with subgroup operations (when the device has them).
    pub subgroups: bool,
    /// The KV cache holds f16.
    kv_half: bool,
    pub capacity: Capacity,
    gpu: Arc<Gpu>,
    kernels: Kernels,
    embed_type: crate::engine::quant::TensorType,
    head_type: crate::engine::quant::TensorType,
    layer_types: Vec<[crate::engine::quant::TensorType; 4]>,
    buffers: Buffers,
    uniforms: Uniforms,
    bindings: Bindings,
    layers: Vec<Layer>,
    // Kept alive for the bind groups that use them.
    _embed: GpuMatrix,
    _head: Option<GpuMatrix>,
    _output_norm: wgpu::Buffer,
}

fn buffer(device: &wgpu::Device, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: bytes.max(16).div_ceil(4) * 4, usage, mapped_at_creation: false })
}

fn uniform<T: Pod>(device: &wgpu::Device, label: &str) -> wgpu::Buffer {
    buffer(device, label, size_of::<T>() as u64, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST)
}

fn bind(device: &wgpu::Device, layout: &wgpu::BindGroupLayout, label: &str, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout, entries: &entries })
}

fn norm_weights(device: &wgpu::Device, t: &super::weights::TensorRef) -> wgpu::Buffer {
    storage(device, t.name, bytemuck::cast_slice(&t.to_f32()))
}

impl Llama {
    /// Uploads the model's weights and allocates its KV pool; `progress` is
    /// told each tensor's size as it lands.
    pub fn load(
        gpu: Arc<Gpu>,
        config: LlamaConfig,
        tensors: &ModelTensors,
        capacity: Capacity,
        progress: &dyn Fn(u64),
    ) -> Result<Self, WeightsError> {
        let device = &gpu.device;
        let c = &config;
        let storage_rw = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let f = 4u64;
        let (tk, out) = (capacity.batch_tokens as u64, capacity.batch_outputs as u64);
        let kv_half = capacity.kv_f16 && gpu.shader_f16;
        let kv_bytes = (capacity.kv_pages * capacity.page_size) as u64 * c.kv_width() as u64 * if kv_half { 2 } else { 4 };

        let embed = GpuMatrix::upload(device, &[tensors.embed])?;
        progress(tensors.embed.bytes.len() as u64);
        let head = if std::ptr::eq(tensors.lm_head.bytes, tensors.embed.bytes) {
            None
        } else {
            progress(tensors.lm_head.bytes.len() as u64);
            Some(GpuMatrix::upload(device, &[tensors.lm_head])?)
        };
        let output_norm = norm_weights(device, &tensors.output_norm);
        let mut layers = Vec::with_capacity(c.n_layer);
        for (i, t) in tensors.layers.iter().enumerate() {
            layers.push(Layer {
                attn_norm: norm_weights(device, &t.attn_norm),
                qkv: GpuMatrix::upload(device, &[t.q, t.k, t.v])?,
                o: GpuMatrix::upload(device, &[t.o])?,
                ffn_norm: norm_weights(device, &t.ffn_norm),
                gate_up: GpuMatrix::upload(device, &[t.gate, t.up])?,
                down: GpuMatrix::upload(device, &[t.down])?,
                k_cache: buffer(device, &format!("blk.{i}.k_cache"), kv_bytes, storage_rw),
                v_cache: buffer(device, &format!("blk.{i}.v_cache"), kv_bytes, storage_rw),
            });
            progress([t.q, t.k, t.v, t.o, t.gate, t.up, t.down, t.attn_norm, t.ffn_norm].iter().map(|t| t.bytes.len() as u64).sum());
        }

        let cap = capacity.distribution_cap() as u64;
        let readback_bytes = (out * 2 + out * cap * 2) * f;
        let all_rows: Vec<u32> = (0..capacity.batch_tokens).collect();
        let buffers = Buffers {
            ids: buffer(device, "ids", tk * f, storage_rw),
            tokens: buffer(device, "tokens", tk * size_of::<GpuToken>() as u64, storage_rw),
            page_table: buffer(device, "page_table", capacity.page_table_entries as u64 * f, storage_rw),
            masks: buffer(device, "masks", capacity.mask_words as u64 * f, storage_rw),
            all_rows: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("all_rows"),
                contents: bytemuck::cast_slice(&all_rows),
                usage: wgpu::BufferUsages::STORAGE,
            }),
            logit_rows: buffer(device, "logit_rows", out * f, storage_rw),
            samplers: buffer(device, "samplers", out * size_of::<GpuSampler>() as u64, storage_rw),
            requests: buffer(device, "requests", out * size_of::<GpuDistributionRequest>() as u64, storage_rw),
            slots: buffer(device, "embedding_slots", capacity.embedding_slots as u64 * c.d_model as u64 * f, storage_rw),
            x: buffer(device, "x", tk * c.d_model as u64 * f, storage_rw),
            h: buffer(device, "h", tk * c.d_model as u64 * f, storage_rw),
            qkv: buffer(device, "qkv", tk * c.qkv_width() as u64 * f, storage_rw),
            attn: buffer(device, "attn", tk * (c.n_head * c.head_dim) as u64 * f, storage_rw),
            ffn: buffer(device, "ffn", tk * c.d_ff as u64 * f, storage_rw),
            h_out: buffer(device, "h_out", out * c.d_model as u64 * f, storage_rw),
            logits: buffer(device, "logits", out * c.vocab as u64 * f, storage_rw),
            sampled: buffer(device, "sampled", out * f, storage_rw),
            dist_ids: buffer(device, "dist_ids", out * cap * f, storage_rw),
            dist_probs: buffer(device, "dist_probs", out * cap * f, storage_rw),
            dist_counts: buffer(device, "dist_counts", out * f, storage_rw),
            readback: buffer(device, "readback", readback_bytes, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
        };
        let uniforms = Uniforms {
            embed: uniform::<EmbedParams>(device, "embed"),
            norm: uniform::<RmsNormParams>(device, "norm"),
            norm_out: uniform::<RmsNormParams>(device, "norm_out"),
            qkv: uniform::<MatMulParams>(device, "qkv"),
            o: uniform::<MatMulParams>(device, "o"),
            gate_up: uniform::<MatMulParams>(device, "gate_up"),
            down: uniform::<MatMulParams>(device, "down"),
            head: uniform::<MatMulParams>(device, "head"),
            rope: uniform::<RopeKvParams>(device, "rope"),
            attention: uniform::<AttentionParams>(device, "attention"),
            sample: uniform::<SampleParams>(device, "sample"),
            distribution: uniform::<DistributionParams>(device, "distribution"),
        };

        let mut kernels = Kernels::new(device);
        let kernels_matrix = kernels.matrix_layout.clone();
        let mut auto = |kernel: Kernel| kernels.get(device, kernel).get_bind_group_layout(0);
        let b = &buffers;
        let u = &uniforms;
        let head_matrix = head.as_ref().unwrap_or(&embed);
        let bindings = Bindings {
            embed: bind(device, &auto(Kernel::Embed(embed.ty)), "embed", &[&embed.quants, &embed.scales, &b.ids, &b.slots, &b.x, &u.embed]),
            layers: layers
                .iter()
                .map(|l| LayerBindings {
                    attn_norm: bind(device, &auto(Kernel::RmsNorm), "attn_norm", &[&b.x, &l.attn_norm, &b.all_rows, &b.h, &u.norm]),
                    qkv: bind(device, &kernels_matrix, "qkv", &[&l.qkv.quants, &l.qkv.scales, &b.h, &b.qkv, &u.qkv]),
                    rope: bind(device, &auto(Kernel::RopeKv(kv_half)), "rope_kv", &[&b.qkv, &b.tokens, &l.k_cache, &l.v_cache, &u.rope]),
                    attention: bind(
                        device,
                        &auto(Kernel::Attention(kv_half)),
                        "attention",
                        &[&b.qkv, &l.k_cache, &l.v_cache, &b.page_table, &b.tokens, &b.masks, &b.attn, &u.attention],
                    ),
                    o: bind(device, &kernels_matrix, "o", &[&l.o.quants, &l.o.scales, &b.attn, &b.x, &u.o]),
                    ffn_norm: bind(device, &auto(Kernel::RmsNorm), "ffn_norm", &[&b.x, &l.ffn_norm, &b.all_rows, &b.h, &u.norm]),
                    gate_up: bind(device, &kernels_matrix, "gate_up", &[&l.gate_up.quants, &l.gate_up.scales, &b.h, &b.ffn, &u.gate_up]),
                    down: bind(device, &kernels_matrix, "down", &[&l.down.quants, &l.down.scales, &b.ffn, &b.x, &u.down]),
                })
                .collect(),
            output_norm: bind(device, &auto(Kernel::RmsNorm), "output_norm", &[&b.x, &output_norm, &b.logit_rows, &b.h_out, &u.norm_out]),
            head: bind(device, &kernels_matrix, "lm_head", &[&head_matrix.quants, &head_matrix.scales, &b.h_out, &b.logits, &u.head]),
            sample: bind(device, &auto(Kernel::Sample), "sample", &[&b.logits, &b.samplers, &b.sampled, &u.sample]),
            distribution: bind(
                device,
                &auto(Kernel::Distribution),
                "distribution",
                &[&b.logits, &b.requests, &b.dist_ids, &b.dist_probs, &b.dist_counts, &u.distribution],
            ),
        };
        Ok(Self {
            shape: KernelShape::for_adapter(&gpu),
            kv_half,
            subgroups: gpu.subgroups,
            embed_type: embed.ty,
            head_type: head_matrix.ty,
            layer_types: layers.iter().map(|l| [l.qkv.ty, l.o.ty, l.gate_up.ty, l.down.ty]).collect(),
            config,
            capacity,
            gpu,
            kernels,
            buffers,
            uniforms,
            bindings,
            _embed: embed,
            _head: head,
            _output_norm: output_norm,
            layers,
        })
    }

    pub fn plan_limits(&self) -> PlanLimits {
        self.capacity.plan_limits(self.config.vocab as u32)
    }

    /// Runs a batch of passes as one GPU submission.
    pub fn forward(&mut self, passes: &[Pass]) -> Result<Vec<PassResult>, BatchError> {
        let plan = plan(passes, self.plan_limits())?;
        self.capacity.check_fits(&plan)?;
        self.write_inputs(&plan);
        let readback = self.encode_and_submit(&plan)?;
        Ok(self.results(&plan, &readback))
    }

    fn write<T: Pod>(&self, buffer: &wgpu::Buffer, data: &[T]) {
        if !data.is_empty() {
            self.gpu.queue.write_buffer(buffer, 0, bytemuck::cast_slice(data));
        }
    }

    fn write_inputs(&self, plan: &BatchPlan) {
        let (b, u, c) = (&self.buffers, &self.uniforms, &self.config);
        let t = plan.ids.len() as u32;
        let o = plan.logit_rows.len() as u32;
        self.write(&b.ids, &plan.ids);
        self.write(&b.tokens, &plan.tokens);
        self.write(&b.page_table, &plan.page_table);
        self.write(&b.masks, &plan.masks);
        self.write(&b.logit_rows, &plan.logit_rows);
        self.write(&b.samplers, &plan.samplers);
        self.write(&b.requests, &plan.distributions);
        let d = c.d_model as u32;
        let matmul = |k: usize, n: usize, tokens: u32, out_stride: usize, mode: u32| MatMulParams {
            k: k as u32,
            n: n as u32,
            tokens,
            x_stride: k as u32,
            out_stride: out_stride as u32,
            out_offset: 0,
            mode,
            _pad: 0,
        };
        let hd = c.n_head * c.head_dim;
        self.write(&u.embed, &[EmbedParams { dim: d, tokens: t, _pad: [0; 2] }]);
        self.write(&u.norm, &[RmsNormParams { dim: d, rows: t, eps: c.rms_eps, _pad: 0 }]);
        self.write(&u.norm_out, &[RmsNormParams { dim: d, rows: o, eps: c.rms_eps, _pad: 0 }]);
        self.write(&u.qkv, &[matmul(c.d_model, c.qkv_width(), t, c.qkv_width(), MATMUL_STORE)]);
        self.write(&u.o, &[matmul(hd, c.d_model, t, c.d_model, MATMUL_ADD)]);
        self.write(&u.gate_up, &[matmul(c.d_model, c.d_ff, t, c.d_ff, MATMUL_SWIGLU)]);
        self.write(&u.down, &[matmul(c.d_ff, c.d_model, t, c.d_model, MATMUL_ADD)]);
        self.write(&u.head, &[matmul(c.d_model, c.vocab, o, c.vocab, MATMUL_STORE)]);
        self.write(
            &u.rope,
            &[RopeKvParams {
                tokens: t,
                n_head: c.n_head as u32,
                n_kv_head: c.n_kv_head as u32,
                head_dim: c.head_dim as u32,
                rope_dim: c.rope_dim as u32,
                neox: c.rope_neox as u32,
                freq_base: c.rope_base,
                _pad: 0,
            }],
        );
        self.write(
            &u.attention,
            &[AttentionParams {
                tokens: t,
                n_head: c.n_head as u32,
                n_kv_head: c.n_kv_head as u32,
                head_dim: c.head_dim as u32,
                page_size: self.capacity.page_size,
                scale: 1.0 / (c.head_dim as f32).sqrt(),
                _pad: [0; 2],
            }],
        );
        self.write(&u.sample, &[SampleParams { vocab: c.vocab as u32, samplers: plan.samplers.len() as u32, _pad: [0; 2] }]);
        self.write(
            &u.distribution,
            &[DistributionParams { vocab: c.vocab as u32, requests: plan.distributions.len() as u32, cap: self.capacity.distribution_cap(), _pad: 0 }],
        );
    }

    fn encode_and_submit(&mut self, plan: &BatchPlan) -> Result<Vec<u8>, BatchError> {
        let device = &self.gpu.device;
        let c = &self.config;
        let t = plan.ids.len() as u32;
        let o = plan.logit_rows.len() as u32;
        let rows = |n: usize| (n as u32).div_ceil(64);
        let (shape, subgroups) = (self.shape, self.subgroups && self.gpu.subgroups);
        // The matrix kernel and grid for `n` output rows over `tokens` inputs.
        let matrix = |ty, n: usize, tokens: u32| {
            match shape {
                // Barriers are costly on a CPU adapter: one invocation per output, always.
                KernelShape::Cpu => (Kernel::MatMul(ty), rows(n), tokens),
                KernelShape::Gpu if tokens > TILED_MIN_TOKENS => (Kernel::MatMulTiled(ty), rows(n), tokens.div_ceil(8)),
                KernelShape::Gpu => (Kernel::MatVec(ty, subgroups), (n as u32).min(65535), (n as u32).div_ceil(65535)),
            }
        };
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            let kernels = &mut self.kernels;
            let mut dispatch = |(kernel, x, y): (Kernel, u32, u32), group: &wgpu::BindGroup| {
                if x > 0 && y > 0 {
                    pass.set_pipeline(kernels.get(device, kernel));
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(x, y, 1);
                }
            };
            let bg = &self.bindings;
            dispatch((Kernel::Embed(self.embed_type), rows(c.d_model), t), &bg.embed);
            for (l, types) in bg.layers.iter().zip(&self.layer_types) {
                dispatch((Kernel::RmsNorm, t, 1), &l.attn_norm);
                dispatch(matrix(types[0], c.qkv_width(), t), &l.qkv);
                dispatch((Kernel::RopeKv(self.kv_half), t, 1), &l.rope);
                dispatch((Kernel::Attention(self.kv_half), c.n_head as u32, t), &l.attention);
                dispatch(matrix(types[1], c.d_model, t), &l.o);
                dispatch((Kernel::RmsNorm, t, 1), &l.ffn_norm);
                dispatch(matrix(types[2], c.d_ff, t), &l.gate_up);
                dispatch(matrix(types[3], c.d_model, t), &l.down);
            }
            dispatch((Kernel::RmsNorm, o, 1), &bg.output_norm);
            dispatch(matrix(self.head_type, c.vocab, o), &bg.head);
            dispatch((Kernel::Sample, plan.samplers.len() as u32, 1), &bg.sample);
            dispatch((Kernel::Distribution, plan.distributions.len() as u32, 1), &bg.distribution);
        }
        let b = &self.buffers;
        let d_bytes = c.d_model as u64 * 4;
        for &(row, slot) in &plan.embedding_copies {
            encoder.copy_buffer_to_buffer(&b.x, row as u64 * d_bytes, &b.slots, slot as u64 * d_bytes, d_bytes);
        }
        // Readback layout: sampled ids, distribution counts, then ids and probabilities.
        let out = self.capacity.batch_outputs as u64 * 4;
        let cap_bytes = self.capacity.batch_outputs as u64 * self.capacity.distribution_cap() as u64 * 4;
        let (n_samples, n_dists) = (plan.samplers.len() as u64 * 4, plan.distributions.len() as u64);
        let dist_bytes = n_dists * self.capacity.distribution_cap() as u64 * 4;
        let copies = [
            (&b.sampled, 0, n_samples),
            (&b.dist_counts, out, n_dists * 4),
            (&b.dist_ids, 2 * out, dist_bytes),
            (&b.dist_probs, 2 * out + cap_bytes, dist_bytes),
        ];
        for (src, at, len) in copies {
            if len > 0 {
                encoder.copy_buffer_to_buffer(src, 0, &b.readback, at, len);
            }
        }
        self.gpu.queue.submit([encoder.finish()]);

        let slice = b.readback.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| BatchError::Gpu(e.to_string()))?;
        rx.recv().map_err(|e| BatchError::Gpu(e.to_string()))?.map_err(|e| BatchError::Gpu(e.to_string()))?;
        let bytes = slice.get_mapped_range().map_err(|e| BatchError::Gpu(format!("{e:?}")))?.to_vec();
        b.readback.unmap();
        Ok(bytes)
    }

    fn results(&self, plan: &BatchPlan, readback: &[u8]) -> Vec<PassResult> {
        let words: &[u32] = bytemuck::cast_slice(readback);
        let out = self.capacity.batch_outputs as usize;
        let cap = self.capacity.distribution_cap() as usize;
        let sampled = &words[..out];
        let counts = &words[out..2 * out];
        let ids = &words[2 * out..2 * out + out * cap];
        let probs: &[f32] = bytemuck::cast_slice(&words[2 * out + out * cap..2 * out + 2 * out * cap]);
        plan.routes
            .iter()
            .map(|route| PassResult {
                tokens: route.samplers.iter().map(|&s| sampled[s]).collect(),
                distributions: route
                    .distributions
                    .iter()
                    .map(|&r| {
                        let request = &plan.distributions[r];
                        let n = counts[r] as usize;
                        let mut pairs: Vec<(u32, f32)> = (0..n).map(|j| (ids[r * cap + j], probs[r * cap + j])).collect();
                        // Highest first; ties by id so results are deterministic.
                        pairs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                        pairs.truncate(request.k as usize);
                        if request.temperature == 0.0 {
                            // Greedy: a one-hot distribution on the most likely token.
                            for (j, pair) in pairs.iter_mut().enumerate() {
                                pair.1 = if j == 0 { 1.0 } else { 0.0 };
                            }
                        }
                        pairs.into_iter().unzip()
                    })
                    .collect(),
            })
            .collect()
    }

    /// Copies one KV page (every layer's keys and values) onto another: the
    /// private copy a writer gets of a page others still hold. (A buffer
    /// cannot be copied onto itself, so it goes through a scratch buffer.)
    pub fn copy_kv_page(&mut self, from: u32, to: u32) {
        let element = if self.kv_half { 2 } else { 4 };
        let bytes = (self.capacity.page_size as usize * self.config.kv_width() * element) as u64;
        let scratch = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kv_page_copy"),
            size: bytes * 2 * self.layers.len() as u64,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("copy_kv_page") });
        let caches = self.layers.iter().flat_map(|l| [&l.k_cache, &l.v_cache]);
        for (i, cache) in caches.clone().enumerate() {
            encoder.copy_buffer_to_buffer(cache, from as u64 * bytes, &scratch, i as u64 * bytes, bytes);
        }
        for (i, cache) in caches.enumerate() {
            encoder.copy_buffer_to_buffer(&scratch, i as u64 * bytes, cache, to as u64 * bytes, bytes);
        }
        self.gpu.queue.submit([encoder.finish()]);
    }
}
