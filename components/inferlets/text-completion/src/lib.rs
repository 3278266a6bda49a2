//! `text-completion`: one prompt, one answer, streamed to stdout.
//!
//! Flags (`--help` lists them): `--prompt TEXT` (required), `--system TEXT`,
//! `--raw` (no chat template), `--return` (give the completion as the return
//! value — what a Pie client reads from the `completed` event — instead of
//! streaming it), `--max-tokens N` (default 64), `--temperature T` (default
//! 0: greedy), `--top-p P`, `--model NAME` (default: the host's first).

use std::io::Write;

use crust_sdk::{Context, Flags, Model, Sampler, Stop};

struct Options {
    prompt: String,
    system: Option<String>,
    raw: bool,
    give_return: bool,
    max_tokens: usize,
    temperature: f32,
    top_p: Option<f32>,
    model: Option<String>,
}

/// The options, or `None` when `--help` was asked for.
fn parse() -> Result<Option<Options>, String> {
    let flags = Flags::new("text-completion", "one prompt, one answer from the model, streamed to stdout")
        .value("--prompt", "TEXT", "the user's message (required)")
        .value("--system", "TEXT", "a system message before it")
        .switch("--raw", "no chat template: the model continues the prompt as written")
        .switch("--return", "give the answer as the return value instead of streaming it")
        .value_or("--max-tokens", "N", "64", "the most tokens to generate")
        .value_or("--temperature", "T", "0", "sampling temperature; 0 is greedy")
        .value("--top-p", "P", "draw only from the likeliest tokens whose probabilities add up to P")
        .value("--model", "NAME", "the model (default: the host's first)");
    let Some(args) = flags.parse()? else { return Ok(None) };
    Ok(Some(Options {
        prompt: args.get("--prompt")?,
        system: args.optional("--system")?,
        raw: args.on("--raw"),
        give_return: args.on("--return"),
        max_tokens: args.get("--max-tokens")?,
        temperature: args.get("--temperature")?,
        top_p: args.optional("--top-p")?,
        model: args.optional("--model")?,
    }))
}

async fn run() -> Result<(), String> {
    let Some(o) = parse()? else { return Ok(()) };
    let model = match &o.model {
        Some(name) => Model::by_name(name)?,
        None => Model::first()?,
    };
    let mut ctx = Context::new(&model);
    if o.raw {
        ctx.fill(&o.prompt);
    } else {
        if let Some(system) = &o.system {
            ctx.fill_message("system", system, false)?;
        }
        ctx.fill_message("user", &o.prompt, true)?;
    }
    let sampler = match o.temperature {
        t if t <= 0.0 => Sampler::Greedy,
        t => Sampler::Sample { temperature: t, top_k: None, top_p: o.top_p, min_p: None },
    };
    let stop = Stop { max_tokens: o.max_tokens, tokens: model.stop_tokens.clone(), strings: vec![] };
    let mut stdout = std::io::stdout();
    let generation = ctx
        .generate(sampler, &stop, |text| {
            if !o.give_return {
                let _ = stdout.write_all(text.as_bytes());
                let _ = stdout.flush();
            }
        })
        .await?;
    if o.give_return {
        crust_sdk::runtime::set_return(&generation.text);
    } else {
        println!();
    }
    Ok(())
}

crust_sdk::entry!(async run);
