//! Helpers shared by the end-to-end tests and benchmarks: where the built
//! components and the `crust` binary are, and how to run them.

pub mod bench;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crust::config::{Config, DEFAULT_MODEL_NAME, EngineConfig, LimitsConfig, ModelEntry, models_dir};
use crust::engine::service::ModelService;
use crust::models::Model;
use crust::providers::tokenize::{TokenizeProvider, TokenizerHandle};
use crust::runtime::{InstanceError, Launch, OutputChunk, OutputSink, Runtime, Stream};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// A test inferlet built by `just build-components`, by its artifact name.
pub fn inferlet(name: &str) -> PathBuf {
    let path = target_dir().join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
    let path = if path.exists() { path } else { path.with_file_name(format!("{name}.wasm")) };
    assert!(path.exists(), "{} is missing: run `just build-components` first", path.display());
    path
}

/// The Python that has Pie's client (`pie-client==0.1.0`) and Crust's
/// (`clients/python`) installed: `just python-env` makes it.
pub fn python() -> PathBuf {
    let python = target_dir().join("pyenv/bin/python");
    assert!(python.exists(), "{} is missing: run `just python-env` first", python.display());
    python
}

/// A fresh, empty directory under the target dir, removed by nobody (kept for post-mortems).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = target_dir().join("test-scratch").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch dir");
    dir
}

/// A runtime with the given limits and its own cache dir.
pub fn runtime(limits: LimitsConfig, cache: &str) -> Runtime {
    let config = Config { cache_dir: Some(scratch_dir(cache)), limits, ..Config::default() };
    Runtime::new(&config).expect("starting the runtime")
}

/// What one library-level run produced.
pub struct InstanceRun {
    pub outcome: Result<Option<String>, InstanceError>,
    pub stdout: String,
    pub stderr: String,
    /// What it sent its client (`message.send`), in order.
    pub messages: Vec<String>,
}

/// Runs `inferlet` to completion in `runtime`, collecting its output. The
/// arguments are copied, so the future borrows only the runtime and path.
pub fn run_instance<'a>(runtime: &'a Runtime, inferlet: &'a Path, arguments: &[&str]) -> impl Future<Output = InstanceRun> + use<'a> {
    let arguments: Vec<String> = arguments.iter().map(|s| s.to_string()).collect();
    async move { run_owned(runtime, inferlet, arguments, None).await }
}

/// [`run_instance`] acting for `owner`, as a server user's instance does (`Launch::owner`).
pub fn run_instance_as<'a>(runtime: &'a Runtime, inferlet: &'a Path, arguments: &[&str], owner: &str) -> impl Future<Output = InstanceRun> + use<'a> {
    let arguments: Vec<String> = arguments.iter().map(|s| s.to_string()).collect();
    let owner = Some(owner.to_string());
    async move { run_owned(runtime, inferlet, arguments, owner).await }
}

async fn run_owned(runtime: &Runtime, inferlet: &Path, arguments: Vec<String>, owner: Option<String>) -> InstanceRun {
    run_launch(runtime, inferlet, Launch { arguments, owner, ..Launch::default() }).await
}

/// Runs `inferlet` as `launch` says, collecting its output (in place of `launch.output`).
pub async fn run_launch(runtime: &Runtime, inferlet: &Path, mut launch: Launch) -> InstanceRun {
    let program = runtime.load_program_file(inferlet).expect("loading the inferlet");
    let (sink, mut rx) = OutputSink::channel();
    launch.output = Some(sink);
    // Read while it runs: an instance whose output is not read waits for it.
    let mut chunks = Vec::new();
    let run = runtime.run(&program, launch);
    tokio::pin!(run);
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            Some(chunk) = rx.recv() => chunks.push(chunk),
        }
    };
    chunks.extend(std::iter::from_fn(|| rx.try_recv().ok()));
    let (mut stdout, mut stderr, mut messages) = (Vec::new(), Vec::new(), Vec::new());
    for OutputChunk { stream, bytes } in chunks {
        match stream {
            Stream::Stdout => stdout.extend_from_slice(&bytes),
            Stream::Stderr => stderr.extend_from_slice(&bytes),
            Stream::Message => messages.push(String::from_utf8_lossy(&bytes).into_owned()),
            Stream::Blob => {}
        }
    }
    InstanceRun { outcome, messages, stdout: String::from_utf8_lossy(&stdout).into_owned(), stderr: String::from_utf8_lossy(&stderr).into_owned() }
}

/// The default model the way the host's own commands use it: its registry
/// entry, the tokenize provider, and its engine service (`engine` sets the
/// engine's `[engine]` capacity).
pub struct DefaultModel {
    pub runtime: Runtime,
    pub model: Arc<Model>,
    provider: Arc<TokenizeProvider>,
    tokenizer: TokenizerHandle,
}

impl DefaultModel {
    pub async fn open(cache: &str, engine: EngineConfig) -> Self {
        Self::open_file(cache, engine, DEFAULT_MODEL_NAME, None).await
    }

    /// Another model the same way: the GGUF file `file` in the models dir
    /// under `name` (`None`: the default model).
    pub async fn open_file(cache: &str, engine: EngineConfig, name: &str, file: Option<&str>) -> Self {
        let models = file
            .map(|f| vec![ModelEntry { name: name.into(), path: models_dir().join(f), source: None, sampling: Default::default() }])
            .unwrap_or_default();
        let config = Config { cache_dir: Some(scratch_dir(cache)), engine, models, ..Config::default() };
        let runtime = Runtime::new(&config).expect("starting the runtime");
        let model = runtime.models().find(Some(name)).unwrap_or_else(|e| panic!("{e}")).clone();
        let provider = runtime.tokenize_provider().await.expect("the tokenize provider");
        Self { tokenizer: TokenizerHandle::new(model.clone()), model, provider, runtime }
    }

    pub async fn service(&self) -> Arc<ModelService> {
        self.model.service().await.expect("the model on the GPU")
    }

    pub async fn tokenize(&mut self, text: &str) -> Vec<u32> {
        self.provider.tokenize(&mut self.tokenizer, text).await.expect("tokenizing")
    }

    pub async fn detokenize(&mut self, ids: &[u32]) -> String {
        self.provider.detokenize(&mut self.tokenizer, ids).await.expect("detokenizing")
    }

    /// The tokenize provider, for tests that hold handles of their own.
    pub fn provider(&self) -> &Arc<TokenizeProvider> {
        &self.provider
    }
}
