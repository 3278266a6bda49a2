//! The OpenAI-compatible API: `GET /v1/models`, `GET /v1/models/{id}`,
//! `POST /v1/chat/completions`, `POST /v1/completions`. The host only checks the key and the request and
//! turns what the endpoint inferlet reports (see `openai-chat`) into an
//! OpenAI response or Server-Sent Events; the generation policy is the
//! inferlet's, replaceable by config (`server.openai_inferlet`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use crust_client::protocol::{EventCode, ServerMessage};
use serde_json::{Value, json};

use super::Server;
use super::auth::ANONYMOUS;
use super::instances::{Attachment, LaunchRequest, Served};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Completion,
}

/// An OpenAI-shaped error.
struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<String>,
}

impl ApiError {
    fn invalid(message: impl Into<String>, param: &'static str) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), kind: "invalid_request_error", param: Some(param.into()), code: None }
    }

    fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

pub async fn models(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(e) = user(&server, &headers) {
        return e.into_response();
    }
    let data: Vec<Value> =
        server.runtime.models().names().into_iter().map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "crust"})).collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}`: one model, or a 404 naming the ones there are.
pub async fn model(State(server): State<Arc<Server>>, headers: HeaderMap, axum::extract::Path(id): axum::extract::Path<String>) -> Response {
    if let Err(e) = user(&server, &headers) {
        return e.into_response();
    }
    match server.runtime.models().get(&id) {
        Some(model) => Json(json!({"id": model.name, "object": "model", "created": 0, "owned_by": "crust"})).into_response(),
        None => unknown_model(&server, &id).into_response(),
    }
}

fn unknown_model(server: &Server, name: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("the model `{name}` does not exist; this server has: {}", server.runtime.models().names().join(", ")),
        kind: "invalid_request_error",
        param: Some("model".into()),
        code: Some("model_not_found".into()),
    }
}

/// Any path or method the API does not have: an OpenAI-shaped 404 or 405, not an empty body.
pub async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let message = format!(
        "{method} {} is not part of this API (it has GET /v1/models, GET /v1/models/{{id}}, POST /v1/chat/completions, POST /v1/completions, GET /health)",
        uri.path()
    );
    ApiError { status: StatusCode::NOT_FOUND, message, kind: "invalid_request_error", param: None, code: Some("not_found".into()) }.into_response()
}

pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let message = format!("{} does not take {method}", uri.path());
    ApiError { status: StatusCode::METHOD_NOT_ALLOWED, message, kind: "invalid_request_error", param: None, code: Some("method_not_allowed".into()) }
        .into_response()
}

pub async fn chat_completions(State(server): State<Arc<Server>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    complete(server, headers, body, Kind::Chat).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn completions(State(server): State<Arc<Server>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    complete(server, headers, body, Kind::Completion).await.unwrap_or_else(IntoResponse::into_response)
}

/// `Authorization: Bearer <key>`, the key one of `server.tokens`.
fn user(server: &Server, headers: &HeaderMap) -> Result<String, ApiError> {
    if !server.auth.required() {
        return Ok(ANONYMOUS.to_string());
    }
    let key = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    key.and_then(|key| server.auth.user_of_token(key.trim())).ok_or(ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: "a missing or unknown API key: send `Authorization: Bearer <key>` with a key from server.tokens".into(),
        kind: "invalid_request_error",
        param: None,
        code: Some("invalid_api_key".into()),
    })
}

/// The request, checked and reduced to what the endpoint inferlet reads.
struct Checked {
    model: Arc<crate::models::Model>,
    stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    stream_usage: bool,
    n: usize,
    inferlet_request: Value,
}

/// Whether `check` reads `field` of a `kind` request; the endpoint inferlet gets the others as `extra`.
fn read_by_host(kind: Kind, field: &str) -> bool {
    const BOTH: &[&str] =
        &["model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "n", "stream", "stop", "stream_options", "seed", "logprobs"];
    BOTH.contains(&field)
        || match kind {
            Kind::Chat => ["messages", "max_completion_tokens", "top_logprobs"].contains(&field),
            Kind::Completion => field == "prompt",
        }
}

fn check(server: &Server, kind: Kind, body: &[u8]) -> Result<Checked, ApiError> {
    let request: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}"), "body"))?;
    let request = request.as_object().ok_or_else(|| ApiError::invalid("the body must be a JSON object", "body"))?;
    let name = request.get("model").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("`model` is required", "model"))?;
    let model = server.runtime.models().get(name).cloned().ok_or_else(|| unknown_model(server, name))?;
    let number = |name: &'static str, low: f64, high: f64| -> Result<Option<f64>, ApiError> {
        match request.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if (low..=high).contains(&x) => Ok(Some(x)),
                _ => Err(ApiError::invalid(format!("`{name}` must be a number from {low} to {high}"), name)),
            },
        }
    };
    let whole = |name: &'static str, low: u64, high: u64| -> Result<Option<usize>, ApiError> {
        match request.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(x) if (low..=high).contains(&x) => Ok(Some(x as usize)),
                _ => Err(ApiError::invalid(format!("`{name}` must be a whole number from {low} to {high}"), name)),
            },
        }
    };
    let max_completion_tokens = if kind == Kind::Chat { whole("max_completion_tokens", 1, 4096)? } else { None };
    let max_tokens = max_completion_tokens.or(whole("max_tokens", 1, 4096)?).unwrap_or(256);
    let defaults = model.sampling;
    let temperature = number("temperature", 0.0, 2.0)?.unwrap_or(defaults.temperature);
    let top_p = number("top_p", 0.0, 1.0)?;
    let min_p = number("min_p", 0.0, 1.0)?;
    // -1 (vLLM's) or 0 (Hugging Face's): no cut.
    let top_k = match request.get("top_k") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(k) if (-1..=100_000).contains(&k) => Some(k.max(0) as u32),
            _ => return Err(ApiError::invalid("`top_k` must be a whole number from -1 to 100000 (-1 or 0: no cut)", "top_k")),
        },
    };
    // A request that sets any truncation rule sets them all; the model's
    // defaults fill in only for one that sets none.
    let (top_k, top_p, min_p) = match (top_k, top_p, min_p) {
        (None, None, None) => (defaults.top_k, Some(defaults.top_p), defaults.min_p),
        (k, p, m) => (k.unwrap_or(0), p, m.unwrap_or(0.0)),
    };
    let n = whole("n", 1, 16)?.unwrap_or(1);
    let stream = match request.get("stream") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool().ok_or_else(|| ApiError::invalid("`stream` must be true or false", "stream"))?,
    };
    let stop: Vec<String> = match request.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= 4 && items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).map(String::from).collect()
        }
        Some(_) => return Err(ApiError::invalid("`stop` must be a string or a list of up to 4 strings", "stop")),
    };
    let stream_options = request.get("stream_options").filter(|o| !o.is_null());
    if stream_options.is_some() && !stream {
        return Err(ApiError::invalid("`stream_options` is only allowed with `stream: true`", "stream_options"));
    }
    let stream_usage = stream_options.and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true);
    let seed = match request.get("seed") {
        None | Some(Value::Null) => None,
        // Any 64-bit integer, negative ones too, as OpenAI takes them.
        Some(v) => Some(v.as_i64().map(|s| s as u64).or(v.as_u64()).ok_or_else(|| ApiError::invalid("`seed` must be an integer", "seed"))?),
    };
    // Chat: `logprobs: true` and up to 20 `top_logprobs`; completions: `logprobs: k`, k ≤ 5 alternatives.
    let logprobs = match kind {
        Kind::Chat => {
            let wanted = match request.get("logprobs") {
                None | Some(Value::Null) => false,
                Some(v) => v.as_bool().ok_or_else(|| ApiError::invalid("`logprobs` must be true or false", "logprobs"))?,
            };
            let top = whole("top_logprobs", 0, 20)?;
            if top.is_some() && !wanted {
                return Err(ApiError::invalid("`top_logprobs` needs `logprobs: true`", "top_logprobs"));
            }
            wanted.then(|| top.unwrap_or(0))
        }
        Kind::Completion => whole("logprobs", 0, 5)?,
    };
    // The rest is the endpoint's to honour or refuse (null means not given, as in OpenAI's API).
    let extra: serde_json::Map<String, Value> = request
        .iter()
        .filter(|(field, value)| !read_by_host(kind, field) && !value.is_null())
        .map(|(field, value)| (field.clone(), value.clone()))
        .collect();
    let mut inferlet_request = json!({
        "model": name, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "stop": stop, "n": n,
        "top_k": (top_k > 0).then_some(top_k), "min_p": (min_p > 0.0).then_some(min_p),
        "seed": seed, "logprobs": logprobs, "extra": extra, "lenient": server.config.openai_lenient,
    });
    match kind {
        Kind::Chat => {
            let messages = request.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty());
            let messages = messages.ok_or_else(|| ApiError::invalid("`messages` must be a non-empty list", "messages"))?;
            let turns: Result<Vec<(String, String)>, ApiError> = messages.iter().map(turn).collect();
            inferlet_request["messages"] = json!(turns?);
        }
        Kind::Completion => {
            let prompt = match request.get("prompt") {
                Some(Value::String(p)) => p.clone(),
                Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => items[0].as_str().unwrap().to_string(),
                _ => return Err(ApiError::invalid("`prompt` must be a string", "prompt")),
            };
            inferlet_request["prompt"] = json!(prompt);
        }
    }
    Ok(Checked { model, stream, stream_usage, n, inferlet_request })
}

/// One chat message as (role, text): the content a string or a list of text
/// parts. A `tool` message (a tool's result) keeps its role for the chat
/// template; an assistant's message that only calls tools has no content.
fn turn(message: &Value) -> Result<(String, String), ApiError> {
    let bad = || ApiError::invalid("each message needs a `role` (system, developer, user, assistant, tool) and text `content`", "messages");
    let role = message.get("role").and_then(Value::as_str).ok_or_else(bad)?;
    let role = match role {
        "system" | "developer" => "system",
        "user" | "assistant" | "tool" => role,
        _ => return Err(bad()),
    };
    let content = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        None | Some(Value::Null) if role == "assistant" && message.get("tool_calls").is_some() => String::new(),
        Some(Value::Array(parts)) => {
            parts.iter().map(|p| p.get("text").and_then(Value::as_str).ok_or_else(bad)).collect::<Result<Vec<_>, _>>()?.concat()
        }
        _ => return Err(bad()),
    };
    Ok((role.to_string(), content))
}

/// What the endpoint inferlet reported, as it arrives.
enum Report {
    /// Prompt tokens, and how many of them came from a cache.
    PromptTokens(u64, u64),
    /// The request is one the model cannot take (e.g. a prompt longer than its context).
    Refused(ApiError),
    /// A piece of choice `i`'s text, with its tokens' log-probabilities if asked for.
    Text(usize, String, Option<Vec<Value>>),
    Finish(usize, String, u64),
    /// The instance ended; `Some` says why it failed.
    End(Option<String>),
}

/// Ends the instance if the HTTP client goes away before it does.
struct StopOnDrop(Arc<Served>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop(EventCode::Aborted, "its HTTP client went away".into());
    }
}

async fn complete(server: Arc<Server>, headers: HeaderMap, body: axum::body::Bytes, kind: Kind) -> Result<Response, ApiError> {
    let user = user(&server, &headers)?;
    let mut checked = check(&server, kind, &body)?;
    let metadata = checked.model.metadata().await.map_err(|e| server_error(e.to_string()))?;
    // What the host adds: what a request may hold (the model's trained context,
    // one instance's pages), the cache's budget, and who asked.
    checked.inferlet_request["context_length"] = json!(metadata.context_length);
    checked.inferlet_request["kv_pages"] = json!(server.runtime.limits().kv_pages_per_instance);
    // The cache is the user's exports: it fits their export budget.
    let cache_pages = server.config.openai_prefix_cache_pages.min(server.runtime.limits().kv_pages_per_instance);
    checked.inferlet_request["prefix_cache_pages"] = json!(cache_pages);
    checked.inferlet_request["user"] = json!(user);
    let program = server.openai_inferlet.clone().map_err(server_error)?;
    let (out, events) = super::outbox::outbox(server.config.outbox_bytes());
    let request = LaunchRequest {
        // The user's endpoint instances share their exports (cached prompts) with no other program.
        namespace: Some(format!("openai/{user}")),
        owner: user,
        program,
        program_name: "openai-endpoint".into(),
        program_label: None,
        arguments: vec![checked.inferlet_request.to_string()],
        keep: false,
        attachment: Some(Attachment { connection: super::connection::next_connection_id(), out }),
        serve_on: None,
    };
    let pending = server.instances.launch(&server.runtime, request).map_err(|e| ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: e.to_string(),
        kind: "rate_limit_error",
        param: None,
        code: None,
    })?;
    let guard = StopOnDrop(pending.served());
    pending.start();
    let mut reports = Reports { events, unread: None, _guard: guard };
    // A refusal comes first, before anything is sent: it gets its own status even when streaming.
    match reports.next().await {
        Report::Refused(error) => return Err(error),
        Report::End(Some(why)) => return Err(server_error(format!("the endpoint inferlet failed: {why}"))),
        first => reports.unread = Some(first),
    }
    let meta = Meta {
        id: format!("{}-{}", if kind == Kind::Chat { "chatcmpl" } else { "cmpl" }, uuid::Uuid::new_v4().simple()),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        model: checked.model.name.clone(),
        kind,
    };
    if checked.stream { Ok(stream(meta, checked.n, checked.stream_usage, reports)) } else { whole_response(meta, checked.n, reports).await }
}

fn server_error(message: String) -> ApiError {
    ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message, kind: "server_error", param: None, code: None }
}

struct Reports {
    events: super::outbox::OutboxReceiver,
    /// A report read ahead and put back.
    unread: Option<Report>,
    _guard: StopOnDrop,
}

impl Reports {
    async fn next(&mut self) -> Report {
        if let Some(report) = self.unread.take() {
            return report;
        }
        loop {
            let Some(message) = self.events.recv().await else { return Report::End(Some("the instance vanished".into())) };
            let ServerMessage::InstanceEvent { event, message, .. } = message else { continue };
            match event {
                EventCode::Message => {
                    let Ok(report) = serde_json::from_str::<Value>(&message) else { continue };
                    let index = report.get("index").and_then(Value::as_u64).map(|i| i as usize);
                    if let Some(tokens) = report.get("prompt_tokens").and_then(Value::as_u64) {
                        return Report::PromptTokens(tokens, report.get("cached_tokens").and_then(Value::as_u64).unwrap_or(0));
                    }
                    if let Some(message) = report.get("error").and_then(Value::as_str) {
                        return Report::Refused(refusal(message, &report));
                    }
                    if let Some(warning) = report.get("warning").and_then(Value::as_str) {
                        tracing::warn!("OpenAI request: {warning:?}");
                        continue;
                    }
                    match (index, report.get("text").and_then(Value::as_str), report.get("finish_reason").and_then(Value::as_str)) {
                        (Some(i), Some(text), _) => {
                            let logprobs = report.get("logprobs").and_then(Value::as_array).cloned();
                            return Report::Text(i, text.to_string(), logprobs);
                        }
                        (Some(i), None, Some(reason)) => {
                            let tokens = report.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0);
                            return Report::Finish(i, reason.to_string(), tokens);
                        }
                        _ => continue,
                    }
                }
                EventCode::Completed => return Report::End(None),
                _ => return Report::End(Some(message)),
            }
        }
    }
}

struct Meta {
    id: String,
    created: u64,
    model: String,
    kind: Kind,
}

/// An endpoint inferlet's `{"error", "code", "param"}`: the request was one it cannot take.
fn refusal(message: &str, report: &Value) -> ApiError {
    let field = |name: &str| report.get(name).and_then(Value::as_str).map(String::from);
    ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), kind: "invalid_request_error", param: field("param"), code: field("code") }
}

fn usage(prompt: u64, cached: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// Log-probabilities as each API shapes them: the chat API's `content` list
/// as the inferlet reports it; the completions API's parallel lists, with
/// each token's offset in the choice's text (`offset`: where this piece starts).
fn logprobs_json(kind: Kind, entries: &[Value], offset: &mut usize) -> Value {
    match kind {
        Kind::Chat => json!({"content": entries, "refusal": null}),
        Kind::Completion => {
            let token = |e: &Value| e.get("token").and_then(Value::as_str).unwrap_or_default().to_string();
            let mut text_offset = Vec::with_capacity(entries.len());
            for entry in entries {
                text_offset.push(*offset);
                *offset += token(entry).len();
            }
            let top: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let alternatives = e.get("top_logprobs").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                    Value::Object(alternatives.iter().map(|a| (token(a), a.get("logprob").cloned().unwrap_or(Value::Null))).collect())
                })
                .collect();
            json!({
                "tokens": entries.iter().map(token).collect::<Vec<_>>(),
                "token_logprobs": entries.iter().map(|e| e.get("logprob").cloned().unwrap_or(Value::Null)).collect::<Vec<_>>(),
                "top_logprobs": top,
                "text_offset": text_offset,
            })
        }
    }
}

async fn whole_response(meta: Meta, n: usize, mut reports: Reports) -> Result<Response, ApiError> {
    let mut texts = vec![String::new(); n];
    let mut logprobs: Vec<Option<Vec<Value>>> = vec![None; n];
    let mut finishes = vec![Value::Null; n];
    let (mut prompt_tokens, mut cached_tokens, mut completion_tokens) = (0, 0, 0);
    loop {
        match reports.next().await {
            Report::PromptTokens(t, c) => (prompt_tokens, cached_tokens) = (t, c),
            Report::Text(i, text, entries) if i < n => {
                texts[i] += &text;
                if let Some(entries) = entries {
                    logprobs[i].get_or_insert_with(Vec::new).extend(entries);
                }
            }
            Report::Finish(i, reason, tokens) if i < n => {
                finishes[i] = json!(reason);
                completion_tokens += tokens;
            }
            Report::End(None) => break,
            Report::End(Some(why)) => return Err(server_error(format!("the endpoint inferlet failed: {why}"))),
            Report::Refused(error) => return Err(error),
            _ => {}
        }
    }
    let choices: Vec<Value> = texts
        .into_iter()
        .zip(finishes)
        .zip(logprobs)
        .enumerate()
        .map(|(index, ((text, finish_reason), entries))| {
            let logprobs = entries.map_or(Value::Null, |e| logprobs_json(meta.kind, &e, &mut 0));
            match meta.kind {
                Kind::Chat => {
                    json!({"index": index, "message": {"role": "assistant", "content": text}, "logprobs": logprobs, "finish_reason": finish_reason})
                }
                Kind::Completion => json!({"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}),
            }
        })
        .collect();
    let object = if meta.kind == Kind::Chat { "chat.completion" } else { "text_completion" };
    let usage = usage(prompt_tokens, cached_tokens, completion_tokens);
    Ok(Json(json!({"id": meta.id, "object": object, "created": meta.created, "model": meta.model, "choices": choices, "usage": usage}))
        .into_response())
}

/// What a stream keeps between chunks.
struct StreamState {
    meta: Meta,
    reports: Reports,
    /// By choice: whether it has sent its first chunk (that one names the role).
    started: Vec<bool>,
    /// Where each choice's next piece starts in its text (completions' `text_offset`).
    offsets: Vec<usize>,
    /// Choices asked for: reports about others are ignored.
    n: usize,
    /// `(prompt, cached, completion)` tokens, for `stream_options.include_usage`.
    usage: Option<(u64, u64, u64)>,
}

impl StreamState {
    fn chunk(&self, choices: Vec<Value>) -> Value {
        let object = if self.meta.kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" };
        let mut chunk = json!({"id": self.meta.id, "object": object, "created": self.meta.created, "model": self.meta.model, "choices": choices});
        if self.usage.is_some() {
            // With `include_usage`, every chunk but the last says `"usage": null`.
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn choice(&mut self, index: usize, text: Option<String>, entries: Option<Vec<Value>>, finish_reason: Value) -> Value {
        let logprobs = entries.map_or(Value::Null, |e| logprobs_json(self.meta.kind, &e, &mut self.offsets[index]));
        match self.meta.kind {
            Kind::Chat => {
                let delta = match text {
                    Some(text) if !std::mem::replace(&mut self.started[index], true) => json!({"role": "assistant", "content": text}),
                    Some(text) => json!({"content": text}),
                    None => json!({}),
                };
                json!({"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason})
            }
            Kind::Completion => json!({"index": index, "text": text.unwrap_or_default(), "logprobs": logprobs, "finish_reason": finish_reason}),
        }
    }
}

fn stream(meta: Meta, n: usize, include_usage: bool, reports: Reports) -> Response {
    let (started, offsets) = (vec![false; n], vec![0; n]);
    let state = StreamState { meta, reports, started, offsets, n, usage: include_usage.then_some((0, 0, 0)) };
    let events = futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            let data = match state.reports.next().await {
                Report::PromptTokens(prompt, cached) => {
                    if let Some(usage) = &mut state.usage {
                        (usage.0, usage.1) = (prompt, cached);
                    }
                    continue;
                }
                Report::Text(i, _, _) | Report::Finish(i, _, _) if i >= state.n => continue,
                Report::Text(i, text, entries) => {
                    let choice = state.choice(i, Some(text), entries, Value::Null);
                    state.chunk(vec![choice])
                }
                Report::Finish(i, reason, tokens) => {
                    if let Some(usage) = &mut state.usage {
                        usage.2 += tokens;
                    }
                    let choice = state.choice(i, None, None, json!(reason));
                    state.chunk(vec![choice])
                }
                Report::End(None) => match state.usage.take() {
                    // The usage chunk, then `[DONE]`.
                    Some((prompt, cached, completion)) => {
                        let mut chunk = state.chunk(vec![]);
                        chunk["usage"] = usage(prompt, cached, completion);
                        state.reports.unread = Some(Report::End(None));
                        chunk
                    }
                    None => return Some((Ok::<_, Infallible>(SseEvent::default().data("[DONE]")), None)),
                },
                Report::End(Some(why)) => {
                    let error = server_error(format!("the endpoint inferlet failed: {why}")).body().to_string();
                    return Some((Ok(SseEvent::default().data(error)), None));
                }
                Report::Refused(error) => return Some((Ok(SseEvent::default().data(error.body().to_string())), None)),
            };
            return Some((Ok(SseEvent::default().data(data.to_string())), Some(state)));
        }
    });
    Sse::new(events).into_response()
}
