//! The model a command works on, opened through the same registry, engine
//! service and tokenize provider as inferlets use.

use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::config::Config;
use crate::engine::service::ModelService;
use crate::models::Model;
use crate::providers::tokenize::{TokenizeProvider, TokenizerHandle};
use crate::runtime::Runtime;

pub(crate) struct OpenModel {
    pub model: Arc<Model>,
    provider: Arc<TokenizeProvider>,
    tokenizer: TokenizerHandle,
    _runtime: Runtime,
}

impl OpenModel {
    /// The configured model `name` (the first when `None`) and its tokenizer.
    pub(crate) async fn open(config: &Config, name: Option<&str>) -> anyhow::Result<Self> {
        let runtime = Runtime::new(config)?;
        runtime.models().observe_loading(super::progress::model_loading_bar());
        let model = runtime.models().find(name)?.clone();
        let provider = runtime.tokenize_provider().await?;
        Ok(Self { tokenizer: TokenizerHandle::new(model.clone()), model, provider, _runtime: runtime })
    }

    /// The model on the GPU behind its scheduler (loaded on first use).
    pub(crate) async fn service(&self) -> anyhow::Result<Arc<ModelService>> {
        Ok(self.model.service().await?)
    }

    pub(crate) async fn tokenize(&mut self, text: &str) -> anyhow::Result<Vec<u32>> {
        Ok(self.provider.tokenize(&mut self.tokenizer, text).await?)
    }

    pub(crate) async fn detokenize(&mut self, ids: &[u32]) -> anyhow::Result<String> {
        Ok(self.provider.detokenize(&mut self.tokenizer, ids).await?)
    }

    /// The ids of the model's stop tokens (each is one special token).
    pub(crate) async fn stop_tokens(&mut self) -> anyhow::Result<Vec<u32>> {
        let metadata = self.model.metadata().await?;
        let mut ids = Vec::new();
        for text in &metadata.stop_tokens {
            ids.extend(self.tokenize(text).await.with_context(|| format!("tokenizing the stop token {text:?}"))?);
        }
        Ok(ids)
    }
}

/// The text a command works on: `--text`, or `--text-file`.
#[derive(clap::Args)]
pub(crate) struct TextInput {
    /// The text; special tokens written in it (e.g. `<|im_start|>`) are parsed as such.
    #[arg(long, conflicts_with = "text_file")]
    text: Option<String>,
    /// Read the text from a file.
    #[arg(long, value_name = "FILE")]
    text_file: Option<std::path::PathBuf>,
}

impl TextInput {
    pub(crate) fn read(self) -> anyhow::Result<String> {
        match (self.text, self.text_file) {
            (Some(text), None) => Ok(text),
            (None, Some(path)) => std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display())),
            _ => bail!("give exactly one of --text or --text-file"),
        }
    }
}
