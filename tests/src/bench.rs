//! What the serving benchmarks share: a `crust serve` process, concurrent
//! request loops, and time-to-first-token / time-per-output-token summaries.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crust::runtime::{Launch, OutputSink, Program, Runtime, Stream};

/// A `crust serve` process on a free loopback port, without auth; stopped on drop.
pub struct Server {
    child: Child,
    /// `host:port`.
    pub address: String,
}

impl Server {
    /// Starts `crust` (a bench's `env!("CARGO_BIN_EXE_crust-under-test")`) with
    /// `dir` for its data and caches and `extra` appended to its config.
    pub fn start(crust: &str, dir: &Path, extra: &str) -> Server {
        let config = dir.join("config.toml");
        let text = format!("data_dir = {:?}\ncache_dir = {:?}\n{extra}\n", dir.join("data"), dir.join("cache"));
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(crust)
            .args(["--config", config.to_str().unwrap(), "serve", "--no-auth", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let first = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
        let url = first.strip_prefix("crust serve: listening on ").unwrap().split(' ').next().unwrap();
        Server { address: url.trim_start_matches("ws://").to_string(), child }
    }

    pub fn websocket_url(&self) -> String {
        format!("ws://{}", self.address)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// One request's timings: to the first token, and per token after it.
pub struct Timing {
    pub first_token: Duration,
    pub per_token: Duration,
}

impl Timing {
    /// From when the request was sent and when each token arrived.
    pub fn new(start: Instant, token_times: &[Instant]) -> Timing {
        let first = *token_times.first().expect("at least one token");
        let last = *token_times.last().unwrap();
        let gaps = (token_times.len() - 1).max(1) as u32;
        Timing { first_token: first - start, per_token: (last - first) / gaps }
    }
}

pub struct Summary {
    pub requests_per_s: f64,
    /// p50, p99 in ms.
    pub ttft: (f64, f64),
    pub tpot: (f64, f64),
}

impl Summary {
    pub fn row(&self, clients: usize, path: &str) -> String {
        format!(
            "{clients:>7}  {path:<8}  {:>8.2}  {:>8.1}/{:<8.1}  {:>8.1}/{:<8.1}",
            self.requests_per_s, self.ttft.0, self.ttft.1, self.tpot.0, self.tpot.1
        )
    }

    pub fn ratios(&self, baseline: &Summary) -> String {
        format!(
            "req/s {:.2}x, TTFT p50 {:.2}x, TPOT p50 {:.2}x",
            self.requests_per_s / baseline.requests_per_s,
            self.ttft.0 / baseline.ttft.0,
            self.tpot.0 / baseline.tpot.0
        )
    }
}

pub const HEADER: &str = "clients  path         req/s    TTFT p50/p99 ms    TPOT p50/p99 ms";

/// Runs `clients` concurrent loops of `per_client` requests each; `request(n)` makes loop n's next request.
pub async fn measure<F, Fut>(clients: usize, per_client: usize, request: F) -> Summary
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Timing> + Send + 'static,
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
    Summary {
        requests_per_s: timings.len() as f64 / wall,
        ttft: percentiles(timings.iter().map(|t| ms(t.first_token)).collect()),
        tpot: percentiles(timings.iter().map(|t| ms(t.per_token)).collect()),
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 and p99 (nearest rank).
pub fn percentiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// A request run the way `crust run` runs it, the runtime in this process:
/// each stdout write but the closing newline is a token.
pub async fn through_runtime(runtime: &Runtime, program: &Program, arguments: &[&str]) -> Timing {
    let (sink, mut output) = OutputSink::channel();
    let launch = Launch { arguments: arguments.iter().map(|s| s.to_string()).collect(), output: Some(sink), ..Launch::default() };
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
    runtime.run(program, launch).await.expect("the inferlet completes");
    Timing::new(start, &collect.await.unwrap())
}

/// `clients` loops of `per_client` requests run through the runtime in this process, after a warm-up.
pub async fn measure_through_runtime(
    runtime: &Arc<Runtime>,
    program: &Arc<Program>,
    arguments: &'static [&'static str],
    clients: usize,
    per_client: usize,
) -> Summary {
    through_runtime(runtime, program, arguments).await;
    measure(clients, per_client, |_| {
        let (runtime, program) = (runtime.clone(), program.clone());
        async move { through_runtime(&runtime, &program, arguments).await }
    })
    .await
}
