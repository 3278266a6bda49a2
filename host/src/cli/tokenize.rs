//! `crust tokenize`: text to token ids, through the configured tokenize
//! provider — exactly what an inferlet's `tokenizer.tokenize` returns.

use super::model::{OpenModel, TextInput};
use crate::config::Config;

/// Print the token ids of a text (special tokens written in it are parsed; no BOS is added).
#[derive(clap::Args)]
pub(crate) struct TokenizeArgs {
    #[command(flatten)]
    model: super::ModelFlag,
    #[command(flatten)]
    input: TextInput,
    /// Print `{"tokens": [...]}` instead of space-separated ids.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(config: &Config, args: TokenizeArgs) -> anyhow::Result<()> {
    let mut config = config.clone();
    args.model.apply(&mut config)?;
    let text = args.input.read()?;
    let tokens = OpenModel::open(&config, None).await?.tokenize(&text).await?;
    if args.json {
        println!("{}", serde_json::json!({ "tokens": tokens }));
    } else {
        println!("{}", tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(" "));
    }
    Ok(())
}
