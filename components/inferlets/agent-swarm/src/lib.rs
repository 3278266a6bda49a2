//! `agent-swarm`: N instances cooperating over pub/sub on one topic.
//!
//! Each agent subscribes, announces itself, and re-announces whenever it
//! sees an agent it did not know (so late joiners learn of everyone). Once
//! it knows all N, every agent is subscribed: it asks the model for a short
//! idea on the theme and publishes it, then collects all N ideas and prints
//! them, one per line, by agent.
//!
//! Flags (`--help` lists them): `--id I --agents N [--topic T] [--theme TEXT] [--max-tokens N]`.

use std::collections::{BTreeMap, BTreeSet};

use crust_sdk::{Context, Flags, Model, Sampler, Stop, io};

async fn run() -> Result<(), String> {
    let flags = Flags::new("agent-swarm", "one of N agents that meet on a topic, each suggest an idea, and print all N")
        .value("--id", "I", "this agent's number (required)")
        .value("--agents", "N", "how many agents meet (required)")
        .value_or("--topic", "TOPIC", "swarm", "the topic they meet on")
        .value_or("--theme", "TEXT", "a name for a cat", "what the ideas are for")
        .value_or("--max-tokens", "N", "8", "the most tokens of one idea");
    let Some(args) = flags.parse()? else { return Ok(()) };
    let (id, agents): (usize, usize) = (args.get("--id")?, args.get("--agents")?);
    let (topic, theme, max_tokens): (String, String, usize) = (args.get("--topic")?, args.get("--theme")?, args.get("--max-tokens")?);
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
