//! `just bench-server`: text-completion requests through `crust serve` (a
//! real server process, one WebSocket client per concurrent user) at 1, 8
//! and 32 concurrent clients — requests/s, time to first token and time per
//! output token (p50, p99) — next to the same requests run the way
//! `crust run` runs them (the runtime in this process, no server), in the
//! same run. The ratios are the server's overhead.

use std::sync::Arc;
use std::time::Instant;

use crust::config::{Config, DEFAULT_MODEL_FILE, models_dir};
use crust::runtime::Runtime;
use crust_client::{Client, Event, EventCode};
use crust_tests::bench::{HEADER, Server, Timing, measure, measure_through_runtime};
use crust_tests::{inferlet, scratch_dir};

const ARGUMENTS: [&str; 5] = ["--raw", "--prompt", "Once upon a time, in a small village,", "--max-tokens", "16"];

fn main() {
    let model = models_dir().join(DEFAULT_MODEL_FILE);
    assert!(model.exists(), "{} is missing: run `just fetch-model`", model.display());
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let wasm = std::fs::read(inferlet("text-completion")).unwrap();

    let dir = scratch_dir("bench-server");
    let server = Server::start(env!("CARGO_BIN_EXE_crust-under-test"), &dir, "");
    let url = server.websocket_url();

    let runtime = Arc::new(Runtime::new(&Config { cache_dir: Some(dir.join("direct-cache")), ..Config::default() }).unwrap());
    let program = runtime.load_program(&wasm).unwrap();
    let adapter = crust::engine::device::Gpu::open().map(|g| g.describe()).unwrap_or_default();
    println!("crust bench-server: text-completion (16 tokens) on SmolLM2-135M-Instruct Q4_1, {adapter}");
    println!("{HEADER}");

    for clients in [1usize, 8, 32] {
        let per_client = if clients == 1 { 4 } else { 2 };
        let served = tokio.block_on(async {
            let mut connections = Vec::new();
            for _ in 0..clients {
                connections.push(Client::connect(&url).await.unwrap());
            }
            let hash = connections[0].ensure_program(&wasm).await.unwrap();
            through_server(&connections[0], &hash).await; // warm-up
            measure(clients, per_client, |n| {
                let (client, hash) = (connections[n % clients].clone(), hash.clone());
                async move { through_server(&client, &hash).await }
            })
            .await
        });
        let direct = tokio.block_on(measure_through_runtime(&runtime, &program, &ARGUMENTS, clients, per_client));
        println!("{}\n{}", served.row(clients, "server"), direct.row(clients, "direct"));
        println!("{clients:>7}  server/direct: {}", served.ratios(&direct));
    }
}

async fn through_server(client: &Client, hash: &str) -> Timing {
    let arguments: Vec<String> = ARGUMENTS.iter().map(|s| s.to_string()).collect();
    let start = Instant::now();
    let mut instance = client.launch(hash, &arguments, false).await.unwrap();
    let mut tokens = Vec::new();
    loop {
        match instance.next().await.expect("the connection stays open") {
            Event::Stdout(bytes) if bytes != b"\n" => tokens.push(Instant::now()),
            Event::End(code, text) => {
                assert_eq!(code, EventCode::Completed, "{text}");
                break;
            }
            _ => {}
        }
    }
    Timing::new(start, &tokens)
}
