//! Finding a configured model by name and opening it on the GPU, for the
//! commands that run the engine directly.

use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::config::{Config, ModelEntry};
use crate::engine::device::Gpu;
use crate::engine::loaded::LoadedModel;
use crate::engine::model::Capacity;

pub(crate) fn find(config: &Config, name: Option<&str>) -> anyhow::Result<ModelEntry> {
    let models = config.models();
    let entry = match name {
        None => models[0].clone(),
        Some(name) => match models.iter().find(|m| m.name == name) {
            Some(m) => m.clone(),
            None => {
                let known: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
                bail!("no model named `{name}`; known: {}", known.join(", "))
            }
        },
    };
    if !entry.path.exists() {
        bail!(
            "model `{}` is not at {}: run `just fetch-model` for the default model, or set its path in the config",
            entry.name,
            entry.path.display()
        );
    }
    Ok(entry)
}

pub(crate) fn capacity(config: &Config) -> Capacity {
    crate::models::engine_capacity(config)
}

pub(crate) fn load(config: &Config, name: Option<&str>) -> anyhow::Result<LoadedModel> {
    let entry = find(config, name)?;
    let gpu = Arc::new(Gpu::open()?);
    tracing::info!(adapter = %gpu.describe(), model = %entry.name, "loading");
    LoadedModel::load(&entry.name, &entry.path, gpu, capacity(config)).with_context(|| format!("loading model `{}`", entry.name))
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
