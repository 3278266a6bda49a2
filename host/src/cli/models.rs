//! `crust models`: the models this host has and what their files say;
//! `crust models pull` gets one by name, `crust models rm` deletes one.

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{Config, models_dir};
use crate::engine::gguf::GgufFile;
use crate::engine::model::LlamaConfig;
use crate::model_store::{ModelStore, PullOptions, Source, pull};

/// List the models (configured, then pulled) and their metadata (no GPU needed);
/// pull one from a Hugging Face hub repository or a URL; remove a pulled one.
#[derive(clap::Args)]
pub(crate) struct ModelsArgs {
    #[command(subcommand)]
    command: Option<ModelsCommand>,
}

#[derive(clap::Subcommand)]
enum ModelsCommand {
    /// List the models and what their files say (the default).
    List,
    /// Download a GGUF model into the models dir ($CRUST_MODELS_DIR) and register it
    /// under a name `--model` takes: resumes an interrupted download, checks the hub's sha256.
    Pull(PullArgs),
    /// Print the file of a model (a name or a path, as `--model` takes): for scripts and other tools.
    Path {
        /// The model's name, as `crust models` lists it, or a GGUF file's path.
        model: String,
    },
    /// Delete a pulled model's file and forget it.
    Rm {
        /// The model's name, as `crust models` lists it.
        name: String,
    },
}

#[derive(clap::Args)]
struct PullArgs {
    /// `hf:ORG/REPO[:FILE]` (FILE: a path in the repository; without it, the repository's one
    /// .gguf file, or its Q4_K_M one) or an https:// URL of a .gguf file. The hub is
    /// $HF_ENDPOINT (default https://huggingface.co); $HF_TOKEN is sent for gated repositories.
    source: String,
    /// The name to run it by (default: the file's name without `.gguf`).
    #[arg(long)]
    name: Option<String>,
    /// The sha256 the file must have (the hub says; a plain URL does not).
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
}

pub(crate) async fn run(config: &Config, args: ModelsArgs) -> anyhow::Result<()> {
    let store = ModelStore::new(models_dir());
    match args.command.unwrap_or(ModelsCommand::List) {
        ModelsCommand::List => list(config),
        ModelsCommand::Pull(args) => {
            let source: Source = args.source.parse()?;
            let options = PullOptions { name: args.name, sha256: args.sha256, ..PullOptions::from_env() };
            let bar = download_bar();
            let model = pull(&store, &source, &options, &|done, total| {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(done);
            })
            .await;
            bar.finish_and_clear();
            let model = model?;
            let path = store.path_of(&model);
            let file = GgufFile::open(&path).with_context(|| format!("pulled {}, but it is not a GGUF file Crust reads", path.display()))?;
            println!("pulled {} ({:.1} MB, sha256 {}) to {}", model.name, file.file_len() as f64 / 1e6, model.sha256, path.display());
            match LlamaConfig::from_gguf(&file) {
                Ok(_) => println!("run it: crust generate --model {} --prompt \"Hello\"", model.name),
                Err(e) => println!("Crust cannot run it yet: {e}"),
            }
            Ok(())
        }
        ModelsCommand::Path { model } => {
            let entry = config.find_model(&model)?;
            anyhow::ensure!(entry.path.exists(), "{} is not downloaded: {}", entry.name, entry.fetch_hint());
            println!("{}", entry.path.display());
            Ok(())
        }
        ModelsCommand::Rm { name } => {
            let model = store.remove(&name)?;
            println!("removed {} ({})", model.name, store.path_of(&model).display());
            Ok(())
        }
    }
}

/// Bytes, speed and time left on stderr; nothing when stderr is not a terminal.
fn download_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("downloading {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta} left");
    bar.set_style(style.unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

fn list(config: &Config) -> anyhow::Result<()> {
    for entry in config.models() {
        println!("{}", entry.name);
        println!("  path: {}", entry.path.display());
        if let Some(source) = &entry.source {
            println!("  source: {source}");
        }
        if !entry.path.exists() {
            println!("  status: not downloaded ({})", entry.fetch_hint());
            continue;
        }
        let file = match GgufFile::open(&entry.path) {
            Ok(file) => file,
            Err(e) => {
                println!("  status: unreadable: {e}");
                continue;
            }
        };
        println!("  size: {:.1} MB, GGUF v{}, {} tensors", file.file_len() as f64 / 1e6, file.version, file.tensors.len());
        match LlamaConfig::from_gguf(&file) {
            Ok(c) => {
                println!("  architecture: {}", c.architecture);
                println!(
                    "  layers: {}, d_model: {}, heads: {} ({} KV), head dim: {}, ffn: {}",
                    c.n_layer, c.d_model, c.n_head, c.n_kv_head, c.head_dim, c.d_ff
                );
                println!("  vocab: {}, context: {}, RoPE base: {}, RMS eps: {}", c.vocab, c.context_length, c.rope_base, c.rms_eps);
            }
            Err(e) => println!("  status: unsupported: {e}"),
        }
        let mut types: Vec<String> = Vec::new();
        for t in &file.tensors {
            let name = format!("{:?}", t.ty);
            if !types.contains(&name) {
                types.push(name);
            }
        }
        println!("  tensor types: {}", types.join(", "));
    }
    Ok(())
}
