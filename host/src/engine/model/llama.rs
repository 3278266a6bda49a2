//! A Llama model on the GPU: loading, and the batched forward, which
//! [`Llama::encode`] records top to bottom like llama2.c's `forward`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bindings::{Bindings, NormedMatrix};
use super::buffers::Buffers;
use super::capacity::Capacity;
use super::config::LlamaConfig;
use super::gpu_weights::GpuWeights;
use super::kv_cache::KvCache;
use super::readback::Readback;
use super::recording::{Recorded, StepShape};
use super::uniforms::{Folds, Uniforms};
use super::weights::{GpuMatrix, ModelTensors, WeightsError};
use crate::engine::batch::{BatchError, Pass, PassResult};
use crate::engine::counters::{GpuCounters, IdleClock};
use crate::engine::device::Gpu;
use crate::engine::kernels::{Choice, Kernels, KvType, attention, distribution, embed, matrix, rms_norm, rope_kv, sample};
use crate::engine::plan::{BatchPlan, PlanLimits, plan};

pub use crate::engine::kernels::KernelShape;

pub struct Llama {
    pub config: LlamaConfig,
    pub shape: KernelShape,
    /// Reduce with subgroup operations (when the device has them).
    pub subgroups: bool,
    /// On CPU adapters, batches of 4 rows or more use the kernels made for
    /// them (see [`Choice::cpu_tuned`]).
    pub cpu_tuned: bool,
    pub capacity: Capacity,
    gpu: Arc<Gpu>,
    kernels: Kernels,
    // Kept alive for the bind groups that use them.
    _weights: GpuWeights,
    kv: KvCache,
    buffers: Buffers,
    uniforms: Uniforms,
    readback: Readback,
    bindings: Bindings,
    /// What it asked of the GPU, shared with whoever reports it.
    pub counters: Arc<GpuCounters>,
    since_readback: IdleClock,
    /// Record each step's successor while the step runs (see `recording`).
    pub record_ahead: bool,
    ahead: Option<Recorded>,
    /// The shape the uniform buffers hold the parameters of: a step of the
    /// same shape has the same parameters, so they are not written again.
    uniforms_for: Option<StepShape>,
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
        let weights = GpuWeights::upload(device, tensors, (config.qkv_width(), config.head_dim), capacity.max_weight_binding, progress)?;
        let kv_type = if capacity.kv_f16 && gpu.shader_f16 { KvType::F16 } else { KvType::F32 };
        let kv = KvCache::new(device, &config, &capacity, kv_type);
        let buffers = Buffers::new(device, &config, &capacity);
        let rows = |parts: &[GpuMatrix]| -> Vec<[u32; 2]> { parts.iter().map(|p| [p.first_row as u32, p.rows as u32]).collect() };
        let uniforms = Uniforms::new(device, &rows(&weights.embed), &rows(weights.head()));
        let readback = Readback::new(device, &capacity);
        let mut kernels = Kernels::new(device);
        let bindings = Bindings::new(&mut kernels, &config, &weights, &kv, &buffers, &uniforms, &readback);
        Ok(Self {
            shape: KernelShape::for_adapter(&gpu),
            subgroups: gpu.subgroups,
            cpu_tuned: true,
            config,
            capacity,
            gpu,
            kernels,
            _weights: weights,
            kv,
            buffers,
            uniforms,
            readback,
            bindings,
            counters: Arc::default(),
            since_readback: IdleClock::default(),
            record_ahead: true,
            ahead: None,
            uniforms_for: None,
        })
    }

    pub fn plan_limits(&self) -> PlanLimits {
        self.capacity.plan_limits(self.config.vocab as u32)
    }

    /// Runs a batch of passes as one GPU submission.
    pub fn forward(&mut self, passes: &[Pass]) -> Result<Vec<PassResult>, BatchError> {
        let plan = plan(passes, self.plan_limits())?;
        self.capacity.check_fits(&plan)?;
        let started = Instant::now();
        let queue = &self.gpu.queue;
        let shape = StepShape::of(&plan, self.choice());
        let mut written = self.buffers.write(queue, &plan);
        if self.uniforms_for.as_ref() != Some(&shape) {
            let folds = self.folds(plan.ids.len() as u32);
            written += self.uniforms.write(queue, &self.config, &self.capacity, &plan, folds);
            self.uniforms_for = Some(shape.clone());
        }
        let (step, earlier) = match self.ahead.take() {
            Some(recorded) if recorded.shape == shape => (recorded, true),
            _ => (self.record(&plan, shape), false),
        };
        // Writing the inputs, and recording unless that was done during the last step.
        let encode = started.elapsed() + if earlier { step.took } else { Duration::ZERO };
        self.counters.step(step.dispatches, 1, encode, self.since_readback.waited(), earlier);
        self.counters.wrote(written);
        self.gpu.queue.submit([step.commands]);
        self.counters.submitted(1);
        if self.record_ahead {
            // While the GPU runs this step: the next, if it is of this shape.
            self.ahead = Some(self.record(&plan, step.shape));
        }
        let bytes = self.readback.read(&self.gpu.device, &plan)?;
        self.since_readback.read_back();
        self.counters.read(bytes.len());
        Ok(self.readback.results(&plan, &bytes))
    }

    /// Records the commands of a step of `plan`'s shape.
    fn record(&mut self, plan: &BatchPlan, shape: StepShape) -> Recorded {
        let started = Instant::now();
        let mut encoder = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        self.encode(&mut encoder, plan);
        self.readback.encode(&mut encoder, plan);
        let commands = encoder.finish();
        Recorded { shape, commands, dispatches: self.kernels.take_dispatched(), took: started.elapsed() }
    }

    fn choice(&self) -> Choice {
        Choice { shape: self.shape, subgroups: self.subgroups && self.gpu.subgroups, cpu_tuned: self.cpu_tuned }
    }

    /// What the matrix kernels of a batch of `tokens` rows fold in. RoPE
    /// pairs must be adjacent rows (GGUF llama), not halves of a head (neox),
    /// and no bias or head norm may come first (`LlamaConfig::rope_folds`).
    fn folds(&self, tokens: u32) -> Folds {
        let choice = self.choice();
        let rope = choice.folds_rope(tokens) && self.config.rope_folds();
        Folds { norms: choice.folds_norms(tokens), rope: rope.then_some(self.kv.ty) }
    }

    /// The forward itself: embed → per layer [norm + q|k|v + RoPE + paged KV
    /// write, attention, out-proj + residual, norm + gate|up + SwiGLU, down +
    /// residual] → final norm of the rows asked for → LM head → sampling and
    /// distributions. (The layer norms, RoPE, residuals and SwiGLU are the
    /// matrices' `Params`, set in `Uniforms::write`; the norms and RoPE are
    /// dispatches of their own where the matrix kernel does not fold them.)
    fn encode(&mut self, encoder: &mut wgpu::CommandEncoder, plan: &BatchPlan) {
        let c = &self.config;
        let (t, o) = (plan.ids.len() as u32, plan.logit_rows.len() as u32);
        let (choice, folds) = (self.choice(), self.folds(t));
        let kv = self.kv.ty;
        let (k, b) = (&mut self.kernels, &self.bindings);
        {
            let pass = &mut encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            for part in &b.embed {
                embed::dispatch(pass, k, part, c.d_model, t);
            }
            for layer in &b.layers {
                let rope_folded = folds.rope.is_some();
                normed_matrix(pass, k, (choice, folds), &layer.qkv, c.qkv_width(), t, rope_folded);
                if !rope_folded {
                    rope_kv::dispatch(pass, k, kv, &layer.rope, t);
                }
                attention::dispatch(pass, k, choice, kv, &layer.attention, c.n_head, t);
                matrix::dispatch(pass, k, choice, &layer.o, c.d_model, t); // + residual, or into `proj`
                if let Some([post_attention, _]) = &layer.post_norms {
                    rms_norm::dispatch(pass, k, post_attention, t); // + residual
                }
                normed_matrix(pass, k, (choice, folds), &layer.gate_up, c.d_ff, t, false); // SwiGLU or GeGLU
                matrix::dispatch(pass, k, choice, &layer.down, c.d_model, t); // + residual, or into `proj`
                if let Some([_, post_ffw]) = &layer.post_norms {
                    rms_norm::dispatch(pass, k, post_ffw, t); // + residual
                }
            }
            rms_norm::dispatch(pass, k, &b.output_norm, o);
            for (part, rows) in &b.head {
                matrix::dispatch(pass, k, choice, part, *rows, o);
            }
            sample::dispatch(pass, k, &b.sample, plan.samplers.len());
            distribution::dispatch(pass, k, &b.distribution, plan.distributions.len());
        }
        self.buffers.copy_embeddings(encoder, plan, c.d_model);
    }

    /// Copies one KV page (every layer's keys and values) onto another.
    pub fn copy_kv_page(&mut self, from: u32, to: u32) {
        self.kv.copy_page(&self.gpu, from, to);
        self.counters.submitted(1);
    }

    /// Zeroes KV pages (every layer's keys and values).
    pub fn clear_kv_pages(&mut self, pages: &[u32]) {
        let mut encoder = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("clear_kv_pages") });
        self.kv.clear_pages(&mut encoder, pages);
        self.gpu.queue.submit([encoder.finish()]);
        self.counters.submitted(1);
    }

    /// Zeroes embedding slots.
    pub fn clear_embedding_slots(&mut self, slots: &[u32]) {
        let mut encoder = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("clear_slots") });
        self.buffers.clear_slots(&mut encoder, slots, self.config.d_model);
        self.gpu.queue.submit([encoder.finish()]);
        self.counters.submitted(1);
    }
}

/// A layer's norm and the matrix that reads it (in RoPE pairs when `pairs`):
/// one dispatch where the matrix kernel folds the norm in, two where it does not.
fn normed_matrix(
    pass: &mut wgpu::ComputePass,
    k: &mut Kernels,
    (choice, folds): (Choice, Folds),
    m: &NormedMatrix,
    n: usize,
    tokens: u32,
    pairs: bool,
) {
    if folds.norms {
        matrix::dispatch_pairs(pass, k, choice, &m.fused, n, tokens, pairs);
    } else {
        rms_norm::dispatch(pass, k, &m.norm, tokens);
        matrix::dispatch_pairs(pass, k, choice, &m.unfused, n, tokens, pairs);
    }
}
