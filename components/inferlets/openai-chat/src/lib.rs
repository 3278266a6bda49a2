//! `openai-chat`: what answers `crust serve`'s `/v1/chat/completions` and
//! `/v1/completions`. The host validates the HTTP request and passes it as
//! one JSON argument; this inferlet fills the prompt once, forks it `n` times
//! (the forks share its KV pages), generates, and reports through
//! `message.send`, one JSON object per message:
//!
//! - `{"prompt_tokens": N}` once, first;
//! - `{"index": i, "text": "…"}` for each piece of choice `i`'s text, in order;
//! - `{"index": i, "finish_reason": "stop"|"length", "completion_tokens": M}` when choice `i` ends.
//!
//! Replace it with your own inferlet (config `server.openai_inferlet`) to
//! change how requests are answered: it only has to speak this.

use serde::{Deserialize, Serialize};

use crust_sdk::{Context, Finish, Model, Sampler, Stop, io, join_all};

#[derive(Deserialize)]
struct Request {
    model: String,
    /// Chat turns `(role, content)`; empty for a plain completion.
    #[serde(default)]
    messages: Vec<(String, String)>,
    /// A plain completion's prompt (no chat template).
    #[serde(default)]
    prompt: Option<String>,
    max_tokens: usize,
    temperature: f32,
    top_p: Option<f32>,
    #[serde(default)]
    stop: Vec<String>,
    n: usize,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Report<'a> {
    Prompt { prompt_tokens: usize },
    Text { index: usize, text: &'a str },
    Finish { index: usize, finish_reason: &'static str, completion_tokens: usize },
}

fn report(report: &Report) {
    io::send(&serde_json::to_string(report).expect("reports encode"));
}

async fn run() -> Result<(), String> {
    let arguments = crust_sdk::runtime::get_arguments();
    let [request] = &arguments[..] else { return Err("expects one argument: the request as JSON".into()) };
    let request: Request = serde_json::from_str(request).map_err(|e| format!("a malformed request: {e}"))?;
    let model = Model::by_name(&request.model)?;
    let mut prefix = Context::new(&model);
    match &request.prompt {
        Some(prompt) => prefix.fill(prompt),
        None => {
            let last = request.messages.len().saturating_sub(1);
            for (i, (role, content)) in request.messages.iter().enumerate() {
                prefix.fill_message(role, content, i == last)?;
            }
        }
    }
    report(&Report::Prompt { prompt_tokens: prefix.len() });
    prefix.flush().await;

    let sampler = match request.temperature {
        t if t <= 0.0 => Sampler::Greedy,
        temperature => Sampler::Sample { temperature, top_k: None, top_p: request.top_p, min_p: None },
    };
    let stop = Stop { max_tokens: request.max_tokens, tokens: model.stop_tokens.clone(), strings: request.stop.clone() };
    let choices = (0..request.n).map(|index| {
        let (mut context, stop) = (prefix.fork(), stop.clone());
        async move {
            let generation = context.generate(sampler, &stop, |text| report(&Report::Text { index, text })).await?;
            let finish_reason = match generation.finish {
                Finish::Stop => "stop",
                Finish::Length => "length",
            };
            report(&Report::Finish { index, finish_reason, completion_tokens: generation.tokens.len() });
            Ok::<(), String>(())
        }
    });
    join_all(choices.collect()).await.into_iter().collect()
}

crust_sdk::entry!(async run);
