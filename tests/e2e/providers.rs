//! The provider components: tokenize through `crust tokenize` (llama.cpp's
//! ids), kvs persistence across restarts and `kill -9`, the in-memory kvs
//! swapped in by one config line, concurrent writers, large values, many
//! keys, and broken providers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crust::config::{Config, ProvidersConfig};
use crust::runtime::{InstanceError, Runtime};
use crust_tests::{inferlet, run_instance, scratch_dir};

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

/// `crust tokenize` goes through the provider component: llama.cpp's ids.
#[test]
fn crust_tokenize_equals_llama_cpp() {
    let dir = scratch_dir("providers-tokenize");
    let data = std::fs::read_to_string(crust_tests::repo_root().join("tests/data/smollm2-tokens.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&data).unwrap();
    for (i, case) in cases.iter().enumerate() {
        let file = dir.join(format!("case-{i}.txt"));
        std::fs::write(&file, &case.text).unwrap();
        let run = crate::crust(&["tokenize", "--text-file", file.to_str().unwrap(), "--json"], &dir);
        assert_eq!(run.status, Some(0), "{}", run.stderr);
        let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let ids: Vec<u32> = serde_json::from_value(out["tokens"].clone()).unwrap();
        assert_eq!(ids, case.ids, "tokenizing {:?}", case.text);
    }
}

/// A config file for `crust`, with its own data dir and, optionally, a kvs provider.
fn config_file(dir: &Path, kvs: Option<&Path>) -> PathBuf {
    let mut text = format!("data_dir = {:?}\n", dir.join("data"));
    if let Some(kvs) = kvs {
        text += &format!("[providers]\nkvs = {kvs:?}\n");
    }
    let path = dir.join("crust.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn kvs_demo(config: &Path, args: &[&str]) -> crate::CliRun {
    let program = inferlet("kvs-demo");
    let mut all = vec!["--config", config.to_str().unwrap(), "run", program.to_str().unwrap(), "--"];
    all.extend(args);
    crate::crust(&all, config.parent().unwrap())
}

fn provider_file(name: &str) -> PathBuf {
    crust_tests::repo_root().join("target/wasm32-wasip2/release").join(name)
}

#[test]
fn the_counter_survives_restarts_and_the_memory_store_does_not() {
    let dir = scratch_dir("providers-counter");
    let disk = config_file(&dir, None);
    for n in 1..=3 {
        let run = kvs_demo(&disk, &["count"]);
        assert_eq!(run.status, Some(0), "{}", run.stderr);
        assert_eq!(run.stdout.trim(), format!("count {n}"), "each run is a new host process");
    }
    // One config line swaps the provider: nothing survives the process.
    let dir = scratch_dir("providers-counter-memory");
    let memory = config_file(&dir, Some(&provider_file("kvs_memory_provider.wasm")));
    for _ in 0..2 {
        let run = kvs_demo(&memory, &["count"]);
        assert_eq!(run.status, Some(0), "{}", run.stderr);
        assert_eq!(run.stdout.trim(), "count 1");
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = scratch_dir("providers-kill");
    let config = config_file(&dir, None);
    let program = inferlet("kvs-demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crust-under-test"))
        .args(["--config", config.to_str().unwrap(), "run", program.to_str().unwrap(), "--", "fill", "k", "100000"])
        .env("CRUST_CACHE_DIR", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = 0;
    while acked < 40 {
        let line = lines.next().expect("the writer stopped early").unwrap();
        acked = line.strip_prefix("ack ").unwrap().parse::<usize>().unwrap() + 1;
    }
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush.
    child.wait().unwrap();
    let run = kvs_demo(&config, &["check", "k", &acked.to_string()]);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), acked.to_string(), "every acknowledged write is there");
}

fn runtime(dir: &Path) -> Runtime {
    let config = Config { cache_dir: Some(dir.join("cache")), data_dir: Some(dir.join("data")), ..Config::default() };
    Runtime::new(&config).unwrap()
}

#[test]
fn concurrent_writers_large_values_and_unicode_keys() {
    let dir = scratch_dir("providers-concurrent");
    let runtime = runtime(&dir);
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let program = inferlet("kvs-demo");
    let prefixes: Vec<String> = (0..8).map(|i| format!("writer{i}-")).collect();
    let runs = tokio.block_on(futures::future::join_all(prefixes.iter().map(|p| run_instance(&runtime, &program, &["fill", p, "25"]))));
    let shared = tokio.block_on(futures::future::join_all(prefixes.iter().map(|p| run_instance(&runtime, &program, &["set", "shared", p]))));
    for run in runs.iter().chain(&shared) {
        assert!(run.outcome.is_ok(), "{:?} {}", run.outcome, run.stderr);
    }
    for p in &prefixes {
        let check = tokio.block_on(run_instance(&runtime, &program, &["check", p, "25"]));
        assert_eq!(check.stdout.trim(), "25", "{p}");
    }
    let last = tokio.block_on(run_instance(&runtime, &program, &["get", "shared"]));
    assert!(prefixes.contains(&last.stdout.trim().to_string()), "one writer's whole value: {:?}", last.stdout);

    let big: String = "ünïcødé ✓ ".repeat(1 << 20).chars().take(1 << 20).collect();
    let key = "clé/🔑\n\"quoted\" \u{0}";
    let set = tokio.block_on(run_instance(&runtime, &program, &["set", key, &big]));
    assert!(set.outcome.is_ok(), "{:?}", set.outcome);
    let get = tokio.block_on(run_instance(&runtime, &program, &["get", key]));
    assert_eq!(get.stdout.trim_end_matches('\n'), big);
    let list = tokio.block_on(run_instance(&runtime, &program, &["list"]));
    assert_eq!(list.stdout.lines().count(), 8 * 25 + 1 + 2, "the keys: 200 filled, `shared`, the big one (two lines)");
}

#[test]
fn a_missing_wrong_or_trapping_provider_is_named_and_ends_only_that_instance() {
    let dir = scratch_dir("providers-broken");
    let not_there = dir.join("no-such-provider.wasm");
    let wrong = inferlet("hello"); // a component that exports no kvs
    let faulty = provider_file("kvs_faulty_provider.wasm"); // traps on every call
    for (provider, expected) in
        [(not_there.clone(), "no-such-provider.wasm"), (wrong, "inferlet:core/kvs"), (faulty, "the kvs provider failed in store-get")]
    {
        let config = Config {
            cache_dir: Some(dir.join("cache")),
            data_dir: Some(dir.join("data")),
            providers: ProvidersConfig { kvs: Some(provider), ..ProvidersConfig::default() },
            ..Config::default()
        };
        let runtime = Runtime::new(&config).unwrap();
        let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let (demo, hello) = (inferlet("kvs-demo"), inferlet("hello"));
        let (bad, good) = tokio.block_on(async { futures::join!(run_instance(&runtime, &demo, &["count"]), run_instance(&runtime, &hello, &[])) });
        match bad.outcome {
            Err(InstanceError::Trap(message)) => {
                assert!(message.contains("kvs.store-get") && message.contains(expected), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(good.outcome.is_ok(), "{:?}", good.outcome);
    }
}

#[test]
fn list_keys_returns_a_hundred_thousand_keys() {
    let dir = scratch_dir("providers-many-keys");
    let providers = ProvidersConfig { kvs: Some(provider_file("kvs_memory_provider.wasm")), ..ProvidersConfig::default() };
    let config = Config { cache_dir: Some(dir.join("cache")), data_dir: Some(dir.join("data")), providers, ..Config::default() };
    let runtime = Runtime::new(&config).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let program = inferlet("kvs-demo");
    let fill = tokio.block_on(run_instance(&runtime, &program, &["fill", "key-", "100000"]));
    assert!(fill.outcome.is_ok(), "{:?}", fill.outcome);
    let list = tokio.block_on(run_instance(&runtime, &program, &["list"]));
    assert!(list.outcome.is_ok(), "{:?}", list.outcome);
    let mut keys: Vec<&str> = list.stdout.lines().collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 100_000);
    assert!(keys.contains(&"key-99999"));
}
