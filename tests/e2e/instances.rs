//! Many instances in one runtime: a faulty one is stopped with a message that
//! names its limit while a well-behaved one beside it completes.

use std::time::Duration;

use crust::config::LimitsConfig;
use crust::runtime::{InstanceError, LimitExceeded, ProgramOrigin};
use crust_tests::{inferlet, run_instance, runtime};

fn limits(wall_time_secs: f64, memory_mib: u64, max_instances: usize) -> LimitsConfig {
    LimitsConfig { wall_time_secs, memory_mib, max_instances, ..LimitsConfig::default() }
}

/// Runs `fault` and, once it is under way, `hello`; returns both results.
async fn fault_beside_hello(fault: &str, limits: LimitsConfig) -> (crust_tests::InstanceRun, crust_tests::InstanceRun) {
    let rt = std::sync::Arc::new(runtime(limits, &format!("beside-{fault}")));
    let faulty = tokio::spawn({
        let rt = rt.clone();
        let path = inferlet(fault);
        async move { run_instance(&rt, &path, &[]).await }
    });
    // Let the fault start, so the two really overlap.
    while rt.live_instances() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let good = run_instance(&rt, &inferlet("hello"), &["beside", fault]).await;
    (faulty.await.unwrap(), good)
}

fn assert_hello_completed(run: &crust_tests::InstanceRun) {
    assert_eq!(run.outcome.as_ref().unwrap().as_deref(), Some("hello after 2 argument(s)"));
    assert!(run.stdout.contains("ping pong"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_is_stopped_while_its_neighbour_completes() {
    let (spin, hello) = fault_beside_hello("spin", limits(1.0, 256, 8)).await;
    assert_hello_completed(&hello);
    let error = spin.outcome.unwrap_err();
    assert!(matches!(error, InstanceError::Limit(LimitExceeded::WallTime(d)) if d == Duration::from_secs(1)), "{error}");
    assert_eq!(error.to_string(), "wall-time limit of 1s exceeded (limits.wall_time_secs)");
    assert_eq!(spin.stdout, "spinning\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_is_stopped_while_its_neighbour_completes() {
    let (hog, hello) = fault_beside_hello("memory-hog", limits(30.0, 48, 8)).await;
    assert_hello_completed(&hello);
    let error = hog.outcome.unwrap_err();
    assert!(matches!(error, InstanceError::Limit(LimitExceeded::Memory { limit, .. }) if limit == 48 << 20), "{error}");
    assert!(error.to_string().starts_with("memory limit of 48 MiB exceeded"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_ends_only_its_instance() {
    let rt = runtime(limits(30.0, 256, 8), "trap-and-hello");
    let (trap_path, hello_path) = (inferlet("trap"), inferlet("hello"));
    let (trap, hello) = tokio::join!(run_instance(&rt, &trap_path, &["a", "b"]), run_instance(&rt, &hello_path, &["beside", "trap"]),);
    assert_hello_completed(&hello);
    let error = trap.outcome.unwrap_err();
    assert!(matches!(error, InstanceError::Trap(ref m) if m.contains("unreachable")), "{error}");
    assert!(trap.stderr.contains("deliberate trap after 2 argument(s)"), "{}", trap.stderr);
    // The runtime is still fine afterwards.
    assert_hello_completed(&run_instance(&rt, &inferlet("hello"), &["after", "trap"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_instance_cap_refuses_extra_launches() {
    // Long enough that the runaway still runs, on a loaded machine, when the second launch comes.
    let rt = std::sync::Arc::new(runtime(limits(5.0, 256, 1), "instance-cap"));
    let spin = tokio::spawn({
        let rt = rt.clone();
        async move { run_instance(&rt, &inferlet("spin"), &[]).await }
    });
    while rt.live_instances() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = run_instance(&rt, &inferlet("hello"), &["too", "many"]).await;
    let error = refused.outcome.unwrap_err();
    assert!(matches!(error, InstanceError::Limit(LimitExceeded::Instances(1))), "{error}");
    assert!(error.to_string().contains("limits.max_instances"), "{error}");
    assert!(spin.await.unwrap().outcome.is_err());
    // The seat is given back when the runaway is stopped.
    assert_eq!(rt.live_instances(), 0);
    assert_hello_completed(&run_instance(&rt, &inferlet("hello"), &["then", "fits"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_instances_each_see_their_own_id_and_arguments() {
    let rt = std::sync::Arc::new(runtime(limits(30.0, 256, 64), "many-hellos"));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16 {
        let rt = rt.clone();
        set.spawn(async move { (i, run_instance(&rt, &inferlet("hello"), &[&i.to_string()]).await) });
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(joined) = set.join_next().await {
        let (i, run) = joined.unwrap();
        assert_eq!(run.outcome.unwrap().as_deref(), Some("hello after 1 argument(s)"));
        assert!(run.stdout.contains(&format!("arguments [\"{i}\"]")), "{}", run.stdout);
        ids.insert(run.stdout.lines().next().unwrap().to_string());
    }
    assert_eq!(ids.len(), 16, "instance ids are unique");
}

#[tokio::test]
async fn a_program_is_compiled_once_per_process() {
    let rt = runtime(limits(30.0, 256, 8), "memory-cache");
    let first = rt.load_program_file(&inferlet("hello")).unwrap();
    let second = rt.load_program_file(&inferlet("hello")).unwrap();
    assert_eq!(first.hash, second.hash);
    assert_ne!(first.origin, ProgramOrigin::MemoryCache);
    assert_eq!(second.origin, ProgramOrigin::MemoryCache);
}
