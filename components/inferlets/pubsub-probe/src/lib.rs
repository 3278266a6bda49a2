//! `pubsub-probe`, for the pub/sub tests and benchmark:
//!
//! - `listen TOPIC N`: subscribes, tells its client `subscribed`, prints the
//!   first N messages one per line, unsubscribes, then prints whether anything
//!   is still delivered (`after unsubscribe: none`);
//! - `publish TOPIC N`: publishes `0`..`N-1` in order.

use crust_sdk::{io, message};

async fn run() -> Result<(), String> {
    let args = crust_sdk::runtime::get_arguments();
    let (mode, topic) = (args.first().ok_or("mode?")?, args.get(1).ok_or("topic?")?);
    let n: usize = args.get(2).and_then(|n| n.parse().ok()).ok_or("a count is required")?;
    match mode.as_str() {
        "listen" => {
            let subscription = message::subscribe(topic);
            io::send("subscribed");
            let mut received = Vec::with_capacity(n);
            while received.len() < n {
                match subscription.get() {
                    Some(m) => received.push(m),
                    None => crust_sdk::wait_for(subscription.pollable()).await,
                }
            }
            subscription.unsubscribe();
            println!("{}", received.join("\n"));
            println!("after unsubscribe: {}", subscription.get().map_or("none".to_string(), |m| format!("got {m}")));
        }
        "publish" => (0..n).for_each(|i| io::broadcast(topic, &i.to_string())),
        other => return Err(format!("unknown mode `{other}`")),
    }
    Ok(())
}

crust_sdk::entry!(async run);
