//! Every dispatch's bind group, made once at load: the forward only picks
//! them up in order.

use super::buffers::Buffers;
use super::config::LlamaConfig;
use super::gpu_weights::GpuWeights;
use super::kv_cache::KvCache;
use super::readback::Readback;
use super::uniforms::Uniforms;
use super::weights::GpuMatrix;
use crate::engine::kernels::{BoundMatrix, Kernels, attention, distribution, embed, matrix, rms_norm, rope_kv, sample};

/// A matrix whose input a layer normalizes first: either the norm folded into
/// the matrix kernel (`fused`, reading the residual stream), or the norm's own
/// dispatch into `h` and then the matrix (`norm`, `unfused`), for the kernel
/// that does not fold it (`Choice::folds_norms`). Both share one `Params`.
pub struct NormedMatrix {
    pub fused: BoundMatrix,
    pub norm: wgpu::BindGroup,
    pub unfused: BoundMatrix,
}

pub struct LayerBindings {
    pub qkv: NormedMatrix,
    pub rope: wgpu::BindGroup,
    pub attention: wgpu::BindGroup,
    pub o: BoundMatrix,
    pub gate_up: NormedMatrix,
    pub down: BoundMatrix,
    /// Gemma 3's norms of the out- and down-projections (stored in `proj`)
    /// into the residual stream.
    pub post_norms: Option<[wgpu::BindGroup; 2]>,
}

pub struct Bindings {
    /// One per part of the embedding (a dispatch each).
    pub embed: Vec<BoundMatrix>,
    pub layers: Vec<LayerBindings>,
    pub output_norm: wgpu::BindGroup,
    /// One per part of the LM head (a dispatch each).
    pub head: Vec<(BoundMatrix, usize)>,
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
    matrix::Bindings { ty: weights.ty, quants: &weights.quants, scales: &weights.scales, x, out, params, norm, kv: None }.bind(kernels, label)
}

/// `weights` · RMSNorm(residual stream, `gain`) into `out`, with `params`;
/// for q|k|v, `kv` names what its folded RoPE and KV write need.
fn bind_normed(
    kernels: &mut Kernels,
    label: &str,
    weights: &GpuMatrix,
    gain: &wgpu::Buffer,
    [out, params]: [&wgpu::Buffer; 2],
    (b, u): (&Buffers, &Uniforms),
    kv: Option<matrix::KvWrite>,
) -> NormedMatrix {
    let bind = |kernels: &mut Kernels, x, norm| {
        matrix::Bindings { ty: weights.ty, quants: &weights.quants, scales: &weights.scales, x, out, params, norm, kv }.bind(kernels, label)
    };
    NormedMatrix {
        fused: bind(kernels, &b.x, Some(gain)),
        norm: rms_norm::Bindings { x: &b.x, weight: gain, rows: &b.all_rows, out: &b.h, params: &u.norm }.bind(kernels, label),
        unfused: bind(kernels, &b.h, None),
    }
}

impl Bindings {
    pub fn new(kernels: &mut Kernels, c: &LlamaConfig, weights: &GpuWeights, kv: &KvCache, b: &Buffers, u: &Uniforms, readback: &Readback) -> Self {
        let embedding = weights
            .embed
            .iter()
            .zip(&u.embed)
            .map(|(e, (params, _))| {
                embed::Bindings { ty: e.ty, quants: &e.quants, scales: &e.scales, ids: &b.ids, slots: &b.slots, out: &b.x, params }.bind(kernels)
            })
            .collect();
        let layers = weights
            .layers
            .iter()
            .zip(&kv.layers)
            .enumerate()
            .map(|(i, (l, [k_cache, v_cache]))| {
                // Sliding-window layers (Gemma 3) have their own RoPE base and window.
                let (rope, attention) = match c.window_of(i) {
                    Some(_) => (&u.rope_local, &u.attention_local),
                    None => (&u.rope, &u.attention),
                };
                // With post-norms, the projections go to `proj`, and their norms add them in.
                let residual = if l.post_norms.is_some() { &b.proj } else { &b.x };
                LayerBindings {
                    qkv: {
                        // The RoPE mode (see `Uniforms::write`).
                        let kv = matrix::KvWrite { tokens: &b.tokens, k_cache, v_cache };
                        bind_normed(kernels, "qkv", &l.qkv, &l.attn_norm, [&b.qkv, &u.qkv], (b, u), Some(kv))
                    },
                    rope: rope_kv::Bindings { kv: kv.ty, qkv: &b.qkv, tokens: &b.tokens, k_cache, v_cache, params: rope, extras: &l.qkv_extras }
                        .bind(kernels),
                    attention: attention::Bindings {
                        kv: kv.ty,
                        qkv: &b.qkv,
                        k_cache,
                        v_cache,
                        page_table: &b.page_table,
                        tokens: &b.tokens,
                        masks: &b.masks,
                        out: &b.attn,
                        params: attention,
                    }
                    .bind(kernels),
                    o: bind_matrix(kernels, "o", &l.o, [&b.attn, residual, &u.o], None),
                    gate_up: {
                        // The SwiGLU mode (see `Uniforms::write`).
                        let m = bind_normed(kernels, "gate_up", &l.gate_up, &l.ffn_norm, [&b.ffn, &u.gate_up], (b, u), None);
                        NormedMatrix { fused: BoundMatrix { swiglu: true, ..m.fused }, unfused: BoundMatrix { swiglu: true, ..m.unfused }, ..m }
                    },
                    down: bind_matrix(kernels, "down", &l.down, [&b.ffn, residual, &u.down], None),
                    post_norms: l.post_norms.as_ref().map(|norms| {
                        norms.each_ref().map(|weight| {
                            rms_norm::Bindings { x: &b.proj, weight, rows: &b.all_rows, out: &b.x, params: &u.post_norm }.bind(kernels, "post_norm")
                        })
                    }),
                }
            })
            .collect();
        let r = readback;
        Self {
            embed: embedding,
            layers,
            output_norm: rms_norm::Bindings { x: &b.x, weight: &weights.output_norm, rows: &b.logit_rows, out: &b.h_out, params: &u.norm_out }
                .bind(kernels, "output_norm"),
            head: weights
                .head()
                .iter()
                .zip(&u.head)
                .map(|(part, (params, _))| (bind_matrix(kernels, "lm_head", part, [&b.h_out, &b.logits, params], None), part.rows))
                .collect(),
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
