//! The models a host serves, in registration order (Pie's SDK takes the
//! first). A model is opened lazily: its metadata (chat template, stop
//! tokens, tokenizer) on first use, its GPU weights and scheduler on the first
//! queue, so inferlets that never touch a model start fast.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::config::{Config, ModelEntry};
use crate::engine::device::Gpu;
use crate::engine::gguf::{GgufFile, Value};
use crate::engine::model::{Capacity, Llama, LlamaConfig, ModelTensors};
use crate::engine::service::ModelService;
use crate::engine::tokenizer::tokenizer_json;

/// Why a model cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("no model named `{name}`; known: {known}")]
    Unknown { name: String, known: String },
    #[error("model `{name}` is not at {}: {hint}", path.display())]
    Missing { name: String, path: PathBuf, hint: String },
    /// The file is unreadable or describes something Crust does not run.
    #[error("{}: {detail}", path.display())]
    File { path: PathBuf, detail: String },
    #[error("loading model `{name}`: {detail}")]
    Load { name: String, detail: String },
    #[error("the model's chat template is neither ChatML nor Gemma's; Crust renders those two for now")]
    UnknownChatFormat,
}

/// Told how far a model's weights have reached the GPU: (model, bytes so
/// far, bytes in all). The command line draws it as a progress bar.
pub type LoadObserver = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

/// What every model offers (`model.get-traits`).
const TRAITS: [&str; 5] = ["input_text", "tokenize", "detokenize", "forward", "output_text"];

/// ChatML that renders one message at a time (Pie's SDK renders `[system]`
/// alone, then `[user]` with the generation prompt), with no default system
/// message — the GGUF's template would add one before every rendering.
const CHATML: &str = "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

/// Gemma's turns, one message at a time the same way: no system role of its
/// own (a system message is a user turn — Gemma's template folds it into the
/// first user turn, which a message-at-a-time rendering cannot), and `<bos>`
/// where the sequence begins (`begin_of_sequence`), without which Gemma's
/// first position runs far out of range.
const GEMMA: &str = "{%- if begin_of_sequence %}{{ '<bos>' }}{%- endif %}{%- for message in messages %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\\n' + message['content'] + '<end_of_turn>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{%- endif %}";

/// The chat formats Crust renders, decided once from the GGUF's template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    ChatMl,
    Gemma,
}

impl ChatFormat {
    /// From the template's markers; a GGUF without a template (the PyPI
    /// Gemma 3 file has none) is judged by its vocabulary's turn tokens.
    fn of(template: &str, has_token: impl Fn(&str) -> bool) -> Option<Self> {
        let marked = |marker: &str| if template.is_empty() { has_token(marker) } else { template.contains(marker) };
        [(Self::ChatMl, "<|im_start|>"), (Self::Gemma, "<start_of_turn>")].into_iter().find(|(_, marker)| marked(marker)).map(|(format, _)| format)
    }

    /// The template inferlets render (`model.get-prompt-template`).
    fn template(self) -> &'static str {
        match self {
            Self::ChatMl => CHATML,
            Self::Gemma => GEMMA,
        }
    }
}

/// A model's metadata, read from its GGUF without touching the GPU.
pub struct ModelMetadata {
    /// `None`: a template Crust does not render (the GGUF's is passed on as it is).
    pub chat: Option<ChatFormat>,
    pub prompt_template: String,
    /// Special-token strings that end a turn (the SDK tokenizes them).
    pub stop_tokens: Vec<String>,
    /// The HuggingFace `tokenizer.json` the tokenize provider loads.
    pub tokenizer_json: Arc<str>,
    /// The most positions the model was trained for (GGUF `<arch>.context_length`).
    pub context_length: usize,
}

pub struct Model {
    pub name: String,
    pub path: PathBuf,
    /// How to get the file when it is missing (`ModelEntry::fetch_hint`).
    fetch_hint: String,
    /// What OpenAI requests that leave sampling out get.
    pub sampling: crate::config::SamplingDefaults,
    pub description: String,
    pub traits: Vec<String>,
    /// `model.get-service-id`: the model's index in the registry.
    pub service_id: u32,
    pub page_size: u32,
    capacity: Capacity,
    gpu: Arc<SharedGpu>,
    observer: Arc<Mutex<Option<LoadObserver>>>,
    metadata: OnceCell<Result<Arc<ModelMetadata>, ModelError>>,
    service: OnceCell<Result<Arc<ModelService>, ModelError>>,
}

impl ModelMetadata {
    /// The prompt of a one-message chat (after an optional system message),
    /// ready for the assistant's answer. Gemma has no system turn: its
    /// template puts the system message at the head of the first user turn.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str) -> Result<String, ModelError> {
        match self.chat {
            Some(ChatFormat::ChatMl) => {
                let system = system.map(|s| format!("<|im_start|>system\n{s}<|im_end|>\n")).unwrap_or_default();
                Ok(format!("{system}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"))
            }
            Some(ChatFormat::Gemma) => {
                let user = system.map_or_else(|| user.to_string(), |s| format!("{s}\n\n{user}"));
                Ok(format!("<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"))
            }
            None => Err(ModelError::UnknownChatFormat),
        }
    }
}

/// One GPU, opened by the first model that needs it.
#[derive(Default)]
struct SharedGpu(Mutex<Option<Arc<Gpu>>>);

impl SharedGpu {
    fn get(&self) -> anyhow::Result<Arc<Gpu>> {
        let mut gpu = self.0.lock().unwrap();
        if let Some(gpu) = &*gpu {
            return Ok(gpu.clone());
        }
        let opened = Arc::new(Gpu::open()?);
        tracing::info!(adapter = %opened.describe(), "GPU opened");
        *gpu = Some(opened.clone());
        Ok(opened)
    }
}

impl Model {
    /// The model's metadata; read once. An error names the file and the problem.
    pub async fn metadata(self: &Arc<Self>) -> Result<Arc<ModelMetadata>, ModelError> {
        let this = self.clone();
        self.metadata
            .get_or_init(|| async move {
                let name = this.name.clone();
                tokio::task::spawn_blocking(move || this.read_metadata().map(Arc::new))
                    .await
                    .unwrap_or_else(|e| Err(ModelError::Load { name, detail: format!("reading the metadata panicked: {e}") }))
            })
            .await
            .clone()
    }

    /// The model on the GPU behind its scheduler; loaded once.
    pub async fn service(self: &Arc<Self>) -> Result<Arc<ModelService>, ModelError> {
        let this = self.clone();
        self.service
            .get_or_init(|| async move {
                let name = this.name.clone();
                tokio::task::spawn_blocking(move || this.load())
                    .await
                    .unwrap_or_else(|e| Err(ModelError::Load { name, detail: format!("loading panicked: {e}") }))
            })
            .await
            .clone()
    }

    fn missing(&self) -> ModelError {
        ModelError::Missing { name: self.name.clone(), path: self.path.clone(), hint: self.fetch_hint.clone() }
    }

    fn file_error(&self, detail: impl std::fmt::Display) -> ModelError {
        ModelError::File { path: self.path.clone(), detail: detail.to_string() }
    }

    fn open(&self) -> Result<GgufFile, ModelError> {
        if !self.path.exists() {
            return Err(self.missing());
        }
        GgufFile::open(&self.path).map_err(|e| self.file_error(e))
    }

    fn read_metadata(&self) -> Result<ModelMetadata, ModelError> {
        let file = self.open()?;
        // An unsupported architecture is named here, before any inferlet relies on the model.
        let config = LlamaConfig::from_gguf(&file).map_err(|e| self.file_error(e))?;
        let tokenizer_json = tokenizer_json(&file).map_err(|e| self.file_error(e))?;
        let template = file.get("tokenizer.chat_template").and_then(Value::as_str).unwrap_or_default();
        let tokens = file.get("tokenizer.ggml.tokens").and_then(Value::as_array);
        let has_token = |t: &str| tokens.is_some_and(|all| all.iter().any(|v| v.as_str() == Some(t)));
        let chat = ChatFormat::of(template, has_token);
        let prompt_template = chat.map_or_else(|| template.to_string(), |c| c.template().to_string());
        let token = |id: u64| tokens.and_then(|t| t.get(id as usize)).and_then(Value::as_str).map(str::to_string);
        let mut stop_tokens: Vec<String> =
            ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "</s>"].into_iter().filter(|t| has_token(t)).map(str::to_string).collect();
        if let Some(eos) = file.get("tokenizer.ggml.eos_token_id").and_then(Value::as_u64).and_then(token)
            && !stop_tokens.contains(&eos)
        {
            stop_tokens.push(eos);
        }
        Ok(ModelMetadata { chat, prompt_template, stop_tokens, tokenizer_json: tokenizer_json.into(), context_length: config.context_length })
    }

    fn load(&self) -> Result<Arc<ModelService>, ModelError> {
        let file = self.open()?;
        let config = LlamaConfig::from_gguf(&file).map_err(|e| self.file_error(e))?;
        let tensors = ModelTensors::from_gguf(&file, &config).map_err(|e| self.file_error(e))?;
        let load_error = |detail: String| ModelError::Load { name: self.name.clone(), detail };
        let gpu = self.gpu.get().map_err(|e| load_error(format!("{e:#}")))?;
        tracing::info!(model = %self.name, adapter = %gpu.describe(), "loading");
        let total: u64 = file.tensors.iter().map(|t| t.len as u64).sum();
        let observer = self.observer.lock().unwrap().clone();
        let done = std::sync::atomic::AtomicU64::new(0);
        let progress = |bytes: u64| {
            let so_far = done.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes;
            if let Some(observe) = &observer {
                observe(&self.name, so_far.min(total), total);
            }
        };
        let llama = Llama::load(gpu, config, &tensors, self.capacity, &progress).map_err(|e| self.file_error(e))?;
        if let Some(observe) = &observer {
            observe(&self.name, total, total);
        }
        Ok(ModelService::start(&self.name, llama))
    }
}

#[derive(Default)]
pub struct ModelRegistry {
    models: Vec<Arc<Model>>,
    observer: Arc<Mutex<Option<LoadObserver>>>,
}

impl ModelRegistry {
    /// The config's models (the default model when none are configured).
    pub fn from_config(config: &Config) -> Self {
        let gpu = Arc::new(SharedGpu::default());
        let observer: Arc<Mutex<Option<LoadObserver>>> = Arc::default();
        let capacity = engine_capacity(config);
        let models = config
            .models()
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let fetch_hint = entry.fetch_hint();
                let ModelEntry { name, path, sampling, .. } = entry;
                Arc::new(Model {
                    description: format!("{name} ({})", path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()),
                    traits: TRAITS.iter().map(|t| t.to_string()).collect(),
                    service_id: i as u32,
                    page_size: capacity.page_size,
                    capacity,
                    gpu: gpu.clone(),
                    observer: observer.clone(),
                    metadata: OnceCell::new(),
                    service: OnceCell::new(),
                    name,
                    path,
                    fetch_hint,
                    sampling,
                })
            })
            .collect();
        Self { models, observer }
    }

    /// Tells `observer` how each model's weights reach the GPU from now on.
    pub fn observe_loading(&self, observer: LoadObserver) {
        *self.observer.lock().unwrap() = Some(observer);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The model named `name` (the first when `None`), present on disk.
    pub fn find(&self, name: Option<&str>) -> Result<&Arc<Model>, ModelError> {
        let model = match name {
            None => self.models.first(),
            Some(name) => self.get(name),
        };
        let model = model.ok_or_else(|| ModelError::Unknown { name: name.unwrap_or_default().into(), known: self.names().join(", ") })?;
        if !model.path.exists() {
            return Err(model.missing());
        }
        Ok(model)
    }

    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }

    /// Names of the models that have every one of `traits`.
    pub fn names_with_traits(&self, traits: &[String]) -> Vec<String> {
        self.models.iter().filter(|m| traits.iter().all(|t| m.traits.contains(t))).map(|m| m.name.clone()).collect()
    }

    /// Models whose engine is running.
    pub fn loaded(&self) -> impl Iterator<Item = Arc<ModelService>> + '_ {
        self.models.iter().filter_map(|m| m.service.get().and_then(|s| s.as_ref().ok()).cloned())
    }
}

/// The engine's capacity from the config's `[engine]` table.
pub fn engine_capacity(config: &Config) -> Capacity {
    let e = &config.engine;
    Capacity { page_size: e.page_size, kv_pages: e.kv_pages, batch_tokens: e.batch_tokens, ..Capacity::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_format_comes_from_the_template_or_else_the_vocabulary() {
        let none = |_: &str| false;
        assert_eq!(ChatFormat::of("{{ '<|im_start|>' + role }}", none), Some(ChatFormat::ChatMl));
        assert_eq!(ChatFormat::of("{{ '<start_of_turn>' + role }}", none), Some(ChatFormat::Gemma));
        assert_eq!(ChatFormat::of("[INST] {{ content }} [/INST]", |t| t == "<|im_start|>"), None, "a template of its own is not overruled");
        assert_eq!(ChatFormat::of("", |t| t == "<start_of_turn>"), Some(ChatFormat::Gemma));
        assert_eq!(ChatFormat::of("", none), None);
    }

    #[test]
    fn gemma_prompts_open_with_bos_and_give_the_model_its_turn() {
        let gemma = ModelMetadata {
            chat: Some(ChatFormat::Gemma),
            prompt_template: GEMMA.into(),
            stop_tokens: vec![],
            tokenizer_json: "".into(),
            context_length: 0,
        };
        assert_eq!(gemma.chat_prompt(None, "Hi").unwrap(), "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
        assert_eq!(
            gemma.chat_prompt(Some("Be brief."), "Hi").unwrap(),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
        );
        let unknown = ModelMetadata { chat: None, ..gemma };
        assert!(matches!(unknown.chat_prompt(None, "Hi"), Err(ModelError::UnknownChatFormat)));
    }
}
