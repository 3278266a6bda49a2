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
use crust::engine::model::{Capacity, KernelShape, Llama, LlamaConfig, ModelTensors};

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

    // On a CPU adapter, the register-blocked matrix kernel against one
    // invocation per output, in the same run: the ratio is what it bought.
    let cpu = llama.shape == KernelShape::Cpu;
    let prompt: Vec<u32> = (0..512).map(token).collect();
    // A short warm-up compiles the pipelines.
    llama.forward(&[pass(&prompt[..16], 0, 0, greedy(15))]).unwrap();
    let mut unblocked = None;
    if cpu {
        llama.blocked = false;
        let tok_s = prefill(&mut llama, &prompt, "prefill 512, one invocation per output (baseline)");
        unblocked = Some((tok_s, decode(&mut llama, 8, &token, None)));
        llama.blocked = true;
    }
    let tok_s = prefill(&mut llama, &prompt, "prefill 512 tokens");
    if let Some((base, _)) = unblocked {
        println!("    {:.2}x one invocation per output", tok_s / base);
    }
    let base = decode(&mut llama, 1, &token, None);
    for batch in [8u32, 32, 64] {
        let tok_s = decode(&mut llama, batch, &token, Some(base));
        if let (8, Some((_, base8))) = (batch, unblocked) {
            println!("    {:.2}x one invocation per output at batch 8 ({base8:.1} tok/s)", tok_s / base8);
        }
    }
}

/// One prompt in one pass; prints and returns its tokens/s.
fn prefill(llama: &mut Llama, prompt: &[u32], label: &str) -> f64 {
    let n = prompt.len() as u32;
    let (start, before) = (Instant::now(), llama.counters.counts());
    llama.forward(&[pass(prompt, 0, 0, greedy(n - 1))]).unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let tok_s = n as f64 / elapsed;
    println!("{label:<52} {tok_s:>9.1} tok/s   ({elapsed:.2} s)");
    println!("    per step: {}", llama.counters.counts().since(&before).per_step());
    tok_s
}

/// `batch` sequences, each after a short prompt, one token per step; prints
/// tokens/s (against `baseline` when given) and returns it.
fn decode(llama: &mut Llama, batch: u32, token: &dyn Fn(u32) -> u32, baseline: Option<f64>) -> f64 {
    let pages_per_seq = (PROMPT + STEPS).div_ceil(PAGE);
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
    let versus = baseline.map(|base| format!("{:>5.2}x batch 1", tok_s / base)).unwrap_or_default();
    let kernel = if llama.shape == KernelShape::Cpu && !llama.blocked { ", one invocation per output" } else { "" };
    println!("decode batch {batch:>2}{kernel:<40} {tok_s:>9.1} tok/s   {versus:<14}   {:>6.1} ms/step", 1000.0 * batch as f64 / tok_s);
    println!("    per step: {}", llama.counters.counts().since(&before).per_step());
    tok_s
}
