//! Publishing and running inferlets through a real OCI registry: Debian's
//! `docker-registry` (CNCF distribution), started on a free loopback port.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crust_tests::{inferlet, scratch_dir};

use crate::{CliRun, crust};

pub(crate) const USER: &str = "crust";
pub(crate) const PASSWORD: &str = "s3cret-pass";

/// A registry process, stopped on drop.
pub(crate) struct RegistryServer {
    child: Child,
    pub(crate) host: String,
    storage: PathBuf,
}

impl RegistryServer {
    pub(crate) fn start(name: &str, basic_auth: bool) -> Self {
        let dir = scratch_dir(&format!("registry-{name}"));
        let storage = dir.join("storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n",
            storage.display()
        );
        if basic_auth {
            let out =
                Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]).output().expect("htpasswd (apache2-utils) is installed by `just setup`");
            std::fs::write(dir.join("htpasswd"), out.stdout).unwrap();
            config += &format!("auth:\n  htpasswd:\n    realm: crust-test\n    path: {}\n", dir.join("htpasswd").display());
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker-registry is installed by `just setup`");
        // The log names the port it picked.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let host = loop {
            let line = lines.next().expect("the registry exited before listening").unwrap();
            if let Some(at) = line.find("listening on ") {
                let rest = &line[at + "listening on ".len()..];
                break rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap().trim_start_matches("[::]").to_string();
            }
        };
        let host = host.replace("[::]", "127.0.0.1");
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, host, storage }
    }

    pub(crate) fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// The file holding a blob, in the registry's filesystem storage.
    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage.join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP server that records every request's head and answers each with a
/// basic-auth challenge: a client holding credentials for this host would send them.
pub(crate) struct Recorder {
    pub(crate) host: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || challenge_every_request(stream, &seen));
            }
        });
        Self { host, heads }
    }

    pub(crate) fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Whether any request it saw carried credentials.
    pub(crate) fn saw_credentials(&self) -> bool {
        self.heads().iter().any(|head| head.to_ascii_lowercase().contains("\nauthorization:"))
    }
}

fn challenge_every_request(mut stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    // One head after another on a kept-alive connection; the requests have no bodies.
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head += &line;
        }
        seen.lock().unwrap().push(head);
        let challenge = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"recorder\"\r\nContent-Length: 0\r\n\r\n";
        if stream.write_all(challenge.as_bytes()).is_err() {
            return;
        }
    }
}

fn insecure(server: &RegistryServer) -> [String; 2] {
    ["--insecure".into(), server.host.clone()]
}

fn run(args: &[&str], extra: &[String], cache: &Path) -> CliRun {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(extra.iter().map(String::as_str));
    crust(&all, cache)
}

fn digest_of(out: &CliRun) -> String {
    out.stdout.split_whitespace().find(|w| w.starts_with("sha256:")).expect("a digest").to_string()
}

#[test]
fn push_pull_and_run_by_reference() {
    let server = RegistryServer::start("plain", false);
    let cache = scratch_dir("oci-plain");
    let reference = server.reference("crust/hello:v1");
    let hello = inferlet("hello");
    // Without --insecure, https meets plain http: the error says so and how to allow it.
    let refused = run(&["push", hello.to_str().unwrap(), &reference], &[], &cache);
    assert_ne!(refused.status, Some(0));
    assert!(refused.stderr.contains(&format!("it answered in plain http, not https: pass --insecure {}", server.host)), "{}", refused.stderr);
    let pushed = run(&["push", hello.to_str().unwrap(), &reference], &insecure(&server), &cache);
    assert_eq!(pushed.status, Some(0), "{}", pushed.stderr);

    // Pulled back byte for byte.
    let copy = cache.join("pulled.wasm");
    let pulled = run(&["pull", &reference, "-o", copy.to_str().unwrap()], &insecure(&server), &cache);
    assert_eq!(pulled.status, Some(0), "{}", pulled.stderr);
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&hello).unwrap());

    // Run by reference, arguments and all.
    let ran = run(&["run", &reference], &[insecure(&server).to_vec(), vec!["--".into(), "from".into(), "registry".into()]].concat(), &cache);
    assert_eq!(ran.status, Some(0), "{}", ran.stderr);
    assert!(ran.stdout.contains(r#"arguments ["from", "registry"]"#), "{}", ran.stdout);

    // The artifact has the standard Wasm OCI media types (as skopeo sees them).
    let inspect = Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", &format!("docker://{reference}")]).output().unwrap();
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
}

#[test]
fn tags_resolve_to_digests() {
    let server = RegistryServer::start("tags", false);
    let cache = scratch_dir("oci-tags");
    let reference = server.reference("crust/app:stable");
    let flags = insecure(&server);
    run(&["push", inferlet("hello").to_str().unwrap(), &reference], &flags, &cache);
    let first = digest_of(&run(&["pull", &reference], &flags, &cache));

    // By digest, the same artifact.
    let by_digest = format!("{}@{first}", server.reference("crust/app"));
    let pinned = run(&["pull", &by_digest], &flags, &cache);
    assert_eq!(pinned.status, Some(0), "{}", pinned.stderr);
    assert_eq!(digest_of(&pinned), first);

    // Moving the tag changes what it resolves to; the digest still names the old one.
    run(&["push", inferlet("pie-hello").to_str().unwrap(), &reference], &flags, &cache);
    let second = digest_of(&run(&["pull", &reference], &flags, &cache));
    assert_ne!(first, second);
    let ran = run(&["run", &reference], &flags, &cache);
    assert!(ran.stdout.contains("pie instance"), "the tag now runs pie-hello: {}", ran.stdout);
    let old = run(&["run", &by_digest], &flags, &cache);
    assert!(old.stdout.contains("ping pong"), "the digest still runs hello: {}", old.stdout);

    let unknown = run(&["pull", &server.reference("crust/app:nope")], &flags, &cache);
    assert_eq!(unknown.status, Some(1));
    assert!(unknown.stderr.contains("does not exist in the registry"), "{}", unknown.stderr);
}

#[test]
fn a_tampered_blob_is_refused() {
    let server = RegistryServer::start("tamper", false);
    let cache = scratch_dir("oci-tamper");
    let reference = server.reference("crust/hello:v1");
    let flags = insecure(&server);
    let bytes = std::fs::read(inferlet("hello")).unwrap();
    run(&["push", inferlet("hello").to_str().unwrap(), &reference], &flags, &cache);
    let digest = crust::oci::sha256_digest(&bytes);
    let blob = server.blob_path(&digest);
    let mut evil = bytes.clone();
    let last = evil.len() - 1;
    evil[last] ^= 0xff;
    std::fs::write(&blob, evil).unwrap();

    let pulled = run(&["pull", &reference], &flags, &cache);
    assert_eq!(pulled.status, Some(1));
    assert!(pulled.stderr.contains("does not match its digest"), "{}", pulled.stderr);
    let ran = run(&["run", &reference], &flags, &cache);
    assert_eq!(ran.status, Some(2));
    assert!(ran.stderr.contains("does not match its digest"), "{}", ran.stderr);
}

#[test]
fn basic_auth_is_required_and_honoured() {
    let server = RegistryServer::start("auth", true);
    let cache = scratch_dir("oci-auth");
    let reference = server.reference("crust/secret:v1");
    let file = inferlet("hello");
    let flags = insecure(&server);

    let anonymous = run(&["push", file.to_str().unwrap(), &reference], &flags, &cache);
    assert_eq!(anonymous.status, Some(1));
    assert!(anonymous.stderr.contains("refused the credentials"), "{}", anonymous.stderr);

    let wrong = run(&["push", file.to_str().unwrap(), &reference, "--username", USER, "--password", "wrong"], &flags, &cache);
    assert_eq!(wrong.status, Some(1));
    assert!(wrong.stderr.contains("refused the credentials"), "{}", wrong.stderr);

    let right = run(&["push", file.to_str().unwrap(), &reference, "--username", USER, "--password", PASSWORD], &flags, &cache);
    assert_eq!(right.status, Some(0), "{}", right.stderr);
    let pulled = run(&["pull", &reference, "--username", USER, "--password", PASSWORD], &flags, &cache);
    assert_eq!(pulled.status, Some(0), "{}", pulled.stderr);
    let unauthorized_pull = run(&["pull", &reference], &flags, &scratch_dir("oci-auth-anon"));
    assert!(unauthorized_pull.stderr.contains("refused the credentials"), "{}", unauthorized_pull.stderr);
}

#[test]
fn what_is_not_an_inferlet_is_refused_by_name() {
    let server = RegistryServer::start("invalid", false);
    let cache = scratch_dir("oci-invalid");
    let flags = insecure(&server);

    // Push refuses a core module and a component with an import Crust lacks.
    let core = cache.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let pushed = run(&["push", core.to_str().unwrap(), &server.reference("x/core:v1")], &flags, &cache);
    assert_eq!(pushed.status, Some(1));
    assert!(pushed.stderr.contains("core WebAssembly module, not a component"), "{}", pushed.stderr);
    let lasers = cache.join("lasers.wat");
    std::fs::write(&lasers, br#"(component (import "acme:tools/lasers" (instance (export "fire" (func)))))"#).unwrap();
    let pushed = run(&["push", lasers.to_str().unwrap(), &server.reference("x/lasers:v1")], &flags, &cache);
    assert_eq!(pushed.status, Some(1));
    assert!(pushed.stderr.contains("acme:tools/lasers"), "{}", pushed.stderr);

    // Something pushed by another tool that is not a component is refused on pull.
    let registry = crust::oci::Registry::new(&crust::oci::RegistryConfig { insecure: vec![server.host.clone()], ..Default::default() }, &cache);
    let reference = server.reference("x/core:v1");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        registry.push(b"\0asm\x01\0\0\0", &reference, Default::default()).await.unwrap();
    });
    let pulled = run(&["pull", &reference], &flags, &cache);
    assert_eq!(pulled.status, Some(1));
    assert!(pulled.stderr.contains("not an inferlet Crust can run"), "{}", pulled.stderr);

    // Nothing listening: the registry is unreachable.
    drop(server);
    let unreachable = run(&["pull", &reference], &flags, &cache);
    assert_eq!(unreachable.status, Some(1));
    assert!(unreachable.stderr.contains("unreachable"), "{}", unreachable.stderr);
}

#[test]
fn credentials_go_only_to_the_registry_they_are_for() {
    let registry = RegistryServer::start("login", true);
    let other = Recorder::start();
    let cache = scratch_dir("oci-login");
    let reference = registry.reference("crust/secret:v1");
    // Credentials on the command line are for the registry its reference names.
    let file = inferlet("hello");
    let pushed = run(&["push", file.to_str().unwrap(), &reference, "--username", USER, "--password", PASSWORD], &insecure(&registry), &cache);
    assert_eq!(pushed.status, Some(0), "{}", pushed.stderr);

    // Credentials in the config name their registry: used there, and sent nowhere else.
    let config = cache.join("config.toml");
    let (host, other_host) = (&registry.host, &other.host);
    std::fs::write(
        &config,
        format!("[registry]\ninsecure = [{host:?}, {other_host:?}]\n[registry.login.{host:?}]\nusername = {USER:?}\npassword = {PASSWORD:?}\n"),
    )
    .unwrap();
    let with_config = ["--config", config.to_str().unwrap()];
    let pulled = run(&[&with_config[..], &["pull", &reference]].concat(), &[], &cache);
    assert_eq!(pulled.status, Some(0), "{}", pulled.stderr);
    let elsewhere = run(&[&with_config[..], &["pull", &format!("{other_host}/crust/secret:v1")]].concat(), &[], &cache);
    assert_eq!(elsewhere.status, Some(1), "{}", elsewhere.stdout);
    assert!(!other.heads().is_empty(), "the pull never reached the other host: {}", elsewhere.stderr);
    assert!(!other.saw_credentials(), "credentials went to another host: {:?}", other.heads());
}

#[test]
fn a_component_over_the_size_cap_or_its_manifest_is_refused() {
    let server = RegistryServer::start("sizes", false);
    let cache = scratch_dir("oci-sizes");
    let reference = server.reference("crust/hello:v1");
    let bytes = std::fs::read(inferlet("hello")).unwrap();
    let pushed = run(&["push", inferlet("hello").to_str().unwrap(), &reference], &insecure(&server), &cache);
    assert_eq!(pushed.status, Some(0), "{}", pushed.stderr);

    // A cap below the component's size: refused from the manifest, before the download.
    let config = cache.join("small.toml");
    let half_mib = bytes.len() as f64 / 2.0 / (1 << 20) as f64;
    std::fs::write(&config, format!("[registry]\ninsecure = [{:?}]\nmax_component_mib = {half_mib}\n", server.host)).unwrap();
    let refused = run(&["--config", config.to_str().unwrap(), "pull", &reference], &[], &cache);
    assert_eq!(refused.status, Some(1));
    assert!(
        refused.stderr.contains(&format!("is {} bytes", bytes.len())) && refused.stderr.contains("registry.max_component_mib"),
        "{}",
        refused.stderr
    );

    // A registry that sends more than its manifest declares is cut off there.
    let mut longer = bytes.clone();
    longer.extend([0u8; 64 << 10]);
    std::fs::write(server.blob_path(&crust::oci::sha256_digest(&bytes)), longer).unwrap();
    let cut = run(&["pull", &reference], &insecure(&server), &cache);
    assert_eq!(cut.status, Some(1));
    assert!(cut.stderr.contains(&format!("than the {} bytes its manifest declares", bytes.len())), "{}", cut.stderr);
    // Nothing of it is left in the cache.
    let cached: Vec<_> = std::fs::read_dir(cache.join("oci/sha256")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(cached.is_empty(), "{cached:?}");
}

#[test]
fn a_registry_that_never_answers_is_given_up_on() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = silent.local_addr().unwrap().to_string();
    // Accepts and holds every connection, and never says a word.
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = silent.incoming().flatten().collect();
        drop(held);
    });
    let cache = scratch_dir("oci-silent");
    let config = cache.join("config.toml");
    std::fs::write(&config, format!("[registry]\ninsecure = [{host:?}]\nread_timeout_secs = 1.0\ntimeout_secs = 5.0\n")).unwrap();
    let pulled = run(&["--config", config.to_str().unwrap(), "pull", &format!("{host}/crust/hello:v1")], &[], &cache);
    assert_eq!(pulled.status, Some(1));
    assert!(pulled.stderr.contains(&host) && (pulled.stderr.contains("timed out") || pulled.stderr.contains("did not finish")), "{}", pulled.stderr);
}

#[test]
fn concurrent_pulls_of_one_component_agree() {
    let server = RegistryServer::start("concurrent", false);
    let cache = scratch_dir("oci-concurrent");
    let reference = server.reference("crust/hello:v1");
    let pushed = run(&["push", inferlet("hello").to_str().unwrap(), &reference], &insecure(&server), &cache);
    assert_eq!(pushed.status, Some(0), "{}", pushed.stderr);
    let registry = crust::oci::Registry::new(&crust::oci::RegistryConfig { insecure: vec![server.host.clone()], ..Default::default() }, &cache);
    let pulls = tokio::runtime::Runtime::new().unwrap().block_on(futures::future::join_all((0..4).map(|_| registry.pull(&reference))));
    let hello = std::fs::read(inferlet("hello")).unwrap();
    for pulled in pulls {
        let pulled = pulled.unwrap();
        assert_eq!(pulled.bytes, hello);
        assert_eq!(std::fs::read(&pulled.path).unwrap(), hello);
    }
    let cached: Vec<_> = std::fs::read_dir(cache.join("oci/sha256")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(cached.len(), 1, "one file, no leftovers: {cached:?}");
}
