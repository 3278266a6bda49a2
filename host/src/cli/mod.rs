//! The `crust` command line.

mod bench_engine;
mod chat;
mod client;
mod forward;
mod generate;
mod model;
mod models;
mod progress;
mod registry;
mod run;
mod serve;
mod tokenize;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// Crust runs inferlets: WebAssembly components that drive an LLM through
/// the `inferlet:core` interfaces, instead of sending it prompts.
#[derive(Parser)]
#[command(name = "crust", version, about, long_about = None)]
pub struct Cli {
    /// TOML config file (see docs/config.md); flags override its values.
    #[arg(long, global = true, env = "CRUST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log filter, e.g. `info` or `crust=debug` (default: warn).
    #[arg(long, global = true, env = "CRUST_LOG", value_name = "FILTER")]
    log: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Chat(chat::ChatArgs),
    Models(models::ModelsArgs),
    Forward(forward::ForwardArgs),
    Generate(generate::GenerateArgs),
    Tokenize(tokenize::TokenizeArgs),
    Push(registry::PushArgs),
    Pull(registry::PullArgs),
    Serve(serve::ServeArgs),
    Submit(client::SubmitArgs),
    List(client::ListArgs),
    Attach(client::AttachArgs),
    Send(client::SendArgs),
    Kill(client::KillArgs),
    Keygen(client::KeygenArgs),
    BenchEngine(bench_engine::BenchEngineArgs),
}

/// Limit flags shared by the commands that launch instances.
#[derive(clap::Args)]
pub(crate) struct LimitFlags {
    /// Stop an instance after this many seconds of wall time.
    #[arg(long, value_name = "SECS")]
    wall_time: Option<f64>,
    /// Stop an instance after this many seconds of CPU time (waiting on the GPU or messages is not counted).
    #[arg(long, value_name = "SECS")]
    cpu_time: Option<f64>,
    /// Cap each instance's linear memory, in MiB.
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<u64>,
    /// Cap the number of instances alive at once.
    #[arg(long, value_name = "N")]
    max_instances: Option<usize>,
    /// Let inferlets' outgoing HTTP reach HOST (`[scheme://]host[:port]`, a name, an IP, a CIDR range
    /// or `*` for every public host); repeatable. Without any, outgoing HTTP is denied.
    #[arg(long = "allow-http", value_name = "HOST")]
    allow_http: Vec<String>,
    /// Where compiled programs are cached (default: $CRUST_CACHE_DIR or the user cache dir).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

/// `--model`, for the commands that use one.
#[derive(clap::Args)]
pub(crate) struct ModelFlag {
    /// The model: a configured or pulled model's name (`crust models` lists them), the path of a
    /// GGUF file, or a GGUF file's name in the models dir without `.gguf` (default: the first
    /// configured model).
    #[arg(long, value_name = "NAME|PATH")]
    model: Option<String>,
}

impl ModelFlag {
    /// Puts the chosen model first, where commands and inferlets take theirs from.
    fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        if let Some(spec) = &self.model {
            config.select_model(spec)?;
        }
        Ok(())
    }
}

impl LimitFlags {
    fn apply(&self, config: &mut Config) {
        let limits = &mut config.limits;
        limits.wall_time_secs = self.wall_time.unwrap_or(limits.wall_time_secs);
        limits.cpu_time_secs = self.cpu_time.unwrap_or(limits.cpu_time_secs);
        limits.memory_mib = self.memory_limit.unwrap_or(limits.memory_mib);
        limits.max_instances = self.max_instances.unwrap_or(limits.max_instances);
        config.outbound.allowed_hosts.extend(self.allow_http.iter().cloned());
        if let Some(dir) = &self.cache_dir {
            config.cache_dir = Some(dir.clone());
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log.as_deref());
    let config = match &cli.config {
        Some(path) => match Config::from_file(path) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("starting tokio");
    let engine_command = |result: anyhow::Result<()>| match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    };
    match cli.command {
        Command::Run(args) => runtime.block_on(run::run(config, args)),
        Command::Chat(args) => runtime.block_on(chat::run(config, args)),
        Command::Models(args) => engine_command(runtime.block_on(models::run(&config, args))),
        Command::Forward(args) => engine_command(runtime.block_on(forward::run(&config, args))),
        Command::Generate(args) => engine_command(runtime.block_on(generate::run(&config, args))),
        Command::Tokenize(args) => engine_command(runtime.block_on(tokenize::run(&config, args))),
        Command::Push(args) => engine_command(runtime.block_on(registry::push(&config, args))),
        Command::Pull(args) => engine_command(runtime.block_on(registry::pull(&config, args))),
        Command::Serve(args) => engine_command(runtime.block_on(serve::run(config, args))),
        Command::Submit(args) => runtime.block_on(client::submit(config, args)),
        Command::List(args) => engine_command(runtime.block_on(client::list(config, args))),
        Command::Attach(args) => runtime.block_on(client::attach(config, args)),
        Command::Send(args) => engine_command(runtime.block_on(client::send(config, args))),
        Command::Kill(args) => engine_command(runtime.block_on(client::kill(config, args))),
        Command::Keygen(args) => engine_command(client::keygen(args)),
        Command::BenchEngine(args) => engine_command(bench_engine::run(&config, args)),
    }
}

fn init_logging(filter: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("warn")).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only for a person at a terminal, not in a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}
