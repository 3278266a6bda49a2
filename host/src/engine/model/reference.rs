//! The same forward as the GPU model in plain f32 Rust, over the same batch
//! plan and the same paged KV layout: what the kernels are checked against.
//! Slow by design; it exists to be obviously right.

use super::capacity::Capacity;
use super::config::{Activation, LlamaConfig};
use super::weights::ModelTensors;
use crate::engine::batch::{BatchError, Pass, PassResult};
use crate::engine::kernels::{EMBED_SLOT_FLAG, NO_MASK};
use crate::engine::plan::{BatchPlan, PlanLimits, plan};

struct Layer {
    attn_norm: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    o: Vec<f32>,
    ffn_norm: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
    /// q, k and v biases (Qwen2).
    bias: Option<[Vec<f32>; 3]>,
    /// Query and key head norm gains (Qwen3, Gemma 3).
    head_norms: Option<[Vec<f32>; 2]>,
    /// Norms of the attention's and the FFN's outputs (Gemma 3).
    post_norms: Option<[Vec<f32>; 2]>,
    k_cache: Vec<f32>,
    v_cache: Vec<f32>,
}

pub struct Reference {
    pub config: LlamaConfig,
    pub capacity: Capacity,
    embed: Vec<f32>,
    head: Option<Vec<f32>>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    slots: Vec<f32>,
}

/// `out[r] = W[r, :] · x` for a row-major `rows × x.len()` matrix.
fn matvec(w: &[f32], x: &[f32], rows: usize) -> Vec<f32> {
    (0..rows).map(|r| w[r * x.len()..(r + 1) * x.len()].iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let scale = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32 + eps).sqrt();
    x.iter().zip(w).map(|(v, w)| v * scale * w).collect()
}

fn rope(head: &mut [f32], position: u32, c: &LlamaConfig, base: f32) {
    let pairs = c.rope_dim / 2;
    for i in 0..pairs {
        let theta = position as f32 * base.powf(-2.0 * i as f32 / c.rope_dim as f32);
        let (s, co) = theta.sin_cos();
        let (a, b) = if c.rope_neox { (i, i + pairs) } else { (2 * i, 2 * i + 1) };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * co - x1 * s;
        head[b] = x0 * s + x1 * co;
    }
}

fn activation(kind: Activation, g: f32) -> f32 {
    match kind {
        Activation::Silu => g / (1.0 + (-g).exp()),
        Activation::GeluTanh => 0.5 * g * (1.0 + (0.797_884_6 * (g + 0.044715 * g * g * g)).tanh()),
    }
}

impl Reference {
    pub fn new(config: LlamaConfig, t: &ModelTensors, capacity: Capacity) -> Self {
        let kv = (capacity.kv_pages * capacity.page_size) as usize * config.kv_width();
        Self {
            embed: t.embed.to_f32(),
            head: (!std::ptr::eq(t.lm_head.bytes, t.embed.bytes)).then(|| t.lm_head.to_f32()),
            output_norm: t.output_norm.to_f32(),
            layers: t
                .layers
                .iter()
                .map(|l| Layer {
                    attn_norm: l.attn_norm.to_f32(),
                    q: l.q.to_f32(),
                    k: l.k.to_f32(),
                    v: l.v.to_f32(),
                    o: l.o.to_f32(),
                    ffn_norm: l.ffn_norm.to_f32(),
                    gate: l.gate.to_f32(),
                    up: l.up.to_f32(),
                    down: l.down.to_f32(),
                    bias: l.qkv_bias.map(|b| b.map(|t| t.to_f32())),
                    head_norms: l.qk_norm.map(|n| n.map(|t| t.to_f32())),
                    post_norms: l.post_norms.map(|n| n.map(|t| t.to_f32())),
                    k_cache: vec![0.0; kv],
                    v_cache: vec![0.0; kv],
                })
                .collect(),
            slots: vec![0.0; capacity.embedding_slots as usize * config.d_model],
            config,
            capacity,
        }
    }

    pub fn plan_limits(&self) -> PlanLimits {
        self.capacity.plan_limits(self.config.vocab as u32)
    }

    /// Runs the batch; returns the logits of every row asked for (in plan
    /// order) and the greedy/distribution results. Stochastic samplers get
    /// their argmax here: the reference checks logits, not random draws.
    pub fn forward(&mut self, passes: &[Pass]) -> Result<(Vec<Vec<f32>>, Vec<PassResult>), BatchError> {
        let plan = plan(passes, self.plan_limits())?;
        let logits = self.logits(&plan);
        let results = plan
            .routes
            .iter()
            .map(|route| PassResult {
                tokens: route.samplers.iter().map(|&s| argmax(&logits[plan.samplers[s].row as usize])).collect(),
                distributions: route
                    .distributions
                    .iter()
                    .map(|&r| {
                        let req = &plan.distributions[r];
                        top_k(&logits[req.row as usize], req.temperature, req.k as usize)
                    })
                    .collect(),
            })
            .collect();
        Ok((logits, results))
    }

    fn logits(&mut self, plan: &BatchPlan) -> Vec<Vec<f32>> {
        let c = self.config.clone();
        let (d, hd, kvw) = (c.d_model, c.head_dim, c.kv_width());
        let mut x: Vec<Vec<f32>> = plan
            .ids
            .iter()
            .map(|&id| {
                if id & EMBED_SLOT_FLAG != 0 {
                    let s = (id & !EMBED_SLOT_FLAG) as usize;
                    self.slots[s * d..(s + 1) * d].to_vec()
                } else {
                    self.embed[id as usize * d..(id as usize + 1) * d].iter().map(|v| v * c.embed_scale).collect()
                }
            })
            .collect();
        let page = self.capacity.page_size as usize;
        for (index, layer) in self.layers.iter_mut().enumerate() {
            let window = c.window_of(index);
            let base = window.map_or(c.rope_base, |w| w.rope_base);
            let mut qs = Vec::new();
            for (row, token) in x.iter().zip(&plan.tokens) {
                let h = rms_norm(row, &layer.attn_norm, c.rms_eps);
                let mut q = matvec(&layer.q, &h, c.n_head * hd);
                let mut k = matvec(&layer.k, &h, kvw);
                let mut v = matvec(&layer.v, &h, kvw);
                if let Some(bias) = &layer.bias {
                    for (x, b) in [&mut q, &mut k, &mut v].into_iter().zip(bias) {
                        x.iter_mut().zip(b).for_each(|(x, b)| *x += b);
                    }
                }
                if let Some([q_gain, k_gain]) = &layer.head_norms {
                    q.chunks_mut(hd).for_each(|head| head.copy_from_slice(&rms_norm(head, q_gain, c.rms_eps)));
                    k.chunks_mut(hd).for_each(|head| head.copy_from_slice(&rms_norm(head, k_gain, c.rms_eps)));
                }
                q.chunks_mut(hd).chain(k.chunks_mut(hd)).for_each(|head| rope(head, token.position, &c, base));
                let at = token.kv_slot as usize * kvw;
                layer.k_cache[at..at + kvw].copy_from_slice(&k);
                layer.v_cache[at..at + kvw].copy_from_slice(&v);
                qs.push(q);
            }
            for (t, token) in plan.tokens.iter().enumerate() {
                let in_window = |s: usize| window.is_none_or(|w| s + w.span as usize >= token.ctx_len as usize);
                let attends = |s: usize| {
                    in_window(s) && (token.mask_offset == NO_MASK || (plan.masks[token.mask_offset as usize + s / 32] >> (s % 32)) & 1 == 1)
                };
                let slot_of = |s: usize| plan.page_table[token.table_offset as usize + s / page] as usize * page + s % page;
                let mut attn = vec![0.0f32; c.n_head * hd];
                for h in 0..c.n_head {
                    let kvh = h / (c.n_head / c.n_kv_head);
                    let q = &qs[t][h * hd..(h + 1) * hd];
                    let visible: Vec<usize> = (0..token.ctx_len as usize).filter(|&s| attends(s)).collect();
                    let scores: Vec<f32> = visible
                        .iter()
                        .map(|&s| {
                            let k = &layer.k_cache[slot_of(s) * kvw + kvh * hd..][..hd];
                            q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() / (hd as f32).sqrt()
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let weights: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f32 = weights.iter().sum();
                    for (&s, w) in visible.iter().zip(&weights) {
                        let v = &layer.v_cache[slot_of(s) * kvw + kvh * hd..][..hd];
                        for (o, v) in attn[h * hd..(h + 1) * hd].iter_mut().zip(v) {
                            *o += w / sum * v;
                        }
                    }
                }
                let post_norm = |y: Vec<f32>, i: usize| match &layer.post_norms {
                    Some(norms) => rms_norm(&y, &norms[i], c.rms_eps),
                    None => y,
                };
                let o = post_norm(matvec(&layer.o, &attn, d), 0);
                x[t].iter_mut().zip(o).for_each(|(a, b)| *a += b);
                let h = rms_norm(&x[t], &layer.ffn_norm, c.rms_eps);
                let gate = matvec(&layer.gate, &h, c.d_ff);
                let up = matvec(&layer.up, &h, c.d_ff);
                let act: Vec<f32> = gate.iter().zip(&up).map(|(&g, u)| activation(c.activation, g) * u).collect();
                let down = post_norm(matvec(&layer.down, &act, d), 1);
                x[t].iter_mut().zip(down).for_each(|(a, b)| *a += b);
            }
        }
        for &(row, slot) in &plan.embedding_copies {
            self.slots[slot as usize * d..(slot as usize + 1) * d].copy_from_slice(&x[row as usize]);
        }
        let head = self.head.as_ref().unwrap_or(&self.embed);
        plan.logit_rows.iter().map(|&row| matvec(head, &rms_norm(&x[row as usize], &self.output_norm, c.rms_eps), c.vocab)).collect()
    }
}

/// The index of the largest value, lowest index on ties.
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// The k most likely ids with softmax(logits / T) probabilities (T = 0: one-hot).
pub fn top_k(logits: &[f32], temperature: f32, k: usize) -> (Vec<u32>, Vec<f32>) {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| ((l - max) / t).exp()).collect();
    let sum: f32 = e.iter().sum();
    let mut pairs: Vec<(u32, f32)> = e.iter().enumerate().map(|(i, v)| (i as u32, v / sum)).collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    pairs.truncate(k);
    if temperature == 0.0 {
        for (j, p) in pairs.iter_mut().enumerate() {
            p.1 = if j == 0 { 1.0 } else { 0.0 };
        }
    }
    pairs.into_iter().unzip()
}
