//! One uniform buffer per distinct parameter block of a batch, and the
//! parameters each batch writes into them.

use super::buffers::{buffer, write};
use super::capacity::Capacity;
use super::config::{Activation, LlamaConfig};
use crate::engine::kernels::{KvType, attention, distribution, embed, matrix, rms_norm, rope_kv, sample};
use crate::engine::plan::BatchPlan;

/// What a batch's matrix kernels fold in (`Choice::folds_norms`, `Choice::folds_rope`).
#[derive(Debug, Clone, Copy)]
pub struct Folds {
    /// The layer norms, into q|k|v and gate|up.
    pub norms: bool,
    /// RoPE and the KV write (into a cache of this type), into q|k|v.
    pub rope: Option<KvType>,
}

pub struct Uniforms {
    /// One per part of the embedding (`GpuMatrix::upload_rows`), with its rows.
    pub embed: Vec<(wgpu::Buffer, [u32; 2])>,
    /// A layer's norms, when they are their own dispatches: all input rows.
    pub norm: wgpu::Buffer,
    /// The output norm: the rows whose logits were asked for.
    pub norm_out: wgpu::Buffer,
    pub qkv: wgpu::Buffer,
    pub o: wgpu::Buffer,
    pub gate_up: wgpu::Buffer,
    pub down: wgpu::Buffer,
    /// One per part of the LM head, with its rows.
    pub head: Vec<(wgpu::Buffer, [u32; 2])>,
    pub rope: wgpu::Buffer,
    pub attention: wgpu::Buffer,
    /// Sliding-window layers' RoPE and attention (Gemma 3).
    pub rope_local: wgpu::Buffer,
    pub attention_local: wgpu::Buffer,
    /// The norms after attention and the FFN, added into the residual (Gemma 3).
    pub post_norm: wgpu::Buffer,
    pub sample: wgpu::Buffer,
    pub distribution: wgpu::Buffer,
}

fn uniform<T>(device: &wgpu::Device, label: &str) -> wgpu::Buffer {
    buffer(device, label, size_of::<T>() as u64, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST)
}

impl Uniforms {
    /// `embed`, `head`: the row ranges (first, count) of their parts.
    pub fn new(device: &wgpu::Device, embed: &[[u32; 2]], head: &[[u32; 2]]) -> Self {
        let parts = |label: &str, rows: &[[u32; 2]], size: usize| {
            rows.iter().map(|&r| (buffer(device, label, size as u64, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST), r)).collect()
        };
        Self {
            embed: parts("embed", embed, size_of::<embed::Params>()),
            norm: uniform::<rms_norm::Params>(device, "norm"),
            norm_out: uniform::<rms_norm::Params>(device, "norm_out"),
            qkv: uniform::<matrix::Params>(device, "qkv"),
            o: uniform::<matrix::Params>(device, "o"),
            gate_up: uniform::<matrix::Params>(device, "gate_up"),
            down: uniform::<matrix::Params>(device, "down"),
            head: parts("head", head, size_of::<matrix::Params>()),
            rope: uniform::<rope_kv::Params>(device, "rope"),
            attention: uniform::<attention::Params>(device, "attention"),
            rope_local: uniform::<rope_kv::Params>(device, "rope_local"),
            attention_local: uniform::<attention::Params>(device, "attention_local"),
            post_norm: uniform::<rms_norm::Params>(device, "post_norm"),
            sample: uniform::<sample::Params>(device, "sample"),
            distribution: uniform::<distribution::Params>(device, "distribution"),
        }
    }

    /// The parameters of `plan`'s dispatches, with what `folds` folds into
    /// the matrices; returns the bytes written.
    pub fn write(&self, queue: &wgpu::Queue, c: &LlamaConfig, capacity: &Capacity, plan: &BatchPlan, folds: Folds) -> usize {
        use matrix::Mode::{Add, GeGlu, Store, SwiGlu};
        let t = plan.ids.len() as u32;
        let o = plan.logit_rows.len() as u32;
        let d = c.d_model as u32;
        let mut bytes = 0;
        for (params, [first_row, rows]) in &self.embed {
            let (first_row, rows) = (*first_row, *rows);
            bytes += write(queue, params, &[embed::Params { dim: d, tokens: t, scale: c.embed_scale, first_row, rows, _pad: [0; 3] }]);
        }
        bytes += write(queue, &self.norm, &[rms_norm::Params { dim: d, rows: t, eps: c.rms_eps, add: 0 }]);
        bytes += write(queue, &self.norm_out, &[rms_norm::Params { dim: d, rows: o, eps: c.rms_eps, add: 0 }]);
        let normed = |params: matrix::Params| if folds.norms { params.normalized(c.rms_eps) } else { params };
        let qkv = match folds.rope {
            Some(kv) => matrix::Params::qkv_rope(c, t, kv),
            None => matrix::Params::new(c.d_model, c.qkv_width(), t, Store),
        };
        bytes += write(queue, &self.qkv, &[normed(qkv)]);
        // With post-norms, the projections are stored for their norm to add into the residual.
        let residual = if c.post_norms { Store } else { Add };
        let gate = match c.activation {
            Activation::Silu => SwiGlu,
            Activation::GeluTanh => GeGlu,
        };
        bytes += write(queue, &self.o, &[matrix::Params::new(c.n_head * c.head_dim, c.d_model, t, residual)]);
        bytes += write(queue, &self.gate_up, &[normed(matrix::Params::new(c.d_model, c.d_ff, t, gate))]);
        bytes += write(queue, &self.down, &[matrix::Params::new(c.d_ff, c.d_model, t, residual)]);
        for (params, [first_row, rows]) in &self.head {
            let part =
                matrix::Params { out_stride: c.vocab as u32, out_offset: *first_row, ..matrix::Params::new(c.d_model, *rows as usize, o, Store) };
            bytes += write(queue, params, &[part]);
        }
        let rope = |freq_base: f32| rope_kv::Params {
            tokens: t,
            n_head: c.n_head as u32,
            n_kv_head: c.n_kv_head as u32,
            head_dim: c.head_dim as u32,
            rope_dim: c.rope_dim as u32,
            neox: c.rope_neox as u32,
            freq_base,
            qk_norm: c.qk_norm as u32,
            eps: c.rms_eps,
            _pad: [0; 3],
        };
        let attention = |window: u32| attention::Params {
            tokens: t,
            n_head: c.n_head as u32,
            n_kv_head: c.n_kv_head as u32,
            head_dim: c.head_dim as u32,
            page_size: capacity.page_size,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
            window,
            _pad: 0,
        };
        bytes += write(queue, &self.rope, &[rope(c.rope_base)]);
        bytes += write(queue, &self.attention, &[attention(0)]);
        if let Some(window) = c.sliding_window {
            bytes += write(queue, &self.rope_local, &[rope(window.rope_base)]);
            bytes += write(queue, &self.attention_local, &[attention(window.span)]);
        }
        if c.post_norms {
            bytes += write(queue, &self.post_norm, &[rms_norm::Params { dim: d, rows: t, eps: c.rms_eps, add: 1 }]);
        }
        bytes += write(queue, &self.sample, &[sample::Params { vocab: c.vocab as u32, samplers: plan.samplers.len() as u32, _pad: [0; 2] }]);
        bytes += write(
            queue,
            &self.distribution,
            &[distribution::Params { vocab: c.vocab as u32, requests: plan.distributions.len() as u32, cap: capacity.distribution_cap(), _pad: 0 }],
        );
        bytes
    }
}
