//! Every dispatch's bind group, made once at load: the forward only picks
//! them up in order.

use super::buffers::Buffers;
use super::gpu_weights::GpuWeights;
use super::kv_cache::KvCache;
use super::readback::Readback;
use super::uniforms::Uniforms;
use super::weights::GpuMatrix;
use crate::engine::kernels::{BoundMatrix, Kernels, attention, distribution, embed, matrix, rms_norm, rope_kv, sample};

/// A layer's two norms are folded into q|k|v and gate|up, which read the
/// residual stream itself.
pub struct LayerBindings {
    pub qkv: BoundMatrix,
    pub rope: wgpu::BindGroup,
    pub attention: wgpu::BindGroup,
    pub o: BoundMatrix,
    pub gate_up: BoundMatrix,
    pub down: BoundMatrix,
}

pub struct Bindings {
    pub embed: BoundMatrix,
    pub layers: Vec<LayerBindings>,
    pub output_norm: wgpu::BindGroup,
    pub head: BoundMatrix,
    pub sample: wgpu::BindGroup,
    pub distribution: wgpu::BindGroup,
}

/// `weights` · `x` into `out`, with `params` (and `norm`'s gain when they
/// normalize `x`).
fn bind_matrix(
    kernels: &mut Kernels,
    label: &str,
    weights: &GpuMatrix,
    [x, out, params]: [&wgpu::Buffer; 3],
    norm: Option<&wgpu::Buffer>,
) -> BoundMatrix {
    matrix::Bindings { ty: weights.ty, quants: &weights.quants, scales: &weights.scales, x, out, params, norm }.bind(kernels, label)
}

impl Bindings {
    pub fn new(kernels: &mut Kernels, weights: &GpuWeights, kv: &KvCache, b: &Buffers, u: &Uniforms, readback: &Readback) -> Self {
        let e = &weights.embed;
        let embedding = embed::Bindings { ty: e.ty, quants: &e.quants, scales: &e.scales, ids: &b.ids, slots: &b.slots, out: &b.x, params: &u.embed }
            .bind(kernels);
        let layers = weights
            .layers
            .iter()
            .zip(&kv.layers)
            .map(|(l, [k_cache, v_cache])| LayerBindings {
                qkv: bind_matrix(kernels, "qkv", &l.qkv, [&b.x, &b.qkv, &u.qkv], Some(&l.attn_norm)),
                rope: rope_kv::Bindings { kv: kv.ty, qkv: &b.qkv, tokens: &b.tokens, k_cache, v_cache, params: &u.rope }.bind(kernels),
                attention: attention::Bindings {
                    kv: kv.ty,
                    qkv: &b.qkv,
                    k_cache,
                    v_cache,
                    page_table: &b.page_table,
                    tokens: &b.tokens,
                    masks: &b.masks,
                    out: &b.attn,
                    params: &u.attention,
                }
                .bind(kernels),
                o: bind_matrix(kernels, "o", &l.o, [&b.attn, &b.x, &u.o], None),
                // The SwiGLU mode (see `Uniforms::write`).
                gate_up: BoundMatrix {
                    swiglu: true,
                    ..bind_matrix(kernels, "gate_up", &l.gate_up, [&b.x, &b.ffn, &u.gate_up], Some(&l.ffn_norm))
                },
                down: bind_matrix(kernels, "down", &l.down, [&b.ffn, &b.x, &u.down], None),
            })
            .collect();
        let r = readback;
        Self {
            embed: embedding,
            layers,
            output_norm: rms_norm::Bindings { x: &b.x, weight: &weights.output_norm, rows: &b.logit_rows, out: &b.h_out, params: &u.norm_out }
                .bind(kernels, "output_norm"),
            head: bind_matrix(kernels, "lm_head", weights.head(), [&b.h_out, &b.logits, &u.head], None),
            sample: sample::Bindings { logits: &b.logits, samplers: &b.samplers, sampled: &r.sampled, params: &u.sample }.bind(kernels),
            distribution: distribution::Bindings {
                logits: &b.logits,
                requests: &b.requests,
                ids: &r.ids,
                probs: &r.probs,
                counts: &r.counts,
                params: &u.distribution,
            }
            .bind(kernels),
        }
    }
}
