//! Measures the cost of an inferlet→host call from inside the guest.
//! Argument: the number of calls (default 0, which makes a bare launch).

use std::time::Instant;

use crust_sdk::runtime;

fn run() -> Result<(), String> {
    let calls: u64 = match runtime::get_arguments().first() {
        Some(n) => n.parse().map_err(|_| format!("call-loop: `{n}` is not a number of calls"))?,
        None => 0,
    };
    let start = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(runtime::get_instance_id());
    }
    runtime::set_return(&start.elapsed().as_nanos().to_string());
    Ok(())
}

crust_sdk::entry!(run);
