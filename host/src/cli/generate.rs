//! `crust generate`: a plain chat completion, through the engine service
//! and the tokenize provider, with no inferlet.

use std::io::Write;

use super::model::OpenModel;
use crate::config::Config;
use crate::engine::sequence::{GenerateOptions, Sequence};

/// Answer one chat message with the model's chat template, streaming the reply.
#[derive(clap::Args)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    model: super::ModelFlag,
    /// The user's message.
    #[arg(long)]
    prompt: String,
    /// A system message before it.
    #[arg(long)]
    system: Option<String>,
    /// The most tokens to generate; the reply also ends at the model's end-of-turn token.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling: draw only from the likeliest tokens whose probabilities add up to P.
    #[arg(long, value_name = "P")]
    top_p: Option<f32>,
    /// The random seed of the draws: the same seed gives the same reply.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Prompts at least this long get a note while they prefill.
const LONG_PROMPT: usize = 64;

pub(crate) async fn run(config: &Config, args: GenerateArgs) -> anyhow::Result<()> {
    let mut config = config.clone();
    args.model.apply(&mut config)?;
    let mut model = OpenModel::open(&config, None).await?;
    let prompt = model.model.metadata().await?.chat_prompt(args.system.as_deref(), &args.prompt)?;
    let tokens = model.tokenize(&prompt).await?;
    let stops = model.stop_tokens().await?;
    let options = GenerateOptions { max_tokens: args.max_tokens, temperature: args.temperature, top_p: args.top_p, seed: args.seed };
    let mut sequence = Sequence::new(model.service().await?);
    // Stream whole characters: decode everything so far, print what is new.
    let (mut shown, mut ids) = (String::new(), Vec::new());
    // A long prompt takes a while on a CPU adapter: say so, on a terminal only, until the first token.
    let note = std::io::IsTerminal::is_terminal(&std::io::stderr()) && tokens.len() >= LONG_PROMPT;
    if note {
        eprint!("prefilling {} tokens…", tokens.len());
    }
    let mut next = sequence.next_token(&tokens, options.sampler(0)).await?;
    if note {
        eprint!("\r\x1b[K");
    }
    while !stops.contains(&next) && ids.len() < options.max_tokens {
        ids.push(next);
        let text = model.detokenize(&ids).await?;
        if let Some(new) = text.strip_prefix(shown.as_str()).filter(|n| !n.ends_with('\u{fffd}')) {
            print!("{new}");
            let _ = std::io::stdout().flush();
            shown = text;
        }
        if ids.len() == options.max_tokens {
            break;
        }
        next = sequence.next_token(&[next], options.sampler(ids.len() as u64)).await?;
    }
    let text = model.detokenize(&ids).await?;
    if let Some(rest) = text.strip_prefix(shown.as_str()) {
        print!("{rest}");
    }
    println!();
    Ok(())
}
