//! The GGUF-built tokenizer gives llama.cpp's ids on the default model, byte
//! for byte (expected ids generated once with llama.cpp: tests/data/smollm2_tokens.py).

use crust::config::{DEFAULT_MODEL_FILE, models_dir};
use crust::engine::gguf::GgufFile;
use crust::engine::tokenizer::Tokenizer;

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn token_ids_equal_llama_cpp() {
    let path = models_dir().join(DEFAULT_MODEL_FILE);
    assert!(path.exists(), "{} is missing: run `just fetch-model`", path.display());
    let tokenizer = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let data = std::fs::read_to_string(crust_tests::repo_root().join("tests/data/smollm2-tokens.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&data).unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        assert_eq!(tokenizer.encode(&case.text).unwrap(), case.ids, "tokenizing {:?}", case.text);
        assert_eq!(tokenizer.decode(&case.ids), case.text, "detokenizing {:?}", case.text);
    }
}
