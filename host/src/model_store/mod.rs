//! The models on this machine that `crust models pull` fetched: GGUF files in
//! the models dir and an index (`models.toml` there) naming each, with where
//! it came from and its sha256. Every command sees them after the configured
//! models, by name.

mod pull;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use pull::{PullError, PullOptions, Source, pull};

/// The index's file name in the models dir.
const INDEX: &str = "models.toml";

/// One pulled model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredModel {
    pub name: String,
    /// The file's name in the models dir.
    pub file: String,
    /// What `crust models pull` was given: pulling it again gets the same file.
    pub source: String,
    pub sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    #[serde(default)]
    models: Vec<StoredModel>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {detail}", path.display())]
    Io { path: PathBuf, detail: String },
    #[error("{}: not a model index Crust wrote: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("no pulled model named `{name}`; pulled: {known}")]
    Unknown { name: String, known: String },
    #[error("model name `{0}` must be non-empty, not start with `.`, and have no `/`, `\\`, `:` or NUL")]
    BadName(String),
}

/// Whether `name` can name a model (and a file in the models dir).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', ':', '\0'])
}

/// The models dir and its index.
pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, model: &StoredModel) -> PathBuf {
        self.dir.join(&model.file)
    }

    /// The pulled models, in the order they were first pulled; none when nothing was.
    pub fn models(&self) -> Result<Vec<StoredModel>, StoreError> {
        Ok(self.read()?.models)
    }

    /// Records `model`, replacing an entry of the same name.
    pub fn register(&self, model: StoredModel) -> Result<(), StoreError> {
        let mut index = self.read()?;
        match index.models.iter_mut().find(|m| m.name == model.name) {
            Some(old) => *old = model,
            None => index.models.push(model),
        }
        self.write(&index)
    }

    /// Deletes a pulled model's file and its entry; returns what was removed.
    pub fn remove(&self, name: &str) -> Result<StoredModel, StoreError> {
        let mut index = self.read()?;
        let Some(at) = index.models.iter().position(|m| m.name == name) else {
            let known: Vec<&str> = index.models.iter().map(|m| m.name.as_str()).collect();
            return Err(StoreError::Unknown { name: name.into(), known: if known.is_empty() { "none".into() } else { known.join(", ") } });
        };
        let model = index.models.remove(at);
        // Another name may share the file (pulled twice under two names): keep it then.
        if !index.models.iter().any(|m| m.file == model.file) {
            let path = self.path_of(&model);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Io { path, detail: e.to_string() }),
            }
        }
        self.write(&index)?;
        Ok(model)
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX)
    }

    fn read(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| StoreError::Corrupt { path, detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(StoreError::Io { path, detail: e.to_string() }),
        }
    }

    /// Writes the index whole, through a temporary file: a crash leaves the old one or the new.
    fn write(&self, index: &Index) -> Result<(), StoreError> {
        let path = self.index_path();
        let io = |e: std::io::Error| StoreError::Io { path: path.clone(), detail: e.to_string() };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let text = toml::to_string(index).map_err(|e| StoreError::Io { path: path.clone(), detail: e.to_string() })?;
        let temp = self.dir.join(format!(".{INDEX}.{}", std::process::id()));
        std::fs::write(&temp, text).map_err(io)?;
        std::fs::rename(&temp, &path).map_err(io)
    }
}
