//! A model's tokenizer, built from its GGUF vocabulary: the `tokenizer.json`
//! (HuggingFace format) that the tokenize provider loads. The host itself
//! tokenizes only through that provider.

use serde_json::{Value as Json, json};

use super::gguf::{GgufFile, Value};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("the GGUF metadata lacks `{0}`")]
    Missing(&'static str),
    #[error("unsupported tokenizer: tokenizer.ggml.model = `{0}` (Crust reads BPE `gpt2` vocabularies)")]
    Model(String),
    #[error("unsupported pre-tokenizer `tokenizer.ggml.pre = {0}` (Crust knows `smollm`, `qwen2`, `llama-bpe`, `gpt2` and `default`)")]
    PreTokenizer(String),
}

/// The split Qwen2 and Llama 3 make before byte-level BPE (their
/// `tokenizer.json`s' regex): a letter run takes one leading symbol, and
/// digits go alone (Qwen2) or in threes (Llama 3, `{1,3}`).
fn split_pattern(digits: &str) -> String {
    format!(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}{digits}| ?[^\s\p{{L}}\p{{N}}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
}

/// GGUF token types that are special tokens (control and user-defined).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

fn strings(file: &GgufFile, key: &'static str) -> Result<Vec<String>, TokenizerError> {
    let items = file.get(key).and_then(Value::as_array).ok_or(TokenizerError::Missing(key))?;
    Ok(items.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect())
}

/// The `tokenizer.json` of a GGUF vocabulary.
pub fn tokenizer_json(file: &GgufFile) -> Result<String, TokenizerError> {
    let model = file.get("tokenizer.ggml.model").and_then(Value::as_str).ok_or(TokenizerError::Missing("tokenizer.ggml.model"))?;
    if model != "gpt2" {
        return Err(TokenizerError::Model(model.into()));
    }
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let merges = strings(file, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = file
        .get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_u64().map_or(1, |v| v as i64)).collect())
        .unwrap_or_default();
    let pre = file.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre_tokenizer = match pre {
        // Digits one by one, then the GPT-2 split.
        "smollm" => json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level]}),
        "gpt2" | "default" => byte_level,
        "qwen2" | "llama-bpe" => {
            let pattern = split_pattern(if pre == "qwen2" { "" } else { "{1,3}" });
            let split = json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
            json!({"type": "Sequence", "pretokenizers": [split, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})
        }
        other => return Err(TokenizerError::PreTokenizer(other.into())),
    };
    let vocab: serde_json::Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<Json> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(&CONTROL) | Some(&USER_DEFINED)))
        .map(|(i, t)| json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    });
    Ok(tokenizer.to_string())
}
