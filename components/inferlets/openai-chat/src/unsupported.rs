//! The request fields this endpoint does not honour. The host passes every
//! field it does not read itself as `extra`; ignoring one that asks for a
//! different answer (tools, a JSON response, penalties) would answer another
//! question than the one asked, so such a field is refused unless it holds
//! its neutral value, as OpenAI refuses what a model does not support. A
//! field OpenAI's API does not have is refused as OpenAI refuses it.

use serde_json::{Map, Value, json};

/// Why a field is refused: (message, code, param).
pub struct Refusal {
    pub message: String,
    pub code: &'static str,
    pub param: String,
}

/// Fields that change nothing in the answer: bookkeeping this endpoint has no use for.
const NO_EFFECT: &[&str] = &["metadata", "store", "service_tier", "user", "prompt_cache_key", "safety_identifier"];

/// Whether `value` of field `name` asks for nothing this endpoint would not
/// do anyway; `None` when the API (chat or plain completions) has no such field.
fn neutral(chat: bool, name: &str, value: &Value, n: usize) -> Option<bool> {
    let neutral = match (chat, name) {
        (_, _) if NO_EFFECT.contains(&name) => true,
        (_, "frequency_penalty" | "presence_penalty") => value.as_f64() == Some(0.0),
        // Not OpenAI's, but vLLM's and llama-server's, and sent by clients written for them.
        (_, "repetition_penalty") => value.as_f64() == Some(1.0),
        (_, "logit_bias") => value.as_object().is_some_and(Map::is_empty),
        (true, "tools" | "functions") => value.as_array().is_some_and(Vec::is_empty),
        (true, "tool_choice" | "function_call") => value == "none",
        // Without tools there are no calls to run in parallel.
        (true, "parallel_tool_calls") => true,
        (true, "response_format") => value.get("type").and_then(Value::as_str) == Some("text"),
        (true, "modalities") => *value == json!(["text"]),
        (true, "audio" | "prediction" | "reasoning_effort" | "verbosity" | "web_search_options") => false,
        // `best_of` equal to `n` returns every choice drawn: nothing to pick.
        (false, "best_of") => value.as_u64().is_some_and(|b| b == 1 || b == n as u64),
        (false, "echo") => *value == json!(false),
        (false, "suffix") => value.as_str() == Some(""),
        _ => return None,
    };
    Some(neutral)
}

/// The first field of `extra` this endpoint cannot honour, in name order;
/// `lenient`: fields the API does not have are let pass (see `unknown`).
pub fn refusal(chat: bool, extra: &Map<String, Value>, n: usize, lenient: bool) -> Option<Refusal> {
    let mut names: Vec<&String> = extra.keys().collect();
    names.sort();
    names.into_iter().find_map(|name| match neutral(chat, name, &extra[name], n) {
        Some(true) => None,
        None if lenient => None,
        Some(false) => Some(Refusal {
            message: format!(
                "Unsupported parameter: '{name}' with the value {} is not supported by this endpoint (a custom endpoint inferlet, server.openai_inferlet, can honour it)",
                extra[name]
            ),
            code: "unsupported_parameter",
            param: name.clone(),
        }),
        None => Some(Refusal {
            message: format!("Unrecognized request argument supplied: {name}"),
            code: "unknown_parameter",
            param: name.clone(),
        }),
    })
}

/// The fields of `extra` the API (chat or plain completions) does not have, in name order.
pub fn unknown(chat: bool, extra: &Map<String, Value>) -> Vec<String> {
    let mut names: Vec<String> = extra.iter().filter(|(name, value)| neutral(chat, name, value, 1).is_none()).map(|(name, _)| name.clone()).collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extra(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn neutral_values_and_bookkeeping_pass() {
        let fields = json!({"user": "u", "metadata": {"a": "b"}, "frequency_penalty": 0, "tools": [], "tool_choice": "none",
            "response_format": {"type": "text"}, "logit_bias": {}, "parallel_tool_calls": true});
        assert!(refusal(true, &extra(fields), 1, false).is_none());
        assert!(refusal(false, &extra(json!({"echo": false, "best_of": 2, "suffix": "", "repetition_penalty": 1.0})), 2, false).is_none());
    }

    #[test]
    fn what_would_change_the_answer_is_refused_by_name() {
        let r = refusal(true, &extra(json!({"tools": [{"type": "function"}], "presence_penalty": 0.5})), 1, true).unwrap();
        assert_eq!((r.code, r.param.as_str()), ("unsupported_parameter", "presence_penalty"));
        let r = refusal(true, &extra(json!({"response_format": {"type": "json_object"}})), 1, false).unwrap();
        assert_eq!(r.param, "response_format");
        let r = refusal(false, &extra(json!({"best_of": 3})), 1, false).unwrap();
        assert_eq!(r.param, "best_of");
    }

    #[test]
    fn fields_of_the_other_api_or_none_are_unrecognized() {
        let r = refusal(false, &extra(json!({"tools": []})), 1, false).unwrap();
        assert_eq!((r.code, r.param.as_str()), ("unknown_parameter", "tools"));
        let r = refusal(true, &extra(json!({"top_a": 5})), 1, false).unwrap();
        assert_eq!(r.message, "Unrecognized request argument supplied: top_a");
    }

    #[test]
    fn lenient_lets_unknown_fields_pass_but_not_unhonoured_ones() {
        let fields = extra(json!({"top_a": 5, "mirostat": 2, "user": "u"}));
        assert!(refusal(true, &fields, 1, true).is_none());
        assert_eq!(unknown(true, &fields), ["mirostat", "top_a"]);
        let r = refusal(true, &extra(json!({"top_a": 5, "logit_bias": {"1": 5}})), 1, true).unwrap();
        assert_eq!(r.param, "logit_bias");
    }
}
