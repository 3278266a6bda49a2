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

/// What every model offers (`model.get-traits`).
const TRAITS: [&str; 5] = ["input_text", "tokenize", "detokenize", "forward", "output_text"];

/// ChatML that renders one message at a time (Pie's SDK renders `[system]`
/// alone, then `[user]` with the generation prompt), with no default system
/// message — the GGUF's template would add one before every rendering.
const CHATML: &str = "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

/// A model's metadata, read from its GGUF without touching the GPU.
pub struct ModelMetadata {
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
    pub description: String,
    pub traits: Vec<String>,
    /// `model.get-service-id`: the model's index in the registry.
    pub service_id: u32,
    pub page_size: u32,
    capacity: Capacity,
    gpu: Arc<SharedGpu>,
    metadata: OnceCell<Result<Arc<ModelMetadata>, String>>,
    service: OnceCell<Result<Arc<ModelService>, String>>,
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
    pub async fn metadata(self: &Arc<Self>) -> Result<Arc<ModelMetadata>, String> {
        let this = self.clone();
        self.metadata
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || this.read_metadata().map(Arc::new))
                    .await
                    .unwrap_or_else(|e| Err(format!("reading the model's metadata panicked: {e}")))
            })
            .await
            .clone()
    }

    /// The model on the GPU behind its scheduler; loaded once.
    pub async fn service(self: &Arc<Self>) -> Result<Arc<ModelService>, String> {
        let this = self.clone();
        self.service
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || this.load().map_err(|e| format!("loading model `{}`: {e:#}", this.name)))
                    .await
                    .unwrap_or_else(|e| Err(format!("loading the model panicked: {e}")))
            })
            .await
            .clone()
    }

    fn open(&self) -> Result<GgufFile, String> {
        if !self.path.exists() {
            return Err(format!(
                "model `{}` is not at {}: run `just fetch-model` for the default model, or set its path in the config",
                self.name,
                self.path.display()
            ));
        }
        GgufFile::open(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))
    }

    fn read_metadata(&self) -> Result<ModelMetadata, String> {
        let file = self.open()?;
        // An unsupported architecture is named here, before any inferlet relies on the model.
        let config = LlamaConfig::from_gguf(&file).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let tokenizer_json = tokenizer_json(&file).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let template = file.get("tokenizer.chat_template").and_then(Value::as_str).unwrap_or_default();
        let prompt_template = if template.contains("<|im_start|>") { CHATML.to_string() } else { template.to_string() };
        let tokens = file.get("tokenizer.ggml.tokens").and_then(Value::as_array);
        let token = |id: u64| tokens.and_then(|t| t.get(id as usize)).and_then(Value::as_str).map(str::to_string);
        let mut stop_tokens: Vec<String> = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"]
            .into_iter()
            .filter(|t| tokens.is_some_and(|all| all.iter().any(|v| v.as_str() == Some(t))))
            .map(str::to_string)
            .collect();
        if let Some(eos) = file.get("tokenizer.ggml.eos_token_id").and_then(Value::as_u64).and_then(token) {
            if !stop_tokens.contains(&eos) {
                stop_tokens.push(eos);
            }
        }
        Ok(ModelMetadata { prompt_template, stop_tokens, tokenizer_json: tokenizer_json.into(), context_length: config.context_length })
    }

    fn load(&self) -> anyhow::Result<Arc<ModelService>> {
        let file = self.open().map_err(anyhow::Error::msg)?;
        let config = LlamaConfig::from_gguf(&file)?;
        let tensors = ModelTensors::from_gguf(&file, &config)?;
        let gpu = self.gpu.get()?;
        tracing::info!(model = %self.name, adapter = %gpu.describe(), "loading");
        let llama = Llama::load(gpu, config, &tensors, self.capacity, &|_| {})?;
        Ok(ModelService::start(&self.name, llama))
    }
}

#[derive(Default)]
pub struct ModelRegistry {
    models: Vec<Arc<Model>>,
}

impl ModelRegistry {
    /// The config's models (the default model when none are configured).
    pub fn from_config(config: &Config) -> Self {
        let gpu = Arc::new(SharedGpu::default());
        let capacity = engine_capacity(config);
        let models = config
            .models()
            .into_iter()
            .enumerate()
            .map(|(i, ModelEntry { name, path })| {
                Arc::new(Model {
                    description: format!("{name} ({})", path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()),
                    traits: TRAITS.iter().map(|t| t.to_string()).collect(),
                    service_id: i as u32,
                    page_size: capacity.page_size,
                    capacity,
                    gpu: gpu.clone(),
                    metadata: OnceCell::new(),
                    service: OnceCell::new(),
                    name,
                    path,
                })
            })
            .collect();
        Self { models }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }

    /// Names of the models that have every one of `traits`.
    pub fn names_with_traits(&self, traits: &[String]) -> Vec<String> {
        self.models
            .iter()
            .filter(|m| traits.iter().all(|t| m.traits.contains(t)))
            .map(|m| m.name.clone())
            .collect()
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
