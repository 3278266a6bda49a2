//! `parallel-generation`: one prompt, forked into N continuations that
//! decode together (their passes share batches and the prompt's KV pages).
//!
//! Arguments: `--prompt TEXT` (required), `-n N` (default 3), `--max-tokens N`
//! (default 32), `--temperature T` (default 0.8; 0 is greedy).
//! Prints `[i] text` per continuation, in order.

use crust_sdk::{Context, Model, Sampler, Stop, join_all};

async fn run() -> Result<(), String> {
    let (mut prompt, mut n, mut max_tokens, mut temperature) = (None, 3usize, 32usize, 0.8f32);
    let mut args = crust_sdk::runtime::get_arguments().into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: `{value}` is not a valid value");
        match flag.as_str() {
            "--prompt" => prompt = Some(value.clone()),
            "-n" => n = value.parse().map_err(|_| bad())?,
            "--max-tokens" => max_tokens = value.parse().map_err(|_| bad())?,
            "--temperature" => temperature = value.parse().map_err(|_| bad())?,
            other => return Err(format!("unknown argument `{other}`; usage: --prompt TEXT [-n N] [--max-tokens N] [--temperature T]")),
        }
    }
    let prompt = prompt.ok_or("--prompt TEXT is required")?;
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
