//! A model's tokenizer, built from its GGUF vocabulary: the `tokenizer.json`
//! (HuggingFace format) that the tokenize provider loads. The host itself
//! tokenizes only through that provider. GGUF holds two kinds: byte-level
//! BPE with its merges (`gpt2`: SmolLM2, Qwen, Llama 3), and SentencePiece
//! BPE with a score per piece and no merges (`llama`: Gemma, Llama 2), whose
//! merges are the pairs that make each piece, ranked by its score.

use serde_json::{Value as Json, json};

use super::gguf::{GgufFile, Value};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("the GGUF metadata lacks `{0}`")]
    Missing(&'static str),
    #[error("unsupported tokenizer: tokenizer.ggml.model = `{0}` (Crust reads `gpt2` and `llama` vocabularies)")]
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

/// GGUF token types: a plain piece; special tokens (control and user-defined).
const NORMAL: i64 = 1;
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

fn strings(file: &GgufFile, key: &'static str) -> Result<Vec<String>, TokenizerError> {
    let items = file.get(key).and_then(Value::as_array).ok_or(TokenizerError::Missing(key))?;
    Ok(items.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect())
}

/// The `tokenizer.json` of a GGUF vocabulary.
pub fn tokenizer_json(file: &GgufFile) -> Result<String, TokenizerError> {
    let model = file.get("tokenizer.ggml.model").and_then(Value::as_str).ok_or(TokenizerError::Missing("tokenizer.ggml.model"))?;
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let types: Vec<i64> = file
        .get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_u64().map_or(1, |v| v as i64)).collect())
        .unwrap_or_default();
    let vocab: serde_json::Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<Json> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(&CONTROL) | Some(&USER_DEFINED)))
        .map(|(i, t)| json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let tokenizer = match model {
        "gpt2" => byte_level_bpe(file, vocab, added)?,
        "llama" => sentencepiece_bpe(file, &tokens, &types, vocab, added)?,
        other => return Err(TokenizerError::Model(other.into())),
    };
    Ok(tokenizer.to_string())
}

/// Byte-level BPE: GGUF's merges, and the pre-tokenizer `tokenizer.ggml.pre` names.
fn byte_level_bpe(file: &GgufFile, vocab: serde_json::Map<String, Json>, added: Vec<Json>) -> Result<Json, TokenizerError> {
    let merges = strings(file, "tokenizer.ggml.merges")?;
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
    Ok(json!({
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
    }))
}

/// SentencePiece BPE (`llama` vocabularies: Gemma's): spaces become `▁`,
/// pieces merge best-score first, bytes outside the vocabulary fall back to
/// `<0xNN>` pieces. A piece's merges are its splits into two pieces, ranked
/// by its score (GGUF keeps no merges for these), as HuggingFace's own
/// converter ranks them.
fn sentencepiece_bpe(
    file: &GgufFile,
    tokens: &[String],
    types: &[i64],
    vocab: serde_json::Map<String, Json>,
    added: Vec<Json>,
) -> Result<Json, TokenizerError> {
    let scores: Vec<f64> = file
        .get("tokenizer.ggml.scores")
        .and_then(Value::as_array)
        .ok_or(TokenizerError::Missing("tokenizer.ggml.scores"))?
        .iter()
        .map(|v| v.as_f64().unwrap_or(0.0))
        .collect();
    if file.get("tokenizer.ggml.add_space_prefix").and_then(Value::as_bool).unwrap_or(true) {
        return Err(TokenizerError::Model("llama with add_space_prefix (Llama 2's SentencePiece; Crust reads Gemma's)".into()));
    }
    let ids: std::collections::HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut merges: Vec<(f64, usize, usize, String)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if types.get(id).copied().unwrap_or(NORMAL) != NORMAL {
            continue;
        }
        for (at, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(at);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                merges.push((scores.get(id).copied().unwrap_or(0.0), l, r, format!("{left} {right}")));
            }
        }
    }
    // Best score first; a piece's splits by their parts' ids.
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let merges: Vec<String> = merges.into_iter().map(|m| m.3).collect();
    let unk = tokens.iter().position(|t| t == "<unk>").map(|_| json!("<unk>")).unwrap_or(Json::Null);
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    }))
}
