//! `crust forward`: a teacher-forced pass over a text, showing what the model
//! predicts after every token.

use std::path::PathBuf;

use super::model::{input_text, load};
use crate::config::Config;

/// Run the model over a text and print, for every position, its top-k next tokens.
#[derive(clap::Args)]
pub(crate) struct ForwardArgs {
    /// Model name (default: the first configured model).
    #[arg(long)]
    model: Option<String>,
    /// The text; special tokens written in it (e.g. `<|im_start|>`) are parsed as such.
    #[arg(long, conflicts_with = "text_file")]
    text: Option<String>,
    /// Read the text from a file.
    #[arg(long, value_name = "FILE")]
    text_file: Option<PathBuf>,
    /// Next-token candidates per position.
    #[arg(long, default_value_t = 5)]
    top_k: u32,
    /// Print one JSON object: {"tokens": [...], "positions": [{"topk": [{"id", "text", "p"}]}]}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(config: &Config, args: ForwardArgs) -> anyhow::Result<()> {
    let text = input_text(args.text, args.text_file)?;
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
