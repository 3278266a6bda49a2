//! `crust models`: the models this host has, and what their files say.

use crate::config::Config;
use crate::engine::gguf::GgufFile;
use crate::engine::model::LlamaConfig;

/// List the configured models and their metadata (no GPU needed).
#[derive(clap::Args)]
pub(crate) struct ModelsArgs {}

pub(crate) fn run(config: &Config, _args: ModelsArgs) -> anyhow::Result<()> {
    for entry in config.models() {
        println!("{}", entry.name);
        println!("  path: {}", entry.path.display());
        if !entry.path.exists() {
            println!("  status: not downloaded ({})", crate::models::FETCH_MODEL_HINT);
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
