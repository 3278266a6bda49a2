//! `chat`: a multi-turn conversation. Each client message is a user turn;
//! the answer goes back with `message.send`. The context (and its KV pages)
//! is kept between turns. Ends when the client sends `/exit` or goes away.
//!
//! Arguments: `--system TEXT`, `--max-tokens N` (per answer, default 48).

use crust_sdk::{Context, Model, Sampler, Stop, io};

async fn run() -> Result<(), String> {
    let (mut system, mut max_tokens) = (None, 48usize);
    let mut args = crust_sdk::runtime::get_arguments().into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--system" => system = Some(value),
            "--max-tokens" => max_tokens = value.parse().map_err(|_| format!("--max-tokens: `{value}` is not a number"))?,
            other => return Err(format!("unknown argument `{other}`; usage: [--system TEXT] [--max-tokens N]")),
        }
    }
    let model = Model::first()?;
    let mut ctx = Context::new(&model);
    if let Some(system) = &system {
        ctx.fill_message("system", system, false)?;
    }
    let stop = Stop { max_tokens, tokens: model.stop_tokens.clone(), strings: vec![] };
    let mut turns = 0;
    loop {
        let user = io::receive().await;
        if user.is_empty() || user == "/exit" {
            break;
        }
        ctx.fill_message("user", &user, true)?;
        let answer = ctx.generate(Sampler::Greedy, &stop, |_| {}).await?;
        // The answer's end-of-turn token is filled already; ChatML wants a newline after it.
        ctx.fill("\n");
        io::send(answer.text.trim());
        turns += 1;
    }
    crust_sdk::runtime::set_return(&format!("{turns} turns"));
    Ok(())
}

crust_sdk::entry!(async run);
