//! The OpenAI-compatible API: `GET /v1/models`, `POST /v1/chat/completions`,
//! `POST /v1/completions`. The host only checks the key and the request and
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
use tokio::sync::mpsc;

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
    param: Option<&'static str>,
    code: Option<&'static str>,
}

impl ApiError {
    fn invalid(message: impl Into<String>, param: &'static str) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), kind: "invalid_request_error", param: Some(param), code: None }
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
    let data: Vec<Value> = server
        .runtime
        .models()
        .names()
        .into_iter()
        .map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "crust"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
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
        code: Some("invalid_api_key"),
    })
}

/// The request, checked and reduced to what the endpoint inferlet reads.
struct Checked {
    model: String,
    stream: bool,
    n: usize,
    inferlet_request: Value,
}

fn check(server: &Server, kind: Kind, body: &[u8]) -> Result<Checked, ApiError> {
    let request: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}"), "body"))?;
    let request = request.as_object().ok_or_else(|| ApiError::invalid("the body must be a JSON object", "body"))?;
    let model = request.get("model").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("`model` is required", "model"))?;
    if server.runtime.models().get(model).is_none() {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("the model `{model}` does not exist (GET /v1/models lists them)"),
            kind: "invalid_request_error",
            param: Some("model"),
            code: Some("model_not_found"),
        });
    }
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
    let max_tokens = whole("max_completion_tokens", 1, 4096)?.or(whole("max_tokens", 1, 4096)?).unwrap_or(256);
    let temperature = number("temperature", 0.0, 2.0)?.unwrap_or(1.0);
    let top_p = number("top_p", 0.0, 1.0)?;
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
    if request.get("logprobs").is_some_and(|v| v.as_bool() == Some(true) || v.is_number()) {
        return Err(ApiError::invalid("`logprobs` is not supported by this server yet", "logprobs"));
    }
    let mut inferlet_request = json!({
        "model": model, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "stop": stop, "n": n,
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
    Ok(Checked { model: model.to_string(), stream, n, inferlet_request })
}

/// One chat message as (role, text): the content a string or a list of text parts.
fn turn(message: &Value) -> Result<(String, String), ApiError> {
    let bad = || ApiError::invalid("each message needs a `role` (system, developer, user, assistant) and text `content`", "messages");
    let role = message.get("role").and_then(Value::as_str).ok_or_else(bad)?;
    let role = match role {
        "system" | "developer" => "system",
        "user" | "assistant" => role,
        _ => return Err(bad()),
    };
    let content = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| p.get("text").and_then(Value::as_str).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?
            .concat(),
        _ => return Err(bad()),
    };
    Ok((role.to_string(), content))
}

/// What the endpoint inferlet reported, as it arrives.
enum Report {
    PromptTokens(u64),
    Text(usize, String),
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
    let checked = check(&server, kind, &body)?;
    let program = server.openai_inferlet.clone().map_err(server_error)?;
    let (out, events) = mpsc::unbounded_channel();
    let request = LaunchRequest {
        owner: user,
        program,
        program_name: "openai-endpoint".into(),
        arguments: vec![checked.inferlet_request.to_string()],
        keep: false,
        attachment: Some(Attachment { connection: super::connection::next_connection_id(), out }),
        serve_on: None,
    };
    let pending = server.instances.launch(&server.runtime, request).map_err(|e| ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: e,
        kind: "rate_limit_error",
        param: None,
        code: None,
    })?;
    let guard = StopOnDrop(pending.served());
    pending.start();
    let reports = Reports { events, _guard: guard };
    let meta = Meta {
        id: format!("{}-{}", if kind == Kind::Chat { "chatcmpl" } else { "cmpl" }, uuid::Uuid::new_v4().simple()),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        model: checked.model,
        kind,
    };
    if checked.stream { Ok(stream(meta, reports)) } else { whole_response(meta, checked.n, reports).await }
}

fn server_error(message: String) -> ApiError {
    ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message, kind: "server_error", param: None, code: None }
}

struct Reports {
    events: mpsc::UnboundedReceiver<ServerMessage>,
    _guard: StopOnDrop,
}

impl Reports {
    async fn next(&mut self) -> Report {
        loop {
            let Some(message) = self.events.recv().await else { return Report::End(Some("the instance vanished".into())) };
            let ServerMessage::InstanceEvent { event, message, .. } = message else { continue };
            match event {
                EventCode::Message => {
                    let Ok(report) = serde_json::from_str::<Value>(&message) else { continue };
                    let index = report.get("index").and_then(Value::as_u64).map(|i| i as usize);
                    if let Some(tokens) = report.get("prompt_tokens").and_then(Value::as_u64) {
                        return Report::PromptTokens(tokens);
                    }
                    match (index, report.get("text").and_then(Value::as_str), report.get("finish_reason").and_then(Value::as_str)) {
                        (Some(i), Some(text), _) => return Report::Text(i, text.to_string()),
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

async fn whole_response(meta: Meta, n: usize, mut reports: Reports) -> Result<Response, ApiError> {
    let mut texts = vec![String::new(); n];
    let mut finishes = vec![Value::Null; n];
    let (mut prompt_tokens, mut completion_tokens) = (0, 0);
    loop {
        match reports.next().await {
            Report::PromptTokens(t) => prompt_tokens = t,
            Report::Text(i, text) if i < n => texts[i] += &text,
            Report::Finish(i, reason, tokens) if i < n => {
                finishes[i] = json!(reason);
                completion_tokens += tokens;
            }
            Report::End(None) => break,
            Report::End(Some(why)) => return Err(server_error(format!("the endpoint inferlet failed: {why}"))),
            _ => {}
        }
    }
    let choices: Vec<Value> = texts
        .into_iter()
        .zip(finishes)
        .enumerate()
        .map(|(index, (text, finish_reason))| match meta.kind {
            Kind::Chat => json!({"index": index, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish_reason}),
            Kind::Completion => json!({"index": index, "text": text, "logprobs": null, "finish_reason": finish_reason}),
        })
        .collect();
    let object = if meta.kind == Kind::Chat { "chat.completion" } else { "text_completion" };
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    Ok(Json(json!({"id": meta.id, "object": object, "created": meta.created, "model": meta.model, "choices": choices, "usage": usage})).into_response())
}

fn stream(meta: Meta, reports: Reports) -> Response {
    let events = futures_util::stream::unfold(Some((meta, reports, std::collections::HashSet::new())), |state| async move {
        let (meta, mut reports, mut started) = state?;
        let chunk = |index: usize, delta: Value, finish_reason: Value| {
            let choice = match meta.kind {
                Kind::Chat => json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": finish_reason}),
                Kind::Completion => json!({"index": index, "text": delta.get("content").cloned().unwrap_or(json!("")), "logprobs": null, "finish_reason": finish_reason}),
            };
            let object = if meta.kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" };
            json!({"id": meta.id, "object": object, "created": meta.created, "model": meta.model, "choices": [choice]}).to_string()
        };
        loop {
            let data = match reports.next().await {
                Report::PromptTokens(_) => continue,
                Report::Text(i, text) => {
                    // The first chunk of each choice names the role.
                    let delta = if started.insert(i) { json!({"role": "assistant", "content": text}) } else { json!({"content": text}) };
                    chunk(i, delta, Value::Null)
                }
                Report::Finish(i, reason, _) => chunk(i, json!({}), json!(reason)),
                Report::End(None) => return Some((Ok::<_, Infallible>(SseEvent::default().data("[DONE]")), None)),
                Report::End(Some(why)) => {
                    let error = server_error(format!("the endpoint inferlet failed: {why}")).body().to_string();
                    return Some((Ok(SseEvent::default().data(error)), None));
                }
            };
            return Some((Ok(SseEvent::default().data(data)), Some((meta, reports, started))));
        }
    });
    Sse::new(events).into_response()
}
