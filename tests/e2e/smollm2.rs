//! The default model, SmolLM2-135M-Instruct (Q4_1), end to end on the GPU
//! (`just fetch-model` puts it in the models dir).

use std::path::PathBuf;

use crust::config::{DEFAULT_MODEL_FILE, EngineConfig, models_dir};
use crust::engine::batch::{Input, Output, Pass};
use crust::engine::gguf::GgufFile;
use crust::engine::model::reference::argmax;
use crust::engine::model::{Capacity, Llama, LlamaConfig, ModelTensors, Reference};
use crust::engine::quant::TensorType;
use crust::engine::sequence::Sequence;
use crust::engine::synthetic;
use crust_tests::{DefaultModel, scratch_dir};

use crate::crust;

fn model_path() -> PathBuf {
    let path = models_dir().join(DEFAULT_MODEL_FILE);
    assert!(path.exists(), "{} is missing: run `just fetch-model`", path.display());
    path
}

/// `crust bench-engine --synthetic` stands in for the default model where it
/// cannot be fetched: it must have the same tensors, shapes and types.
#[test]
fn the_synthetic_model_has_the_default_models_tensors() {
    let file = GgufFile::open(&model_path()).unwrap();
    let mut real: Vec<(String, Vec<u64>, TensorType)> = file.tensors.iter().map(|t| (t.name.clone(), t.dims.clone(), t.ty)).collect();
    let mut synthetic = synthetic::default_model_tensors();
    real.sort_by(|a, b| a.0.cmp(&b.0));
    synthetic.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(synthetic, real);
    let dir = scratch_dir("synthetic-model");
    let path = dir.join("synthetic.gguf");
    synthetic::default_model().write(&path).unwrap();
    let written = GgufFile::open(&path).unwrap();
    assert_eq!(LlamaConfig::from_gguf(&written).unwrap(), LlamaConfig::from_gguf(&file).unwrap());
}

#[test]
fn greedy_chat_completion_names_paris() {
    let dir = scratch_dir("smollm2-generate");
    let run = crust(&["generate", "--prompt", "What is the capital of France?", "--max-tokens", "24"], &dir);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("Paris"), "{}", run.stdout);
}

const PASSAGE: &str = "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. \
It is named after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. \
Locally nicknamed \"La dame de fer\", it was constructed as the centerpiece of the 1889 World's Fair.";

/// What one decode step asks of the GPU, counted: a change that adds
/// dispatches or submissions to the step shows here first.
#[test]
fn a_decode_step_records_a_known_count_of_dispatches() {
    let file = GgufFile::open(&model_path()).unwrap();
    let config = LlamaConfig::from_gguf(&file).unwrap();
    let tensors = ModelTensors::from_gguf(&file, &config).unwrap();
    let gpu = std::sync::Arc::new(crust::engine::device::Gpu::open().expect("a GPU adapter"));
    let capacity = Capacity { kv_pages: 4, batch_tokens: 16, batch_outputs: 4, ..Capacity::default() };
    let mut llama = Llama::load(gpu, config, &tensors, capacity, &|_| {}).unwrap();
    let greedy = |index| vec![Output::Token { index, sampler: crust::engine::batch::Sampler::greedy() }];
    let pass = |tokens: &[u32], start: u32, outputs| Pass {
        inputs: tokens.iter().map(|&t| Input::Token(t)).collect(),
        positions: (start..start + tokens.len() as u32).collect(),
        kv_pages: vec![0],
        last_page_len: start + tokens.len() as u32,
        mask: vec![],
        outputs,
    };
    let prompt = [1, 9690, 198, 2683, 359, 253, 5356, 30];
    let next = llama.forward(&[pass(&prompt, 0, greedy(7))]).unwrap()[0].tokens[0];
    let before = llama.counters.counts();
    let next = llama.forward(&[pass(&[next], 8, greedy(0))]).unwrap()[0].tokens[0];
    let step = llama.counters.counts().since(&before);
    // The embedding, 5 per layer (norm + q|k|v + RoPE + KV write, attention, out + residual,
    // norm + gate|up + SwiGLU, down + residual) × 30 layers, the final norm, the LM head, sampling.
    assert_eq!(step.dispatches, 1 + 5 * 30 + 3, "{step:?}");
    assert_eq!((step.steps, step.compute_passes, step.submissions), (1, 1, 1), "{step:?}");
    assert!(step.bytes_written > 0, "{step:?}");
    // Only what the step produced comes back: one sampled id, mapped 8 bytes at a time.
    assert_eq!(step.bytes_read, 8, "{step:?}");
    // Its shape differs from the prompt's: recorded when it came, not ahead.
    assert_eq!(step.recorded_ahead, 0, "{step:?}");

    // The next decode step has its shape: recorded while it ran, the same commands.
    let before = llama.counters.counts();
    llama.forward(&[pass(&[next], 9, greedy(0))]).unwrap();
    let again = llama.counters.counts().since(&before);
    assert_eq!((again.recorded_ahead, again.dispatches, again.submissions), (1, step.dispatches, 1), "{again:?}");
}

#[test]
fn teacher_forced_top1_matches_the_reference() {
    let path = model_path();
    let capacity = Capacity { kv_pages: 64, batch_tokens: 128, batch_outputs: 128, ..Capacity::default() };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (tokens, distributions) = tokio.block_on(async {
        let engine = EngineConfig { kv_pages: capacity.kv_pages, batch_tokens: capacity.batch_tokens, ..EngineConfig::default() };
        let mut model = DefaultModel::open("smollm2-teacher-forced", engine).await;
        let tokens = model.tokenize(PASSAGE).await;
        let distributions = Sequence::new(model.service().await).teacher_forced(&tokens, 1).await.unwrap();
        (tokens, distributions)
    });
    assert!(tokens.len() > 60 && tokens.len() <= 128, "{} tokens", tokens.len());
    let gpu_top1: Vec<u32> = distributions.iter().map(|(ids, _)| ids[0]).collect();

    let file = GgufFile::open(&path).unwrap();
    let config = LlamaConfig::from_gguf(&file).unwrap();
    let tensors = ModelTensors::from_gguf(&file, &config).unwrap();
    let mut reference = Reference::new(config, &tensors, capacity);
    let n = tokens.len() as u32;
    let pass = Pass {
        inputs: tokens.iter().map(|&t| Input::Token(t)).collect(),
        positions: (0..n).collect(),
        kv_pages: (0..n.div_ceil(16)).collect(),
        last_page_len: (n - 1) % 16 + 1,
        mask: vec![],
        outputs: (0..n).map(|index| Output::Distribution { index, temperature: 1.0, top_k: 1 }).collect(),
    };
    let (logits, _) = reference.forward(&[pass]).unwrap();
    let reference_top1: Vec<u32> = logits.iter().map(|row| argmax(row)).collect();
    let agree = gpu_top1.iter().zip(&reference_top1).filter(|(a, b)| a == b).count();
    assert!(agree * 100 >= tokens.len() * 99, "top-1 agrees at {agree} of {} positions", tokens.len());
}

#[test]
fn forward_json_has_one_entry_per_token() {
    let dir = scratch_dir("smollm2-forward");
    let run = crust(&["forward", "--text", "<|im_start|>user\nThe capital of France is", "--top-k", "3", "--json"], &dir);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let value: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("exactly one JSON object");
    let tokens = value["tokens"].as_array().unwrap();
    let positions = value["positions"].as_array().unwrap();
    assert_eq!(tokens[0], 1, "<|im_start|> is parsed as the special token 1");
    assert_eq!(tokens.len(), positions.len());
    let last = positions.last().unwrap()["topk"].as_array().unwrap();
    assert_eq!(last.len(), 3);
    assert_eq!(last[0]["text"], " Paris");
    assert!(last[0]["p"].as_f64().unwrap() > last[1]["p"].as_f64().unwrap());
}

#[test]
fn models_lists_the_default_model() {
    let dir = scratch_dir("smollm2-models");
    model_path();
    let run = crust(&["models"], &dir);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("SmolLM2-135M-Instruct"), "{}", run.stdout);
    assert!(run.stdout.contains("layers: 30, d_model: 576, heads: 9 (3 KV)"), "{}", run.stdout);
    assert!(run.stdout.contains("vocab: 49152"), "{}", run.stdout);
}

#[test]
fn bad_model_files_get_clear_errors() {
    let dir = scratch_dir("bad-models");
    let real = std::fs::read(model_path()).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("truncated.gguf", real[..real.len() / 2].to_vec(), "lies past the end of the file"),
        ("not-gguf.gguf", b"PK\x03\x04 definitely a zip".to_vec(), "not a GGUF file"),
        ("empty.gguf", vec![], "truncated GGUF file"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, format!("[[models]]\nname = \"bad\"\npath = {:?}\n", path.display().to_string())).unwrap();
        let run = crust(&["generate", "--config", config.to_str().unwrap(), "--prompt", "hi"], &dir);
        assert_eq!(run.status, Some(1), "{name}");
        assert!(run.stderr.contains(expected), "{name}: expected `{expected}` in {}", run.stderr);
        assert!(run.stderr.contains(name), "{name}: the error names the file: {}", run.stderr);
    }
    let run = crust(&["generate", "--model", "nope", "--prompt", "hi"], &dir);
    assert!(run.stderr.contains("no model named `nope`"), "{}", run.stderr);
}
