//! The engine against its plain-Rust reference, on a tiny random Llama that
//! the test writes as GGUF (2 layers, every supported weight type), on
//! whatever adapter the machine has (lavapipe on CI; no adapter is a failure).

use std::sync::{Arc, OnceLock};

use crust::engine::batch::{BatchError, Input, Output, Pass, PassResult, Sampler};
use crust::engine::device::Gpu;
use crust::engine::gguf::{GgufFile, GgufWriter, Value};
use crust::engine::model::{Capacity, KernelShape, Llama, LlamaConfig, ModelTensors, Reference};
use crust::engine::quant::TensorType::{self, *};
use crust::engine::quant::dequantize;
use crust::engine::service::ModelService;
use crust_tests::scratch_dir;

// Not a multiple of 4, 8 or 64: the LM head ends in a partial group of rows in every matrix kernel.
const VOCAB: usize = 250;
const D: usize = 64;
const FF: usize = 128;
const PAGE: u32 = 4;

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }

    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| (self.next() * 2.0 - 1.0) * scale).collect()
    }
}

/// The weight types of a tiny model: the embedding, then per layer q|k|v, o, gate|up and down.
struct Types {
    embed: TensorType,
    layers: [[TensorType; 4]; 2],
}

/// The tiny model most tests use: every legacy type, in rows of 64.
const LEGACY: Types = Types { embed: Q8_0, layers: [[Q4_1, Q8_0, F16, Q4_0], [Q8_0, Q4_1, Q4_0, F16]] };

fn tiny_gguf() -> Vec<u8> {
    tiny_gguf_with(D, FF, &LEGACY, None)
}

/// A tiny random Llama of width `d` and FFN width `ff` in `types`; `v_type`
/// gives the v projections a type of their own (as K-quant files do).
fn tiny_gguf_with(d: usize, ff: usize, types: &Types, v_type: Option<TensorType>) -> Vec<u8> {
    tiny_gguf_shaped(d, ff, types, v_type, &Shape::LLAMA)
}

/// What sets an architecture's tiny model apart from Llama's.
struct Shape {
    arch: &'static str,
    qkv_bias: bool,
    qk_norm: bool,
    /// Each head's width, when not d / heads.
    key_length: Option<usize>,
    /// Norms after attention and the FFN (Gemma 3).
    post_norms: bool,
    /// `<arch>.attention.sliding_window` (Gemma 3).
    sliding_window: Option<u32>,
    layers: usize,
    /// The embedding's values' range (also the tied LM head's: smaller keeps
    /// the distributions off saturation, where they could hide a difference).
    embedding: f32,
}

impl Shape {
    const LLAMA: Shape = Shape {
        arch: "llama",
        qkv_bias: false,
        qk_norm: false,
        key_length: None,
        post_norms: false,
        sliding_window: None,
        layers: 2,
        embedding: 1.0,
    };
}

fn tiny_gguf_shaped(d: usize, ff: usize, types: &Types, v_type: Option<TensorType>, shape: &Shape) -> Vec<u8> {
    let mut rng = Rng(7);
    let mut w = GgufWriter::default();
    let arch = shape.arch;
    let key = |k: &str| format!("{arch}.{k}");
    w.meta("general.architecture", Value::String(arch.into()))
        .meta(&key("block_count"), Value::U32(shape.layers as u32))
        .meta(&key("embedding_length"), Value::U32(d as u32))
        .meta(&key("feed_forward_length"), Value::U32(ff as u32))
        .meta(&key("attention.head_count"), Value::U32(4))
        .meta(&key("attention.head_count_kv"), Value::U32(2))
        .meta(&key("rope.freq_base"), Value::F32(10000.0))
        .meta(&key("attention.layer_norm_rms_epsilon"), Value::F32(1e-5))
        .meta(&key("context_length"), Value::U32(512))
        .meta("tokenizer.ggml.tokens", Value::Array((0..VOCAB).map(|i| Value::String(format!("t{i}"))).collect()));
    if let Some(span) = shape.sliding_window {
        w.meta(&key("attention.sliding_window"), Value::U32(span));
    }
    if let Some(hd) = shape.key_length {
        w.meta(&key("attention.key_length"), Value::U32(hd as u32)).meta(&key("attention.value_length"), Value::U32(hd as u32));
    }
    let hd = shape.key_length.unwrap_or(d / 4);
    let (q_width, kv_width) = (4 * hd, 2 * hd);
    let (d64, ff64, v) = (d as u64, ff as u64, VOCAB as u64);
    w.tensor("token_embd.weight", &[d64, v], types.embed, &rng.values(d * VOCAB, shape.embedding));
    w.tensor("output_norm.weight", &[d64], F32, &rng.values(d, 0.2).iter().map(|x| 1.0 + x).collect::<Vec<_>>());
    for (i, [qkv, o, gate_up, down]) in (0..shape.layers).map(|i| (i, types.layers[i % 2])) {
        let name = |s: &str| format!("blk.{i}.{s}");
        let norm: Vec<f32> = rng.values(d, 0.2).iter().map(|x| 1.0 + x).collect();
        w.tensor(&name("attn_norm.weight"), &[d64], F32, &norm);
        let (qw, kvw) = (q_width as u64, kv_width as u64);
        w.tensor(&name("attn_q.weight"), &[d64, qw], qkv, &rng.values(d * q_width, 0.3));
        w.tensor(&name("attn_k.weight"), &[d64, kvw], qkv, &rng.values(d * kv_width, 0.3));
        w.tensor(&name("attn_v.weight"), &[d64, kvw], v_type.unwrap_or(qkv), &rng.values(d * kv_width, 0.3));
        if shape.qkv_bias {
            w.tensor(&name("attn_q.bias"), &[qw], F32, &rng.values(q_width, 0.5));
            w.tensor(&name("attn_k.bias"), &[kvw], F32, &rng.values(kv_width, 0.5));
            w.tensor(&name("attn_v.bias"), &[kvw], F32, &rng.values(kv_width, 0.5));
        }
        if shape.qk_norm {
            let gains = |rng: &mut Rng| rng.values(hd, 0.3).iter().map(|x| 1.0 + x).collect::<Vec<_>>();
            w.tensor(&name("attn_q_norm.weight"), &[hd as u64], F32, &gains(&mut rng));
            w.tensor(&name("attn_k_norm.weight"), &[hd as u64], F32, &gains(&mut rng));
        }
        w.tensor(&name("attn_output.weight"), &[qw, d64], o, &rng.values(q_width * d, 0.2));
        if shape.post_norms {
            let gains = |rng: &mut Rng| rng.values(d, 0.3).iter().map(|x| 1.0 + x).collect::<Vec<_>>();
            w.tensor(&name("post_attention_norm.weight"), &[d64], F32, &gains(&mut rng));
            w.tensor(&name("post_ffw_norm.weight"), &[d64], F32, &gains(&mut rng));
        }
        w.tensor(&name("ffn_norm.weight"), &[d64], F32, &norm);
        w.tensor(&name("ffn_gate.weight"), &[d64, ff64], gate_up, &rng.values(d * ff, 0.3));
        w.tensor(&name("ffn_up.weight"), &[d64, ff64], gate_up, &rng.values(d * ff, 0.3));
        w.tensor(&name("ffn_down.weight"), &[ff64, d64], down, &rng.values(d * ff, 0.2));
    }
    w.to_bytes()
}

/// An f32 KV cache, so the GPU can be held to the f32 reference tightly.
fn capacity() -> Capacity {
    Capacity {
        page_size: PAGE,
        kv_pages: 64,
        embedding_slots: 8,
        batch_tokens: 128,
        batch_outputs: 64,
        max_top_k: 256,
        kv_f16: false,
        ..Capacity::default()
    }
}

fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| Arc::new(Gpu::open().unwrap_or_else(|e| panic!("the engine tests need a GPU adapter: {e}")))).clone()
}

/// A fresh GPU model and reference over the same tiny model file.
fn models() -> (Llama, Reference) {
    models_with(capacity())
}

fn models_with(capacity: Capacity) -> (Llama, Reference) {
    models_of(&tiny_gguf(), capacity)
}

fn models_of(gguf: &[u8], capacity: Capacity) -> (Llama, Reference) {
    // A directory per test thread: `scratch_dir` empties it, which must not race another test's write.
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let path = scratch_dir(&format!("tiny-model-{thread}")).join("tiny.gguf");
    std::fs::write(&path, gguf).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let config = LlamaConfig::from_gguf(&file).unwrap();
    let tensors = ModelTensors::from_gguf(&file, &config).unwrap();
    let llama = Llama::load(gpu(), config.clone(), &tensors, capacity, &|_| {}).unwrap();
    let reference = Reference::new(config, &tensors, capacity);
    (llama, reference)
}

/// A pass over `tokens` at positions `start..`, with every row's full distribution.
fn pass(tokens: &[u32], start: u32, pages: &[u32], last: u32) -> Pass {
    let n = tokens.len() as u32;
    Pass {
        inputs: tokens.iter().map(|&t| Input::Token(t)).collect(),
        positions: (start..start + n).collect(),
        kv_pages: pages.to_vec(),
        last_page_len: last,
        mask: vec![],
        outputs: (0..n)
            .flat_map(|index| {
                [Output::Distribution { index, temperature: 1.0, top_k: VOCAB as u32 }, Output::Token { index, sampler: Sampler::greedy() }]
            })
            .collect(),
    }
}

/// Every probability within `tol`, and the same greedy tokens.
fn assert_close(gpu: &[PassResult], reference: &[PassResult], tol: f32) {
    assert_eq!(gpu.len(), reference.len());
    for (p, (g, r)) in gpu.iter().zip(reference).enumerate() {
        assert_eq!(g.tokens, r.tokens, "pass {p}: greedy tokens");
        for (k, ((gi, gp), (ri, rp))) in g.distributions.iter().zip(&r.distributions).enumerate() {
            let prob = |ids: &[u32], ps: &[f32], id: u32| ids.iter().position(|&i| i == id).map_or(0.0, |j| ps[j]);
            for id in 0..VOCAB as u32 {
                let (a, b) = (prob(gi, gp, id), prob(ri, rp, id));
                assert!((a - b).abs() <= tol, "pass {p}, distribution {k}, token {id}: gpu {a} vs reference {b}");
            }
        }
    }
}

const TOL: f32 = 2e-4;

/// (The decode steps after the first run commands recorded ahead, while the
/// step before them ran: other tokens, positions and pages, the same shape.)
#[test]
fn prefill_then_decode_match_the_reference() {
    let (mut gpu, mut reference) = models();
    // 11 tokens on scattered pages: 2 full pages of 4, then 3 slots of the third.
    let prefill = pass(&[1, 5, 9, 200, 17, 3, 3, 42, 77, 128, 249], 0, &[5, 2, 9], 3);
    assert_close(&gpu.forward(std::slice::from_ref(&prefill)).unwrap(), &reference.forward(&[prefill]).unwrap().1, TOL);
    for (step, token) in [7u32, 99, 4].into_iter().enumerate() {
        let len = 12 + step as u32;
        let pages: Vec<u32> = [5, 2, 9, 11].into_iter().take(len.div_ceil(PAGE) as usize).collect();
        let decode = pass(&[token], len - 1, &pages, (len - 1) % PAGE + 1);
        assert_close(&gpu.forward(std::slice::from_ref(&decode)).unwrap(), &reference.forward(&[decode]).unwrap().1, TOL);
    }
}

/// Every matrix-kernel variant, each with the layer norms folded into its
/// input — on CPU adapters 8 rows per invocation (under 4 rows) or 4 rows ×
/// 8 tokens in registers (the 12-row batch, a full tile and a partial one),
/// and the first kernels (one invocation per output); on GPUs a workgroup
/// per row with subgroup or workgroup-memory sums, and the tiled prefill
/// kernel (batches over 8 rows) — gives the reference's answers.
#[test]
fn every_kernel_shape_matches_the_reference() {
    every_kernel_shape_matches_the_reference_on(&tiny_gguf(), TOL);
}

const K_QUANTS: Types = Types { embed: Q6_K, layers: [[Q4_K, Q5_K, Q6_K, Q5_0], [Q5_1, Q6_K, Q4_K, Q5_K]] };

/// The K-quants and Q5_0/Q5_1 (rows of 256, a super-block each) through every
/// matrix kernel and the embedding, against the reference that decodes them
/// as GGML does.
#[test]
fn k_quants_match_the_reference_in_every_kernel_shape() {
    every_kernel_shape_matches_the_reference_on(&tiny_gguf_with(256, 256, &K_QUANTS, None), TOL);
}

/// The Qwen2 shape (RoPE on halves of each head, q/k/v biases) and the
/// Qwen3 shape (RoPE on halves, each query and key head RMS-normalized,
/// heads wider than d / heads) through every kernel shape.
#[test]
fn qwen_shapes_match_the_reference_in_every_kernel_shape() {
    let qwen2 = Shape { arch: "qwen2", qkv_bias: true, ..Shape::LLAMA };
    every_kernel_shape_matches_the_reference_on(&tiny_gguf_shaped(D, FF, &LEGACY, None, &qwen2), TOL);
    let qwen3 = Shape { arch: "qwen3", qk_norm: true, key_length: Some(32), ..Shape::LLAMA };
    every_kernel_shape_matches_the_reference_on(&tiny_gguf_shaped(D, FF, &LEGACY, None, &qwen3), TOL);
}

/// Gemma 3's shape: scaled embeddings, per-head q/k norms, GeGLU, norms
/// after attention and the FFN, and five sliding-window layers (a window of
/// 4 slots, RoPE base 10000) to one global — six layers, through every kernel
/// shape, with prompts longer than the window.
#[test]
fn the_gemma3_shape_matches_the_reference_in_every_kernel_shape() {
    let gemma3 = Shape {
        arch: "gemma3",
        qk_norm: true,
        key_length: Some(32),
        post_norms: true,
        sliding_window: Some(4),
        layers: 6,
        embedding: 0.15,
        ..Shape::LLAMA
    };
    every_kernel_shape_matches_the_reference_on(&tiny_gguf_shaped(D, FF, &LEGACY, None, &gemma3), TOL);
}

/// q and k in one type and v in another, as K-quant files mix them: q|k|v
/// are stacked as F16, whose rounding (2⁻¹¹ of a weight, far under any
/// quantization step) moves this peaky tiny model's probabilities by up to
/// ≈ 0.004 — the bound says so, and no greedy token may change.
#[test]
fn mixed_types_in_q_k_v_stay_close_to_the_reference() {
    every_kernel_shape_matches_the_reference_on(&tiny_gguf_with(256, 256, &K_QUANTS, Some(Q6_K)), 1e-2);
}

fn every_kernel_shape_matches_the_reference_on(gguf: &[u8], tol: f32) {
    let shapes = [(KernelShape::Cpu, false, true), (KernelShape::Cpu, false, false), (KernelShape::Gpu, true, true), (KernelShape::Gpu, false, true)];
    for (shape, subgroups, cpu_tuned) in shapes {
        let (mut gpu, mut reference) = models_of(gguf, capacity());
        gpu.shape = shape;
        gpu.subgroups = subgroups;
        gpu.cpu_tuned = cpu_tuned;
        let passes = vec![pass(&[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], 0, &[0, 1, 2], 2), pass(&[2, 7], 0, &[3], 2)];
        let batched = gpu.forward(&passes).unwrap();
        assert_close(&batched, &reference.forward(&passes).unwrap().1, tol);
        let decode = vec![pass(&[8], 10, &[0, 1, 2], 3), pass(&[1], 2, &[3], 3)];
        assert_close(&gpu.forward(&decode).unwrap(), &reference.forward(&decode).unwrap().1, tol);
    }
}

/// An embedding and LM head bigger than one binding (here: forced to 2 KiB,
/// as a 262k-token vocabulary exceeds lavapipe's 128 MiB) are split in row
/// ranges, a dispatch each, and give the same answers.
#[test]
fn a_vocabulary_split_over_several_bindings_matches_the_reference() {
    let tied = tiny_gguf();
    let (mut gpu, mut reference) = models_of(&tied, Capacity { max_weight_binding: Some(2048), ..capacity() });
    let passes = vec![pass(&[3, 1, 4, 249, 5, 130], 0, &[0, 1], 2), pass(&[2, 7], 0, &[3], 2)];
    assert_close(&gpu.forward(&passes).unwrap(), &reference.forward(&passes).unwrap().1, TOL);
    let decode = vec![pass(&[248], 6, &[0, 1], 3)];
    assert_close(&gpu.forward(&decode).unwrap(), &reference.forward(&decode).unwrap().1, TOL);
}

/// With shader-f16 the KV cache is f16: close to the f32 reference, not equal.
#[test]
fn an_f16_kv_cache_stays_close_to_the_reference() {
    assert!(gpu().shader_f16 || std::env::var("CI").is_err(), "CI's lavapipe has shader-f16");
    let (mut gpu, mut reference) = models_with(Capacity { kv_f16: true, ..capacity() });
    let passes = vec![pass(&[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], 0, &[0, 1, 2], 2), pass(&[2, 7], 0, &[3], 2)];
    assert_close(&gpu.forward(&passes).unwrap(), &reference.forward(&passes).unwrap().1, 2e-3);
    let decode = vec![pass(&[8], 10, &[0, 1, 2], 3)];
    assert_close(&gpu.forward(&decode).unwrap(), &reference.forward(&decode).unwrap().1, 2e-3);
}

#[test]
fn a_batch_of_mixed_lengths_matches_each_pass_alone() {
    let (mut gpu, mut reference) = models();
    let passes =
        vec![pass(&[3, 1, 4, 1, 5, 9], 0, &[0, 1], 2), pass(&[2, 7], 0, &[2], 2), pass(&[10, 20, 30, 40, 50, 60, 70, 80, 90], 0, &[3, 4, 5], 1)];
    let batched = gpu.forward(&passes).unwrap();
    assert_close(&batched, &reference.forward(&passes).unwrap().1, TOL);
    // Alone, on fresh pages, each pass gives the same results.
    let (mut gpu2, _) = models();
    for (p, alone) in passes.iter().enumerate() {
        let result = gpu2.forward(std::slice::from_ref(alone)).unwrap();
        assert_close(&result, &batched[p..p + 1], TOL);
    }
}

#[test]
fn shared_prefix_pages_serve_two_continuations() {
    let (mut gpu, mut reference) = models();
    // A prefix of 6 tokens on pages [0, 1]; two continuations share page 0 and
    // each copies the partial page's slots by recomputing them on its own page.
    let prefix = pass(&[11, 12, 13, 14, 15, 16], 0, &[0, 1], 2);
    gpu.forward(std::slice::from_ref(&prefix)).unwrap();
    reference.forward(&[prefix]).unwrap();
    let fork_a = pass(&[15, 16, 21, 22], 4, &[0, 2], 4);
    let fork_b = pass(&[15, 16, 31], 4, &[0, 3], 3);
    let both = [fork_a, fork_b];
    assert_close(&gpu.forward(&both).unwrap(), &reference.forward(&both).unwrap().1, TOL);
}

/// In every attention kernel: per query (CPU-shaped, 4 tokens or more) and chunked.
#[test]
fn custom_masks_match_the_reference() {
    for shape in [KernelShape::Cpu, KernelShape::Gpu] {
        let (mut gpu, mut reference) = models();
        gpu.shape = shape;
        let mut p = pass(&[5, 6, 7, 8, 9], 0, &[0, 1], 1);
        // Row i sees its context with slot 1 hidden (from row 2 on) and itself.
        p.mask = (0..5u32).map(|i| if i < 2 { vec![i + 1] } else { vec![1, 1, i - 1] }).collect();
        let (gpu_result, reference_result) = (gpu.forward(std::slice::from_ref(&p)).unwrap(), reference.forward(std::slice::from_ref(&p)).unwrap().1);
        assert_close(&gpu_result, &reference_result, TOL);
        // And the mask changes the answer (the test would catch a kernel that ignores it).
        let mut causal = p.clone();
        causal.mask.clear();
        let (mut gpu2, _) = models();
        gpu2.shape = shape;
        let unmasked = gpu2.forward(&[causal]).unwrap();
        assert_ne!(unmasked[0].distributions[4], gpu_result[0].distributions[4]);
    }
}

#[test]
fn embeddings_round_trip_through_slots() {
    let (mut gpu, mut reference) = models();
    let mut first = pass(&[1, 2, 3], 0, &[0], 3);
    first.outputs.push(Output::Embedding { index: 2, slot: 5 });
    let mut second = pass(&[0], 0, &[1], 1);
    second.inputs = vec![Input::Embedding(5)];
    for p in [first, second] {
        assert_close(&gpu.forward(std::slice::from_ref(&p)).unwrap(), &reference.forward(&[p]).unwrap().1, TOL);
    }
}

/// Probabilities of the next token after a fixed context, at temperature 1.
fn context_probs(reference: &mut Reference) -> Vec<f32> {
    let (logits, _) = reference.forward(&[pass(&[9, 8, 7], 0, &[0], 3)]).unwrap();
    let row = &logits[2];
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// `draws` samples of the next token after the fixed context, seeds 0..draws.
fn draw(gpu: &mut Llama, sampler: Sampler, draws: u64) -> Vec<u32> {
    let mut out = Vec::new();
    for chunk in (0..draws).collect::<Vec<_>>().chunks(60) {
        let mut p = pass(&[9, 8, 7], 0, &[0], 3);
        p.outputs = chunk.iter().map(|&seed| Output::Token { index: 2, sampler: Sampler { seed, ..sampler } }).collect();
        out.extend(gpu.forward(&[p]).unwrap().remove(0).tokens);
    }
    out
}

#[test]
fn samplers_draw_from_the_right_distribution() {
    let (mut gpu, mut reference) = models();
    let probs = context_probs(&mut reference);
    let mut ranked: Vec<u32> = (0..VOCAB as u32).collect();
    ranked.sort_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]));
    let plain = Sampler { temperature: 1.0, top_k: None, top_p: None, min_p: None, seed: 0 };

    // Multinomial: the empirical frequency of the likeliest tokens tracks their probability.
    let n = 1200;
    let samples = draw(&mut gpu, plain, n);
    for &id in &ranked[..3] {
        let freq = samples.iter().filter(|&&s| s == id).count() as f32 / n as f32;
        let p = probs[id as usize];
        let sigma = (p * (1.0 - p) / n as f32).sqrt();
        assert!((freq - p).abs() < 5.0 * sigma + 0.01, "token {id}: frequency {freq}, probability {p}");
    }
    // Reproducible: the same seeds draw the same tokens.
    assert_eq!(draw(&mut gpu, plain, 60), samples[..60]);

    // Top-k keeps only the k likeliest.
    let top3 = draw(&mut gpu, Sampler { top_k: Some(3), ..plain }, 240);
    assert!(top3.iter().all(|t| ranked[..3].contains(t)), "{top3:?}");
    assert!(ranked[..3].iter().all(|t| top3.contains(t)), "all three are drawn");
    // Top-p keeps the smallest set whose mass reaches p.
    let mut mass = 0.0;
    let nucleus: Vec<u32> = ranked
        .iter()
        .copied()
        .take_while(|&t| {
            let inside = mass < 0.3;
            mass += probs[t as usize];
            inside
        })
        .collect();
    let top_p = draw(&mut gpu, Sampler { top_p: Some(0.3), ..plain }, 240);
    assert!(top_p.iter().all(|t| nucleus.contains(t)), "nucleus {nucleus:?}, drawn {top_p:?}");
    // Min-p keeps tokens at least min_p times as likely as the likeliest.
    let floor = 0.5 * probs[ranked[0] as usize];
    let min_p = draw(&mut gpu, Sampler { min_p: Some(0.5), ..plain }, 240);
    assert!(min_p.iter().all(|&t| probs[t as usize] >= floor * 0.999), "{min_p:?}");
    // Top-k then top-p: within the top 5, the nucleus of their renormalized mass.
    let both = draw(&mut gpu, Sampler { top_k: Some(5), top_p: Some(0.3), ..plain }, 240);
    assert!(both.iter().all(|t| ranked[..5].contains(t)));
    // Greedy is the argmax.
    assert_eq!(draw(&mut gpu, Sampler::greedy(), 3), vec![ranked[0]; 3]);
}

#[test]
fn distributions_are_sorted_and_sum_like_the_softmax() {
    let (mut gpu, mut reference) = models();
    let probs = context_probs(&mut reference);
    let mut p = pass(&[9, 8, 7], 0, &[0], 3);
    p.outputs = vec![Output::Distribution { index: 2, temperature: 1.0, top_k: 32 }, Output::Distribution { index: 2, temperature: 0.0, top_k: 4 }];
    let result = gpu.forward(&[p]).unwrap().remove(0);
    let (ids, ps) = &result.distributions[0];
    assert_eq!(ids.len(), 32);
    assert!(ps.windows(2).all(|w| w[0] >= w[1]), "sorted, highest first: {ps:?}");
    for (id, p) in ids.iter().zip(ps) {
        assert!((probs[*id as usize] - p).abs() < TOL, "not renormalized over the k");
    }
    let (greedy_ids, greedy_ps) = &result.distributions[1];
    assert_eq!(greedy_ps, &vec![1.0, 0.0, 0.0, 0.0]);
    assert_eq!(greedy_ids[0], ids[0]);
}

#[test]
fn invalid_passes_are_refused_by_name() {
    let (mut gpu, _) = models();
    let cases: Vec<(Pass, &str)> = vec![
        (pass(&[VOCAB as u32], 0, &[0], 1), "token id 250 is not below the vocabulary size 250"),
        (pass(&[1, 2], 0, &[0], 1), "the pages hold 1 slots, fewer than the pass's 2 inputs"),
        (pass(&[1], 0, &[64], 1), "page 64 does not exist"),
        (pass(&[1], 0, &[0], 5), "last-kv-page-len is 5"),
        (Pass { mask: vec![vec![2]], ..pass(&[1], 0, &[0], 1) }, "the runs cover 2 slots, expected 1"),
        (Pass { positions: vec![], ..pass(&[1], 0, &[0], 1) }, "1 inputs but 0 positions"),
    ];
    for (p, expected) in cases {
        let error = gpu.forward(&[pass(&[1], 0, &[1], 1), p]).unwrap_err();
        assert!(matches!(&error, BatchError::Invalid { pass: 1, .. }), "{error}");
        assert!(error.to_string().contains(expected), "expected `{expected}` in `{error}`");
    }
    // The engine still works after refusing them.
    gpu.forward(&[pass(&[1, 2], 0, &[0], 2)]).unwrap();
}

/// Crust's dequantizer — the reference the kernels are held to — gives the
/// values GGML's own Python reference gives for the same random blocks of
/// every quantized type (`tests/data/quant_blocks.py` wrote them), to the bit.
#[test]
fn dequantization_matches_ggml_on_random_blocks() {
    #[derive(serde::Deserialize)]
    struct Case {
        r#type: String,
        bytes: String,
        values: Vec<f32>,
    }
    let data = std::fs::read_to_string(crust_tests::repo_root().join("tests/data/quant-blocks.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&data).unwrap();
    assert_eq!(cases.len(), 8, "every quantized type");
    for case in cases {
        let ty = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K].into_iter().find(|t| format!("{t:?}") == case.r#type).unwrap();
        let bytes: Vec<u8> = (0..case.bytes.len()).step_by(2).map(|i| u8::from_str_radix(&case.bytes[i..i + 2], 16).unwrap()).collect();
        let values = dequantize(ty, &bytes);
        assert_eq!(values.len(), case.values.len(), "{ty:?}");
        for (i, (ours, ggml)) in values.iter().zip(&case.values).enumerate() {
            assert!(ours == ggml, "{ty:?} weight {i}: {ours} where GGML gives {ggml}");
        }
    }
}

#[test]
fn unsupported_models_are_named_as_such() {
    let dir = scratch_dir("unsupported-models");
    // An architecture Crust does not run.
    let mut w = GgufWriter::default();
    w.meta("general.architecture", Value::String("mamba".into()));
    let path = dir.join("mamba.gguf");
    w.write(&path).unwrap();
    let error = LlamaConfig::from_gguf(&GgufFile::open(&path).unwrap()).unwrap_err();
    assert!(error.to_string().contains("unsupported architecture `mamba`"), "{error}");

    // A tensor type Crust cannot load (Q3_K, GGML type 11), written by hand.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(1u64.to_le_bytes()); // tensors
    bytes.extend(0u64.to_le_bytes()); // metadata
    bytes.extend(12u64.to_le_bytes());
    bytes.extend(b"blk.0.ffn_up");
    bytes.extend(2u32.to_le_bytes());
    bytes.extend(256u64.to_le_bytes());
    bytes.extend(4u64.to_le_bytes());
    bytes.extend(11u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    let path = dir.join("q3k.gguf");
    std::fs::write(&path, bytes).unwrap();
    let error = GgufFile::open(&path).err().expect("refused");
    assert!(error.to_string().contains("tensor `blk.0.ffn_up` has type Q3_K"), "{error}");
    assert!(error.to_string().contains("supported: F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K"), "{error}");
}

/// Passes submitted together from many threads are batched, and each gets
/// the same answer as it would alone.
#[test]
fn the_scheduler_batches_concurrent_passes_without_changing_them() {
    let (llama, mut reference) = models();
    let service = ModelService::start("tiny", llama);
    let passes: Vec<Pass> = (0..16u32).map(|i| pass(&[i, i + 1, 2 * i + 3], 0, &[i], 3)).collect();
    let receivers: Vec<_> = passes.iter().map(|p| service.submit(p.clone())).collect();
    let results: Vec<PassResult> = receivers.into_iter().map(|rx| rx.blocking_recv().unwrap().unwrap()).collect();
    assert_close(&results, &reference.forward(&passes).unwrap().1, TOL);
    let batches = service.stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(service.stats.batched_passes.load(std::sync::atomic::Ordering::Relaxed), 16);
    assert!(batches < 16, "16 passes ran in {batches} batches");

    // A bad pass fails alone; its batch neighbours still get their answers.
    let bad = pass(&[VOCAB as u32 + 5], 0, &[20], 1);
    let (good_rx, bad_rx) = (service.submit(passes[3].clone()), service.submit(bad));
    assert!(bad_rx.blocking_recv().unwrap().unwrap_err().to_string().contains("token id 255"));
    assert!(good_rx.blocking_recv().unwrap().is_ok());
}

/// Copy-on-write: a continuation on a private copy of a shared partial page
/// sees the prefix but not what another continuation writes into the original.
#[test]
fn a_copied_page_keeps_the_prefix_and_diverges() {
    let (llama, _) = models();
    let service = ModelService::start("tiny", llama);
    let prefix = [11, 12, 13, 14, 15, 16];
    service.submit(pass(&prefix, 0, &[0, 1], 2)).blocking_recv().unwrap().unwrap();
    service.copy_page(1, 5);
    let a = service.submit(pass(&[21, 22], 6, &[0, 1], 4));
    let b = service.submit(pass(&[31, 32], 6, &[0, 5], 4));
    let (a, b) = (a.blocking_recv().unwrap().unwrap(), b.blocking_recv().unwrap().unwrap());
    // Each equals the same continuation computed from scratch on fresh pages.
    let (_, mut reference) = models();
    let whole = |tail: [u32; 2]| {
        let mut p = pass(&[prefix.as_slice(), tail.as_slice()].concat(), 0, &[2, 3], 4);
        p.outputs.retain(|o| matches!(o, Output::Distribution { index: 6 | 7, .. } | Output::Token { index: 6 | 7, .. }));
        p
    };
    let expect_a = reference.forward(&[whole([21, 22])]).unwrap().1;
    let (_, mut reference) = models();
    let expect_b = reference.forward(&[whole([31, 32])]).unwrap().1;
    let tail_only = |r: &PassResult| PassResult { tokens: r.tokens.clone(), distributions: r.distributions.clone() };
    assert_close(&[tail_only(&a)], &expect_a, TOL);
    assert_close(&[tail_only(&b)], &expect_b, TOL);
}
