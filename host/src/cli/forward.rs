//! `crust forward`: a teacher-forced pass over a text, showing what the model
//! predicts after every token.

use super::model::{OpenModel, TextInput};
use crate::config::Config;
use crate::engine::sequence::Sequence;

/// Run the model over a text and print, for every position, its top-k next tokens.
#[derive(clap::Args)]
pub(crate) struct ForwardArgs {
    #[command(flatten)]
    model: super::ModelFlag,
    #[command(flatten)]
    input: TextInput,
    /// Next-token candidates per position.
    #[arg(long, default_value_t = 5)]
    top_k: u32,
    /// Print one JSON object: {"tokens": [...], "positions": [{"topk": [{"id", "text", "p"}]}]}.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(config: &Config, args: ForwardArgs) -> anyhow::Result<()> {
    let mut config = config.clone();
    args.model.apply(&mut config)?;
    let text = args.input.read()?;
    let mut model = OpenModel::open(&config, None).await?;
    let tokens = model.tokenize(&text).await?;
    anyhow::ensure!(!tokens.is_empty(), "the text has no tokens");
    let distributions = Sequence::new(model.service().await?).teacher_forced(&tokens, args.top_k).await?;
    let mut positions = Vec::new();
    for (i, (&token, (ids, probs))) in tokens.iter().zip(&distributions).enumerate() {
        let mut next = Vec::new();
        for (&id, &p) in ids.iter().zip(probs) {
            next.push((id, model.detokenize(&[id]).await?, p));
        }
        if args.json {
            let topk: Vec<_> = next.iter().map(|(id, text, p)| serde_json::json!({"id": id, "text": text, "p": p})).collect();
            positions.push(serde_json::json!({ "topk": topk }));
        } else {
            let next: Vec<String> = next.iter().map(|(_, text, p)| format!("{text:?} {p:.3}")).collect();
            let shown = format!("{:?}", model.detokenize(&[token]).await?);
            println!("{i:>4} {token:>6} {shown:<16} → {}", next.join(", "));
        }
    }
    if args.json {
        println!("{}", serde_json::json!({"tokens": tokens, "positions": positions}));
    }
    Ok(())
}
