//! `crust serve` as a real process on a free loopback port, driven by Pie's
//! own Python client, Crust's Python and Rust clients, and the CLI.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crust_client::protocol::{ClientMessage, encode};
use crust_client::{Client, Event, EventCode, keys};
use crust_tests::{inferlet, python, repo_root, scratch_dir};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const METRICS: &str = "metrics-token-0123456789";

/// A running `crust serve`; killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
    address: String,
    dir: PathBuf,
    stdout: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts a server with tokens for alice and bob, a key for carol, and
    /// `server_lines` in its `[server]` table.
    fn start(name: &str, server_lines: &str) -> Self {
        let dir = scratch_dir(name);
        let carol = keys::generate();
        std::fs::write(dir.join("carol.key"), keys::secret_line(&carol)).unwrap();
        std::fs::write(dir.join("authorized_keys"), keys::authorized_line(&carol.verifying_key(), "carol")).unwrap();
        let config = format!(
            "data_dir = {data:?}\ncache_dir = {cache:?}\n[server]\nauthorized_keys = {keys:?}\nmetrics_token = {METRICS:?}\n{server_lines}\n[server.tokens]\nalice = {ALICE:?}\nbob = {BOB:?}\n",
            data = dir.join("data"),
            cache = dir.join("cache"),
            keys = dir.join("authorized_keys"),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        Self::spawn(dir, &[])
    }

    fn spawn(dir: PathBuf, flags: &[&str]) -> Self {
        let config = dir.join("config.toml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_crust-under-test"))
            .args(["--config", config.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .env_remove("CRUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning crust serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Drained all along, so the server never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(String::new()));
        let (sink, mut errors) = (stderr.clone(), child.stderr.take().unwrap());
        let drain = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = errors.read(&mut buffer) {
                *sink.lock().unwrap() += &String::from_utf8_lossy(&buffer[..n]);
            }
        });
        let first = lines.next().map(|l| l.unwrap()).unwrap_or_default();
        let Some(url) = first.strip_prefix("crust serve: listening on ").map(|u| u.split(' ').next().unwrap().to_string()) else {
            let _ = child.wait();
            let _ = drain.join();
            panic!("the server did not start: {first}\n{}", stderr.lock().unwrap());
        };
        let stdout = Arc::new(Mutex::new(String::new()));
        let rest = stdout.clone();
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| *rest.lock().unwrap() += &(l + "\n")));
        let address = url.split_once("://").map_or(url.as_str(), |(_, address)| address).to_string();
        Self { child, url, address, dir, stdout }
    }

    async fn client(&self, token: &str) -> Client {
        let client = Client::connect(&self.url).await.unwrap();
        client.authenticate_token(token).await.unwrap();
        client
    }

    /// `/metrics`, read with the server's metrics token.
    fn metrics(&self) -> String {
        http_request(&self.address, "/metrics", &format!("Authorization: Bearer {METRICS}\r\n")).unwrap()
    }

    /// A metric's value from `/metrics`, by its full sample name with labels.
    fn metric(&self, sample: &str) -> Option<f64> {
        let body = self.metrics();
        body.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    fn crust(&self, args: &[&str]) -> super::CliRun {
        Command::new(env!("CARGO_BIN_EXE_crust-under-test"))
            .args(args)
            .env("CRUST_SERVER", &self.url)
            .env_remove("CRUST_TOKEN")
            .env_remove("CRUST_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("spawning crust")
            .into()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over plain HTTP/1.0: the whole response, head and body.
fn http_get(address: &str, path: &str) -> std::io::Result<String> {
    http_request(address, path, "")
}

/// `GET path` with more header lines (each ending in CRLF).
fn http_request(address: &str, path: &str, headers: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(address)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n{headers}\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(inferlet(name)).unwrap()
}

fn path(name: &str) -> String {
    inferlet(name).to_str().unwrap().to_string()
}

/// The next event, or a failure if none comes within a minute (a hung test says so).
async fn next(instance: &mut crust_client::Instance) -> Event {
    tokio::time::timeout(Duration::from_secs(120), instance.next()).await.expect("no event within two minutes").expect("the connection closed")
}

async fn until_end(instance: &mut crust_client::Instance) -> (Vec<Event>, EventCode, String) {
    let mut events = Vec::new();
    loop {
        match next(instance).await {
            Event::End(code, text) => return (events, code, text),
            event => events.push(event),
        }
    }
}

fn run_python(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python()).arg(repo_root().join("tests/python").join(script)).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}"))
}

#[test]
fn pies_own_python_client_works_unmodified() {
    let server = ServerProcess::start("server-pie-client", "");
    let port = free_port().to_string();
    let seen = run_python(
        "pie_client_session.py",
        &[&server.url, ALICE, &path("text-completion"), &path("chat"), &path("echo"), &path("http-hello"), &port],
    );
    assert_eq!(seen["auth"], serde_json::json!([true, "alice"]));
    assert_eq!(seen["version"][0], true);
    for name in ["text_completion", "chat", "echo"] {
        assert_eq!(seen[format!("{name}_exists")], serde_json::json!([false, true]), "{name}");
    }
    let completion = &seen["text_completion"];
    assert_eq!(completion.as_array().unwrap().len(), 1, "{completion}");
    assert_eq!(completion[0][0], "Completed");
    assert!(completion[0][1].as_str().unwrap().contains("Paris"), "{completion}");
    assert_eq!(seen["chat_answer"][0], "Message");
    assert!(seen["chat_answer"][1].as_str().unwrap().contains("Paris"), "{}", seen["chat_answer"]);
    assert_eq!(seen["chat_end"], serde_json::json!([["Completed", "1 turn"]]));
    assert_eq!(seen["echo_message"], serde_json::json!(["Message", "echo: hello"]));
    assert_eq!(seen["echo_blob"], serde_json::json!(["Blob", true, 256 * 1200]));
    assert_eq!(seen["terminated"], serde_json::json!([["Aborted", "terminated by its client"]]));
    assert_eq!(seen["http"], "hello from /pie?q=1; arguments: served by pie\n");
}

#[test]
fn the_openai_package_gets_openai_answers() {
    // The server's default endpoint inferlet, found next to the binary like the providers.
    assert!(inferlet("openai-chat").exists());
    let model = "SmolLM2-135M-Instruct";
    let file = crust::config::models_dir().join(crust::config::DEFAULT_MODEL_FILE);
    let lines =
        format!("cors_allowed_origins = [\"http://app.test\"]\n[[models]]\nname = {model:?}\npath = {file:?}\nsampling = {{ temperature = 0.0 }}\n");
    let server = ServerProcess::start("server-openai", &lines);
    let seen = run_python("openai_session.py", &[&format!("http://{}/v1", server.address), ALICE, model]);
    assert_eq!(seen["models"], serde_json::json!([model]));
    let chat = &seen["chat"];
    assert!(chat[0].as_str().unwrap().contains("Paris"), "{chat}");
    assert_eq!((&chat[1], &chat[4]), (&serde_json::json!("stop"), &serde_json::json!("chat.completion")));
    assert!(chat[2].as_u64().unwrap() > 5 && chat[3].as_u64().unwrap() > 2, "{chat}");
    let streamed = &seen["streamed"];
    assert_eq!(streamed[0], chat[0], "streaming joins to the same text");
    assert_eq!(streamed[1], "stop");
    assert!(streamed[2].as_u64().unwrap() > 2, "{streamed}");
    assert_eq!(seen["length"], serde_json::json!(["length", 3]));
    let stopped = &seen["stop"];
    assert_eq!(stopped[1], "stop");
    assert!(!stopped[0].as_str().unwrap().contains("Paris"), "{stopped}");
    assert!(chat[0].as_str().unwrap().starts_with(stopped[0].as_str().unwrap()), "{stopped} vs {chat}");
    assert_eq!(seen["n"], serde_json::json!([chat[0], chat[0], chat[0]]), "three greedy forks of one prefix agree");
    assert!(seen["system"].as_str().unwrap().contains("Paris"), "{}", seen["system"]);
    let completion = &seen["completion"];
    assert_eq!((&completion[1], &completion[2]), (&serde_json::json!("length"), &serde_json::json!("text_completion")));
    assert!(completion[0].as_str().unwrap().contains("Paris"), "{completion}");
    let errors = &seen["errors"];
    assert_eq!(errors["unknown_model"], serde_json::json!([404, "model_not_found"]));
    assert_eq!(errors["bad_key"], serde_json::json!([401, "invalid_api_key"]));
    assert_eq!(errors["no_messages"], serde_json::json!([400, "messages"]));
    assert_eq!(errors["temperature"], serde_json::json!([400, "temperature"]));
    assert_eq!(errors["malformed"], serde_json::json!([400, "invalid_request_error"]));
    assert_eq!(errors["stream_options"], serde_json::json!([400, "stream_options"]));
    assert_eq!(errors["tools"], serde_json::json!([400, "unsupported_parameter", "tools"]), "not answered as if no tools were offered");
    assert_eq!(errors["response_format"], serde_json::json!([400, "unsupported_parameter", "response_format"]));
    assert_eq!(errors["unknown"], serde_json::json!([400, "unknown_parameter", "top_a"]));
    assert_eq!(errors["retrieve_unknown"], serde_json::json!([404, "model_not_found"]));
    // top_k, min_p, the model's sampling defaults, tool messages, what other clients send.
    for (how, answer) in seen["sampling"].as_object().unwrap() {
        assert_eq!(answer, &chat[0], "{how} leaves greedy's one candidate");
    }
    assert_eq!(seen["retrieve"], model);
    assert!(seen["tool_message"].as_u64().unwrap() > 20, "{}", seen["tool_message"]);
    assert_eq!(seen["langchain"][0], 200, "{}", seen["langchain"]);
    assert!(seen["langchain"][1].as_str().unwrap().contains("Paris"), "{}", seen["langchain"]);
    assert_eq!(seen["health"], serde_json::json!([200, {"status": "ok"}]));
    assert_eq!(seen["no_route"], serde_json::json!([404, "not_found"]));
    assert_eq!(seen["wrong_method"], serde_json::json!([405, "method_not_allowed"]));
    let cors = &seen["cors"];
    assert_eq!(cors["preflight"], serde_json::json!([204, "http://app.test", "authorization, content-type"]));
    assert_eq!(cors["allowed"], serde_json::json!([200, "http://app.test"]));
    assert_eq!(cors["other"], serde_json::json!([200, null]), "an origin not allowed gets no CORS header");
    let neutral = seen["neutral_fields"].as_str().unwrap();
    assert!(!neutral.is_empty() && chat[0].as_str().unwrap().starts_with(neutral), "neutral fields change nothing: {neutral:?}");
    assert_eq!(errors["too_long"], serde_json::json!([400, "context_length_exceeded", "messages"]), "refused before streaming");

    // logprobs: one entry per completion token, greedy picks the top one, the tokens spell the text.
    let logprobs = &seen["logprobs"];
    assert_eq!(logprobs["text"], chat[0]);
    assert_eq!(logprobs["joined"], chat[0], "{logprobs}");
    assert_eq!(logprobs["count"][0], logprobs["count"][1]);
    assert_eq!(logprobs["alternatives"], serde_json::json!([3]));
    for property in ["greedy_is_top", "at_most_zero", "bytes"] {
        assert_eq!(logprobs[property], true, "{property}: {logprobs}");
    }
    let (cut, spelled) = (seen["stop_logprobs"][0].as_str().unwrap(), seen["stop_logprobs"][1].as_str().unwrap());
    assert!(cut.starts_with(spelled) && !spelled.contains("Paris"), "the stop string's tokens are not reported: {}", seen["stop_logprobs"]);
    let legacy = &seen["completion_logprobs"];
    assert_eq!(legacy[0], completion[0]);
    assert_eq!(legacy[1], completion[0], "the completions API's tokens spell the text: {legacy}");
    assert_eq!((&legacy[2], &legacy[3]), (&serde_json::json!(4), &serde_json::json!([2])));
    assert_eq!(legacy[4][0], 0);

    // seed: the same seed draws the same text; other seeds draw others.
    let seed = &seen["seed"];
    assert_eq!(seed["same"][0], seed["same"][1], "{seed}");
    let mut texts: Vec<&serde_json::Value> = seed["others"].as_array().unwrap().iter().chain([&seed["same"][0]]).collect();
    texts.dedup();
    assert!(texts.len() > 1, "four seeds drew one text: {seed}");
    assert_ne!(seed["choices"][0], seed["choices"][1], "a seeded request's choices draw apart: {seed}");
    assert_eq!(seen["top_p_zero"], chat[0], "top_p 0 is greedy");

    // Prefix reuse: the second request with the long system prompt imports its whole pages,
    // and answers exactly as the request that ran them.
    let prefix = &seen["prefix"];
    let cached: Vec<u64> = prefix["cached"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    assert_eq!(cached[0], 0, "{prefix}");
    assert!(cached[1] >= 128 && cached[1].is_multiple_of(16) && cached[1] == cached[2], "{prefix}");
    assert!(prefix["prompt_tokens"][1].as_u64().unwrap() > cached[2]);
    assert_eq!(prefix["answers"][0], prefix["answers"][1], "{prefix}");
    assert_eq!(seen["stream_usage"].as_array().unwrap().len(), 1, "{}", seen["stream_usage"]);
    assert_eq!(seen["stream_usage"][0][1], 3);

    // Every request's instance ended and gave its pages back; only the cached prompt's pages stay.
    let used = server.metric("crust_kv_pages{model=\"SmolLM2-135M-Instruct\",state=\"used\"}");
    assert_eq!(used, Some((cached[1] / 16) as f64));
}

#[test]
fn another_endpoint_inferlet_swapped_in_by_config_changes_the_answers() {
    let echo = inferlet("openai-echo");
    let server = ServerProcess::start("server-openai-echo", &format!("openai_inferlet = {echo:?}"));
    let body = r#"{"model": "SmolLM2-135M-Instruct", "n": 2, "messages": [{"role": "user", "content": "What is the capital of France?"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {BOB}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(&server.address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let json: serde_json::Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let answers: Vec<&str> = json["choices"].as_array().unwrap().iter().map(|c| c["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(answers, ["You said: What is the capital of France?"; 2], "{response}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_inferlet_answers_http_on_its_port() {
    let server = ServerProcess::start("server-http", "");
    let alice = server.client(ALICE).await;
    let hello = alice.ensure_program(&wasm("http-hello")).await.unwrap();
    let port = free_port();
    let mut instance = alice.launch_server(&hello, port, &["from".into(), "alice".into()]).await.unwrap();
    let address = format!("127.0.0.1:{port}");
    for path in ["/greet?x=1", "/again"] {
        let answer = http_get(&address, path).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"), "{answer}");
        assert!(answer.ends_with(&format!("\r\n\r\nhello from {path}; arguments: from alice\n")), "{answer}");
        let mut logged = Vec::new();
        while !logged.ends_with(b"\n") {
            match next(&mut instance).await {
                Event::Stdout(bytes) => logged.extend(bytes),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(String::from_utf8(logged).unwrap(), format!("served {path}\n"));
    }
    assert_eq!(alice.list().await.unwrap()[0].state, "running");

    // The wrong kind of inferlet for each launch gets a clear error.
    let echo = alice.ensure_program(&wasm("echo")).await.unwrap();
    let refused = alice.launch_server(&echo, free_port(), &[]).await.unwrap_err().to_string();
    assert!(refused.contains("not a server inferlet"), "{refused}");
    let mut misused = alice.launch(&hello, &[], false).await.unwrap();
    let (_, code, why) = until_end(&mut misused).await;
    assert_eq!(code, EventCode::Exception);
    assert!(why.contains("launch it as a server instance"), "{why}");
    let taken = alice.launch_server(&hello, port, &[]).await.unwrap_err().to_string();
    assert!(taken.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{taken}");

    alice.terminate(&instance.id).unwrap();
    let (_, code, _) = until_end(&mut instance).await;
    assert_eq!(code, EventCode::Aborted);
    assert!(http_get(&address, "/").is_err(), "the port is closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_launches_only_from_its_listed_registries_with_their_own_credentials() {
    use crate::registry::{PASSWORD, Recorder, RegistryServer, USER};
    let registry = RegistryServer::start("server-login", true);
    let (listed, unlisted) = (Recorder::start(), Recorder::start());
    let reference = registry.reference("crust/secret:v1");
    let pushed = super::crust(
        &["push", &path("hello"), &reference, "--insecure", &registry.host, "--username", USER, "--password", PASSWORD],
        &scratch_dir("server-registries-push"),
    );
    assert_eq!(pushed.status, Some(0), "{}", pushed.stderr);
    let (host, other) = (&registry.host, &listed.host);
    let server = ServerProcess::start(
        "server-registries",
        &format!(
            "registries = [{host:?}, {other:?}]\n[registry]\ninsecure = [{host:?}, {other:?}, {unlisted:?}]\n[registry.login.{host:?}]\nusername = {USER:?}\npassword = {PASSWORD:?}",
            unlisted = unlisted.host
        ),
    );
    let alice = server.client(ALICE).await;

    // From a listed registry, with the credentials configured for it.
    let mut hello = alice.launch_reference(&reference, &["from".into(), "registry".into()], false).await.unwrap();
    let (events, code, why) = until_end(&mut hello).await;
    assert_eq!(code, EventCode::Completed, "{why}");
    let stdout: Vec<u8> = events.iter().flat_map(|e| if let Event::Stdout(bytes) = e { bytes.clone() } else { Vec::new() }).collect();
    assert!(String::from_utf8_lossy(&stdout).contains(r#"arguments ["from", "registry"]"#), "{events:?}");

    // Another listed registry asks for credentials and gets none.
    let refused = alice.launch_reference(&format!("{other}/crust/secret:v1"), &[], false).await.unwrap_err().to_string();
    assert!(refused.contains("refused the credentials"), "{refused}");
    assert!(!listed.heads().is_empty() && !listed.saw_credentials(), "{:?}", listed.heads());

    // An unlisted registry is never contacted.
    let refused = alice.launch_reference(&format!("{}/crust/secret:v1", unlisted.host), &[], false).await.unwrap_err().to_string();
    assert!(refused.contains("is not one this server launches from"), "{refused}");
    assert!(unlisted.heads().is_empty(), "{:?}", unlisted.heads());
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in `dir`.
fn self_signed_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// `GET path` over TLS trusting `cert`: the whole response.
async fn https_get(address: &str, path: &str, cert: &[u8], headers: &str) -> String {
    use pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki_types::CertificateDer::from_pem_slice(cert).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    tls.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n{headers}\r\n").as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A TLS peer may end without close_notify; what came before counts.
    let _ = tls.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_with_a_certificate_speaks_wss_and_https_only() {
    let (cert, key) = self_signed_certificate(&scratch_dir("server-tls-certificate"));
    let server = ServerProcess::start("server-tls", &format!("tls_cert = {cert:?}\ntls_key = {key:?}"));
    assert!(server.url.starts_with("wss://"), "{}", server.url);
    let pem = std::fs::read(&cert).unwrap();

    // A client that trusts the certificate logs in and runs an inferlet.
    let alice = Client::connect_trusting(&server.url, Some(&pem)).await.unwrap();
    alice.authenticate_token(ALICE).await.unwrap();
    let echo = alice.ensure_program(&wasm("echo")).await.unwrap();
    let mut instance = alice.launch(&echo, &[], false).await.unwrap();
    alice.signal(&instance.id, "over tls").unwrap();
    assert_eq!(next(&mut instance).await, Event::Message("echo: over tls".into()));

    // One that does not trust it is refused, and so is plain text on the same port.
    let untrusting = Client::connect(&server.url).await.err().expect("an untrusted certificate is refused").to_string();
    assert!(untrusting.contains("certificate"), "{untrusting}");
    assert!(Client::connect(&server.url.replacen("wss://", "ws://", 1)).await.is_err(), "plain ws:// is not served");

    // The OpenAI API and /metrics over https.
    let status_line = |response: &str| response.lines().next().unwrap_or_default().to_string();
    let models = https_get(&server.address, "/v1/models", &pem, &format!("Authorization: Bearer {ALICE}\r\n")).await;
    assert!(status_line(&models).contains(" 200 ") && models.contains("SmolLM2-135M-Instruct"), "{models}");
    let metrics = https_get(&server.address, "/metrics", &pem, &format!("Authorization: Bearer {METRICS}\r\n")).await;
    assert!(status_line(&metrics).contains(" 200 ") && metrics.contains("crust_"), "{metrics}");

    // The CLI, trusting the certificate by flag.
    let cert_arg = cert.to_str().unwrap();
    let listed = server.crust(&["list", "--token", ALICE, "--ca-cert", cert_arg]);
    assert_eq!(listed.status, Some(0), "{}", listed.stderr);
    assert!(listed.stdout.contains(&instance.id), "{}", listed.stdout);
}

/// Whether the server has closed `stream` (what it sent before is skipped).
fn closed_by_server(stream: &mut std::net::TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// A server inferlet listens only on the ports the server allows, serves so
/// many connections at once, and cuts off a client that never finishes its
/// request's head, so a slowloris holds it up only for the header timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_inferlet_allows_its_ports_and_cuts_off_slow_clients() {
    let port = free_port();
    let lines =
        format!("inferlet_ports = [{port}, {port}]\ninferlet_connections = 2\ninferlet_header_timeout_secs = 2.0\nmax_instances_per_user = 2");
    let server = ServerProcess::start("server-http-limits", &lines);
    let alice = server.client(ALICE).await;
    let hello = alice.ensure_program(&wasm("http-hello")).await.unwrap();
    let outside = if port < u16::MAX { port + 1 } else { port - 1 };
    let refused = alice.launch_server(&hello, outside, &[]).await.unwrap_err().to_string();
    assert!(refused.contains(&format!("port {outside} is not one server inferlets may use: {port}–{port} (server.inferlet_ports)")), "{refused}");
    let _instance = alice.launch_server(&hello, port, &["to".into(), "all".into()]).await.unwrap();
    let address = format!("127.0.0.1:{port}");
    assert!(http_get(&address, "/first").unwrap().contains("hello from /first"));

    // Two clients that never finish their request's head take both connections.
    let mut slow: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            write!(stream, "GET /slow HTTP/1.1\r\nHost: {address}\r\n").unwrap();
            stream
        })
        .collect();
    // A third is answered, but only once a slow one has been cut off.
    let answer = tokio::task::spawn_blocking(move || http_get(&address, "/third")).await.unwrap().unwrap();
    assert!(answer.contains("hello from /third; arguments: to all"), "{answer}");
    assert!(slow.iter_mut().any(closed_by_server), "the third connection waited for a slow one to be cut off");
    for stream in &mut slow {
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut rest = Vec::new();
        assert!(stream.read_to_end(&mut rest).is_ok(), "a slow client is cut off after the header timeout");
    }

    // Each request's instance counts against its user's cap: with the server inferlet and an
    // echo running, alice has none left for a request.
    let echo = alice.ensure_program(&wasm("echo")).await.unwrap();
    let mut other = alice.launch(&echo, &[], false).await.unwrap();
    let address = format!("127.0.0.1:{port}");
    let full = http_get(&address, "/full").unwrap();
    assert!(full.contains(" 503 ") && full.contains("server.max_instances_per_user"), "{full}");
    alice.terminate(&other.id).unwrap();
    until_end(&mut other).await;
    assert!(http_get(&address, "/again").unwrap().contains("hello from /again"));
}

#[test]
fn crusts_python_client_streams_detaches_and_reattaches() {
    let server = ServerProcess::start("server-python-client", "");
    let seen = run_python("crust_client_session.py", &[&server.url, BOB, &path("text-completion"), &path("echo")]);
    assert_eq!(seen["server"]["protocol"], 1);
    assert_eq!(seen["user"], "bob");
    let stdout = &seen["text_completion_stdout"];
    assert!(stdout[0].as_str().unwrap().contains("Paris"), "{stdout}");
    assert!(stdout[1].as_u64().unwrap() > 2, "the text arrives as it is generated, not at once: {stdout}");
    assert_eq!(seen["text_completion_end"], serde_json::json!(["completed", ""]));
    assert_eq!(seen["first"], "echo: one");
    assert_eq!(seen["listed"], serde_json::json!([[true, "running", false]]));
    assert_eq!(seen["buffered"], serde_json::json!(["echo: two", "echo: three"]));
    assert_eq!(seen["echo_end"], serde_json::json!(["completed", "echoed 3 messages and 0 blobs"]));
}

/// Two models from the config in one server, each with its own engine
/// service: instances pick theirs by name, and each model's passes are
/// counted under its own name.
#[test]
fn one_server_serves_several_models_each_on_its_own_engine() {
    let file = crust::config::models_dir().join(crust::config::DEFAULT_MODEL_FILE);
    let models = format!("[[models]]\nname = \"smol-a\"\npath = {file:?}\n[[models]]\nname = \"smol-b\"\npath = {file:?}\n");
    let server = ServerProcess::start("server-two-models", &format!("\n{models}"));
    for model in ["smol-b", "smol-a"] {
        let args = ["--prompt", "What is the capital of France?", "--max-tokens", "12", "--model", model];
        let run = server.crust(&[&["submit", "--token", ALICE, &path("text-completion"), "--"][..], &args].concat());
        assert_eq!(run.status, Some(0), "{model}: {}", run.stderr);
        assert!(run.stdout.contains("Paris"), "{model}: {}", run.stdout);
    }
    for model in ["smol-a", "smol-b"] {
        let passes = server.metric(&format!("crust_forward_passes_total{{model=\"{model}\"}}")).unwrap_or(0.0);
        assert!(passes >= 2.0, "{model} ran {passes} passes: {}", server.metrics());
    }
}

#[test]
fn the_cli_submits_lists_attaches_and_kills() {
    let server = ServerProcess::start("server-cli", "");
    let prompt = ["--prompt", "What is the capital of France?", "--max-tokens", "16"];
    let submitted = server.crust(&[&["submit", "--token", ALICE, &path("text-completion"), "--"][..], &prompt].concat());
    assert_eq!(submitted.status, Some(0), "{}", submitted.stderr);
    assert!(submitted.stdout.contains("Paris"), "{}", submitted.stdout);
    // The same answer as `crust run` gives.
    let local = super::crust(&[&["run", &path("text-completion"), "--"][..], &prompt].concat(), &server.dir.join("cli-cache"));
    assert_eq!(submitted.stdout.trim(), local.stdout.trim());

    // A failing inferlet: exit 1 and the reason.
    let failed = server.crust(&["submit", "--token", ALICE, &path("text-completion")]);
    assert_eq!(failed.status, Some(1));
    assert!(failed.stderr.contains("--prompt is required"), "{}", failed.stderr);

    let detached = server.crust(&["submit", "--token", ALICE, "--detach", &path("echo")]);
    assert_eq!(detached.status, Some(0), "{}", detached.stderr);
    let id = detached.stdout.trim();
    let listed = server.crust(&["list", "--token", ALICE, "--json"]);
    let rows: Vec<crust_client::InstanceInfo> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id.as_str(), rows[0].state.as_str(), rows[0].owner.as_str()), (id, "running", "alice"));
    assert!(server.crust(&["list", "--token", ALICE]).stdout.contains(id));
    let killed = server.crust(&["kill", "--token", ALICE, id]);
    assert_eq!(killed.status, Some(0), "{}", killed.stderr);
    assert!(killed.stdout.contains("aborted: terminated by its client"), "{}", killed.stdout);
    let missing = server.crust(&["attach", "--token", ALICE, id]);
    assert_eq!(missing.status, Some(2));
    assert!(missing.stderr.contains("no running instance"), "{}", missing.stderr);

    // Talking to a detached instance: a message at launch, one with `send`,
    // then lines typed into `attach`.
    let detached = server.crust(&["submit", "--token", ALICE, "--detach", "--send", "one", &path("echo")]);
    assert_eq!(detached.status, Some(0), "{}", detached.stderr);
    let id = detached.stdout.trim();
    // Listed (and logged) by its file's name next to its hash.
    let listed = server.crust(&["list", "--token", ALICE]);
    let row = listed.stdout.lines().find(|l| l.contains(id)).unwrap_or_default();
    assert!(row.contains("echo.wasm ("), "{}", listed.stdout);
    let sent = server.crust(&["send", "--token", ALICE, id, "two"]);
    assert_eq!(sent.status, Some(0), "{}", sent.stderr);
    let unknown = server.crust(&["send", "--token", ALICE, "5f0c3bde-0000-4000-8000-000000000000", "two"]);
    assert_eq!(unknown.status, Some(1));
    assert!(unknown.stderr.contains("no running instance"), "{}", unknown.stderr);
    let mut attach = Command::new(env!("CARGO_BIN_EXE_crust-under-test"))
        .args(["attach", "--token", ALICE, id])
        .env("CRUST_SERVER", &server.url)
        .env_remove("CRUST_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    attach.stdin.take().unwrap().write_all(b"three\n/exit\n").unwrap();
    let attached = super::CliRun::from(attach.wait_with_output().unwrap());
    assert_eq!(attached.status, Some(0), "{}", attached.stderr);
    assert_eq!(attached.stdout, "echo: one\necho: two\necho: three\nechoed 3 messages and 0 blobs\n");

    // Key login, with the key file from `crust keygen`-style lines.
    let key = server.dir.join("carol.key");
    let listed = server.crust(&["list", "--user", "carol", "--key", key.to_str().unwrap()]);
    assert_eq!(listed.status, Some(0), "{}", listed.stderr);
    let generated = server.dir.join("generated.key");
    let keygen = server.crust(&["keygen", "--user", "dave", "--out", generated.to_str().unwrap()]);
    assert!(keygen.stdout.starts_with("ed25519 ") && keygen.stdout.trim().ends_with(" dave"), "{}", keygen.stdout);
    let stranger = server.crust(&["list", "--user", "dave", "--key", generated.to_str().unwrap()]);
    assert_eq!(stranger.status, Some(1));
    assert!(stranger.stderr.contains("no authorized key of user dave"), "{}", stranger.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_is_required_and_users_see_only_their_own() {
    let server = ServerProcess::start("server-auth", "");
    let anonymous = Client::connect(&server.url).await.unwrap();
    let refused = anonymous.launch(&"0".repeat(64), &[], false).await.unwrap_err().to_string();
    assert!(refused.contains("not authenticated"), "{refused}");
    let wrong = anonymous.authenticate_token("not-a-token-of-ours").await.unwrap_err().to_string();
    assert!(wrong.contains("not one this server trusts"), "{wrong}");
    let impostor = keys::generate();
    let wrong_key = anonymous.authenticate_key("carol", &impostor).await.unwrap_err().to_string();
    assert!(wrong_key.contains("no authorized key of user carol"), "{wrong_key}");
    let carol = keys::read_secret(&server.dir.join("carol.key")).unwrap();
    assert_eq!(anonymous.authenticate_key("carol", &carol).await.unwrap(), "carol");

    let alice = server.client(ALICE).await;
    let bob = server.client(BOB).await;
    let echo = alice.ensure_program(&wasm("echo")).await.unwrap();
    let mut instance = alice.launch(&echo, &[], true).await.unwrap();
    assert!(bob.list().await.unwrap().is_empty());
    assert_eq!(alice.list().await.unwrap().len(), 1);
    let attach = bob.attach(&instance.id).await.unwrap_err().to_string();
    assert!(attach.contains("no running instance"), "{attach}");
    bob.terminate(&instance.id).unwrap();
    bob.signal(&instance.id, "from bob").unwrap();
    assert_eq!(bob.list().await.unwrap().len(), 0, "a round trip: the server has handled bob's frames");
    assert!(bob.take_server_events().iter().all(|e| e.contains("no running instance")));
    alice.signal(&instance.id, "from alice").unwrap();
    assert_eq!(next(&mut instance).await, Event::Message("echo: from alice".into()));
    alice.terminate(&instance.id).unwrap();
    let (_, code, _) = until_end(&mut instance).await;
    assert_eq!(code, EventCode::Aborted);

    // `/metrics` names users: only the operator's token reads it.
    for headers in ["", "Authorization: Bearer alice-token-0123456789\r\n"] {
        let refused = http_request(&server.address, "/metrics", headers).unwrap();
        assert!(refused.starts_with("HTTP/1.0 401") && refused.contains("server.metrics_token"), "{refused}");
    }
    assert!(server.metrics().contains("crust_connections "));

    // --no-auth is for loopback only.
    let open = Command::new(env!("CARGO_BIN_EXE_crust-under-test")).args(["serve", "--no-auth", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert_eq!(open.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&open.stderr).contains("loopback"), "{}", String::from_utf8_lossy(&open.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_an_error_and_the_server_keeps_serving() {
    let server = ServerProcess::start("server-bad-input", "max_upload_mib = 1");
    let client = server.client(ALICE).await;

    client.send_raw(b"\xc1 not msgpack".to_vec()).unwrap();
    let unknown =
        client.request_raw(1_000_001, encode(&serde_json::json!({"type": "no_such_message", "corr_id": 1_000_001}))).await.unwrap_err().to_string();
    assert!(unknown.contains("malformed message"), "{unknown}");
    let events = client.take_server_events();
    assert!(events.iter().any(|e| e.contains("malformed message")), "{events:?}");

    let upload = |corr_id, hash: &str, index, total, data: &[u8]| {
        encode(&ClientMessage::UploadProgram {
            corr_id,
            program_hash: hash.into(),
            chunk_index: index,
            total_chunks: total,
            chunk_data: data.to_vec(),
        })
    };
    // Truncated: two chunks of three, then another upload.
    let big = vec![0u8; 3 * crust_client::protocol::CHUNK_SIZE];
    let big_hash = crust_client::protocol::content_hash(&big);
    client.send_raw(upload(1_000_010, &big_hash, 0, 3, &big[..crust_client::protocol::CHUNK_SIZE])).unwrap();
    let truncated = client.request_raw(1_000_010, upload(1_000_010, &big_hash, 2, 3, &[0])).await.unwrap_err().to_string();
    assert!(truncated.contains("out of order or missing"), "{truncated}");
    client.send_raw(upload(1_000_011, &big_hash, 0, 3, &big[..10])).unwrap();
    let abandoned = client.request_raw(1_000_011, upload(1_000_012, &crust_client::protocol::content_hash(b"x"), 0, 1, b"x"));
    let abandoned = abandoned.await.unwrap_err().to_string();
    assert!(abandoned.contains("stopped after 1 of 3 chunks"), "{abandoned}");

    let mismatch = client.request_raw(1_000_020, upload(1_000_020, &"ab".repeat(32), 0, 1, b"bytes")).await.unwrap_err();
    assert!(mismatch.to_string().contains("hash mismatch"), "{mismatch}");
    let oversized = client.upload_program(&vec![1u8; 2 << 20]).await.unwrap_err().to_string();
    assert!(oversized.contains("limit of 1048576 bytes"), "{oversized}");
    let not_wasm = client.upload_program(b"#!/bin/sh\necho not wasm").await.unwrap_err().to_string();
    assert!(not_wasm.contains("not a WebAssembly file"), "{not_wasm}");
    let core_module = client.upload_program(b"\0asm\x01\0\0\0").await.unwrap_err().to_string();
    assert!(core_module.contains("not a component"), "{core_module}");
    let missing = client.launch(&"cd".repeat(32), &[], false).await.unwrap_err().to_string();
    assert!(missing.contains("upload it first"), "{missing}");

    // Through all that, the same connection and a new one still work.
    let hello = client.ensure_program(&wasm("pie-hello")).await.unwrap();
    let mut instance = client.launch(&hello, &["still".into(), "here".into()], false).await.unwrap();
    assert_eq!(until_end(&mut instance).await.1, EventCode::Completed);
    let other = server.client(BOB).await;
    let mut instance = other.launch(&hello, &["bob".into()], false).await.unwrap();
    let (_, code, value) = until_end(&mut instance).await;
    assert_eq!((code, value.as_str()), (EventCode::Completed, "pie says hi to bob"));
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_give_clear_errors() {
    let server = ServerProcess::start("server-limits", "max_instances_per_user = 2\noutput_buffer_kib = 1");
    let alice = server.client(ALICE).await;
    let echo = alice.ensure_program(&wasm("echo")).await.unwrap();
    let first = alice.launch(&echo, &[], true).await.unwrap();
    let _second = alice.launch(&echo, &[], false).await.unwrap();
    let third = alice.launch(&echo, &[], false).await.err().unwrap().to_string();
    assert!(third.contains("server.max_instances_per_user"), "{third}");
    // Another user is not held back by alice's cap.
    let bob = server.client(BOB).await;
    assert!(bob.launch(&echo, &[], false).await.is_ok());

    // A detached instance that says more than its buffer holds ends, and says why.
    alice.detach(&first.id).await.unwrap();
    for n in 0..100 {
        alice.signal(&first.id, &format!("message number {n} with some padding")).unwrap();
    }
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(60);
    while alice.list().await.unwrap().iter().any(|i| i.state == "running" && !i.attached) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = alice.list().await.unwrap();
    let ended = rows.iter().find(|i| i.state == "out_of_resources").expect("the chatty instance ended");
    let mut reattached = alice.attach(&ended.id).await.unwrap();
    let (messages, code, why) = until_end(&mut reattached).await;
    assert_eq!(code, EventCode::OutOfResources);
    assert!(why.contains("output buffer is full") && why.contains("server.output_buffer_kib"), "{why}");
    assert!(!messages.is_empty() && messages.len() < 100, "{} buffered", messages.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_client_leaves_no_pages_and_metrics_say_so() {
    let server = ServerProcess::start("server-disconnect", "");
    let used = "crust_kv_pages{model=\"SmolLM2-135M-Instruct\",state=\"used\"}";
    let alice = server.client(ALICE).await;
    let chat = alice.ensure_program(&wasm("chat")).await.unwrap();
    let mut instance = alice.launch(&chat, &[], false).await.unwrap();
    alice.signal(&instance.id, "Name a color.").unwrap();
    assert!(matches!(next(&mut instance).await, Event::Message(_)));
    assert!(server.metric(used).unwrap() > 0.0, "the conversation holds pages");
    assert_eq!(server.metric("crust_user_instances{user=\"alice\"}"), Some(1.0));
    assert_eq!(server.metric("crust_connections"), Some(1.0));
    assert!(server.metric("crust_forward_passes_total{model=\"SmolLM2-135M-Instruct\"}").unwrap() > 0.0);
    // What the steps asked of the GPU: at least the embedding and 5 per layer (30) each (the
    // matrix kernels fold the layer norms, RoPE and the KV write in where they can).
    let (steps, dispatches) =
        ("crust_gpu_steps_total{model=\"SmolLM2-135M-Instruct\"}", "crust_gpu_dispatches_total{model=\"SmolLM2-135M-Instruct\"}");
    let (steps, dispatches) = (server.metric(steps).unwrap(), server.metric(dispatches).unwrap());
    assert!(steps > 0.0 && dispatches >= 151.0 * steps, "{dispatches} dispatches in {steps} steps");
    drop(instance);
    drop(alice);
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.metric(used) != Some(0.0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.metric(used), Some(0.0), "the pages went back to the pool");
    assert_eq!(server.metric("crust_instances{state=\"detached\"}"), Some(0.0));
    assert_eq!(server.metric("crust_connections"), Some(0.0));
    let metrics = server.metrics();
    assert!(metrics.starts_with("HTTP/1.0 200") || metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for family in ["crust_batches_total", "crust_batch_size_mean", "crust_queue_depth", "crust_gpu_busy_seconds_total"] {
        assert!(metrics.contains(&format!("# TYPE {family} ")), "{family} missing");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_every_instance_tells_every_client_and_exits_zero() {
    let mut server = ServerProcess::start("server-sigterm", "");
    let mut clients = Vec::new();
    for token in [ALICE, BOB, ALICE] {
        let client = server.client(token).await;
        let echo = client.ensure_program(&wasm("echo")).await.unwrap();
        let mut instance = client.launch(&echo, &[], false).await.unwrap();
        client.signal(&instance.id, "ready?").unwrap();
        assert_eq!(next(&mut instance).await, Event::Message("echo: ready?".into()));
        clients.push((client, instance));
    }
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    for (client, mut instance) in clients {
        let (_, code, why) = until_end(&mut instance).await;
        assert_eq!((code, why.as_str()), (EventCode::Aborted, "the server is shutting down"));
        // Then the server says goodbye and closes the connection.
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.list().await.is_ok() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(client.take_server_events().iter().any(|e| e.contains("shutting down")));
    }
    let exit = server.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    assert!(server.stdout.lock().unwrap().contains("crust serve: stopped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_clients_all_get_their_answers() {
    let server = ServerProcess::start("server-200", "max_instances_per_user = 256");
    let setup = server.client(ALICE).await;
    let hello = setup.ensure_program(&wasm("pie-hello")).await.unwrap();
    let runs = (0..200).map(|n| {
        let (url, hello) = (server.url.clone(), hello.clone());
        tokio::spawn(async move {
            let client = Client::connect(&url).await.unwrap();
            client.authenticate_token(if n % 2 == 0 { ALICE } else { BOB }).await.unwrap();
            let mut instance = client.launch(&hello, &[format!("client-{n}")], false).await.unwrap();
            until_end(&mut instance).await
        })
    });
    let results = futures::future::join_all(runs).await;
    for (n, result) in results.into_iter().enumerate() {
        let (events, code, value) = result.unwrap();
        assert_eq!((code, value), (EventCode::Completed, format!("pie says hi to client-{n}")));
        assert!(events.iter().all(|e| matches!(e, Event::Stdout(_) | Event::Stderr(_))), "{events:?}");
    }
}

/// `crust serve --token NAME=SECRET`: a server with no tokens in its config
/// lets that user in, and only with that secret; the start line names every URL.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_flag_lets_its_user_in() {
    let dir = scratch_dir("server-token-flag");
    std::fs::write(dir.join("config.toml"), format!("data_dir = {:?}\ncache_dir = {:?}\n", dir.join("data"), dir.join("cache"))).unwrap();
    let server = ServerProcess::spawn(dir, &["--token", "dave=dave-secret-token"]);
    let dave = server.client("dave-secret-token").await;
    assert!(dave.list().await.unwrap().is_empty());
    assert!(Client::connect(&server.url).await.unwrap().authenticate_token(ALICE).await.is_err(), "no other token works");
    let short = crate::crust(&["serve", "--token", "eve=short"], &scratch_dir("server-token-flag-short"));
    assert_eq!(short.status, Some(2), "{}", short.stderr);
    assert!(short.stderr.contains("8 or more characters"), "{}", short.stderr);
}

/// `[server.users.<name>]` gives one user's instances their own limits.
#[tokio::test(flavor = "multi_thread")]
async fn a_users_own_limits_apply_to_their_instances() {
    let server = ServerProcess::start("server-user-limits", "[server.users.bob]\ncpu_time_secs = 1.0\nmax_priority = \"high\"");
    let bob = server.client(BOB).await;
    let misuse = bob.ensure_program(&wasm("misuse")).await.unwrap();
    let mut spinning = bob.launch(&misuse, &["hold".to_string(), "1".to_string()], false).await.unwrap();
    let (_, code, why) = until_end(&mut spinning).await;
    assert!(why.contains("CPU-time limit of 1s exceeded"), "{code:?}: {why}");
}

type RawSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket with no client library behind it: it reads only when told to.
async fn raw_socket(url: &str) -> Result<RawSocket, tokio_tungstenite::tungstenite::Error> {
    tokio_tungstenite::connect_async(url).await.map(|(socket, _)| socket)
}

async fn send_frame(socket: &mut RawSocket, message: &ClientMessage) {
    use futures::SinkExt;
    socket.send(tokio_tungstenite::tungstenite::Message::Binary(encode(message).into())).await.unwrap();
}

/// Reads until the server closes: the reason it gave.
async fn close_reason(socket: &mut RawSocket) -> String {
    use futures::StreamExt;
    while let Some(frame) = socket.next().await {
        match frame {
            Ok(tokio_tungstenite::tungstenite::Message::Close(Some(close))) => return close.reason.to_string(),
            Ok(_) => {}
            Err(e) => return format!("an error: {e}"),
        }
    }
    "the end without a close frame".into()
}

/// Waits (a bounded while) for `done`, polled every 100 ms.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..1200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

/// A server holds up against its clients: one that never reads is closed
/// once what waits for it passes `server.outbox_kib`, and its instance ends
/// with the connection; one that does not log in is closed after the login
/// timeout, or after too many or too big frames; one address gets at most
/// so many connections. Everyone else goes on being served.
#[tokio::test(flavor = "multi_thread")]
async fn slow_silent_and_greedy_clients_are_closed_and_the_server_goes_on() {
    use futures::StreamExt;
    let server = ServerProcess::start("server-hostile-clients", "outbox_kib = 256\nlogin_timeout_secs = 2.0\nmax_connections_per_address = 4");
    let alice = server.client(ALICE).await;
    let hostile = alice.ensure_program(&wasm("hostile")).await.unwrap();

    // Connections from one address: alice's and three more, then no more.
    let mut sockets = Vec::new();
    for corr_id in 0..3 {
        let mut socket = raw_socket(&server.url).await.unwrap();
        send_frame(&mut socket, &ClientMessage::Authenticate { corr_id, token: BOB.into() }).await;
        socket.next().await.unwrap().unwrap();
        sockets.push(socket);
    }
    match raw_socket(&server.url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("server.max_connections_per_address"), "{body}");
        }
        other => panic!("a fifth connection from one address: {:?}", other.map(|_| ())),
    }
    assert_eq!(server.metric("crust_connections_refused_total"), Some(1.0));
    sockets.clear();
    eventually("a closed connection gives its seat back", async || server.metric("crust_connections") == Some(1.0)).await;

    // Not logged in: closed after the timeout, or after too many or too big frames.
    let mut idle = raw_socket(&server.url).await.unwrap();
    let mut chatty = raw_socket(&server.url).await.unwrap();
    // One frame over the limit: a write after the server's close could
    // meet a broken pipe instead of the close frame.
    for corr_id in 0..33 {
        send_frame(&mut chatty, &ClientMessage::Query { corr_id, subject: "version".into(), record: String::new() }).await;
    }
    let mut big = raw_socket(&server.url).await.unwrap();
    {
        use futures::SinkExt;
        big.send(tokio_tungstenite::tungstenite::Message::Binary(vec![0x90; 100_000].into())).await.unwrap();
    }
    for (socket, why) in [
        (&mut chatty, "more than 32 frames before logging in"),
        (&mut big, "a frame of 100000 bytes before logging in (at most 65536)"),
        (&mut idle, "not logged in within 2s (server.login_timeout_secs)"),
    ] {
        let reason = tokio::time::timeout(Duration::from_secs(60), close_reason(socket)).await.expect("closed");
        assert_eq!(reason, why);
    }
    assert_eq!(server.metric("crust_connections_closed_total{reason=\"no_login\"}"), Some(3.0));

    // Logged in, it starts an endless output and never reads.
    let mut slow = raw_socket(&server.url).await.unwrap();
    send_frame(&mut slow, &ClientMessage::Hello { corr_id: 0, protocol: crust_client::protocol::PROTOCOL_VERSION }).await;
    send_frame(&mut slow, &ClientMessage::Authenticate { corr_id: 1, token: ALICE.into() }).await;
    let flood =
        ClientMessage::LaunchInstance { corr_id: 2, program_hash: hostile, arguments: vec!["output-flood".into()], detached: false, name: None };
    send_frame(&mut slow, &flood).await;
    let closed_slow = "crust_connections_closed_total{reason=\"slow_reader\"}";
    eventually("the server closes a client that does not read", async || server.metric(closed_slow) == Some(1.0)).await;
    eventually("its instance ends with its connection", async || alice.list().await.unwrap().is_empty()).await;
    // What the client can still read ends: with the reason, when the close
    // frame still fits in the socket (and the server's reset does not drop it).
    let reason = tokio::time::timeout(Duration::from_secs(120), close_reason(&mut slow)).await.expect("the connection ends");
    let told = "the client read too slowly: over 256 KiB waited for it (server.outbox_kib)";
    assert!(reason == told || reason.starts_with("an error") || reason == "the end without a close frame", "{reason}");
    eventually("its seat is given back", async || server.metric("crust_connections") == Some(1.0)).await;

    // Everyone else is still served.
    let echo = alice.ensure_program(&wasm("echo")).await.unwrap();
    let mut instance = alice.launch(&echo, &[], false).await.unwrap();
    alice.signal(&instance.id, "still here").unwrap();
    assert_eq!(next(&mut instance).await, Event::Message("echo: still here".into()));
}
