//! A model ready to run: its file, config, tokenizer, GPU weights and KV
//! page pool — plus the two things the host's own commands do with it,
//! teacher-forced distributions and plain generation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{BatchError, Input, Output, Pass, Sampler};
use super::device::Gpu;
use super::gguf::{GgufError, GgufFile, Value};
use super::model::{Capacity, ConfigError, Llama, LlamaConfig, ModelTensors, WeightsError};
use super::pool::{IdPool, PoolExhausted};
use super::tokenizer::{Tokenizer, TokenizerError};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    File { path: PathBuf, source: GgufError },
    #[error("{path}: {source}")]
    Config { path: PathBuf, source: ConfigError },
    #[error("{path}: {source}")]
    Weights { path: PathBuf, source: WeightsError },
    #[error("{path}: {source}")]
    Tokenizer { path: PathBuf, source: TokenizerError },
    #[error("{0}")]
    Batch(#[from] BatchError),
    #[error("{0}")]
    Pool(#[from] PoolExhausted),
    #[error("the model's chat template is not ChatML; `crust generate` supports ChatML models for now")]
    ChatTemplate,
}

/// A context being filled: its tokens' KV pages and length.
struct Sequence {
    pages: Vec<u32>,
    len: u32,
}

pub struct LoadedModel {
    pub name: String,
    pub file: GgufFile,
    pub config: LlamaConfig,
    pub tokenizer: Tokenizer,
    pub llama: Llama,
    pages: IdPool,
}

/// How a generation stops and samples.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: Option<f32>,
    pub seed: u64,
}

impl LoadedModel {
    pub fn load(name: &str, path: &Path, gpu: Arc<Gpu>, capacity: Capacity) -> Result<Self, ModelError> {
        let file = GgufFile::open(path).map_err(|source| ModelError::File { path: path.into(), source })?;
        let config = LlamaConfig::from_gguf(&file).map_err(|source| ModelError::Config { path: path.into(), source })?;
        let tokenizer = Tokenizer::from_gguf(&file).map_err(|source| ModelError::Tokenizer { path: path.into(), source })?;
        let tensors = ModelTensors::from_gguf(&file, &config).map_err(|source| ModelError::Weights { path: path.into(), source })?;
        let total: u64 = file.tensors.iter().map(|t| t.len as u64).sum();
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("loading {msg} {bar:30} {bytes}/{total_bytes}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(name.to_string());
        let llama = Llama::load(gpu, config.clone(), &tensors, capacity, &|n| bar.inc(n))
            .map_err(|source| ModelError::Weights { path: path.into(), source })?;
        bar.finish_and_clear();
        drop(tensors);
        Ok(Self { name: name.into(), pages: IdPool::new("KV pages", capacity.kv_pages), file, config, tokenizer, llama })
    }

    fn page_size(&self) -> u32 {
        self.llama.capacity.page_size
    }

    /// Grows `seq` by `inputs` and returns the pass that writes them.
    fn extend(&mut self, seq: &mut Sequence, inputs: &[u32], outputs: Vec<Output>) -> Result<Pass, ModelError> {
        let len = seq.len + inputs.len() as u32;
        let needed = len.div_ceil(self.page_size()) as usize;
        if needed > seq.pages.len() {
            let more = self.pages.allocate(needed - seq.pages.len())?;
            seq.pages.extend(more);
        }
        let pass = Pass {
            inputs: inputs.iter().map(|&t| Input::Token(t)).collect(),
            positions: (seq.len..len).collect(),
            kv_pages: seq.pages.clone(),
            last_page_len: (len - 1) % self.page_size() + 1,
            mask: vec![],
            outputs,
        };
        seq.len = len;
        Ok(pass)
    }

    fn finish(&mut self, seq: Sequence) {
        self.pages.release(&seq.pages);
    }

    /// For every token of `tokens`, the top-k distribution of the next one.
    pub fn teacher_forced(&mut self, tokens: &[u32], top_k: u32) -> Result<Vec<(Vec<u32>, Vec<f32>)>, ModelError> {
        let mut seq = Sequence { pages: vec![], len: 0 };
        let chunk = self.llama.capacity.batch_outputs.min(self.llama.capacity.batch_tokens) as usize;
        let mut out = Vec::with_capacity(tokens.len());
        let run = (|| {
            for piece in tokens.chunks(chunk) {
                let outputs = (0..piece.len() as u32).map(|index| Output::Distribution { index, temperature: 1.0, top_k }).collect();
                let pass = self.extend(&mut seq, piece, outputs)?;
                out.extend(self.llama.forward(&[pass])?.remove(0).distributions);
            }
            Ok(())
        })();
        self.finish(seq);
        run.map(|()| out)
    }

    /// Generates after `prompt` until a stop token or `max_tokens`; calls
    /// `on_token` with each new token as it comes (and the tokenizer, to show it).
    pub fn generate(&mut self, prompt: &[u32], options: &GenerateOptions, on_token: &mut dyn FnMut(&Tokenizer, u32)) -> Result<Vec<u32>, ModelError> {
        let stops = self.stop_tokens();
        let mut seq = Sequence { pages: vec![], len: 0 };
        let mut generated = Vec::new();
        let run = (|| {
            let sampler = |step: u64| Sampler {
                temperature: options.temperature,
                top_k: None,
                top_p: options.top_p,
                min_p: None,
                seed: options.seed.wrapping_mul(0x9e37_79b9).wrapping_add(step),
            };
            let chunk = self.llama.capacity.batch_tokens as usize;
            let mut next = None;
            for (i, piece) in prompt.chunks(chunk).enumerate() {
                let last = (i + 1) * chunk >= prompt.len();
                let outputs = if last { vec![Output::Token { index: piece.len() as u32 - 1, sampler: sampler(0) }] } else { vec![] };
                let pass = self.extend(&mut seq, piece, outputs)?;
                next = self.llama.forward(&[pass])?.remove(0).tokens.first().copied();
            }
            let mut step = 1;
            while let Some(token) = next {
                if stops.contains(&token) || generated.len() >= options.max_tokens {
                    break;
                }
                generated.push(token);
                on_token(&self.tokenizer, token);
                if generated.len() >= options.max_tokens {
                    break;
                }
                let pass = self.extend(&mut seq, &[token], vec![Output::Token { index: 0, sampler: sampler(step) }])?;
                next = self.llama.forward(&[pass])?.remove(0).tokens.first().copied();
                step += 1;
            }
            Ok(())
        })();
        self.finish(seq);
        run.map(|()| generated.clone())
    }

    /// End-of-turn and end-of-text ids.
    pub fn stop_tokens(&self) -> Vec<u32> {
        let mut stops: Vec<u32> = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"]
            .iter()
            .filter_map(|t| self.tokenizer.token_id(t))
            .collect();
        if let Some(eos) = self.file.get("tokenizer.ggml.eos_token_id").and_then(Value::as_u64) {
            stops.push(eos as u32);
        }
        stops
    }

    /// The prompt of a one-message chat, ready for the assistant's answer.
    pub fn chat_prompt(&self, user: &str) -> Result<String, ModelError> {
        let template = self.file.get("tokenizer.chat_template").and_then(Value::as_str).unwrap_or_default();
        if !template.contains("<|im_start|>") {
            return Err(ModelError::ChatTemplate);
        }
        Ok(format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"))
    }
}
