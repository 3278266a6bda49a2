//! The tokenize provider gives llama.cpp's ids on the default model, byte
//! for byte (expected ids generated once with llama.cpp: tests/data/smollm2_tokens.py).

use crust::config::EngineConfig;
use crust::providers::tokenize::TokenizerHandle;
use crust_tests::DefaultModel;

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn token_ids_equal_llama_cpp() {
    let data = std::fs::read_to_string(crust_tests::repo_root().join("tests/data/smollm2-tokens.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&data).unwrap();
    assert!(cases.len() >= 10);
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tokio.block_on(async {
        let mut model = DefaultModel::open("tokenizer-llama-cpp", EngineConfig::default()).await;
        for case in cases {
            assert_eq!(model.tokenize(&case.text).await, case.ids, "tokenizing {:?}", case.text);
            assert_eq!(model.detokenize(&case.ids).await, case.text, "detokenizing {:?}", case.text);
        }
    });
}

/// Callers with handles of their own are spread over the provider's pool
/// (one instance per core, up to 8) instead of queueing for one instance,
/// and every member gives the same ids.
#[test]
fn concurrent_callers_spread_over_the_pool_and_agree() {
    let data = std::fs::read_to_string(crust_tests::repo_root().join("tests/data/smollm2-tokens.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&data).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    tokio.block_on(async {
        let model = DefaultModel::open("tokenizer-pool", EngineConfig::default()).await;
        let provider = model.provider().clone();
        assert_eq!(provider.live_instances().await, 0, "instances start on their first call");
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(provider.pool_size(), cores.min(8));
        let callers = provider.pool_size() + 1;
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (provider, model) = (provider.clone(), model.model.clone());
                let text = cases[0].text.clone();
                tokio::spawn(async move {
                    let mut handle = TokenizerHandle::new(model);
                    let ids = provider.tokenize(&mut handle, &text).await.expect("tokenizing");
                    (handle, ids)
                })
            })
            .collect();
        let mut handles = Vec::new();
        for task in tasks {
            let (handle, ids) = task.await.unwrap();
            assert_eq!(ids, cases[0].ids);
            handles.push(handle);
        }
        assert_eq!(provider.live_instances().await, provider.pool_size(), "{callers} callers used every member");
        for handle in handles {
            provider.release(handle).await;
        }
    });
}

/// The pre-tokenizers GGUF files name decide where BPE may merge: over a
/// vocabulary whose merges make `.a` and `123`, `.a1234` splits as GPT-2
/// (`.`, `a`, `1234`), Qwen2 (`.a` with digits alone) or Llama 3 (`.a`,
/// digits in threes) splits it.
#[test]
fn pre_tokenizers_split_as_their_models_do() {
    use crust::engine::gguf::{GgufFile, GgufWriter, Value};
    use std::str::FromStr;

    let tokens = ["a", ".", "1", "2", "3", "4", "12", "123", ".a"];
    let merges = ["1 2", "12 3", ". a"];
    let cases: [(&str, &[u32]); 3] = [("gpt2", &[1, 0, 7, 5]), ("qwen2", &[8, 2, 3, 4, 5]), ("llama-bpe", &[8, 7, 5])];
    let dir = crust_tests::scratch_dir("pre-tokenizers");
    for (pre, expected) in cases {
        let mut w = GgufWriter::default();
        w.meta("tokenizer.ggml.model", Value::String("gpt2".into()))
            .meta("tokenizer.ggml.pre", Value::String(pre.into()))
            .meta("tokenizer.ggml.tokens", Value::Array(tokens.iter().map(|t| Value::String(t.to_string())).collect()))
            .meta("tokenizer.ggml.merges", Value::Array(merges.iter().map(|m| Value::String(m.to_string())).collect()));
        let path = dir.join(format!("{pre}.gguf"));
        w.write(&path).unwrap();
        let json = crust::engine::tokenizer::tokenizer_json(&GgufFile::open(&path).unwrap()).unwrap();
        let tokenizer = tokenizers::Tokenizer::from_str(&json).unwrap();
        assert_eq!(tokenizer.encode(".a1234", false).unwrap().get_ids(), expected, "tokenizer.ggml.pre = {pre}");
    }
}
