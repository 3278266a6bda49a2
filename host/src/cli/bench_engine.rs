//! `crust bench-engine`: prefill and batched decode speed of a model on this
//! machine's adapter, with the engine's counters per step. Batch-1 decode is
//! the baseline the other batch sizes are compared with, and on a CPU adapter
//! the kernels made for it (register-blocked matrices, per-query attention)
//! are measured against the first ones (one invocation per output, a
//! workgroup per query), all in the same run. `--synthetic` needs no model file: it builds
//! one with the default model's shapes and random weights.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::config::Config;
use crate::engine::batch::{Input, Output, Pass, Sampler};
use crate::engine::device::Gpu;
use crate::engine::gguf::GgufFile;
use crate::engine::model::{Capacity, KernelShape, Llama, LlamaConfig, ModelTensors};
use crate::engine::synthetic;

const PAGE: u32 = 16;
const PROMPT: u32 = 8;
const STEPS: u32 = 8;
/// KV pages a decode sequence takes: its prompt, one unmeasured step (the
/// first compiles the step's kernels, which a serving engine pays once), the
/// measured steps.
const SEQUENCE_PAGES: u32 = (PROMPT + 1 + STEPS).div_ceil(PAGE);

/// Measure prefill and batched decode on this machine's GPU adapter.
#[derive(clap::Args)]
pub(crate) struct BenchEngineArgs {
    /// The model to measure, named as `--model` names it elsewhere: a configured or pulled
    /// model's name, a GGUF file's path, or its name in the models dir (default: the first
    /// configured model, the default model without a config).
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "synthetic")]
    model: Option<String>,
    /// Measure a model written on the spot with the default model's exact shapes and types and
    /// random weights (no download needed; speed does not depend on the weights' values).
    #[arg(long)]
    synthetic: bool,
    /// Tokens in the prefill prompt.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(2..=4096))]
    prompt: u32,
    /// Decode batch sizes to measure after batch 1.
    #[arg(long, value_delimiter = ',', default_value = "8,32,64")]
    batches: Vec<u32>,
    /// llama.cpp's figures on the same model and CPU, measured just before by
    /// `tests/benches/llama_cpp_figures.py` (`just bench-engine` does): prefill, batch-1
    /// decode and batch-8 decode are then also printed as a ratio of them.
    #[arg(long, value_name = "FILE", conflicts_with = "synthetic")]
    llama_cpp: Option<PathBuf>,
}

/// What `tests/benches/llama_cpp_figures.py` prints.
#[derive(serde::Deserialize)]
struct LlamaCppFigures {
    version: String,
    threads: u32,
    prompt: u32,
    prefill_tok_s: f64,
    decode_tok_s: f64,
    /// 8 sequences decoding together (absent from figures of older scripts).
    decode_8_tok_s: Option<f64>,
}

impl LlamaCppFigures {
    fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not llama.cpp figures", path.display()))
    }

    fn versus(&self, tok_s: f64, theirs: f64, what: &str) {
        println!("    {:.3}x llama.cpp {} ({theirs:.1} tok/s, {} threads, {what})", tok_s / theirs, self.version, self.threads);
    }
}

pub(crate) fn run(config: &Config, args: BenchEngineArgs) -> anyhow::Result<()> {
    let llama_cpp = args.llama_cpp.as_deref().map(LlamaCppFigures::read).transpose()?;
    if let Some(figures) = &llama_cpp {
        anyhow::ensure!(figures.prompt == args.prompt, "the llama.cpp figures are for a {}-token prompt, not {}", figures.prompt, args.prompt);
    }
    let synthetic_file;
    let path = if args.synthetic {
        let started = Instant::now();
        synthetic_file = Temporary(std::env::temp_dir().join(format!("crust-synthetic-{}.gguf", std::process::id())));
        synthetic::default_model().write(&synthetic_file.0).context("writing the synthetic model")?;
        println!("synthetic model (default model's shapes, random weights) written in {:.1} s", started.elapsed().as_secs_f64());
        synthetic_file.0.clone()
    } else {
        let model = match &args.model {
            Some(spec) => config.find_model(spec)?,
            None => config.models().swap_remove(0),
        };
        anyhow::ensure!(model.path.exists(), "{} is missing: {}, or pass --synthetic", model.path.display(), model.fetch_hint());
        model.path
    };
    let gpu = Arc::new(Gpu::open().context("opening a GPU adapter")?);
    let file = GgufFile::open(&path)?;
    let config = LlamaConfig::from_gguf(&file)?;
    let tensors = ModelTensors::from_gguf(&file, &config)?;
    let most = args.batches.iter().copied().max().unwrap_or(1).max(8);
    let capacity = Capacity {
        kv_pages: (most * SEQUENCE_PAGES).max(args.prompt.div_ceil(PAGE)),
        // Decode prompts go in 8 at a time.
        batch_tokens: args.prompt.max(most).max(8 * PROMPT),
        batch_outputs: most,
        ..Capacity::default()
    };
    let mut llama = Llama::load(gpu.clone(), config, &tensors, capacity, &|_| {})?;
    let vocab = llama.config.vocab as u32;
    let token = |i: u32| (i * 7919 + 13) % vocab;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    println!("crust bench-engine: {name} on {}, {:?}-shaped kernels, subgroups: {}", gpu.describe(), llama.shape, gpu.subgroups);

    let prompt: Vec<u32> = (0..args.prompt).map(token).collect();
    // A short warm-up compiles the pipelines.
    llama.forward(&[pass(&prompt[..16.min(prompt.len())], 0, 0, greedy(15.min(args.prompt - 1)))])?;
    let mut untuned = None;
    if llama.shape == KernelShape::Cpu {
        llama.cpu_tuned = false;
        let tok_s = prefill(&mut llama, &prompt, "first kernels (baseline)")?;
        untuned = Some((tok_s, decode(&mut llama, 1, &token, None)?, decode(&mut llama, 8, &token, None)?));
        llama.cpu_tuned = true;
    }
    let tok_s = prefill(&mut llama, &prompt, "")?;
    if let Some((base, ..)) = untuned {
        println!("    {:.2}x the first kernels", tok_s / base);
    }
    if let Some(figures) = &llama_cpp {
        figures.versus(tok_s, figures.prefill_tok_s, "prefill");
    }
    // Each step recorded after the readback before it, not while that step
    // ran: the same speed, but the GPU waits for the recording (its idle time).
    llama.record_ahead = false;
    decode(&mut llama, 1, &token, None)?;
    llama.record_ahead = true;
    let base = decode(&mut llama, 1, &token, None)?;
    if let Some((_, base1, _)) = untuned {
        println!("    {:.2}x the first kernels at batch 1 ({base1:.1} tok/s)", base / base1);
    }
    if let Some(figures) = &llama_cpp {
        figures.versus(base, figures.decode_tok_s, "decode, one sequence");
    }
    for &batch in &args.batches {
        let tok_s = decode(&mut llama, batch, &token, Some(base))?;
        if let (8, Some((.., base8))) = (batch, untuned) {
            println!("    {:.2}x the first kernels at batch 8 ({base8:.1} tok/s)", tok_s / base8);
        }
        if let (8, Some(figures)) = (batch, &llama_cpp)
            && let Some(theirs) = figures.decode_8_tok_s
        {
            figures.versus(tok_s, theirs, "8 sequences decoding together");
        }
    }
    Ok(())
}

/// Removed when dropped.
struct Temporary(PathBuf);

impl Drop for Temporary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

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

/// One prompt in one pass; prints and returns its tokens/s.
fn prefill(llama: &mut Llama, prompt: &[u32], kernel: &str) -> anyhow::Result<f64> {
    let n = prompt.len() as u32;
    let (start, before) = (Instant::now(), llama.counters.counts());
    llama.forward(&[pass(prompt, 0, 0, greedy(n - 1))])?;
    let elapsed = start.elapsed().as_secs_f64();
    let tok_s = n as f64 / elapsed;
    let label = if kernel.is_empty() { format!("prefill {n} tokens") } else { format!("prefill {n} tokens, {kernel}") };
    println!("{label:<56} {tok_s:>9.1} tok/s   ({elapsed:.2} s)");
    println!("    per step: {}", llama.counters.counts().since(&before).per_step());
    Ok(tok_s)
}

/// `batch` sequences, each after a short prompt, one token per step; prints
/// tokens/s (against `baseline` when given) and returns it.
fn decode(llama: &mut Llama, batch: u32, token: &dyn Fn(u32) -> u32, baseline: Option<f64>) -> anyhow::Result<f64> {
    let pages_per_seq = SEQUENCE_PAGES;
    let prompts: Vec<Pass> = (0..batch)
        .map(|s| {
            let tokens: Vec<u32> = (0..PROMPT).map(|i| token(i + s)).collect();
            pass(&tokens, 0, s * pages_per_seq, greedy(PROMPT - 1))
        })
        .collect();
    let mut next = Vec::new();
    for chunk in prompts.chunks(8) {
        next.extend(llama.forward(chunk)?.into_iter().map(|r| r.tokens[0]));
    }
    let step = |llama: &mut Llama, next: &[u32], step: u32| -> anyhow::Result<Vec<u32>> {
        let passes: Vec<Pass> = (0..batch).map(|s| pass(&[next[s as usize]], PROMPT + step, s * pages_per_seq, greedy(0))).collect();
        Ok(llama.forward(&passes)?.into_iter().map(|r| r.tokens[0]).collect())
    };
    next = step(llama, &next, 0)?;
    let (start, before) = (Instant::now(), llama.counters.counts());
    for i in 1..=STEPS {
        next = step(llama, &next, i)?;
    }
    let tok_s = (batch * STEPS) as f64 / start.elapsed().as_secs_f64();
    let versus = baseline.map(|base| format!("{:>5.2}x batch 1", tok_s / base)).unwrap_or_default();
    let kernel = match () {
        _ if llama.shape == KernelShape::Cpu && !llama.cpu_tuned => ", first kernels",
        _ if !llama.record_ahead => ", not recorded ahead",
        _ => "",
    };
    let label = format!("decode batch {batch:>2}{kernel}");
    println!("{label:<56} {tok_s:>9.1} tok/s   {versus:<14}   {:>6.1} ms/step", 1000.0 * batch as f64 / tok_s);
    println!("    per step: {}", llama.counters.counts().since(&before).per_step());
    Ok(tok_s)
}
