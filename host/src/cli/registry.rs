//! `crust push` and `crust pull`: inferlets in OCI registries.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::config::Config;
use crate::oci::{Registry, RegistryError, component_summary, registry_of};
use crate::runtime::Runtime;

/// How to reach a registry; flags add to (and override) the config's `[registry]`.
/// Credentials given here are for the registry the command's reference names, and go to no other.
#[derive(clap::Args, Clone)]
pub(crate) struct RegistryFlags {
    /// A registry host (`host:port`) to reach over plain http; repeatable.
    #[arg(long, value_name = "HOST")]
    insecure: Vec<String>,
    /// Basic-auth user name.
    #[arg(long, env = "CRUST_REGISTRY_USERNAME")]
    username: Option<String>,
    /// Basic-auth password.
    #[arg(long, env = "CRUST_REGISTRY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A bearer token for the registry (`--token` is a server's login token, on the client commands).
    #[arg(long = "registry-token", value_name = "TOKEN", env = "CRUST_REGISTRY_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl RegistryFlags {
    pub(crate) fn registry(&self, config: &Config, reference: &str) -> Result<Registry, RegistryError> {
        let mut settings = config.registry.clone();
        settings.insecure.extend(self.insecure.iter().cloned());
        if self.username.is_some() || self.password.is_some() || self.token.is_some() {
            let login = settings.login.entry(registry_of(reference)?).or_default();
            login.username = self.username.clone().or(login.username.take());
            login.password = self.password.clone().or(login.password.take());
            login.token = self.token.clone().or(login.token.take());
        }
        Ok(Registry::new(&settings, &config.cache_dir()))
    }
}

/// Publish an inferlet (a wasm component) to an OCI registry.
#[derive(clap::Args)]
pub(crate) struct PushArgs {
    /// The component file.
    file: PathBuf,
    /// Where to: `registry/repository:tag`.
    reference: String,
    #[command(flatten)]
    registry: RegistryFlags,
}

/// Fetch an inferlet from an OCI registry into the local cache (verified by digest).
#[derive(clap::Args)]
pub(crate) struct PullArgs {
    /// `registry/repository:tag` or `registry/repository@sha256:…`.
    reference: String,
    /// Also write the component here.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryFlags,
}

/// Refuses what Crust could not run, naming the problem (not a component, an import it lacks).
fn check_runnable(config: &Config, bytes: &[u8], what: &str) -> anyhow::Result<()> {
    let runtime = Runtime::new(config)?;
    runtime.load_program(bytes).with_context(|| format!("{what} is not an inferlet Crust can run"))?;
    Ok(())
}

pub(crate) async fn push(config: &Config, args: PushArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    check_runnable(config, &bytes, &args.file.display().to_string())?;
    let digest = args.registry.registry(config, &args.reference)?.push(&bytes, &args.reference, component_summary(&bytes)).await?;
    println!("pushed {} as {}@{digest}", args.file.display(), args.reference);
    Ok(())
}

pub(crate) async fn pull(config: &Config, args: PullArgs) -> anyhow::Result<()> {
    let pulled = args.registry.registry(config, &args.reference)?.pull(&args.reference).await?;
    check_runnable(config, &pulled.bytes, &args.reference)?;
    if let Some(output) = &args.output {
        std::fs::write(output, &pulled.bytes).with_context(|| format!("writing {}", output.display()))?;
    }
    println!("{} {} {}", args.reference, pulled.manifest_digest, pulled.path.display());
    Ok(())
}
