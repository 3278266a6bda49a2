//! `openai-echo`: another policy behind `crust serve`'s OpenAI API (config
//! `server.openai_inferlet`): every choice is the last user message, said
//! back, without the model. It speaks the same reports as `openai-chat`.

use crust_sdk::io;
use serde_json::{Value, json};

fn run() -> Result<(), String> {
    let arguments = crust_sdk::runtime::get_arguments();
    let request: Value = serde_json::from_str(arguments.first().ok_or("expects the request as JSON")?).map_err(|e| e.to_string())?;
    let last_user = request["messages"]
        .as_array()
        .and_then(|turns| turns.iter().rev().find(|t| t[0] == "user"))
        .and_then(|t| t[1].as_str())
        .or(request["prompt"].as_str())
        .unwrap_or_default();
    let answer = format!("You said: {last_user}");
    io::send(&json!({"prompt_tokens": 0}).to_string());
    for index in 0..request["n"].as_u64().unwrap_or(1) {
        io::send(&json!({"index": index, "text": answer}).to_string());
        io::send(&json!({"index": index, "finish_reason": "stop", "completion_tokens": 0}).to_string());
    }
    Ok(())
}

crust_sdk::entry!(run);
