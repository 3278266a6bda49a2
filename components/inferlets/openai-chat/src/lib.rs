//! `openai-chat`: what answers `crust serve`'s `/v1/chat/completions` and
//! `/v1/completions`. The host validates the HTTP request and passes it as
//! one JSON argument; this inferlet fills the prompt once (importing a
//! shared system prompt's pages when another request already ran them),
//! forks it `n` times (the forks share its KV pages), generates, and reports
//! through `message.send`, one JSON object per message:
//!
//! - `{"prompt_tokens": N, "cached_tokens": C}` once, first; or instead
//!   `{"error": "…", "code": "…", "param": "…"}`, a request it cannot take
//!   (too long for the model, or asking for what it does not do: `extra`,
//!   the fields the host does not read, see `unsupported`);
//! - `{"warning": "…"}`, what the server should log (fields it ignored);
//! - `{"index": i, "text": "…"}` for each piece of choice `i`'s text, in
//!   order, with `"logprobs": [{"token", "logprob", "bytes", "top_logprobs"}]`
//!   for the piece's tokens when the request asked for them;
//! - `{"index": i, "finish_reason": "stop"|"length", "completion_tokens": M}` when choice `i` ends.
//!
//! Replace it with your own inferlet (config `server.openai_inferlet`) to
//! change how requests are answered: it only has to speak this.

mod prefix_cache;
mod unsupported;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crust_sdk::{Draw, Finish, Model, Sampler, Stop, TokenLogprob, io, join_all};

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
    top_k: Option<u32>,
    #[serde(default)]
    min_p: Option<f32>,
    #[serde(default)]
    stop: Vec<String>,
    n: usize,
    #[serde(default)]
    seed: Option<u64>,
    /// Alternatives to report with each token's log-probability; none: no log-probabilities.
    #[serde(default)]
    logprobs: Option<u32>,
    /// Most tokens one context may hold: prompt and completion together.
    context_length: usize,
    /// KV pages this instance may hold (the prompt's and every choice's).
    kv_pages: usize,
    /// KV pages the shared-prompt cache may keep (0: no cache).
    #[serde(default)]
    prefix_cache_pages: usize,
    /// Who asked: the cache's bookkeeping is kept per user.
    #[serde(default)]
    user: String,
    /// The request's fields the host does not read.
    #[serde(default)]
    extra: serde_json::Map<String, Value>,
    /// Fields OpenAI's API does not have are ignored (with a warning), not refused.
    #[serde(default)]
    lenient: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Report<'a> {
    Prompt {
        prompt_tokens: usize,
        cached_tokens: usize,
    },
    Error {
        error: String,
        code: &'static str,
        param: String,
    },
    Warning {
        warning: String,
    },
    Text {
        index: usize,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<Value>>,
    },
    Finish {
        index: usize,
        finish_reason: &'static str,
        completion_tokens: usize,
    },
}

fn report(report: &Report) {
    io::send(&serde_json::to_string(report).expect("reports encode"));
}

/// The prompt's tokens, the leading system messages' first (they are what requests share).
fn prompt_tokens(model: &Model, request: &Request) -> Result<(Vec<u32>, Vec<u32>), String> {
    if let Some(prompt) = &request.prompt {
        return Ok((vec![], model.tokenizer.tokenize(prompt)));
    }
    let (mut system, mut rest) = (vec![], vec![]);
    let last = request.messages.len().saturating_sub(1);
    for (i, (role, content)) in request.messages.iter().enumerate() {
        let text = model.render_chat(&[(role, content)], i == last, i == 0)?;
        let leading = role == "system" && rest.is_empty();
        (if leading { &mut system } else { &mut rest }).extend(model.tokenizer.tokenize(&text));
    }
    Ok((system, rest))
}

/// The most tokens each of `n` choices may generate within `kv_pages`. The
/// prompt's pages are held once; each choice re-runs the prompt's last,
/// partial page (a whole one if none is partial) on pages of its own.
fn room_in_pages(prompt_len: usize, page: usize, n: usize, kv_pages: usize) -> usize {
    let shared = prompt_len.saturating_sub(1) / page;
    let rerun = prompt_len - shared * page;
    let per_choice = kv_pages.saturating_sub(prompt_len.div_ceil(page)) / n.max(1);
    (per_choice * page).saturating_sub(rerun)
}

/// One token's log-probability as OpenAI's chat API shapes it; `vocabulary`
/// gives each token's bytes (part of a character, for some).
fn logprob_json(vocabulary: &[Vec<u8>], entry: &TokenLogprob) -> Value {
    let token = |id: u32, logprob: f32| {
        let bytes = vocabulary.get(id as usize).map_or(&[][..], Vec::as_slice);
        json!({"token": String::from_utf8_lossy(bytes), "logprob": logprob, "bytes": bytes})
    };
    let mut value = token(entry.token, entry.logprob);
    value["top_logprobs"] = entry.top.iter().map(|&(id, lp)| token(id, lp)).collect();
    value
}

async fn run() -> Result<(), String> {
    let arguments = crust_sdk::runtime::get_arguments();
    let [request] = &arguments[..] else { return Err("expects one argument: the request as JSON".into()) };
    let request: Request = serde_json::from_str(request).map_err(|e| format!("a malformed request: {e}"))?;
    let chat = request.prompt.is_none();
    if let Some(refusal) = unsupported::refusal(chat, &request.extra, request.n, request.lenient) {
        report(&Report::Error { error: refusal.message, code: refusal.code, param: refusal.param });
        return Ok(());
    }
    let unknown = unsupported::unknown(chat, &request.extra);
    if !unknown.is_empty() {
        report(&Report::Warning { warning: format!("ignored fields the API does not have (server.openai_lenient): {}", unknown.join(", ")) });
    }
    let model = Model::by_name(&request.model)?;
    let (system, rest) = prompt_tokens(&model, &request)?;
    let prompt_len = system.len() + rest.len();
    let prompt_param = if request.prompt.is_some() { "prompt" } else { "messages" };
    if prompt_len >= request.context_length {
        let error = format!(
            "the prompt is {prompt_len} tokens; this model's context holds {}, with room for at least one more token",
            request.context_length
        );
        report(&Report::Error { error, code: "context_length_exceeded", param: prompt_param.into() });
        return Ok(());
    }
    let room = room_in_pages(prompt_len, model.page_size as usize, request.n, request.kv_pages);
    if room == 0 {
        let error = format!(
            "the prompt ({prompt_len} tokens) and {} choice(s) need more KV pages than one request may hold ({}, limits.kv_pages_per_instance)",
            request.n, request.kv_pages
        );
        report(&Report::Error { error, code: "context_length_exceeded", param: if request.n > 1 { "n" } else { prompt_param }.into() });
        return Ok(());
    }
    let (mut prefix, cached_tokens) = prefix_cache::start(&model, &system, request.prefix_cache_pages, &request.user).await;
    prefix.fill_tokens(&rest);
    report(&Report::Prompt { prompt_tokens: prompt_len, cached_tokens });
    prefix.flush().await;

    // top_p 0 keeps only the most likely token: greedy.
    let sampler = match (request.temperature, request.top_p) {
        (t, p) if t <= 0.0 || p == Some(0.0) => Sampler::Greedy,
        (temperature, top_p) => Sampler::Sample { temperature, top_k: request.top_k, top_p, min_p: request.min_p },
    };
    let max_tokens = request.max_tokens.min(request.context_length - prompt_len).min(room);
    let vocabulary = std::rc::Rc::new(if request.logprobs.is_some() { model.tokenizer.vocabulary() } else { vec![] });
    let stop = Stop { max_tokens, tokens: model.stop_tokens.clone(), strings: request.stop.clone() };
    let choices = (0..request.n).map(|index| {
        let (mut context, stop, vocabulary) = (prefix.fork(), stop.clone(), vocabulary.clone());
        // Each choice its own stream of draws, all fixed by the request's seed.
        let draw = Draw { seed: request.seed.map(|s| s.wrapping_add(index as u64)), logprobs: request.logprobs };
        async move {
            let generation = context
                .generate_with(sampler, draw, &stop, |text, logprobs| {
                    let logprobs = draw.logprobs.map(|_| logprobs.iter().map(|l| logprob_json(&vocabulary, l)).collect());
                    report(&Report::Text { index, text, logprobs })
                })
                .await?;
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
