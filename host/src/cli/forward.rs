//! `crust forward`: a teacher-forced pass over a text, showing what the model
//! predicts after every token.

use super::model::{TextInput, load};
use crate::config::Config;

/// Run the model over a text and print, for every position, its top-k next tokens.
#[derive(clap::Args)]
pub(crate) struct ForwardArgs {
    /// Model name (default: the first configured model).
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    input: TextInput,
    /// Next-token candidates per position.
    #[arg(long, default_value_t = 5)]
    top_k: u32,
    /// Print one JSON object: {"tokens": [...], "positions": [{"topk": [{"id", "text", "p"}]}]}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(config: &Config, args: ForwardArgs) -> anyhow::Result<()> {
    let text = args.input.read()?;
    let mut model = load(config, args.model.as_deref())?;
    let tokens = model.tokenizer.encode(&text)?;
    anyhow::ensure!(!tokens.is_empty(), "the text has no tokens");
    let distributions = model.teacher_forced(&tokens, args.top_k)?;
    if args.json {
        let positions: Vec<serde_json::Value> = distributions
            .iter()
            .map(|(ids, probs)| {
                let topk: Vec<serde_json::Value> = ids
                    .iter()
                    .zip(probs)
                    .map(|(&id, &p)| serde_json::json!({"id": id, "text": model.tokenizer.decode(&[id]), "p": p}))
                    .collect();
                serde_json::json!({"topk": topk})
            })
            .collect();
        println!("{}", serde_json::json!({"tokens": tokens, "positions": positions}));
    } else {
        for (i, (&token, (ids, probs))) in tokens.iter().zip(&distributions).enumerate() {
            let next: Vec<String> = ids.iter().zip(probs).map(|(&id, p)| format!("{:?} {:.3}", model.tokenizer.decode(&[id]), p)).collect();
            println!("{i:>4} {:>6} {:<16} → {}", token, format!("{:?}", model.tokenizer.decode(&[token])), next.join(", "));
        }
    }
    Ok(())
}
