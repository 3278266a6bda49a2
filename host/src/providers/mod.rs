//! The WASI plugins that serve `inferlet:core` interfaces to inferlets:
//! separately built wasm components, chosen by config.
//!
//! Each provider is one long-lived instance per host that the host forwards
//! calls to (`shared.rs`): a tokenizer costs ≈50 ms to parse and a store must
//! be shared by every inferlet, so neither can live in a fresh instance per
//! inferlet; a forwarded call costs about a microsecond (docs/providers.md).

mod compose;
pub mod kvs;
mod shared;
pub mod tokenize;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::OnceCell;
use wasmtime::Engine;
use wasmtime::component::{Component, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::compiled::ComponentCache;
use crate::config::Config;
use kvs::KvsProvider;
use tokenize::TokenizeProvider;

/// Why a provider could not serve a call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The component could not be found, read, compiled or linked.
    #[error("{0}")]
    Unavailable(String),
    #[error("instantiating the {provider} provider: {detail}")]
    Start { provider: &'static str, detail: String },
    /// A call trapped (the next call gets a fresh instance).
    #[error("the {provider} provider failed in {call}: {detail}")]
    Call { provider: &'static str, call: String, detail: String },
    /// The model a tokenizer was asked for is unusable.
    #[error("{0}")]
    Model(String),
}

/// A provider instance's store.
pub struct ProviderState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
}

impl WasiView for ProviderState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The host's providers, each compiled and started on first use; an error
/// names the component and what is wrong with it.
pub struct Providers {
    engine: Engine,
    components: Arc<ComponentCache>,
    tokenize_path: Result<PathBuf, String>,
    kvs_path: Result<PathBuf, String>,
    tokenizers_dir: PathBuf,
    kvs_dir: PathBuf,
    message_path: Result<PathBuf, String>,
    tokenize: OnceCell<Result<Arc<TokenizeProvider>, ProviderError>>,
    kvs: OnceCell<Result<Arc<KvsProvider>, ProviderError>>,
    message: std::sync::OnceLock<Result<Vec<u8>, String>>,
}

/// The message provider's component file.
pub const MESSAGE_COMPONENT_FILE: &str = "message_provider.wasm";
const MESSAGE_INTERFACE: &str = "inferlet:core/message";

impl Providers {
    pub fn new(engine: &Engine, components: Arc<ComponentCache>, config: &Config) -> Self {
        let p = &config.providers;
        Self {
            engine: engine.clone(),
            components,
            tokenize_path: locate(p.tokenize.as_deref(), tokenize::COMPONENT_FILE),
            kvs_path: locate(p.kvs.as_deref(), kvs::COMPONENT_FILE),
            message_path: locate(p.message.as_deref(), MESSAGE_COMPONENT_FILE),
            tokenizers_dir: config.cache_dir().join("tokenizers"),
            kvs_dir: config.data_dir().join("kvs"),
            tokenize: OnceCell::new(),
            kvs: OnceCell::new(),
            message: std::sync::OnceLock::new(),
        }
    }

    /// The inferlet with the message provider composed in, when it imports
    /// `inferlet:core/message`; `None` when it does not.
    pub fn compose(&self, inferlet: &[u8]) -> Result<Option<Vec<u8>>, String> {
        // Import names are stored as plain strings: skip the parse when it cannot match.
        if !inferlet.windows(MESSAGE_INTERFACE.len()).any(|w| w == MESSAGE_INTERFACE.as_bytes()) {
            return Ok(None);
        }
        let provider = self
            .message
            .get_or_init(|| {
                let path = self.message_path.clone()?;
                std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))
            })
            .as_ref()
            .map_err(|e| format!("the inferlet imports `{MESSAGE_INTERFACE}`, but the message provider is unavailable: {e}"))?;
        compose::plug_into(inferlet, provider, "message")
    }

    /// The provider's component, checked to export `interface`. Compiling
    /// takes a while: it runs off the async threads (and is charged to no
    /// instance's CPU time).
    async fn compile(&self, path: &Result<PathBuf, String>, interface: &'static str) -> Result<(Component, PathBuf), ProviderError> {
        let unavailable = ProviderError::Unavailable;
        let path = path.clone().map_err(unavailable)?;
        let (engine, components) = (self.engine.clone(), self.components.clone());
        tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path).map_err(|e| unavailable(format!("reading {}: {e}", path.display())))?;
            let (component, _) = components.compile(&bytes).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
            let exports: Vec<String> = component.component_type().exports(&engine).map(|(name, _)| name.to_string()).collect();
            if !exports.iter().any(|e| e == interface || e.starts_with(&format!("{interface}@"))) {
                return Err(unavailable(format!("{} is not a provider of `{interface}`: it exports [{}]", path.display(), exports.join(", "))));
            }
            Ok((component, path))
        })
        .await
        .unwrap_or_else(|e| Err(unavailable(format!("compiling the {interface} provider panicked: {e}"))))
    }

    pub async fn tokenize(&self) -> Result<Arc<TokenizeProvider>, ProviderError> {
        self.tokenize
            .get_or_init(|| async {
                let (component, path) = self.compile(&self.tokenize_path, "inferlet:core/tokenize").await?;
                TokenizeProvider::new(&self.engine, component, self.tokenizers_dir.clone())
                    .map(Arc::new)
                    .map_err(|e| ProviderError::Unavailable(format!("{}: {e}", path.display())))
            })
            .await
            .clone()
    }

    pub async fn kvs(&self) -> Result<Arc<KvsProvider>, ProviderError> {
        self.kvs
            .get_or_init(|| async {
                let (component, path) = self.compile(&self.kvs_path, "crust:host/kvs-store").await?;
                KvsProvider::new(&self.engine, component, self.kvs_dir.clone())
                    .map(Arc::new)
                    .map_err(|e| ProviderError::Unavailable(format!("{}: {e}", path.display())))
            })
            .await
            .clone()
    }
}

/// Where a provider's component is: the configured path, else
/// `$CRUST_COMPONENTS_DIR`, else the `wasm32-wasip2/release` build next to
/// the running binary (a checkout's `target/`), else where `just install`
/// puts them (the user data dir's `crust/components`).
pub fn locate(configured: Option<&Path>, file: &str) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return Ok(path.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CRUST_COMPONENTS_DIR") {
        candidates.push(PathBuf::from(dir).join(file));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/crust, and target/<profile>/deps/<test> for tests.
        for dir in exe.ancestors().skip(1).take(3) {
            candidates.push(dir.join("wasm32-wasip2").join("release").join(file));
        }
    }
    if let Some(dir) = dirs::data_dir() {
        candidates.push(dir.join("crust").join("components").join(file));
    }
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        format!(
            "cannot find the component `{file}` (looked in: {}); build it with `just build-components`, or set its path in the config ([providers], server.openai_inferlet)",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}
