//! `crust generate`: a plain chat completion straight through the engine.

use std::io::Write;

use super::model::load;
use crate::config::Config;
use crate::engine::loaded::GenerateOptions;
use crate::engine::tokenizer::Tokenizer;

/// Answer one chat message with the model's chat template, streaming the reply.
#[derive(clap::Args)]
pub(crate) struct GenerateArgs {
    /// Model name (default: the first configured model).
    #[arg(long)]
    model: Option<String>,
    /// The user's message.
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn run(config: &Config, args: GenerateArgs) -> anyhow::Result<()> {
    let mut model = load(config, args.model.as_deref())?;
    let prompt = model.chat_prompt(&args.prompt)?;
    let tokens = model.tokenizer.encode(&prompt)?;
    let options = GenerateOptions { max_tokens: args.max_tokens, temperature: args.temperature, top_p: args.top_p, seed: args.seed };
    let mut shown = String::new();
    let mut ids = Vec::new();
    // Stream whole characters: decode everything so far, print what is new.
    let mut on_token = |tokenizer: &Tokenizer, token: u32| {
        ids.push(token);
        let text = tokenizer.decode(&ids);
        if let Some(new) = text.strip_prefix(shown.as_str()).filter(|n| !n.ends_with('\u{fffd}')) {
            print!("{new}");
            let _ = std::io::stdout().flush();
            shown = text;
        }
    };
    model.generate(&tokens, &options, &mut on_token)?;
    let text = model.tokenizer.decode(&ids);
    if let Some(rest) = text.strip_prefix(shown.as_str()) {
        print!("{rest}");
    }
    println!();
    Ok(())
}
