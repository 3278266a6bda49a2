//! `just bench-engine`: SmolLM2-135M prefill and batched decode speed on this
//! machine's adapter. Batch-1 decode is the baseline the other batch sizes
//! are compared with, measured in the same run. Each row is followed by what
//! one step asked of the GPU (the engine's counters, per step).

use std::sync::Arc;
use std::time::Instant;

use crust::config::{DEFAULT_MODEL_FILE, models_dir};
use crust::engine::batch::{Input, Output, Pass, Sampler};
use crust::engine::device::Gpu;
use crust::engine::gguf::GgufFile;
use crust::engine::model::{Capacity, Llama, LlamaConfig, ModelTensors};

const PAGE: u32 = 16;
const PROMPT: u32 = 8;
const STEPS: u32 = 8;

fn pass(tokens: &[u32], start: u32, first_page: u32, outputs: Vec<Output>) -> Pass {
    let end = start + tokens.len() as u32;
    let pages = end.div_ceil(PAGE);
    Pass {
        inputs: tokens.iter().map(|&t| Input::Token(t)).collect(),
        positions: (start..end).collect(),
        kv_pages: (first_page..first_page + pages).collect(),
        last_page_len: (end - 1) % PAGE + 1,
        mask: vec![],
        outputs,
    }
}

fn greedy(index: u32) -> Vec<Output> {
    vec![Output::Token { index, sampler: Sampler::greedy() }]
}

fn main() {
    let path = models_dir().join(DEFAULT_MODEL_FILE);
    assert!(path.exists(), "{} is missing: run `just fetch-model`", path.display());
    let gpu = Arc::new(Gpu::open().expect("a GPU adapter"));
    let file = GgufFile::open(&path).unwrap();
    let config = LlamaConfig::from_gguf(&file).unwrap();
    let tensors = ModelTensors::from_gguf(&file, &config).unwrap();
    let capacity = Capacity { kv_pages: 512, batch_tokens: 512, batch_outputs: 128, ..Capacity::default() };
    let mut llama = Llama::load(gpu.clone(), config, &tensors, capacity, &|_| {}).unwrap();
    let vocab = llama.config.vocab as u32;
    let token = |i: u32| (i * 7919 + 13) % vocab;
    println!("crust bench-engine: SmolLM2-135M-Instruct Q4_1 on {}, {:?}-shaped kernels, subgroups: {}", gpu.describe(), llama.shape, gpu.subgroups);

    // Prefill: one 512-token prompt (after a short warm-up that compiles the pipelines).
    let prompt: Vec<u32> = (0..512).map(token).collect();
    llama.forward(&[pass(&prompt[..16], 0, 0, greedy(15))]).unwrap();
    let (start, before) = (Instant::now(), llama.counters.counts());
    llama.forward(&[pass(&prompt, 0, 0, greedy(511))]).unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    println!("prefill 512 tokens   {:>9.1} tok/s   ({elapsed:.2} s)", 512.0 / elapsed);
    println!("    per step: {}", llama.counters.counts().since(&before).per_step());

    // Decode: `batch` sequences, each after a short prompt, one token per step.
    let pages_per_seq = (PROMPT + STEPS).div_ceil(PAGE);
    let mut baseline = None;
    for batch in [1u32, 8, 32, 64] {
        let prompts: Vec<Pass> = (0..batch)
            .map(|s| {
                let tokens: Vec<u32> = (0..PROMPT).map(|i| token(i + s)).collect();
                pass(&tokens, 0, s * pages_per_seq, greedy(PROMPT - 1))
            })
            .collect();
        let mut next: Vec<u32> = prompts.chunks(8).flat_map(|chunk| llama.forward(chunk).unwrap()).map(|r| r.tokens[0]).collect();
        let (start, before) = (Instant::now(), llama.counters.counts());
        for step in 0..STEPS {
            let passes: Vec<Pass> = (0..batch).map(|s| pass(&[next[s as usize]], PROMPT + step, s * pages_per_seq, greedy(0))).collect();
            next = llama.forward(&passes).unwrap().into_iter().map(|r| r.tokens[0]).collect();
        }
        let tok_s = (batch * STEPS) as f64 / start.elapsed().as_secs_f64();
        let base = *baseline.get_or_insert(tok_s);
        println!("decode batch {batch:>2}      {tok_s:>9.1} tok/s   {:>5.2}x batch 1   {:>6.1} ms/step", tok_s / base, 1000.0 * batch as f64 / tok_s);
        println!("    per step: {}", llama.counters.counts().since(&before).per_step());
    }
}
