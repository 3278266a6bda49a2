//! A random-weight GGUF with the default model's exact shapes and types
//! (SmolLM2-135M-Instruct, Q4_1 matrices, Q8_0 embeddings, f32 norms), for
//! measuring speed where the model cannot be fetched: a GPU machine with only
//! the repository and a built binary. Speed does not depend on the weights'
//! values; the model's answers are noise.

use super::gguf::{GgufWriter, Value};
use super::quant::TensorType::{self, F32, Q4_1, Q8_0};

const LAYERS: u64 = 30;
const D_MODEL: u64 = 576;
const D_FF: u64 = 1536;
const HEADS: u64 = 9;
const KV_HEADS: u64 = 3;
const HEAD_DIM: u64 = D_MODEL / HEADS;
const VOCAB: u64 = 49152;

/// Deterministic pseudo-random values in [-scale, scale] (SplitMix64).
struct Rng(u64);

impl Rng {
    fn values(&mut self, n: u64, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.0;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                let unit = ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32;
                (unit * 2.0 - 1.0) * scale
            })
            .collect()
    }
}

/// Every tensor of the default model: name, dims (innermost first), type.
pub fn default_model_tensors() -> Vec<(String, Vec<u64>, TensorType)> {
    let mut tensors = vec![("token_embd.weight".to_string(), vec![D_MODEL, VOCAB], Q8_0)];
    for i in 0..LAYERS {
        let kv = KV_HEADS * HEAD_DIM;
        for (name, dims, ty) in [
            ("attn_norm.weight", vec![D_MODEL], F32),
            ("attn_q.weight", vec![D_MODEL, D_MODEL], Q4_1),
            ("attn_k.weight", vec![D_MODEL, kv], Q4_1),
            ("attn_v.weight", vec![D_MODEL, kv], Q4_1),
            ("attn_output.weight", vec![D_MODEL, D_MODEL], Q4_1),
            ("ffn_norm.weight", vec![D_MODEL], F32),
            ("ffn_gate.weight", vec![D_MODEL, D_FF], Q4_1),
            ("ffn_up.weight", vec![D_MODEL, D_FF], Q4_1),
            ("ffn_down.weight", vec![D_FF, D_MODEL], Q4_1),
        ] {
            tensors.push((format!("blk.{i}.{name}"), dims, ty));
        }
    }
    tensors.push(("output_norm.weight".to_string(), vec![D_MODEL], F32));
    tensors
}

/// The default model's hyperparameters, with random weights (the same for
/// every call) and a placeholder vocabulary of its size.
pub fn default_model() -> GgufWriter {
    let mut w = GgufWriter::default();
    w.meta("general.architecture", Value::String("llama".into()))
        .meta("general.name", Value::String("synthetic SmolLM2-135M shapes, random weights".into()))
        .meta("llama.block_count", Value::U32(LAYERS as u32))
        .meta("llama.context_length", Value::U32(8192))
        .meta("llama.embedding_length", Value::U32(D_MODEL as u32))
        .meta("llama.feed_forward_length", Value::U32(D_FF as u32))
        .meta("llama.attention.head_count", Value::U32(HEADS as u32))
        .meta("llama.attention.head_count_kv", Value::U32(KV_HEADS as u32))
        .meta("llama.rope.freq_base", Value::F32(100000.0))
        .meta("llama.rope.dimension_count", Value::U32(HEAD_DIM as u32))
        .meta("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .meta("llama.vocab_size", Value::U32(VOCAB as u32))
        .meta("tokenizer.ggml.tokens", Value::Array((0..VOCAB).map(|i| Value::String(format!("t{i}"))).collect()));
    let mut rng = Rng(0x5eed);
    for (name, dims, ty) in default_model_tensors() {
        let n = dims.iter().product();
        // Norm weights near 1 and small matrices keep the activations finite.
        let values = if ty == F32 { vec![1.0; n as usize] } else { rng.values(n, 0.05) };
        w.tensor(&name, &dims, ty, &values);
    }
    w
}
