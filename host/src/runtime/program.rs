//! Programs: inferlet components compiled once, cached by content hash in
//! memory and on disk, and pre-linked for fast launches.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::Engine;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};

use super::state::InstanceState;

/// The export an inferlet starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPoint {
    /// `inferlet:core/run`: `run() -> result<_, string>` (Pie's SDK).
    InferletRun,
    /// `wasi:cli/run`: a WASI command, a plain `fn main`.
    WasiCliRun,
    /// `wasi:http/incoming-handler`: a server inferlet, one instance per request.
    HttpHandler,
}

const INFERLET_RUN: &str = "inferlet:core/run";
const WASI_CLI_RUN_PREFIX: &str = "wasi:cli/run@0.2";
const HTTP_HANDLER_PREFIX: &str = "wasi:http/incoming-handler@0.2";

/// A compiled, linked inferlet, ready to launch any number of times.
pub struct Program {
    pub hash: blake3::Hash,
    pub entry: EntryPoint,
    pub(crate) entry_func: ComponentExportIndex,
    pub(crate) pre: InstancePre<InstanceState>,
    /// Whether this process compiled it, or took it from a cache.
    pub origin: ProgramOrigin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramOrigin {
    Compiled,
    DiskCache,
    MemoryCache,
}

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("not a WebAssembly file: it does not start with the `\\0asm` magic bytes")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build the inferlet for \
         `wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("the inferlet imports something Crust does not provide: {0}")]
    MissingImport(String),
    #[error("{0}")]
    Provider(String),
    #[error(
        "the component exports neither `{INFERLET_RUN}` nor `wasi:cli/run` nor \
         `wasi:http/incoming-handler`: an inferlet must export one of them (Pie's SDK \
         `export!`, a plain `fn main`, or an HTTP handler)"
    )]
    NoEntryPoint,
}

/// Compiled programs by content hash: in memory for this process, and as
/// serialized native code on disk for the next one.
pub(crate) struct ProgramCache {
    engine: Engine,
    dir: PathBuf,
    loaded: Mutex<HashMap<blake3::Hash, Arc<Program>>>,
    /// Distinguishes artifacts of other wasmtime versions and settings.
    engine_key: String,
}

impl ProgramCache {
    pub(crate) fn new(engine: &Engine, dir: PathBuf) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            engine: engine.clone(),
            dir,
            loaded: Mutex::new(HashMap::new()),
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// `prepare` may replace the bytes before compiling (providers composed in);
    /// the program is still known by the hash of the bytes given.
    pub(crate) fn load(
        &self,
        bytes: &[u8],
        linker: &Linker<InstanceState>,
        prepare: &dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, String>,
    ) -> Result<Arc<Program>, ProgramError> {
        let hash = blake3::hash(bytes);
        if let Some(program) = self.loaded.lock().unwrap().get(&hash) {
            return Ok(Arc::new(Program { origin: ProgramOrigin::MemoryCache, ..clone_program(program) }));
        }
        check_component_header(bytes)?;
        let prepared = prepare(bytes).map_err(ProgramError::Provider)?;
        let compiled = prepared.as_deref().unwrap_or(bytes);
        let (component, origin) = self.component(blake3::hash(compiled), compiled)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| ProgramError::MissingImport(format!("{e:#}")))?;
        let (entry, entry_func) = find_entry_point(&self.engine, &component)?;
        let program = Arc::new(Program { hash, entry, entry_func, pre, origin });
        self.loaded.lock().unwrap().insert(hash, program.clone());
        Ok(program)
    }

    /// A component compiled (or taken from the disk cache), not linked: for providers.
    pub(crate) fn compile(&self, bytes: &[u8]) -> Result<Component, ProgramError> {
        check_component_header(bytes)?;
        Ok(self.component(blake3::hash(bytes), bytes)?.0)
    }

    fn artifact_path(&self, hash: &blake3::Hash) -> PathBuf {
        self.dir.join("programs").join(format!("{}-{}.cwasm", hash.to_hex(), self.engine_key))
    }

    /// The compiled component: from disk when a valid artifact is there,
    /// else compiled now and written back (best effort: a read-only cache
    /// only costs the next process a compile).
    fn component(&self, hash: blake3::Hash, bytes: &[u8]) -> Result<(Component, ProgramOrigin), ProgramError> {
        let path = self.artifact_path(&hash);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an engine with the same
            // compatibility hash (it is in the name), into a directory this host owns.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), "program loaded from the disk cache");
                    return Ok((component, ProgramOrigin::DiskCache));
                }
                Err(e) => tracing::warn!(path = %path.display(), "ignoring unusable cached program: {e}"),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| ProgramError::Invalid(format!("{e:#}")))?;
        if let Err(e) = write_artifact(&path, &component) {
            tracing::warn!(path = %path.display(), "cannot cache the compiled program: {e:#}");
        } else {
            tracing::debug!(path = %path.display(), "program compiled and cached");
        }
        Ok((component, ProgramOrigin::Compiled))
    }
}

fn clone_program(p: &Program) -> Program {
    Program { hash: p.hash, entry: p.entry, entry_func: p.entry_func, pre: p.pre.clone(), origin: p.origin }
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
fn check_component_header(bytes: &[u8]) -> Result<(), ProgramError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        // The text format is accepted too (handy for small hand-written components).
        if std::str::from_utf8(bytes).is_ok_and(|t| t.trim_start().starts_with('(')) {
            return Ok(());
        }
        return Err(ProgramError::NotWasm);
    }
    match bytes[6..8] {
        [1, 0] => Ok(()),
        [0, 0] => Err(ProgramError::CoreModule),
        _ => Err(ProgramError::Invalid(format!("unknown WebAssembly layer {:?}", &bytes[6..8]))),
    }
}

fn find_entry_point(engine: &Engine, component: &Component) -> Result<(EntryPoint, ComponentExportIndex), ProgramError> {
    let exported = |prefix: &str| {
        let ty = component.component_type();
        let name = ty.exports(engine).map(|(name, _)| name).find(|name| name.starts_with(prefix))?;
        component.get_export_index(None, name)
    };
    let (entry, instance, func) = if let Some(run) = component.get_export_index(None, INFERLET_RUN) {
        (EntryPoint::InferletRun, run, "run")
    } else if let Some(run) = exported(WASI_CLI_RUN_PREFIX) {
        (EntryPoint::WasiCliRun, run, "run")
    } else if let Some(handler) = exported(HTTP_HANDLER_PREFIX) {
        (EntryPoint::HttpHandler, handler, "handle")
    } else {
        return Err(ProgramError::NoEntryPoint);
    };
    let func = component.get_export_index(Some(&instance), func).ok_or(ProgramError::NoEntryPoint)?;
    Ok((entry, func))
}
