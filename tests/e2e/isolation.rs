//! Hostile inferlets (`hostile`, one attack per run) next to a well-behaved
//! neighbour: the neighbour's greedy answer is bit-identical to a run alone,
//! the attacker gets a clear error or a correct answer, and every page is
//! back in the pool afterwards.

use crust::config::{Config, EngineConfig, LimitsConfig};
use crust::runtime::{InstanceError, Launch, Runtime};
use crust_tests::{InstanceRun, inferlet, run_instance, run_launch, scratch_dir};

const QUESTION: &str = "What is the capital of France?";

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// Batches of 64 rows, so a long prefill stays short on a CPU adapter.
const BATCH_TOKENS: u32 = 64;

/// Limits for a slow CPU adapter: the wall time is not what these tests test.
fn limits() -> LimitsConfig {
    LimitsConfig { wall_time_secs: 600.0, ..LimitsConfig::default() }
}

fn runtime(cache: &str) -> Runtime {
    runtime_with(cache, limits())
}

fn runtime_with(cache: &str, limits: LimitsConfig) -> Runtime {
    let engine = EngineConfig { batch_tokens: BATCH_TOKENS, ..EngineConfig::default() };
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
    beside_a_neighbour_in(runtime(cache), arguments)
}

fn beside_a_neighbour_in(runtime: Runtime, arguments: &[&str]) -> InstanceRun {
    let tokio = tokio();
    let alone = tokio.block_on(neighbour(&runtime)).stdout;
    let (next_to, attacked) = tokio.block_on(async { futures::join!(neighbour(&runtime), attack(&runtime, arguments)) });
    assert_eq!(next_to.stdout, alone, "the neighbour's answer changed beside `{}`", arguments.join(" "));
    let (free, capacity) = free_pages(&runtime);
    assert_eq!(free, capacity, "every page is back in the pool");
    attacked
}

/// KV pages no one holds, and the pool's size.
fn free_pages(runtime: &Runtime) -> (usize, usize) {
    let service = runtime.models().loaded().next().expect("the model is loaded");
    (service.free_pages(), service.capacity.kv_pages as usize)
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
    // A low cap: the passes queued before it run anyway, and a CPU adapter is slow.
    let runtime = runtime_with("iso-flood", LimitsConfig { queued_passes_per_instance: 32, ..limits() });
    let run = beside_a_neighbour_in(runtime, &["flood", "20000"]);
    let message = trap_message(&run);
    assert!(
        message.contains(
            "forward.forward-pass.execute: 32 passes of this instance are waiting, the most it may queue (limits.queued_passes_per_instance)"
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
    let limits = LimitsConfig { cpu_time_secs: 3.0, ..limits() };
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

/// Allocate the quota, export it, end, repeat: each export goes with its
/// instance (under `crust run` an instance is its own owner), so three
/// rounds of 256 pages never drain a pool of 512.
#[test]
fn exporting_the_quota_and_ending_drains_nothing() {
    let runtime = runtime("iso-export-all");
    let tokio = tokio();
    let alone = tokio.block_on(neighbour(&runtime)).stdout;
    for round in 0..3 {
        let run = tokio.block_on(attack(&runtime, &["export-all", "256"]));
        assert!(run.outcome.is_ok(), "round {round}: {:?} {}", run.outcome, run.stderr);
        assert_eq!(run.stdout.trim(), "exported 256");
        let (free, capacity) = free_pages(&runtime);
        assert_eq!(free, capacity, "round {round}: the export went with its owner");
    }
    assert_eq!(tokio.block_on(neighbour(&runtime)).stdout, alone);
}

#[test]
fn an_owners_exports_count_against_its_page_budget() {
    let run = beside_a_neighbour("iso-export-budget", &["export-twice", "200"]);
    let message = trap_message(&run);
    assert!(
        message.contains(
            "common.export-resources: exporting 200 KV pages as `hostile-second` would make its owner's exports hold 400; \
             an owner's exports may hold 256 (limits.kv_pages_per_instance)"
        ),
        "{message}"
    );
}

/// A user's subscriptions are capped together (`limits.subscriptions_per_user`).
#[test]
fn topic_subscriptions_are_capped_per_user() {
    let runtime = runtime_with("iso-subscriptions", LimitsConfig { subscriptions_per_user: 3, ..limits() });
    let tokio = tokio();
    let within = tokio.block_on(attack(&runtime, &["subscribe-hog", "3"]));
    assert!(within.outcome.is_ok() && within.stdout.contains("subscribed 3"), "{:?} {}", within.outcome, within.stderr);
    let over = tokio.block_on(attack(&runtime, &["subscribe-hog", "4"]));
    let message = trap_message(&over);
    assert!(message.contains("already holds 3 topic subscriptions") && message.contains("limits.subscriptions_per_user"), "{message}");
}

/// Two server users: an export under `public/` (`server.shared_prefix`) is
/// seen by both but released only by its owner; any other name is each
/// user's own.
#[test]
fn a_public_export_is_seen_by_every_user_and_released_only_by_its_owner() {
    let runtime = runtime_with("iso-public", LimitsConfig { export_ttl_secs: 60.0, ..limits() });
    let tokio = tokio();
    let as_user = |user: &str, arguments: &[&str]| {
        let launch = Launch {
            arguments: arguments.iter().map(|a| a.to_string()).collect(),
            namespace: Some(format!("user/{user}")),
            owner: Some(user.to_string()),
            ..Launch::default()
        };
        let run = tokio.block_on(run_launch(&runtime, &inferlet("hostile"), launch));
        assert!(run.outcome.is_ok(), "{:?} {}", run.outcome, run.stderr);
        run.stdout.trim().to_string()
    };
    assert_eq!(as_user("alice", &["keep", "public/prompt"]), "kept Ok(60)");
    assert_eq!(as_user("alice", &["keep", "prompt"]), "kept Ok(60)");
    let capacity = free_pages(&runtime).1;
    assert_eq!(free_pages(&runtime).0, capacity - 4);

    // Bob sees the public name (it is alice's), not the private one.
    let public = as_user("bob", &["keep-only", "public/prompt"]);
    assert!(public.contains("was exported by another owner"), "{public}");
    let private = as_user("bob", &["keep-only", "prompt"]);
    assert!(private.contains("nothing is exported under `prompt`"), "{private}");
    // His releases take neither away.
    as_user("bob", &["release", "public/prompt"]);
    as_user("bob", &["release", "prompt"]);
    assert_eq!(free_pages(&runtime).0, capacity - 4, "only alice may release her exports");

    as_user("alice", &["release", "public/prompt"]);
    as_user("alice", &["release", "prompt"]);
    assert_eq!(free_pages(&runtime).0, capacity, "released by their owner: every page is back");
}

/// A kept export outlives its instance for the time granted (capped by
/// `limits.export_ttl_secs`); no other owner may keep it; a release ends it.
#[test]
fn a_kept_export_outlives_its_instance_and_only_its_owner_keeps_it() {
    let runtime = runtime_with("iso-keep", LimitsConfig { export_ttl_secs: 60.0, ..limits() });
    let tokio = tokio();
    let kept = tokio.block_on(attack(&runtime, &["keep", "hostile-kept"]));
    assert!(kept.outcome.is_ok(), "{:?} {}", kept.outcome, kept.stderr);
    assert_eq!(kept.stdout.trim(), "kept Ok(60)", "an hour asked, the cap granted");
    let (free, capacity) = free_pages(&runtime);
    assert_eq!(free, capacity - 2, "the kept export holds its 2 pages past its instance");
    let other = tokio.block_on(attack(&runtime, &["keep-only", "hostile-kept"]));
    assert_eq!(other.stdout.trim(), r#"kept Err("exports.keep-export: `hostile-kept` was exported by another owner: only its owner may keep it")"#);
    let release = tokio.block_on(attack(&runtime, &["release", "hostile-kept"]));
    assert!(release.outcome.is_ok(), "{:?}", release.outcome);
    assert_eq!(free_pages(&runtime).0, capacity, "released: every page is back");
}
