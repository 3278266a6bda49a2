//! `just bench-serving`: 1, 8 and 32 concurrent `text-completion` inferlets
//! on the default model — aggregate decode tokens/s, the host's time per
//! pass outside the GPU (scheduler + Wasm), and the ratio to the raw
//! engine decoding the same batch size, measured in the same run.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crust::config::{Config, DEFAULT_MODEL_FILE, models_dir};
use crust::engine::batch::{Input, Output, Pass, Sampler};
use crust::engine::device::Gpu;
use crust::engine::gguf::GgufFile;
use crust::engine::model::{Capacity, Llama, LlamaConfig, ModelTensors};
use crust::runtime::Runtime;
use crust_tests::{inferlet, run_instance, scratch_dir};

const MAX_TOKENS: &str = "16";
const PAGE: u32 = 16;

fn main() {
    let path = models_dir().join(DEFAULT_MODEL_FILE);
    assert!(path.exists(), "{} is missing: run `just fetch-model`", path.display());
    let config = Config { cache_dir: Some(scratch_dir("bench-serving")), ..Config::default() };
    let runtime = Runtime::new(&config).expect("starting the runtime");
    let program = inferlet("text-completion");
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let args = ["--raw", "--prompt", "Once upon a time, in a small village,", "--max-tokens", MAX_TOKENS];
    // Warm-up: loads the model and compiles the pipelines.
    let warm = tokio.block_on(run_instance(&runtime, &program, &args));
    assert!(warm.outcome.is_ok(), "{:?} {}", warm.outcome, warm.stderr);
    let service = runtime.models().loaded().next().unwrap();
    let gpu = Arc::new(Gpu::open().expect("a GPU adapter"));
    println!("crust bench-serving: text-completion on SmolLM2-135M-Instruct Q4_1, {}", gpu.describe());

    let mut raw = RawEngine::load(&path, gpu);
    let mut single = None;
    for instances in [1usize, 8, 32] {
        let s = &service.stats;
        let (passes0, busy0) = (s.batched_passes.load(Ordering::Relaxed), s.busy_nanos.load(Ordering::Relaxed));
        let start = Instant::now();
        let runs = tokio.block_on(futures::future::join_all((0..instances).map(|_| run_instance(&runtime, &program, &args))));
        let wall = start.elapsed().as_secs_f64();
        for run in &runs {
            assert!(run.outcome.is_ok(), "{:?} {}", run.outcome, run.stderr);
        }
        // Every pass of text-completion yields one token (the prompt's pass the first).
        let tokens = (s.batched_passes.load(Ordering::Relaxed) - passes0) as f64;
        let busy = (s.busy_nanos.load(Ordering::Relaxed) - busy0) as f64 / 1e9;
        let tok_s = tokens / wall;
        let base = *single.get_or_insert(tok_s);
        let host_us = (wall - busy).max(0.0) * 1e6 / tokens;
        let raw_tok_s = raw.decode(instances as u32);
        println!(
            "{instances:>2} instances   {tok_s:>7.1} tok/s   {:>5.2}x one   host {host_us:>7.1} µs/pass outside the GPU   raw engine batch {instances}: {raw_tok_s:>7.1} tok/s   serving/raw {:>4.2}",
            tok_s / base,
            tok_s / raw_tok_s
        );
    }
}

/// The engine alone, decoding `batch` sequences a token per step.
struct RawEngine {
    llama: Llama,
}

impl RawEngine {
    fn load(path: &std::path::Path, gpu: Arc<Gpu>) -> Self {
        let file = GgufFile::open(path).unwrap();
        let config = LlamaConfig::from_gguf(&file).unwrap();
        let tensors = ModelTensors::from_gguf(&file, &config).unwrap();
        let capacity = Capacity { kv_pages: 128, ..Capacity::default() };
        Self { llama: Llama::load(gpu, config, &tensors, capacity, &|_| {}).unwrap() }
    }

    fn decode(&mut self, batch: u32) -> f64 {
        const STEPS: u32 = 16;
        let pages = 2; // 16 steps after one token fit in two pages
        let pass = |token: u32, position: u32, seq: u32| Pass {
            inputs: vec![Input::Token(token)],
            positions: vec![position],
            kv_pages: (seq * pages..seq * pages + position / PAGE + 1).collect(),
            last_page_len: position % PAGE + 1,
            mask: vec![],
            outputs: vec![Output::Token { index: 0, sampler: Sampler::greedy() }],
        };
        let mut next: Vec<u32> = (0..batch).map(|s| 100 + s).collect();
        self.llama.forward(&[pass(1, 0, 0)]).unwrap();
        let start = Instant::now();
        for step in 0..STEPS {
            let passes: Vec<Pass> = (0..batch).map(|s| pass(next[s as usize], step, s)).collect();
            next = self.llama.forward(&passes).unwrap().into_iter().map(|r| r.tokens[0]).collect();
        }
        (batch * STEPS) as f64 / start.elapsed().as_secs_f64()
    }
}
