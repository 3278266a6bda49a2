//! Inferlets running the default model through `common` and `forward`: the
//! SDK's text completion against `crust generate`, forks, 16 instances in
//! shared batches, misuse ending only the offender, pages back in the pool,
//! and Pie's own SDK (chat, forks, exported prefixes, beam search).

use crust::config::{Config, EngineConfig, LimitsConfig};
use crust::engine::sequence::Sequence;
use crust::runtime::{InstanceError, Runtime};
use crust_tests::{DefaultModel, inferlet, run_instance, run_instance_as, scratch_dir};

use crate::crust;

const QUESTION: &str = "What is the capital of France?";

fn runtime(cache: &str, limits: LimitsConfig) -> Runtime {
    let config = Config { cache_dir: Some(scratch_dir(cache)), limits, ..Config::default() };
    Runtime::new(&config).expect("starting the runtime")
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// KV pages free in the default model's pool, and its capacity.
fn free_pages(runtime: &Runtime) -> (usize, u32) {
    let service = runtime.models().loaded().next().expect("the model is loaded");
    (service.free_pages(), service.capacity.kv_pages)
}

fn path(name: &str) -> String {
    inferlet(name).display().to_string()
}

/// `crust run text-completion` on the question, greedy; it must succeed.
fn text_completion(dir: &std::path::Path, max_tokens: &str) -> crate::CliRun {
    let run = crust(&["run", &path("text-completion"), "--", "--prompt", QUESTION, "--max-tokens", max_tokens], dir);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    run
}

#[test]
fn text_completion_equals_crust_generate() {
    let dir = scratch_dir("mi-text-completion");
    let generate = crust(&["generate", "--prompt", QUESTION, "--max-tokens", "24"], &dir);
    assert_eq!(generate.status, Some(0), "{}", generate.stderr);
    let completion = text_completion(&dir, "24");
    assert!(completion.stdout.contains("Paris"), "{}", completion.stdout);
    assert_eq!(completion.stdout.trim(), generate.stdout.trim());
}

#[test]
fn forks_decode_together_like_single_runs() {
    let dir = scratch_dir("mi-parallel");
    let alone = text_completion(&dir, "12");
    let forks =
        crust(&["run", &path("parallel-generation"), "--", "--prompt", QUESTION, "-n", "3", "--max-tokens", "12", "--temperature", "0"], &dir);
    assert_eq!(forks.status, Some(0), "{}", forks.stderr);
    let lines: Vec<&str> = forks.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", forks.stdout);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("[{i}] {}", alone.stdout.trim()));
    }
}

#[test]
fn sixteen_instances_share_batches_and_answer_as_alone() {
    // Sixteen decode together on one CPU adapter beside other tests: the wall time is not what is tested.
    let runtime = runtime("mi-sixteen", LimitsConfig { wall_time_secs: 1800.0, ..LimitsConfig::default() });
    let tokio = tokio();
    let prompts = ["Name a fruit.", "Name a color.", "Name an animal.", "Name a city."];
    let args = |p: &str| vec!["--prompt".to_string(), p.to_string(), "--max-tokens".into(), "8".into()];
    let program = inferlet("text-completion");
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| {
            let a = args(p);
            let run = tokio.block_on(run_instance(&runtime, &program, &a.iter().map(String::as_str).collect::<Vec<_>>()));
            assert!(run.outcome.is_ok(), "{:?} {}", run.outcome, run.stderr);
            run.stdout
        })
        .collect();
    let service = runtime.models().loaded().next().unwrap();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let (batches0, passes0) = (load(&service.stats.batches), load(&service.stats.batched_passes));

    let together = tokio.block_on(async {
        let runs = (0..16).map(|i| {
            let a = args(prompts[i % 4]);
            let (runtime, program) = (&runtime, &program);
            async move { run_instance(runtime, program, &a.iter().map(String::as_str).collect::<Vec<_>>()).await }
        });
        futures::future::join_all(runs).await
    });
    for (i, run) in together.iter().enumerate() {
        assert!(run.outcome.is_ok(), "instance {i}: {:?} {}", run.outcome, run.stderr);
        assert_eq!(run.stdout, alone[i % 4], "instance {i}");
    }
    let (batches, passes) = (load(&service.stats.batches) - batches0, load(&service.stats.batched_passes) - passes0);
    assert!(passes >= 16 * 8, "{passes} passes");
    assert!(batches * 2 < passes, "16 instances' {passes} passes ran in {batches} batches: not batched");
    let (free, capacity) = free_pages(&runtime);
    assert_eq!(free, capacity as usize, "every page is back in the pool");
}

#[test]
fn misuse_ends_only_the_offender_and_pages_come_back() {
    // `hold` spins until the CPU-time budget (10 s) stops it; the wall time is for a slow adapter.
    let limits = LimitsConfig { wall_time_secs: 300.0, ..LimitsConfig::default() };
    let runtime = runtime("mi-misuse", limits);
    let tokio = tokio();
    let cases = [
        ("unknown-pointer", "forward.forward-pass.execute: KV page pointer 4242 was not allocated"),
        ("token-id", "forward.input-tokens: token id 999999 is not below the vocabulary size 49152"),
        ("lengths", "forward.input-tokens: 2 tokens but 1 positions"),
        ("mask", "attention-mask: row 1: the runs cover 5 slots, expected 2"),
        ("quota", "common.allocate-resources: asked for 100000 more KV pages while holding 2; the per-instance quota is 256"),
        ("resource-type", "common.allocate-resources: unknown resource type 7"),
        ("export-twice", "common.export-resources: the export name `misuse-twice` is already in use"),
    ];
    let (misuse, completion) = (inferlet("misuse"), inferlet("text-completion"));
    let (good, bad) = tokio.block_on(async {
        let good = run_instance(&runtime, &completion, &["--prompt", QUESTION, "--max-tokens", "8"]);
        let bad = futures::future::join_all(cases.iter().map(|(case, _)| run_instance(&runtime, &misuse, &[*case])));
        futures::join!(good, bad)
    });
    assert!(good.outcome.is_ok(), "{:?}", good.outcome);
    assert!(good.stdout.contains("Paris"), "{}", good.stdout);
    for ((case, expected), run) in cases.iter().zip(bad) {
        match run.outcome {
            Err(InstanceError::Trap(message)) => {
                assert!(message.contains(expected), "{case}: {message}")
            }
            other => panic!("{case}: {other:?}"),
        }
    }
    // Killed by the wall-time limit while holding pages: they come back too.
    let held = tokio.block_on(run_instance(&runtime, &misuse, &["hold", "12"]));
    assert!(matches!(held.outcome, Err(InstanceError::Limit(_))), "{:?}", held.outcome);
    assert_eq!(held.stdout.trim(), "holding");
    // `export-twice`'s export went with it: each instance here is its own owner.
    let (free, capacity) = free_pages(&runtime);
    assert_eq!(free, capacity as usize, "every page is back, the exported ones too");
}

#[test]
fn pie_sdk_chat_answers_paris() {
    let dir = scratch_dir("mi-pie-chat");
    let run = crust(&["run", &path("pie-model"), "--", "chat", QUESTION, "24"], &dir);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("Paris"), "{}", run.stdout);
}

#[test]
fn pie_sdk_forks_decode_at_once_like_unforked_runs() {
    let dir = scratch_dir("mi-pie-fork");
    let run = crust(&["run", &path("pie-model"), "--", "fork", "The three best things about Paris are", "8"], &dir);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let line = |prefix: String| run.stdout.lines().find_map(|l| l.strip_prefix(&prefix).map(str::to_string)).expect(&prefix);
    for i in 0..3 {
        let fork = line(format!("fork {i}: "));
        assert!(fork.len() > 4, "{}", run.stdout);
        assert_eq!(fork, line(format!("alone {i}: ")), "{}", run.stdout);
    }
}

/// An exported prefix whose last page is partial, imported by two instances
/// at once that write after it (copy-on-write), then by a third after them:
/// each equals the same generation from scratch, until the export is released.
/// They act for one owner, kept alive meanwhile as a server user's session is.
#[test]
fn pie_sdk_exported_prefix_is_shared_copy_on_write() {
    let runtime = runtime("mi-pie-export", LimitsConfig::default());
    let tokio = tokio();
    let program = inferlet("pie-model");
    let prefix = "Paris is the capital of France. It is known for";
    let alice = runtime.owner("alice");
    let export = tokio.block_on(run_instance_as(&runtime, &program, &["export", "paris", prefix], "alice"));
    assert!(export.outcome.is_ok(), "{:?} {}", export.outcome, export.stderr);
    assert!(!export.stdout.contains("last page 16"), "the prefix must end in a partial page: {}", export.stdout);

    let check = |run: &crust_tests::InstanceRun| {
        assert!(run.outcome.is_ok(), "{:?} {}", run.outcome, run.stderr);
        let field = |name: &str| run.stdout.lines().find_map(|l| l.strip_prefix(name)).expect(name).to_string();
        assert_eq!(field("imported: "), field("scratch: "), "{}", run.stdout);
    };
    let (a, b) = tokio.block_on(async {
        futures::join!(
            run_instance_as(&runtime, &program, &["import", "paris", prefix, " its food and", "6"], "alice"),
            run_instance_as(&runtime, &program, &["import", "paris", prefix, " the Eiffel", "6"], "alice"),
        )
    });
    check(&a);
    check(&b);
    let again = tokio.block_on(run_instance_as(&runtime, &program, &["import", "paris", prefix, " museums such as", "6"], "alice"));
    check(&again);

    let (free, capacity) = free_pages(&runtime);
    assert!(free < capacity as usize, "the export still holds its pages");
    let release = tokio.block_on(run_instance_as(&runtime, &program, &["release", "paris"], "alice"));
    assert!(release.outcome.is_ok(), "{:?}", release.outcome);
    assert_eq!(free_pages(&runtime).0, capacity as usize, "released: every page is back");
    drop(alice);
}

/// Pie's width-3 beam search relies on sorted distributions: its result is
/// at least as likely, by teacher forcing, as the greedy continuation.
#[test]
fn pie_sdk_beam_search_beats_greedy() {
    let dir = scratch_dir("mi-pie-beam");
    let run = crust(&["run", &path("pie-model"), "--", "beam", "Name a color.", "6"], &dir);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let ids = |name: &str| -> Vec<u32> {
        let line = run.stdout.lines().find_map(|l| l.strip_prefix(name)).expect(name);
        line.split_whitespace().map(|t| t.parse().unwrap()).collect()
    };
    let (prompt, beam, greedy) = (ids("prompt: "), ids("beam: "), ids("greedy: "));
    assert_eq!((beam.len(), greedy.len()), (6, 6));

    let tokio = tokio();

    let engine = EngineConfig { kv_pages: 16, batch_tokens: 64, ..EngineConfig::default() };
    let service = tokio.block_on(async { DefaultModel::open("mi-beam-teacher", engine).await.service().await });
    let log_prob = |continuation: &[u32]| -> f64 {
        let tokens = [prompt.as_slice(), continuation].concat();
        let dists = tokio.block_on(Sequence::new(service.clone()).teacher_forced(&tokens, 256)).unwrap();
        continuation
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let (ids, probs) = &dists[prompt.len() - 1 + i];
                let p = ids.iter().position(|&id| id == t).map_or(1e-9, |j| probs[j]);
                (p as f64).ln()
            })
            .sum()
    };
    let (beam_lp, greedy_lp) = (log_prob(&beam), log_prob(&greedy));
    assert!(beam_lp >= greedy_lp - 1e-3, "beam {beam:?} log p {beam_lp} < greedy {greedy:?} log p {greedy_lp}");
}
