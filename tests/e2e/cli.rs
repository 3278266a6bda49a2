//! `crust run` as a user runs it: output, return value, exit status, errors.

use crate::crust;
use crust_tests::{inferlet, scratch_dir};

fn path(name: &str) -> String {
    inferlet(name).display().to_string()
}

#[test]
fn hello_prints_identity_and_returns_a_value() {
    let cache = scratch_dir("cli-hello");
    let run = crust(&["run", &path("hello"), "--", "one", "two words"], &cache);
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let id = lines[0].strip_prefix("instance ").expect("first line names the instance");
    assert_eq!(id.len(), 36, "instance id is a UUID: {id}");
    assert_eq!(lines[1], format!("runtime {}", crust::VERSION));
    assert_eq!(lines[2], r#"arguments ["one", "two words"]"#);
    assert_eq!(lines[3], format!("models [\"{}\"]", crust::config::DEFAULT_MODEL_NAME), "the configured models, none loaded yet");
    assert_eq!(lines[4], "ping pong");
    assert_eq!(lines[5], "hello after 2 argument(s)", "the return value is printed last");
    assert_eq!(lines.len(), 6);
}

/// `crust chat`: no path to type; a `> ` prompt before each turn, the reply
/// after it, the history kept (the second question leans on the first) until
/// `/reset`; an empty line is skipped; `/exit` ends it.
#[test]
fn chat_prompts_answers_and_keeps_the_history() {
    use std::io::Write;
    let mut chat = std::process::Command::new(env!("CARGO_BIN_EXE_crust-under-test"))
        .args(["chat", "--max-tokens", "48"])
        .env("CRUST_CACHE_DIR", scratch_dir("cli-chat"))
        .env_remove("CRUST_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    chat.stdin.take().unwrap().write_all(b"What is the capital of France?\n\nAnd of Italy?\n/reset\n/exit\n").unwrap();
    let run = crate::CliRun::from(chat.wait_with_output().unwrap());
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let turns: Vec<&str> = run.stdout.split("> ").collect();
    assert_eq!(turns.len(), 5, "a prompt first and after each of three turns: {:?}", run.stdout);
    assert!(turns[1].contains("Paris") && turns[1].ends_with('\n'), "{:?}", run.stdout);
    assert!(turns[2].contains("Rome"), "the second turn sees the first: {:?}", run.stdout);
    assert_eq!((turns[0], turns[3], turns[4]), ("", "", "\n"), "/reset answers with a fresh prompt: {:?}", run.stdout);
}

/// Inferlets built with `crust_sdk::Flags` answer `--help` from their declared flags.
#[test]
fn inferlets_print_their_flags_for_help() {
    let cache = scratch_dir("cli-inferlet-help");
    let inferlets = [
        ("text-completion", "--max-tokens N"),
        ("chat", "--stream"),
        ("parallel-generation", "-n N"),
        ("agent-swarm", "--agents N"),
        ("kvs-demo", "count"),
    ];
    for (inferlet, flag) in inferlets {
        let run = crust(&["run", &path(inferlet), "--", "--help"], &cache);
        assert_eq!(run.status, Some(0), "{inferlet}: {}", run.stderr);
        assert!(run.stdout.starts_with(&format!("{inferlet}: ")), "{inferlet}: {}", run.stdout);
        assert!(run.stdout.contains(flag), "{inferlet}: {}", run.stdout);
    }
    let wrong = crust(&["run", &path("text-completion"), "--", "--promt", "Hi"], &cache);
    assert_eq!(wrong.status, Some(1));
    assert!(wrong.stderr.contains("unknown argument `--promt` (--help lists the flags)"), "{}", wrong.stderr);
}

/// Logs written to a pipe or a file carry no terminal colour codes.
#[test]
fn logs_off_a_terminal_have_no_colour_codes() {
    let cache = scratch_dir("cli-log-colours");
    let run = crust(&["--log", "debug", "run", &path("hello")], &cache);
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("DEBUG"), "debug logs were written: {}", run.stderr);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
}

#[test]
fn arguments_pass_through_exactly() {
    let cache = scratch_dir("cli-args");
    let args = ["", "--", "-x", "naïve ✓", "a=b c"];
    let mut cmd = vec!["run", "--wall-time", "30"];
    let p = path("hello");
    cmd.push(&p);
    cmd.push("--");
    cmd.extend(args);
    let run = crust(&cmd, &cache);
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains(r#"arguments ["", "--", "-x", "naïve ✓", "a=b c"]"#), "{}", run.stdout);
}

#[test]
fn each_instance_gets_its_own_id() {
    let cache = scratch_dir("cli-ids");
    let first = crust(&["run", &path("hello")], &cache);
    let second = crust(&["run", &path("hello")], &cache);
    let id = |out: &str| out.lines().next().unwrap().to_string();
    assert_ne!(id(&first.stdout), id(&second.stdout));
}

#[test]
fn a_trap_fails_the_run_with_its_message() {
    let cache = scratch_dir("cli-trap");
    let run = crust(&["run", &path("trap"), "--", "x"], &cache);
    assert_eq!(run.status, Some(1));
    assert!(run.stdout.contains("about to trap"), "stdout streams before the trap: {}", run.stdout);
    assert!(run.stderr.contains("deliberate trap after 1 argument(s)"), "the guest's panic reaches stderr: {}", run.stderr);
    assert!(run.stderr.contains("the inferlet trapped"), "{}", run.stderr);
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
}

#[test]
fn a_runaway_inferlet_hits_the_wall_time_limit() {
    let cache = scratch_dir("cli-spin");
    let run = crust(&["run", "--wall-time", "0.5", &path("spin")], &cache);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("wall-time limit of 500ms exceeded"), "{}", run.stderr);
}

#[test]
fn a_memory_hog_hits_the_memory_limit() {
    let cache = scratch_dir("cli-hog");
    let run = crust(&["run", "--memory-limit", "32", &path("memory-hog")], &cache);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("memory limit of 32 MiB exceeded"), "{}", run.stderr);
}

#[test]
fn limits_come_from_the_config_file() {
    let dir = scratch_dir("cli-config");
    let config = dir.join("crust.toml");
    std::fs::write(&config, "[limits]\nwall_time_secs = 0.3\n").unwrap();
    let run = crust(&["run", "--config", config.to_str().unwrap(), &path("spin")], &dir);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("wall-time limit of 300ms exceeded"), "{}", run.stderr);

    std::fs::write(&config, "[limits]\nwall_tme_secs = 1\n").unwrap();
    let run = crust(&["run", "--config", config.to_str().unwrap(), &path("hello")], &dir);
    assert_eq!(run.status, Some(2));
    assert!(run.stderr.contains("unknown field `wall_tme_secs`"), "{}", run.stderr);
}

#[test]
fn files_that_are_not_inferlets_are_refused_clearly() {
    let dir = scratch_dir("cli-invalid");
    let cases: [(&str, &[u8], &str); 5] = [
        ("garbage.wasm", b"definitely not wasm", "not a WebAssembly file"),
        ("core.wasm", b"\0asm\x01\0\0\0", "core WebAssembly module, not a component"),
        ("truncated.wasm", b"\0asm\x0d\0\x01\0\x01\xff", "invalid component"),
        ("missing-import.wat", br#"(component (import "acme:tools/lasers" (instance (export "fire" (func)))))"#, "acme:tools/lasers"),
        ("no-entry.wat", b"(component)", "exports neither `inferlet:core/run` nor `wasi:cli/run` nor `wasi:http/incoming-handler`"),
    ];
    for (name, bytes, expected) in cases {
        let file = dir.join(name);
        std::fs::write(&file, bytes).unwrap();
        let run = crust(&["run", file.to_str().unwrap()], &dir);
        assert_eq!(run.status, Some(2), "{name}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{name}: expected `{expected}` in: {}", run.stderr);
        assert!(run.stderr.contains(name), "{name}: the error names the file: {}", run.stderr);
    }
    let run = crust(&["run", dir.join("absent.wasm").to_str().unwrap()], &dir);
    assert_eq!(run.status, Some(2));
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
}

#[test]
fn compiled_programs_are_cached_on_disk_across_runs() {
    let cache = scratch_dir("cli-cache");
    let first = crust(&["run", "--log", "crust=debug", &path("hello")], &cache);
    assert_eq!(first.status, Some(0), "{}", first.stderr);
    assert!(first.stderr.contains("program compiled and cached"), "{}", first.stderr);
    let artifacts: Vec<_> = std::fs::read_dir(cache.join("programs")).unwrap().collect();
    assert_eq!(artifacts.len(), 1, "one artifact per program");

    let second = crust(&["run", "--log", "crust=debug", &path("hello")], &cache);
    assert_eq!(second.status, Some(0), "{}", second.stderr);
    assert!(second.stderr.contains("program loaded from the disk cache"), "{}", second.stderr);
    assert!(second.stdout.ends_with("hello after 0 argument(s)\n"));

    // A damaged artifact is ignored and replaced, never trusted.
    let artifact = artifacts.into_iter().next().unwrap().unwrap().path();
    std::fs::write(&artifact, b"damaged").unwrap();
    let third = crust(&["run", "--log", "crust=debug", &path("hello")], &cache);
    assert_eq!(third.status, Some(0), "{}", third.stderr);
    assert!(third.stderr.contains("ignoring unusable cached program"), "{}", third.stderr);
}

#[test]
fn help_describes_every_command() {
    let cache = scratch_dir("cli-help");
    let top = crust(&["--help"], &cache);
    assert_eq!(top.status, Some(0));
    assert!(top.stdout.contains("inferlets"), "{}", top.stdout);
    assert!(top.stdout.contains("run"), "{}", top.stdout);
    let run = crust(&["run", "--help"], &cache);
    assert!(run.stdout.contains("--wall-time") && run.stdout.contains("--memory-limit"), "{}", run.stdout);
}
