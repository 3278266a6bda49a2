//! `just bench-runtime`: instance launch latency and the cost of one
//! inferlet→host call, against the design's budgets.

use std::time::{Duration, Instant};

use crust::config::LimitsConfig;
use crust::runtime::Launch;
use crust_tests::{inferlet, runtime};

const LAUNCHES: usize = 2000;
const CALLS: u64 = 1_000_000;
const LAUNCH_BUDGET: Duration = Duration::from_micros(200);
const CALL_BUDGET_NS: f64 = 1000.0;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    tokio.block_on(async {
        let rt = runtime(LimitsConfig::default(), "bench-runtime");
        let program = rt.load_program_file(&inferlet("call-loop")).expect("call-loop builds");

        // Launch: a fresh store, instantiation from the pre-linked program, `run`, teardown.
        for _ in 0..100 {
            rt.run(&program, Launch::default()).await.unwrap();
        }
        let mut launches = Vec::with_capacity(LAUNCHES);
        for _ in 0..LAUNCHES {
            let start = Instant::now();
            rt.run(&program, Launch::default()).await.unwrap();
            launches.push(start.elapsed());
        }
        launches.sort();
        let (p50, p99) = (percentile(&launches, 0.5), percentile(&launches, 0.99));

        // A call: `runtime.get-instance-id` in a loop, timed inside the guest.
        let mut per_call = Vec::new();
        for _ in 0..5 {
            let launch = Launch { arguments: vec![CALLS.to_string()], ..Launch::default() };
            let nanos: f64 = rt.run(&program, launch).await.unwrap().unwrap().parse().unwrap();
            per_call.push(nanos / CALLS as f64);
        }
        per_call.sort_by(f64::total_cmp);
        let call = per_call[per_call.len() / 2];

        println!("crust bench-runtime ({} launches, {} calls x 5)", LAUNCHES, CALLS);
        println!(
            "launch        p50 {:>8.1} us   p99 {:>8.1} us   budget {} us   p50/budget {:.2}",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            LAUNCH_BUDGET.as_micros(),
            p50.as_secs_f64() / LAUNCH_BUDGET.as_secs_f64()
        );
        println!(
            "host call     {:>8.1} ns (median of 5; runtime.get-instance-id)   budget {} ns   ratio {:.2}",
            call,
            CALL_BUDGET_NS,
            call / CALL_BUDGET_NS
        );
    });
}
