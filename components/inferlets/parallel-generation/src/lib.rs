//! `parallel-generation`: one prompt, forked into N continuations that
//! decode together (their passes share batches and the prompt's KV pages).
//!
//! Arguments: `--prompt TEXT` (required), `-n N` (default 3), `--max-tokens N`
//! (default 32), `--temperature T` (default 0.8; 0 is greedy).
//! Prints `[i] text` per continuation, in order.

use crust_sdk::{Context, Flags, Model, Sampler, Stop, join_all};

async fn run() -> Result<(), String> {
    let flags = Flags::new("parallel-generation", "one prompt forked into N continuations that decode together")
        .value("--prompt", "TEXT", "the user's message (required)")
        .value_or("-n", "N", "3", "how many continuations")
        .value_or("--max-tokens", "N", "32", "the most tokens of each")
        .value_or("--temperature", "T", "0.8", "sampling temperature; 0 is greedy");
    let Some(args) = flags.parse()? else { return Ok(()) };
    let (prompt, n, max_tokens, temperature): (String, usize, usize, f32) =
        (args.get("--prompt")?, args.get("-n")?, args.get("--max-tokens")?, args.get("--temperature")?);
    let model = Model::first()?;
    let mut prefix = Context::new(&model);
    prefix.fill_message("user", &prompt, true)?;
    prefix.flush().await;
    let sampler = if temperature <= 0.0 { Sampler::Greedy } else { Sampler::Sample { temperature, top_k: None, top_p: None, min_p: None } };
    let stop = Stop { max_tokens, tokens: model.stop_tokens.clone(), strings: vec![] };
    let forks: Vec<Context> = (0..n).map(|_| prefix.fork()).collect();
    let runs = forks.into_iter().map(|mut ctx| {
        let stop = stop.clone();
        async move { ctx.generate(sampler, &stop, |_| {}).await }
    });
    let results = join_all(runs.collect()).await;
    for (i, result) in results.into_iter().enumerate() {
        println!("[{i}] {}", result?.text.trim());
    }
    Ok(())
}

crust_sdk::entry!(async run);
