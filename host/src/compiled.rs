//! Components compiled once: native code cached on disk by content hash (and
//! the engine's settings), for inferlets and providers alike.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("not a WebAssembly file: it does not start with the `\\0asm` magic bytes")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build the inferlet for \
         `wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
}

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    Now,
    FromDisk,
}

pub struct ComponentCache {
    engine: Engine,
    dir: PathBuf,
    /// Distinguishes artifacts of other wasmtime versions and settings.
    engine_key: String,
}

impl ComponentCache {
    pub fn new(engine: &Engine, dir: PathBuf) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self { engine: engine.clone(), dir, engine_key: format!("{:016x}", hasher.finish()) }
    }

    /// The component of `bytes`, compiled now or taken from the disk cache.
    pub fn compile(&self, bytes: &[u8]) -> Result<(Component, Compiled), CompileError> {
        check_component_header(bytes)?;
        self.component(blake3::hash(bytes), bytes)
    }

    fn artifact_path(&self, hash: &blake3::Hash) -> PathBuf {
        self.dir.join("programs").join(format!("{}-{}.cwasm", hash.to_hex(), self.engine_key))
    }

    /// The compiled component: from disk when a valid artifact is there,
    /// else compiled now and written back (best effort: a read-only cache
    /// only costs the next process a compile).
    fn component(&self, hash: blake3::Hash, bytes: &[u8]) -> Result<(Component, Compiled), CompileError> {
        let path = self.artifact_path(&hash);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an engine with the same
            // compatibility hash (it is in the name), into a directory this host owns.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), "program loaded from the disk cache");
                    return Ok((component, Compiled::FromDisk));
                }
                Err(e) => tracing::warn!(path = %path.display(), "ignoring unusable cached program: {e}"),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        if let Err(e) = write_artifact(&path, &component) {
            tracing::warn!(path = %path.display(), "cannot cache the compiled program: {e:#}");
        } else {
            tracing::debug!(path = %path.display(), "program compiled and cached");
        }
        Ok((component, Compiled::Now))
    }
}

fn write_artifact(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().expect("artifact paths have a parent");
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Tells a component from a core module or a non-wasm file before compiling.
pub fn check_component_header(bytes: &[u8]) -> Result<(), CompileError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        // The text format is accepted too (handy for small hand-written components).
        if std::str::from_utf8(bytes).is_ok_and(|t| t.trim_start().starts_with('(')) {
            return Ok(());
        }
        return Err(CompileError::NotWasm);
    }
    match bytes[6..8] {
        [1, 0] => Ok(()),
        [0, 0] => Err(CompileError::CoreModule),
        _ => Err(CompileError::Invalid(format!("unknown WebAssembly layer {:?}", &bytes[6..8]))),
    }
}
