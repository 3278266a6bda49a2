//! End-to-end tests: real components (built by `just build-components`)
//! through the real host, as a library and as the `crust` binary.

mod agreement;
mod cli;
mod engine;
mod every_inferlet_tested;
mod gemma3;
mod instances;
mod isolation;
mod messaging;
mod model_interfaces;
mod model_pull;
mod outbound;
mod pie_sdk;
mod providers;
mod readme;
mod registry;
mod server;
mod smollm2;
mod tokenizer;
mod wit_spec;

use std::path::Path;
use std::process::{Command, Output};

/// What a finished `crust` process printed.
pub struct CliRun {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for CliRun {
    fn from(out: Output) -> Self {
        Self {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `crust <args>` with its own program cache in `cache_dir`.
///
/// The binary is this package's `crust-under-test` (the same CLI), which
/// cargo rebuilds with the tests, so they never run a stale host.
pub fn crust(args: &[&str], cache_dir: &Path) -> CliRun {
    Command::new(env!("CARGO_BIN_EXE_crust-under-test"))
        .args(args)
        .env("CRUST_CACHE_DIR", cache_dir)
        .env_remove("CRUST_CONFIG")
        .env_remove("CRUST_LOG")
        .output()
        .expect("spawning crust")
        .into()
}
