//! The tokenize provider gives llama.cpp's ids on the default model, byte
//! for byte (expected ids generated once with llama.cpp: tests/data/smollm2_tokens.py).

use crust::config::EngineConfig;
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
