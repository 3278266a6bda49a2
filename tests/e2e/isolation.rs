//! Hostile inferlets (`hostile`, one attack per run) next to a well-behaved
//! neighbour: the neighbour's greedy answer is bit-identical to a run alone,
//! the attacker gets a clear error or a correct answer, and every page is
//! back in the pool afterwards.

use crust::config::{Config, EngineConfig, LimitsConfig};
use crust::runtime::{InstanceError, Runtime};
use crust_tests::{InstanceRun, inferlet, run_instance, scratch_dir};

const QUESTION: &str = "What is the capital of France?";

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// Batches of 64 rows, so a long prefill stays short on a CPU adapter.
const BATCH_TOKENS: u32 = 64;

fn runtime(cache: &str) -> Runtime {
    let engine = EngineConfig { batch_tokens: BATCH_TOKENS, ..EngineConfig::default() };
    let limits = LimitsConfig { wall_time_secs: 120.0, ..LimitsConfig::default() };
    Runtime::new(&Config { cache_dir: Some(scratch_dir(cache)), engine, limits, ..Config::default() }).expect("starting the runtime")
}

/// The neighbour: a short greedy text completion.
async fn neighbour(runtime: &Runtime) -> InstanceRun {
    let completion = inferlet("text-completion");
    let run = run_instance(runtime, &completion, &["--prompt", QUESTION, "--max-tokens", "8"]).await;
    assert!(run.outcome.is_ok(), "the neighbour failed: {:?} {}", run.outcome, run.stderr);
    run
}

async fn attack(runtime: &Runtime, arguments: &[&str]) -> InstanceRun {
    run_instance(runtime, &inferlet("hostile"), arguments).await
}

/// Runs the attack next to the neighbour; checks the neighbour's answer and
/// that no page leaked; returns the attack's run.
fn beside_a_neighbour(cache: &str, arguments: &[&str]) -> InstanceRun {
    let runtime = runtime(cache);
    let tokio = tokio();
    let alone = tokio.block_on(neighbour(&runtime)).stdout;
    let (next_to, attacked) = tokio.block_on(async { futures::join!(neighbour(&runtime), attack(&runtime, arguments)) });
    assert_eq!(next_to.stdout, alone, "the neighbour's answer changed beside `{}`", arguments.join(" "));
    let service = runtime.models().loaded().next().expect("the model is loaded");
    assert_eq!(service.free_pages(), service.capacity.kv_pages as usize, "every page is back in the pool");
    attacked
}

fn trap_message(run: &InstanceRun) -> &str {
    match &run.outcome {
        Err(InstanceError::Trap(message)) => message,
        other => panic!("expected the attacker to be stopped, got {other:?} ({})", run.stderr),
    }
}

#[test]
fn one_output_index_asked_for_many_times_is_refused_at_execute() {
    let run = beside_a_neighbour("iso-repeated-outputs", &["repeated-outputs", "200"]);
    let message = trap_message(&run);
    assert!(message.contains("forward.forward-pass.execute: 200 sampled outputs, more than the engine's 128 per pass"), "{message}");
}

#[test]
fn one_page_listed_many_times_is_refused_and_fails_no_batch() {
    let run = beside_a_neighbour("iso-repeated-pages", &["repeated-pages", "70000"]);
    let message = trap_message(&run);
    assert!(message.contains("forward.forward-pass.execute: 70000 KV page references, more than the engine's 65536 per pass"), "{message}");
}

#[test]
fn a_flood_of_passes_is_capped_and_its_priority_too() {
    let run = beside_a_neighbour("iso-flood", &["flood", "20000"]);
    let message = trap_message(&run);
    assert!(
        message.contains(
            "forward.forward-pass.execute: 256 passes of this instance are waiting, the most it may queue (limits.queued_passes_per_instance)"
        ),
        "{message}"
    );
}

#[test]
fn an_export_listing_a_page_twice_is_refused() {
    let run = beside_a_neighbour("iso-export-duplicates", &["export-duplicates"]);
    let message = trap_message(&run);
    assert!(message.contains("common.export-resources: pointer 0 is listed twice"), "{message}");
}

#[test]
fn host_memory_kept_for_an_instance_is_bounded() {
    for (attack, call) in [("blob-hog", "common.blob"), ("builder-hog", "forward.input-tokens")] {
        let run = beside_a_neighbour(&format!("iso-{attack}"), &[attack]);
        let message = trap_message(&run);
        assert!(message.contains(call) && message.contains("over its budget of 65536 KiB (limits.host_memory_mib)"), "{attack}: {message}");
    }
}

#[test]
fn a_page_freed_under_a_queued_pass_stays_with_that_pass() {
    let run = beside_a_neighbour("iso-freed-under-pass", &["freed-under-pass", "100"]);
    assert!(run.outcome.is_ok(), "{:?}", run.outcome);
    assert_eq!(run.stdout.trim(), "freed");
}

#[test]
fn a_fresh_page_shows_nothing_of_its_last_holder() {
    let tokio = tokio();
    // On pages nobody ever used.
    let fresh = tokio.block_on(attack(&runtime("iso-stale-fresh"), &["stale-probe"]));
    assert!(fresh.outcome.is_ok(), "{:?} {}", fresh.outcome, fresh.stderr);
    // Right after another instance filled pages and ended.
    let runtime = runtime("iso-stale-reused");
    let filled = tokio.block_on(attack(&runtime, &["fill", "64"]));
    assert!(filled.outcome.is_ok(), "{:?} {}", filled.outcome, filled.stderr);
    let reused = tokio.block_on(attack(&runtime, &["stale-probe"]));
    assert!(reused.outcome.is_ok(), "{:?} {}", reused.outcome, reused.stderr);
    assert!(fresh.stdout.starts_with("distribution "), "{}", fresh.stdout);
    assert_eq!(reused.stdout, fresh.stdout, "the probe read what the last holder left");
}

#[test]
fn a_prefill_longer_than_a_batch_runs_in_chunks_with_the_same_answer() {
    // 150 tokens in one pass, more than a batch's 64 rows (as Pie's prefix-caching
    // example sends 770 to the default 512), next to the neighbour.
    let long = beside_a_neighbour("iso-long-prefill", &["long-prefill", "150"]);
    assert!(long.outcome.is_ok(), "{:?} {}", long.outcome, long.stderr);
    let runtime = runtime("iso-split-prefill");
    let split = tokio().block_on(attack(&runtime, &["split-prefill", "150"]));
    assert!(split.outcome.is_ok(), "{:?} {}", split.outcome, split.stderr);
    assert!(long.stdout.starts_with("distribution "), "{}", long.stdout);
    assert_eq!(long.stdout, split.stdout, "one long pass and passes of 50 give the same distribution");
}

#[test]
fn a_spinning_inferlet_is_stopped_by_its_cpu_budget_and_a_waiting_one_is_not() {
    let limits = LimitsConfig { wall_time_secs: 120.0, cpu_time_secs: 3.0, ..LimitsConfig::default() };
    let runtime = Runtime::new(&Config { cache_dir: Some(scratch_dir("iso-cpu-time")), limits, ..Config::default() }).unwrap();
    let tokio = tokio();
    let spin = inferlet("misuse");
    // The neighbour waits on the GPU for most of its run: that is not CPU time.
    let (waiting, spinning) = tokio.block_on(async { futures::join!(neighbour(&runtime), run_instance(&runtime, &spin, &["hold", "1"])) });
    assert!(waiting.stdout.contains("Paris"), "{}", waiting.stdout);
    match spinning.outcome {
        Err(InstanceError::Limit(limit)) => assert!(limit.to_string().starts_with("CPU-time limit of 3s exceeded"), "{limit}"),
        other => panic!("the spinner was not stopped by its CPU budget: {other:?}"),
    }
}
