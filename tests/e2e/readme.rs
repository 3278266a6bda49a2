//! The README's shell examples, run as a user pastes them: every block
//! marked `<!-- runnable … -->` runs in the repository root with `crust` on
//! the PATH (this build's binary) and must exit 0, so the README cannot
//! drift from what the commands take.

use std::process::Command;

use crust_tests::{repo_root, scratch_dir};

const MARKER: &str = "<!-- runnable";

/// The shell blocks right after a marker line, with their line numbers.
fn runnable_blocks(readme: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        if !line.starts_with(MARKER) {
            continue;
        }
        assert_eq!(lines.get(at + 1).copied(), Some("```sh"), "README.md line {}: a runnable marker must precede a ```sh block", at + 1);
        let body: Vec<&str> = lines[at + 2..].iter().take_while(|l| **l != "```").copied().collect();
        blocks.push((at + 3, body.join("\n")));
    }
    blocks
}

#[test]
fn the_readmes_runnable_blocks_run() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    assert!(blocks.len() >= 3, "the README marks its examples runnable: found {}", blocks.len());
    // `crust` is this build's binary, as `just install` would put it on the PATH.
    let bin = scratch_dir("readme-bin");
    let crust = bin.join("crust");
    let _ = std::fs::remove_file(&crust);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_crust-under-test"), &crust).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let cache = scratch_dir("readme-cache");
    for (line, block) in blocks {
        let run = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block])
            .current_dir(repo_root())
            .env("PATH", &path)
            .env("CRUST_CACHE_DIR", &cache)
            .env("CRUST_DATA_DIR", cache.join("data"))
            .env_remove("CRUST_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "README.md's block at line {line} failed ({}):\n{block}\n{stderr}", run.status);
        assert!(!run.stdout.is_empty(), "README.md's block at line {line} printed nothing:\n{block}");
    }
}
