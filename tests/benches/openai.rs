//! `just bench-openai`: streaming chat completions through `crust serve`'s
//! OpenAI API (a real server process; HTTP/1.1 and Server-Sent Events over
//! loopback) at 1, 8 and 32 concurrent clients — requests/s, time to first
//! token and time per output token (p50, p99) — next to the same requests
//! without the endpoint inferlet and HTTP, in the same run: the
//! `text-completion` inferlet in this process (`crust run`'s path) and, at
//! one client, the engine alone (`crust generate`'s path). Then the prefill a
//! shared system prompt saves: requests whose long system prompt is new (run
//! in full) against requests whose prompt's pages are imported from the cache.

use std::sync::Arc;
use std::time::Instant;

use crust::config::{Config, DEFAULT_MODEL_FILE, DEFAULT_MODEL_NAME, EngineConfig, models_dir};
use crust::engine::device::Gpu;
use crust::engine::sequence::{GenerateOptions, Sequence};
use crust::runtime::Runtime;
use crust_tests::bench::{HEADER, Server, Summary, Timing, measure, measure_through_runtime, ms, percentiles};
use crust_tests::{DefaultModel, inferlet, scratch_dir};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const QUESTION: &str = "Tell me a story about a dragon.";
const MAX_TOKENS: usize = 16;
/// `text-completion`'s arguments for the same request.
const DIRECT: [&str; 4] = ["--prompt", QUESTION, "--max-tokens", "16"];
const SYSTEM: &str = "You are the assistant of a small travel agency in Lisbon. Answer in one or two short sentences, \
    name real places only, never invent prices, and suggest the agency's office hours (9 to 18, Monday to Saturday) \
    when someone wants to book. ";

fn main() {
    let model = models_dir().join(DEFAULT_MODEL_FILE);
    assert!(model.exists(), "{} is missing: run `just fetch-model`", model.display());
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = scratch_dir("bench-openai");
    let server = Server::start(env!("CARGO_BIN_EXE_crust-under-test"), &dir, "");
    let address = server.address.clone();

    let runtime = Arc::new(Runtime::new(&Config { cache_dir: Some(dir.join("direct-cache")), ..Config::default() }).unwrap());
    let program = runtime.load_program(&std::fs::read(inferlet("text-completion")).unwrap()).unwrap();
    let gpu = Arc::new(Gpu::open().expect("a GPU adapter"));
    println!("crust bench-openai: streamed chat completions ({MAX_TOKENS} tokens, greedy) on SmolLM2-135M-Instruct Q4_1, {}", gpu.describe());

    // One client, the engine alone: the floor under both paths.
    let timings: Vec<Timing> = tokio.block_on(async {
        let mut engine = DefaultModel::open("bench-openai-engine", EngineConfig::default()).await;
        let prompt = engine.tokenize(&engine.model.metadata().await.unwrap().chat_prompt(None, QUESTION).unwrap()).await;
        let service = engine.service().await;
        let options = GenerateOptions { max_tokens: MAX_TOKENS, temperature: 0.0, top_p: None, seed: 0 };
        let mut timings = Vec::new();
        for _ in 0..4 {
            let (start, mut tokens) = (Instant::now(), Vec::new());
            // No stop tokens: every run makes exactly MAX_TOKENS.
            Sequence::new(service.clone()).generate(&prompt, &options, &[], &mut |_| tokens.push(Instant::now())).await.unwrap();
            timings.push(Timing::new(start, &tokens));
        }
        timings
    });
    let wall: f64 = timings.iter().map(|t| t.first_token.as_secs_f64() + t.per_token.as_secs_f64() * (MAX_TOKENS - 1) as f64).sum();
    let alone = Summary {
        requests_per_s: timings.len() as f64 / wall,
        ttft: percentiles(timings.iter().map(|t| ms(t.first_token)).collect()),
        tpot: percentiles(timings.iter().map(|t| ms(t.per_token)).collect()),
    };

    println!("{HEADER}");
    for clients in [1usize, 8, 32] {
        let per_client = match clients {
            1 => 4,
            8 => 2,
            _ => 1,
        };
        let http = tokio.block_on(async {
            chat(&address, chat_request(None, QUESTION)).await; // warm-up
            measure(clients, per_client, |_| {
                let address = address.clone();
                async move {
                    let (start, tokens, _) = chat(&address, chat_request(None, QUESTION)).await;
                    Timing::new(start, &tokens)
                }
            })
            .await
        });
        let direct = tokio.block_on(measure_through_runtime(&runtime, &program, &DIRECT, clients, per_client));
        println!("{}\n{}", http.row(clients, "openai"), direct.row(clients, "inferlet"));
        if clients == 1 {
            println!("{}", alone.row(clients, "engine"));
            println!("{clients:>7}  openai/engine: {}", http.ratios(&alone));
        }
        println!("{clients:>7}  openai/inferlet: {}", http.ratios(&direct));
    }

    // Prefix reuse: the same long system prompt, new (a different first line each time) or cached.
    tokio.block_on(async {
        let mut cold = Vec::new();
        for k in 0..3 {
            let system = format!("Request {k}. {}", SYSTEM.repeat(3));
            cold.push(chat(&address, chat_request(Some(&system), "Where should I eat tonight?")).await);
        }
        let system = format!("Request cached. {}", SYSTEM.repeat(3));
        chat(&address, chat_request(Some(&system), "Is the agency open on Sunday?")).await; // fills the cache
        let mut warm = Vec::new();
        for question in ["Where should I eat tonight?", "What is a good day trip?", "Can I book a tour?"] {
            warm.push(chat(&address, chat_request(Some(&system), question)).await);
        }
        let stats = |runs: &[(Instant, Vec<Instant>, Option<Value>)]| {
            let ttft = percentiles(runs.iter().map(|(start, tokens, _)| ms(tokens[0] - *start)).collect()).0;
            let usage = runs[0].2.as_ref().expect("usage reported");
            (ttft, usage["prompt_tokens"].as_u64().unwrap(), usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap())
        };
        let ((cold_ttft, cold_prompt, cold_cached), (warm_ttft, warm_prompt, cached)) = (stats(&cold), stats(&warm));
        assert_eq!(cold_cached, 0, "a new system prompt is not in the cache");
        println!("prefix reuse: {warm_prompt}-token prompts, {cached} of them a shared system prompt's whole pages");
        println!("  new system prompt:    TTFT p50 {cold_ttft:>8.1} ms, prefilled {cold_prompt} tokens");
        println!("  cached system prompt: TTFT p50 {warm_ttft:>8.1} ms, prefilled {} tokens", warm_prompt - cached);
        let saved = 100.0 * cached as f64 / warm_prompt as f64;
        println!("  cached/new: TTFT {:.2}x, prefill saved {cached} tokens per request ({saved:.0}%)", warm_ttft / cold_ttft);
    });
}

fn chat_request(system: Option<&str>, question: &str) -> Value {
    let mut messages = vec![json!({"role": "user", "content": question})];
    if let Some(system) = system {
        messages.insert(0, json!({"role": "system", "content": system}));
    }
    json!({
        "model": DEFAULT_MODEL_NAME, "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0,
        "stream": true, "stream_options": {"include_usage": true},
    })
}

/// POSTs a streamed chat completion and reads its events: when the request
/// was sent, when each content chunk arrived, and the usage.
async fn chat(address: &str, body: Value) -> (Instant, Vec<Instant>, Option<Value>) {
    let body = body.to_string();
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let start = Instant::now();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    assert!(line.contains(" 200 "), "{line}");
    while line != "\r\n" {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
    }
    // A chunked body of SSE events.
    let (mut tokens, mut usage, mut events) = (Vec::new(), None, String::new());
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let size = usize::from_str_radix(line.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        let mut data = vec![0; size + 2];
        reader.read_exact(&mut data).await.unwrap();
        let arrived = Instant::now();
        events.push_str(std::str::from_utf8(&data[..size]).unwrap());
        while let Some(end) = events.find("\n\n") {
            let event: String = events.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ").filter(|d| *d != "[DONE]") else { continue };
            let chunk: Value = serde_json::from_str(data).unwrap();
            if chunk["usage"].is_object() {
                usage = Some(chunk["usage"].clone());
            }
            if chunk["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
                tokens.push(arrived);
            }
        }
    }
    (start, tokens, usage)
}
