//! `just bench-server`: text-completion requests through `crust serve` (a
//! real server process, one WebSocket client per concurrent user) at 1, 8
//! and 32 concurrent clients — requests/s, time to first token and time per
//! output token (p50, p99) — next to the same requests run the way
//! `crust run` runs them (the runtime in this process, no server), in the
//! same run. The ratios are the server's overhead.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crust::config::{Config, DEFAULT_MODEL_FILE, models_dir};
use crust::runtime::{Launch, OutputSink, Runtime, Stream};
use crust_client::{Client, Event, EventCode};
use crust_tests::{inferlet, scratch_dir};

const ARGUMENTS: [&str; 5] = ["--raw", "--prompt", "Once upon a time, in a small village,", "--max-tokens", "16"];

/// One request's timings: to the first token, and per token after it.
struct Timing {
    first_token: Duration,
    per_token: Duration,
}

struct Summary {
    requests_per_s: f64,
    ttft: (f64, f64),
    tpot: (f64, f64),
}

fn main() {
    let model = models_dir().join(DEFAULT_MODEL_FILE);
    assert!(model.exists(), "{} is missing: run `just fetch-model`", model.display());
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let wasm = std::fs::read(inferlet("text-completion")).unwrap();

    let dir = scratch_dir("bench-server");
    std::fs::write(dir.join("config.toml"), format!("data_dir = {:?}\ncache_dir = {:?}\n", dir.join("data"), dir.join("cache"))).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_crust-under-test"))
        .args(["--config", dir.join("config.toml").to_str().unwrap(), "serve", "--no-auth", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = BufReader::new(server.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let url = first.strip_prefix("crust serve: listening on ").unwrap().split(' ').next().unwrap().to_string();

    let runtime = Arc::new(Runtime::new(&Config { cache_dir: Some(dir.join("direct-cache")), ..Config::default() }).unwrap());
    let program = runtime.load_program(&wasm).unwrap();
    let adapter = crust::engine::device::Gpu::open().map(|g| g.describe()).unwrap_or_default();
    println!("crust bench-server: text-completion (16 tokens) on SmolLM2-135M-Instruct Q4_1, {adapter}");
    println!("{:>7}  {:<8}  {:>8}  {:>17}  {:>17}", "clients", "path", "req/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms");

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
        let direct = tokio.block_on(async {
            through_runtime(&runtime, &program).await; // warm-up
            measure(clients, per_client, |_| {
                let (runtime, program) = (runtime.clone(), program.clone());
                async move { through_runtime(&runtime, &program).await }
            })
            .await
        });
        for (path, s) in [("server", &served), ("direct", &direct)] {
            println!(
                "{clients:>7}  {path:<8}  {:>8.2}  {:>8.1}/{:<8.1}  {:>8.1}/{:<8.1}",
                s.requests_per_s, s.ttft.0, s.ttft.1, s.tpot.0, s.tpot.1
            );
        }
        println!(
            "{clients:>7}  server/direct: req/s {:.2}x, TTFT p50 {:.2}x, TPOT p50 {:.2}x",
            served.requests_per_s / direct.requests_per_s,
            served.ttft.0 / direct.ttft.0,
            served.tpot.0 / direct.tpot.0
        );
    }
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
}

/// Runs `clients` concurrent loops of `per_client` requests each.
async fn measure<F, Fut>(clients: usize, per_client: usize, request: F) -> Summary
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Timing> + Send + 'static,
{
    let start = Instant::now();
    let loops = (0..clients).map(|n| {
        let requests: Vec<Fut> = (0..per_client).map(|_| request(n)).collect();
        tokio::spawn(async move {
            let mut timings = Vec::new();
            for r in requests {
                timings.push(r.await);
            }
            timings
        })
    });
    let timings: Vec<Timing> = futures::future::join_all(loops).await.into_iter().flat_map(|t| t.unwrap()).collect();
    let wall = start.elapsed().as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Summary {
        requests_per_s: timings.len() as f64 / wall,
        ttft: percentiles(timings.iter().map(|t| ms(t.first_token)).collect()),
        tpot: percentiles(timings.iter().map(|t| ms(t.per_token)).collect()),
    }
}

fn percentiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Each token arrives as its own stdout write.
fn timing(start: Instant, token_times: &[Instant]) -> Timing {
    let first = *token_times.first().expect("at least one token");
    let last = *token_times.last().unwrap();
    let gaps = (token_times.len() - 1).max(1) as u32;
    Timing { first_token: first - start, per_token: (last - first) / gaps }
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
    timing(start, &tokens)
}

async fn through_runtime(runtime: &Runtime, program: &crust::runtime::Program) -> Timing {
    let (sink, mut output) = OutputSink::channel();
    let launch = Launch { arguments: ARGUMENTS.iter().map(|s| s.to_string()).collect(), output: Some(sink), ..Launch::default() };
    let start = Instant::now();
    let collect = tokio::spawn(async move {
        let mut tokens = Vec::new();
        while let Some(chunk) = output.recv().await {
            if chunk.stream == Stream::Stdout && &chunk.bytes[..] != b"\n" {
                tokens.push(Instant::now());
            }
        }
        tokens
    });
    runtime.run(program, launch).await.expect("text-completion completes");
    timing(start, &collect.await.unwrap())
}
