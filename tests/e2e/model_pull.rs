//! `crust models pull` against a local server laid out like the Hugging Face
//! hub (`/api/models/ORG/REPO`, `/ORG/REPO/resolve/main/FILE` redirecting to
//! storage with `X-Linked-Etag`/`X-Linked-Size`, ranges honoured), serving
//! the default model's real file: an interrupted download resumes, a wrong
//! digest is refused, the pulled model runs by name and is removed by name.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crust::config::{DEFAULT_MODEL_FILE, models_dir};
use crust_tests::scratch_dir;
use sha2::{Digest, Sha256};

use crate::CliRun;

const FILE: &str = "smollm2-135m.Q4_1.gguf";
const NAME: &str = "smollm2-135m.Q4_1";

/// The hub: repositories `org/smol` (a README and the model) and
/// `org/tampered` (the same bytes under a digest they do not have).
struct Hub {
    url: String,
    /// The next storage download sends half the file, then hangs up.
    cut_next: Arc<AtomicBool>,
    /// The `Range` header of every storage download, in order (`-` for none).
    ranges: Arc<Mutex<Vec<String>>>,
}

impl Hub {
    fn start(model: Arc<Vec<u8>>) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut_next = Arc::new(AtomicBool::new(false));
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let sha = format!("{:x}", Sha256::digest(&model[..]));
        let (cut, seen) = (cut_next.clone(), ranges.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (model, sha, cut, seen) = (model.clone(), sha.clone(), cut.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &model, &sha, &cut, &seen));
            }
        });
        Hub { url, cut_next, ranges }
    }
}

fn serve(mut stream: TcpStream, model: &[u8], sha: &str, cut: &AtomicBool, ranges: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let head = |status: &str, extra: &str, len: usize| format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n");
    let send = |stream: &mut TcpStream, status: &str, extra: &str, body: &[u8]| {
        let _ = stream.write_all(head(status, extra, body.len()).as_bytes());
        if method != "HEAD" {
            let _ = stream.write_all(body);
        }
    };
    let wrong_sha = "0".repeat(64);
    match path.as_str() {
        "/api/models/org/smol" => {
            let info = format!(r#"{{"id":"org/smol","siblings":[{{"rfilename":"README.md"}},{{"rfilename":"{FILE}"}}]}}"#);
            send(&mut stream, "200 OK", "Content-Type: application/json\r\n", info.as_bytes());
        }
        p if p == format!("/org/smol/resolve/main/{FILE}") || p == format!("/org/tampered/resolve/main/{FILE}") => {
            let etag = if p.starts_with("/org/smol/") { sha } else { &wrong_sha };
            let extra =
                format!("Location: /storage/{FILE}\r\nX-Linked-Etag: \"{etag}\"\r\nX-Linked-Size: {}\r\nETag: W/\"1234abcd\"\r\n", model.len());
            send(&mut stream, "302 Found", &extra, b"");
        }
        p if p == format!("/storage/{FILE}") => {
            let range = headers.get("range").cloned();
            ranges.lock().unwrap().push(range.clone().unwrap_or_else(|| "-".into()));
            let from: usize = range.and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()).unwrap_or(0);
            let (status, extra) = if from > 0 {
                ("206 Partial Content", format!("Content-Range: bytes {from}-{}/{}\r\n", model.len() - 1, model.len()))
            } else {
                ("200 OK", String::new())
            };
            let body = &model[from..];
            if cut.swap(false, Ordering::SeqCst) {
                let _ = stream.write_all(head(status, &extra, body.len()).as_bytes());
                let _ = stream.write_all(&body[..body.len() / 2]);
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            send(&mut stream, status, &format!("{extra}Accept-Ranges: bytes\r\n"), body);
        }
        _ => send(&mut stream, "404 Not Found", "", b"Repository not found"),
    }
}

fn crust_with(models: &Path, hub: &Hub, args: &[&str]) -> CliRun {
    Command::new(env!("CARGO_BIN_EXE_crust-under-test"))
        .args(args)
        .env("CRUST_MODELS_DIR", models)
        .env("CRUST_CACHE_DIR", models.join("cache"))
        .env("HF_ENDPOINT", &hub.url)
        .env_remove("HF_TOKEN")
        .env_remove("CRUST_CONFIG")
        .env_remove("CRUST_LOG")
        .output()
        .expect("spawning crust")
        .into()
}

#[test]
fn a_model_is_pulled_by_name_resumed_checked_run_and_removed() {
    let model = Arc::new(std::fs::read(models_dir().join(DEFAULT_MODEL_FILE)).expect("the default model (just fetch-model)"));
    let hub = Hub::start(model.clone());
    let dir = scratch_dir("model-pull");
    let crust = |args: &[&str]| crust_with(&dir, &hub, args);

    // The first try is cut off halfway: it says so and keeps what it got.
    hub.cut_next.store(true, Ordering::SeqCst);
    let cut = crust(&["models", "pull", "hf:org/smol"]);
    assert_eq!(cut.status, Some(1), "{}", cut.stderr);
    assert!(cut.stderr.contains("run the same command again to resume"), "{}", cut.stderr);
    let part = std::fs::metadata(dir.join(format!("{FILE}.part"))).expect("the partial download is kept").len();
    assert!(part > 0 && part < model.len() as u64, "{part} bytes kept");

    // The second asks for the rest only, and the whole file checks out.
    let pulled = crust(&["models", "pull", "hf:org/smol"]);
    assert_eq!(pulled.status, Some(0), "{}", pulled.stderr);
    assert!(pulled.stdout.contains(&format!("pulled {NAME} ")), "{}", pulled.stdout);
    assert_eq!(*hub.ranges.lock().unwrap(), vec!["-".to_string(), format!("bytes={part}-")], "resumed where it stopped");
    assert_eq!(std::fs::read(dir.join(FILE)).unwrap(), *model, "the pulled file is the hub's, byte for byte");
    assert!(!dir.join(format!("{FILE}.part")).exists());

    let listed = crust(&["models"]);
    assert!(listed.stdout.contains(&format!("{NAME}\n")) && listed.stdout.contains(&format!("source: hf:org/smol:{FILE}")), "{}", listed.stdout);
    assert!(listed.stdout.contains("architecture: llama"), "{}", listed.stdout);

    // It runs by name, and a GGUF file runs by path.
    let answer = crust(&["generate", "--model", NAME, "--prompt", "What is the capital of France?", "--max-tokens", "12"]);
    assert_eq!(answer.status, Some(0), "{}", answer.stderr);
    assert!(answer.stdout.contains("Paris"), "{}", answer.stdout);
    let by_path = crust(&["tokenize", "--model", dir.join(FILE).to_str().unwrap(), "--text", "Hello"]);
    assert_eq!(by_path.status, Some(0), "{}", by_path.stderr);
    assert_eq!(by_path.stdout.trim(), "19556");

    // A file whose digest is not the hub's is refused and not kept.
    let tampered_dir = scratch_dir("model-pull-tampered");
    let tampered = crust_with(&tampered_dir, &hub, &["models", "pull", &format!("hf:org/tampered:{FILE}")]);
    assert_eq!(tampered.status, Some(1));
    assert!(tampered.stderr.contains(&format!("expected {}", "0".repeat(64))), "{}", tampered.stderr);
    assert!(!tampered_dir.join(FILE).exists() && !tampered_dir.join(format!("{FILE}.part")).exists());

    // What is not on the hub says so.
    let missing = crust(&["models", "pull", "hf:org/nothing:x.gguf"]);
    assert_eq!(missing.status, Some(1));
    assert!(missing.stderr.contains("404 (no such repository or file)"), "{}", missing.stderr);

    // A pulled model whose file went missing says how to get that model back.
    std::fs::rename(dir.join(FILE), dir.join("moved")).unwrap();
    let gone = crust(&["generate", "--model", NAME, "--prompt", "Hi"]);
    assert_eq!(gone.status, Some(1));
    assert!(gone.stderr.contains(&format!("run `crust models pull hf:org/smol:{FILE}`")), "{}", gone.stderr);
    std::fs::rename(dir.join("moved"), dir.join(FILE)).unwrap();

    let removed = crust(&["models", "rm", NAME]);
    assert_eq!(removed.status, Some(0), "{}", removed.stderr);
    assert!(!dir.join(FILE).exists());
    assert!(!crust(&["models"]).stdout.contains(NAME));
    let unknown = crust(&["generate", "--model", NAME, "--prompt", "Hi"]);
    assert_eq!(unknown.status, Some(1));
    assert!(unknown.stderr.contains(&format!("no model named `{NAME}`")), "{}", unknown.stderr);
}
