//! `just bench-providers`: what the provider components cost — a kvs call
//! (disk and in-memory providers), tokenizing and detokenizing 1 KB through
//! the tokenize provider against native `tokenizers` in the same run, and
//! launch latency with and without a provider call.

use std::time::{Duration, Instant};

use crust::config::{Config, DEFAULT_MODEL_FILE, ProvidersConfig, models_dir};
use crust::engine::gguf::GgufFile;
use crust::engine::tokenizer::tokenizer_json;
use crust::runtime::{Launch, Program, Runtime};
use crust_tests::{inferlet, repo_root, scratch_dir};

const TEXT_BYTES: usize = 1024;

fn runtime(name: &str, kvs: Option<&str>) -> Runtime {
    let dir = scratch_dir(name);
    let providers = ProvidersConfig { kvs: kvs.map(|k| repo_root().join("target/wasm32-wasip2/release").join(k)), ..ProvidersConfig::default() };
    Runtime::new(&Config { cache_dir: Some(dir.join("cache")), data_dir: Some(dir.join("data")), providers, ..Config::default() }).unwrap()
}

/// Nanoseconds per call of `which`, timed inside the guest (median of 5 runs).
async fn per_call(rt: &Runtime, program: &Program, which: &str, calls: u64) -> f64 {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let launch = Launch { arguments: vec![calls.to_string(), which.into()], ..Launch::default() };
        let nanos: f64 = rt.run(program, launch).await.unwrap().unwrap().parse().unwrap();
        runs.push(nanos / calls as f64);
    }
    runs.sort_by(f64::total_cmp);
    runs[2]
}

async fn launch_p50(rt: &Runtime, program: &Program, arguments: &[&str]) -> Duration {
    let mut launches = Vec::new();
    for _ in 0..500 {
        let launch = Launch { arguments: arguments.iter().map(|s| s.to_string()).collect(), ..Launch::default() };
        let start = Instant::now();
        rt.run(program, launch).await.unwrap();
        launches.push(start.elapsed());
    }
    launches.sort();
    launches[launches.len() / 2]
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let path = models_dir().join(DEFAULT_MODEL_FILE);
    assert!(path.exists(), "{} is missing: run `just fetch-model`", path.display());
    println!("crust bench-providers");
    tokio.block_on(async {
        let disk = runtime("bench-providers-disk", None);
        let memory = runtime("bench-providers-memory", Some("kvs_memory_provider.wasm"));
        let program = disk.load_program_file(&inferlet("call-loop")).unwrap();
        let memory_program = memory.load_program_file(&inferlet("call-loop")).unwrap();
        per_call(&disk, &program, "kvs-set", 1).await; // creates the database

        let host_call = per_call(&disk, &program, "instance-id", 100_000).await;
        let disk_get = per_call(&disk, &program, "kvs-get", 20_000).await;
        let disk_set = per_call(&disk, &program, "kvs-set", 200).await;
        let memory_get = per_call(&memory, &memory_program, "kvs-get", 20_000).await;
        let memory_set = per_call(&memory, &memory_program, "kvs-set", 20_000).await;
        println!("host call (no provider)     {host_call:>10.0} ns");
        println!("kvs get, redb on disk       {disk_get:>10.0} ns   budget 2000 ns   ratio {:.2}", disk_get / 2000.0);
        println!("kvs set, redb on disk       {disk_set:>10.0} ns   (a synced commit per write)");
        println!("kvs get, in memory          {memory_get:>10.0} ns   budget 2000 ns   ratio {:.2}", memory_get / 2000.0);
        println!("kvs set, in memory          {memory_set:>10.0} ns");

        // Tokenize 1 KB: through the provider (timed in the guest) vs native, same text.
        let wasm_tokenize = per_call(&disk, &program, "tokenize", 200).await;
        let wasm_detokenize = per_call(&disk, &program, "detokenize", 200).await;
        let json = tokenizer_json(&GgufFile::open(&path).unwrap()).unwrap();
        let native: tokenizers::Tokenizer = json.parse().unwrap();
        let text = call_loop_text();
        assert!(text.len() >= TEXT_BYTES, "{} bytes", text.len());
        let ids = native.encode(text.as_str(), false).unwrap().get_ids().to_vec();
        let time = |f: &dyn Fn()| {
            let start = Instant::now();
            for _ in 0..200 {
                f();
            }
            start.elapsed().as_nanos() as f64 / 200.0
        };
        let native_tokenize = time(&|| drop(std::hint::black_box(native.encode(text.as_str(), false).unwrap())));
        let native_detokenize = time(&|| drop(std::hint::black_box(native.decode(&ids, false).unwrap())));
        println!(
            "tokenize {} B                {:>10.0} ns   native {native_tokenize:>8.0} ns   provider/native {:.2} (budget 2.00)",
            text.len(),
            wasm_tokenize,
            wasm_tokenize / native_tokenize
        );
        println!(
            "detokenize {} ids            {wasm_detokenize:>10.0} ns   native {native_detokenize:>8.0} ns   provider/native {:.2}",
            ids.len(),
            wasm_detokenize / native_detokenize
        );

        // Launch: bare, and with one kvs call (the provider is shared: nothing per launch).
        let bare = launch_p50(&disk, &program, &[]).await;
        let with_kvs = launch_p50(&disk, &program, &["1", "kvs-get"]).await;
        println!(
            "launch p50 bare {:>7.1} us   with a kvs call {:>7.1} us   difference {:>6.1} us (budget 200 us)",
            bare.as_secs_f64() * 1e6,
            with_kvs.as_secs_f64() * 1e6,
            (with_kvs.as_secs_f64() - bare.as_secs_f64()) * 1e6
        );
        // Broadcast fan-out: 8 subscribers, 1000 messages from one publisher (below the 1024 buffer: none dropped).
        let probe = disk.load_program_file(&inferlet("pubsub-probe")).unwrap();
        let (sink, mut output) = crust::runtime::OutputSink::channel();
        let listen = (0..8).map(|_| {
            let launch =
                Launch { arguments: ["listen", "fan-out", "1000"].map(String::from).to_vec(), output: Some(sink.clone()), ..Launch::default() };
            let (rt, probe) = (&disk, &probe);
            async move { rt.run(probe, launch).await.unwrap() }
        });
        let listeners = futures::future::join_all(listen);
        let mut started = None;
        let publisher = async {
            let mut subscribed = 0;
            while subscribed < 8 {
                let chunk = output.recv().await.unwrap();
                subscribed += (chunk.stream == crust::runtime::Stream::Message) as usize;
            }
            started = Some(Instant::now());
            let launch = Launch { arguments: ["publish", "fan-out", "1000"].map(String::from).to_vec(), ..Launch::default() };
            disk.run(&probe, launch).await.unwrap();
        };
        futures::join!(listeners, publisher);
        let elapsed = started.unwrap().elapsed().as_secs_f64();
        println!(
            "broadcast fan-out           {:>10.0} deliveries/s (1000 messages x 8 subscribers in {:.1} ms, delivered and read)",
            8000.0 / elapsed,
            elapsed * 1e3
        );
    });
}

/// The text `call-loop` tokenizes, read from its source so both sides use the same bytes.
fn call_loop_text() -> String {
    let source = std::fs::read_to_string(repo_root().join("components/inferlets/call-loop/src/lib.rs")).unwrap();
    let start = source.find("const TEXT: &str = \"").unwrap() + "const TEXT: &str = \"".len();
    let end = start + source[start..].find("\";").unwrap();
    source[start..end].replace("\\\n", "").replace("\\\"", "\"")
}
