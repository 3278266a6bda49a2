//! `chat`: a multi-turn conversation. Each client message is a user turn;
//! the answer goes back with `message.send`. The context (and its KV pages)
//! is kept between turns: `/reset` starts the conversation over, `/exit`
//! (or the client going away) ends it. `crust chat` runs it.
//!
//! Arguments: `--system TEXT`, `--max-tokens N` (per answer, default 48),
//! `--temperature T` (default 0: greedy), `--stream` (each answer is written
//! to stdout as it is generated, and its message is empty: it only says the
//! turn is over).

use std::io::Write;

use crust_sdk::{Context, Flags, Model, Sampler, Stop, io};

struct Options {
    system: Option<String>,
    max_tokens: usize,
    temperature: f32,
    stream: bool,
}

/// The options, or `None` when `--help` was asked for.
fn options() -> Result<Option<Options>, String> {
    let flags = Flags::new("chat", "a conversation: each message is a user turn, answered with a message; /reset starts over, /exit ends")
        .value("--system", "TEXT", "a system message that opens the conversation")
        .value_or("--max-tokens", "N", "48", "the most tokens of one answer")
        .value_or("--temperature", "T", "0", "sampling temperature; 0 is greedy (above it, min-p 0.05)")
        .switch("--stream", "write each answer to stdout as it is generated; its message is then empty");
    let Some(args) = flags.parse()? else { return Ok(None) };
    Ok(Some(Options {
        system: args.optional("--system")?,
        max_tokens: args.get("--max-tokens")?,
        temperature: args.get("--temperature")?,
        stream: args.on("--stream"),
    }))
}

/// A conversation's start: the system message, if any.
fn fresh(model: &Model, system: Option<&str>) -> Result<Context, String> {
    let mut ctx = Context::new(model);
    if let Some(system) = system {
        ctx.fill_message("system", system, false)?;
    }
    Ok(ctx)
}

async fn run() -> Result<(), String> {
    let Some(o) = options()? else { return Ok(()) };
    let model = Model::first()?;
    let mut ctx = fresh(&model, o.system.as_deref())?;
    let stop = Stop { max_tokens: o.max_tokens, tokens: model.stop_tokens.clone(), strings: vec![] };
    let sampler = if o.temperature <= 0.0 {
        Sampler::Greedy
    } else {
        Sampler::Sample { temperature: o.temperature, top_k: None, top_p: None, min_p: Some(0.05) }
    };
    let mut turns = 0;
    loop {
        let user = io::receive().await;
        match user.trim() {
            "" | "/exit" => break,
            "/reset" => {
                // Dropping the context gives its pages back.
                ctx = fresh(&model, o.system.as_deref())?;
                io::send(if o.stream { "" } else { "(a new conversation)" });
                continue;
            }
            _ => {}
        }
        ctx.fill_message("user", &user, true)?;
        let mut stdout = std::io::stdout();
        let mut started = false;
        let answer = ctx
            .generate(sampler, &stop, |text| {
                if o.stream {
                    // The model's leading spaces or newlines are not part of the answer.
                    let text = if started { text } else { text.trim_start() };
                    started |= !text.is_empty();
                    let _ = stdout.write_all(text.as_bytes());
                    let _ = stdout.flush();
                }
            })
            .await?;
        // The answer's end-of-turn token is filled already; ChatML wants a newline after it.
        ctx.fill("\n");
        if o.stream {
            println!();
            io::send("");
        } else {
            io::send(answer.text.trim());
        }
        turns += 1;
    }
    crust_sdk::runtime::set_return(&format!("{turns} turn{}", if turns == 1 { "" } else { "s" }));
    Ok(())
}

crust_sdk::entry!(async run);
