//! The WASI plugins that serve `inferlet:core` interfaces to inferlets:
//! separately built wasm components, found by config.
//!
//! The tokenize provider is one long-lived instance per host that the host
//! forwards calls to: parsing a tokenizer costs ≈50 ms, so a fresh instance
//! per inferlet would blow the launch budget, while a forwarded call costs
//! about a microsecond (docs/providers.md).

pub mod tokenize;

use std::path::{Path, PathBuf};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

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

/// Where a provider's component is: the configured path, else
/// `$CRUST_COMPONENTS_DIR`, else the `wasm32-wasip2/release` build next to
/// the running binary (a checkout's `target/`).
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
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        format!(
            "cannot find the provider component `{file}` (looked in: {}); build it with `just build-components`, or set its path under [providers] in the config",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}
