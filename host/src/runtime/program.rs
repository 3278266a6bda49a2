//! Programs: inferlet components compiled once, cached by content hash in
//! memory and on disk, and pre-linked for fast launches.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::Engine;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};

use super::state::InstanceState;
use crate::compiled::{CompileError, Compiled, ComponentCache, check_component_header};

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
    #[error(transparent)]
    Compile(#[from] CompileError),
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

/// Replaces a component's bytes before it is compiled (providers composed in), or keeps them (`None`).
pub(crate) type Prepare<'a> = dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, String> + 'a;

/// Linked programs by content hash, in memory for this process; their
/// compiled components are cached on disk too (`ComponentCache`).
pub(crate) struct ProgramCache {
    engine: Engine,
    components: Arc<ComponentCache>,
    loaded: Mutex<HashMap<blake3::Hash, Arc<Program>>>,
}

impl ProgramCache {
    pub(crate) fn new(engine: &Engine, components: Arc<ComponentCache>) -> Self {
        Self { engine: engine.clone(), components, loaded: Mutex::new(HashMap::new()) }
    }

    /// `prepare` may replace the bytes before compiling (providers composed in);
    /// the program is still known by the hash of the bytes given.
    pub(crate) fn load(&self, bytes: &[u8], linker: &Linker<InstanceState>, prepare: &Prepare<'_>) -> Result<Arc<Program>, ProgramError> {
        let hash = blake3::hash(bytes);
        if let Some(program) = self.loaded.lock().unwrap().get(&hash) {
            return Ok(Arc::new(Program { origin: ProgramOrigin::MemoryCache, ..clone_program(program) }));
        }
        check_component_header(bytes)?;
        let prepared = prepare(bytes).map_err(ProgramError::Provider)?;
        let (component, origin) = self.components.compile(prepared.as_deref().unwrap_or(bytes))?;
        let origin = match origin {
            Compiled::Now => ProgramOrigin::Compiled,
            Compiled::FromDisk => ProgramOrigin::DiskCache,
        };
        let pre = linker.instantiate_pre(&component).map_err(|e| ProgramError::MissingImport(format!("{e:#}")))?;
        let (entry, entry_func) = find_entry_point(&self.engine, &component)?;
        let program = Arc::new(Program { hash, entry, entry_func, pre, origin });
        self.loaded.lock().unwrap().insert(hash, program.clone());
        Ok(program)
    }
}

fn clone_program(p: &Program) -> Program {
    Program { hash: p.hash, entry: p.entry, entry_func: p.entry_func, pre: p.pre.clone(), origin: p.origin }
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
