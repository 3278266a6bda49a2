//! `agent-swarm`: N instances cooperating over pub/sub on one topic.
//!
//! Each agent subscribes, announces itself, and re-announces whenever it
//! sees an agent it did not know (so late joiners learn of everyone). Once
//! it knows all N, every agent is subscribed: it asks the model for a short
//! idea on the theme and publishes it, then collects all N ideas and prints
//! them, one per line, by agent.
//!
//! Arguments: `--id I --agents N [--topic T] [--theme TEXT] [--max-tokens N]`.

use std::collections::{BTreeMap, BTreeSet};

use crust_sdk::{Context, Model, Sampler, Stop, io};

async fn run() -> Result<(), String> {
    let (mut id, mut agents, mut topic, mut theme, mut max_tokens) = (None, None, "swarm".to_string(), "a name for a cat".to_string(), 8usize);
    let mut args = crust_sdk::runtime::get_arguments().into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|_| format!("{flag}: `{value}` is not a number"));
        match flag.as_str() {
            "--id" => id = Some(number()?),
            "--agents" => agents = Some(number()?),
            "--topic" => topic = value.clone(),
            "--theme" => theme = value.clone(),
            "--max-tokens" => max_tokens = number()?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let (id, agents) = (id.ok_or("--id I is required")?, agents.ok_or("--agents N is required")?);
    let subscription = io::subscribe(&topic);
    let announce = || io::broadcast(&topic, &format!("joined {id}"));
    announce();
    let mut known = BTreeSet::from([id]);
    let mut ideas = BTreeMap::new();
    let mut published = false;
    while ideas.len() < agents {
        if known.len() == agents && !published {
            let model = Model::first()?;
            let mut ctx = Context::new(&model);
            ctx.fill_message("user", &format!("Suggest {theme}. Answer with one or two words."), true)?;
            let stop = Stop { max_tokens, tokens: model.stop_tokens.clone(), strings: vec!["\n".into()] };
            let idea = ctx.generate(Sampler::Greedy, &stop, |_| {}).await?;
            io::broadcast(&topic, &format!("idea {id} {}", idea.text.trim()));
            published = true;
        }
        let message = subscription.next().await;
        if let Some(other) = message.strip_prefix("joined ") {
            let other: usize = other.parse().map_err(|_| format!("bad message {message:?}"))?;
            if known.insert(other) {
                announce();
            }
        } else if let Some(rest) = message.strip_prefix("idea ") {
            let (who, text) = rest.split_once(' ').unwrap_or((rest, ""));
            ideas.insert(who.parse::<usize>().map_err(|_| format!("bad message {message:?}"))?, text.to_string());
        }
    }
    for (who, idea) in ideas {
        println!("agent {who}: {idea}");
    }
    Ok(())
}

crust_sdk::entry!(async run);
