//! The smallest useful inferlet: who am I, where am I, what was I given.

use crust_sdk::runtime;

fn run() -> Result<(), String> {
    let arguments = runtime::get_arguments();
    println!("instance {}", runtime::get_instance_id());
    println!("runtime {}", runtime::get_version());
    println!("arguments {arguments:?}");
    println!("models {:?}", runtime::get_all_models());
    let ping = runtime::debug_query("ping");
    ping.pollable().block();
    println!("ping {}", ping.get().unwrap_or_default());
    runtime::set_return(&format!("hello after {} argument(s)", arguments.len()));
    Ok(())
}

crust_sdk::entry!(run);
