//! `text-completion`: one prompt, one answer, streamed to stdout.
//!
//! Arguments: `--prompt TEXT` (required), `--system TEXT`, `--raw` (no chat
//! template), `--return` (give the completion as the return value — what a
//! Pie client reads from the `completed` event — instead of streaming it), `--max-tokens N` (default 64), `--temperature T` (default 0:
//! greedy), `--top-p P`, `--model NAME` (default: the host's first).

use std::io::Write;

use crust_sdk::{Context, Model, Sampler, Stop};

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

fn parse(args: Vec<String>) -> Result<Options, String> {
    let mut o =
        Options { prompt: String::new(), system: None, raw: false, give_return: false, max_tokens: 64, temperature: 0.0, top_p: None, model: None };
    let mut prompt = None;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<f32>().map_err(|_| format!("{flag}: `{v}` is not a number"));
        match flag.as_str() {
            "--prompt" => prompt = Some(value()?),
            "--system" => o.system = Some(value()?),
            "--raw" => o.raw = true,
            "--return" => o.give_return = true,
            "--max-tokens" => o.max_tokens = value()?.parse().map_err(|_| format!("{flag} needs a whole number"))?,
            "--temperature" => o.temperature = number(value()?)?,
            "--top-p" => o.top_p = Some(number(value()?)?),
            "--model" => o.model = Some(value()?),
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: --prompt TEXT [--system TEXT] [--raw] [--return] [--max-tokens N] [--temperature T] [--top-p P] [--model NAME]"
                ));
            }
        }
    }
    o.prompt = prompt.ok_or("--prompt TEXT is required")?;
    Ok(o)
}

async fn run() -> Result<(), String> {
    let o = parse(crust_sdk::runtime::get_arguments())?;
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
