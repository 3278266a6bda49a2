//! The provider components: tokenize through `crust tokenize` (llama.cpp's
//! ids), kvs persistence across restarts and `kill -9`, the in-memory kvs
//! swapped in by one config line, concurrent writers, large values, many
//! keys, and broken providers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crust::config::{Config, LimitsConfig, ProvidersConfig};
use crust::runtime::{InstanceError, Launch, Runtime};
use crust_tests::{inferlet, run_instance, run_launch, scratch_dir};

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
        [(not_there.clone(), "no-such-provider.wasm"), (wrong, "crust:host/kvs-store"), (faulty, "the kvs provider failed in get")]
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

/// `program` with one more custom section: the same code, another digest,
/// so the host takes it for another program.
fn another_build_of(program: &Path, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(program).unwrap();
    let (name, payload) = (b"crust-test", b"another program");
    let body = [&[name.len() as u8][..], name, payload].concat();
    bytes.extend([0, body.len() as u8]);
    bytes.extend(body);
    let path = dir.join("another-program.wasm");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// kvs spaces: a program sees its own keys, `@user/` keys are shared by a
/// user's programs, another user sees none of them, and each user's keys
/// and bytes are held to a quota that ends only the instance going over.
#[test]
fn each_program_and_user_has_its_own_keys_within_a_quota() {
    let dir = scratch_dir("providers-spaces");
    let limits = LimitsConfig { kvs_keys_per_user: 5, kvs_mib_per_user: 1, ..LimitsConfig::default() };
    let config = Config { cache_dir: Some(dir.join("cache")), data_dir: Some(dir.join("data")), limits, ..Config::default() };
    let runtime = Runtime::new(&config).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (demo, other) = (inferlet("kvs-demo"), another_build_of(&inferlet("kvs-demo"), &dir));
    let run = |program: &Path, args: &[&str], user: Option<&str>| {
        let launch = Launch { arguments: args.iter().map(|a| a.to_string()).collect(), namespace: user.map(String::from), ..Launch::default() };
        tokio.block_on(run_launch(&runtime, program, launch))
    };
    let ok = |run: crust_tests::InstanceRun| {
        assert!(run.outcome.is_ok(), "{:?} {}", run.outcome, run.stderr);
        run.stdout
    };

    ok(run(&demo, &["set", "mine", "demo's"], None));
    assert_eq!(ok(run(&other, &["list"], None)), "", "another program lists none of kvs-demo's keys");
    assert!(run(&other, &["get", "mine"], None).outcome.is_err(), "nor reads them");
    ok(run(&other, &["set", "mine", "other's"], None));
    assert_eq!(ok(run(&demo, &["get", "mine"], None)), "demo's\n", "the same key in two programs is two keys");
    ok(run(&other, &["set", "@user/shared", "from the other program"], None));
    assert_eq!(ok(run(&demo, &["get", "@user/shared"], None)), "from the other program\n", "`@user/` keys are the user's");
    assert_eq!(ok(run(&demo, &["list"], None)), "mine\n", "a program lists its own keys");

    // Another user: nothing of the first, and a quota of its own.
    assert_eq!(ok(run(&demo, &["list"], Some("user/bob"))), "");
    assert!(run(&demo, &["get", "@user/shared"], Some("user/bob")).outcome.is_err());
    assert_eq!(ok(run(&demo, &["fill", "k", "5"], Some("user/bob"))).lines().count(), 5);

    // The local user holds 3 keys of its 5: the third new one is refused, and
    // what was refused is not stored.
    let over = run(&demo, &["fill", "k", "10"], None);
    assert_eq!(over.stdout.lines().last(), Some("ack 1"), "{}", over.stdout);
    match over.outcome {
        Err(InstanceError::Trap(message)) => {
            assert!(
                message.contains("kvs.store-set") && message.contains("quota of 5 keys") && message.contains("limits.kvs_keys_per_user"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ok(run(&demo, &["check", "k", "10"], None)), "2\n");
    // Overwriting a key is no new key; deleting one makes room.
    ok(run(&demo, &["set", "k0", "value-0"], None));
    ok(run(&demo, &["delete", "mine"], None));
    ok(run(&demo, &["set", "k2", "value-2"], None));
    assert_eq!(ok(run(&demo, &["check", "k", "10"], None)), "3\n");

    // Bytes: 1 MiB per user.
    let big = "x".repeat(1 << 20);
    let refused = run(&demo, &["set", "big", &big], Some("user/carol"));
    assert!(matches!(&refused.outcome, Err(InstanceError::Trap(m)) if m.contains("over its quota of 1048576 bytes")), "{:?}", refused.outcome);
    ok(run(&demo, &["set", "big", &big[..1000]], Some("user/carol")));
}
