//! The outbound-HTTP policy, through the `fetch` inferlet against a real
//! HTTP server on 127.0.0.1: allowed, denied by default, a name resolving to
//! loopback, a redirect to a host not allowed, a server too slow, a body too
//! large, and too many requests in flight.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crust::config::{AllowedHosts, Config, OutboundConfig};
use crust::runtime::Runtime;
use crust_tests::{inferlet, run_instance, run_instance_as, scratch_dir};

use crate::crust;

/// A plain HTTP/1.1 server, a thread per connection:
/// `/hello`; `/redirect` (to 127.0.0.2, same port); `/slow` (answers after
/// 10 s); `/big` (2 MiB); `/hang` (answers once two are waiting).
struct Server {
    port: u16,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hanging = Arc::new((Mutex::new(0usize), Condvar::new()));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let hanging = hanging.clone();
                std::thread::spawn(move || serve(stream, port, &hanging));
            }
        });
        Self { port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn serve(mut stream: TcpStream, port: u16, hanging: &(Mutex<usize>, Condvar)) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let respond = |stream: &mut TcpStream, status: &str, extra: &str, body: &[u8]| {
        let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n", body.len());
        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
    };
    match path.as_str() {
        "/hello" => respond(&mut stream, "200 OK", "", b"hello from the test server"),
        "/redirect" => respond(&mut stream, "302 Found", &format!("location: http://127.0.0.2:{port}/hello\r\n"), b""),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(10));
            respond(&mut stream, "200 OK", "", b"late");
        }
        "/big" => respond(&mut stream, "200 OK", "", &vec![b'x'; 2 << 20]),
        "/hang" => {
            let (count, arrived) = hanging;
            let mut waiting = count.lock().unwrap();
            *waiting += 1;
            arrived.notify_all();
            drop(arrived.wait_timeout_while(waiting, Duration::from_secs(60), |n| *n < 2).unwrap());
            // Time for a third request, sent with them, to be refused first.
            std::thread::sleep(Duration::from_secs(1));
            respond(&mut stream, "200 OK", "", b"done");
        }
        _ => respond(&mut stream, "404 Not Found", "", b""),
    }
}

fn runtime(cache: &str, outbound: OutboundConfig) -> Runtime {
    Runtime::new(&Config { cache_dir: Some(scratch_dir(cache)), outbound, ..Config::default() }).expect("starting the runtime")
}

fn allowing(hosts: &[String]) -> OutboundConfig {
    OutboundConfig { allowed_hosts: hosts.to_vec(), ..OutboundConfig::default() }
}

fn fetch(runtime: &Runtime, arguments: &[&str]) -> String {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let run = tokio.block_on(run_instance(runtime, &inferlet("fetch"), arguments));
    assert!(run.outcome.is_ok(), "{:?} {}", run.outcome, run.stderr);
    run.stdout
}

#[test]
fn an_allowed_host_answers_and_everything_else_is_denied() {
    let server = Server::start();
    let allowed = runtime("out-allowed", allowing(&[format!("http://127.0.0.1:{}", server.port)]));
    let answer = fetch(&allowed, &[&server.url("/hello")]);
    assert!(answer.contains("status 200") && answer.contains("body 26 bytes: hello from the test server"), "{answer}");

    let by_default = runtime("out-default", OutboundConfig::default());
    assert_eq!(fetch(&by_default, &[&server.url("/hello")]).trim(), "error ErrorCode::HttpRequestDenied", "deny by default");
    // `*` is every public host: loopback is not one.
    let public = runtime("out-public", allowing(&["*://*:*".into()]));
    assert_eq!(fetch(&public, &[&server.url("/hello")]).trim(), "error ErrorCode::HttpRequestDenied");
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_unless_the_address_is_allowed() {
    let server = Server::start();
    let port = server.port;
    let by_name = runtime("out-name", allowing(&[format!("http://localhost:{port}")]));
    let url = format!("http://localhost:{port}/hello");
    assert_eq!(fetch(&by_name, &[&url]).trim(), "error ErrorCode::HttpRequestDenied");
    let by_address = runtime(
        "out-name-address",
        allowing(&[format!("http://localhost:{port}"), format!("http://127.0.0.0/8:{port}"), format!("http://[::1]:{port}")]),
    );
    assert!(fetch(&by_address, &[&url]).contains("status 200"), "allowed by address, the name reaches it");
}

#[test]
fn a_redirect_to_a_host_not_allowed_is_refused() {
    let server = Server::start();
    let runtime = runtime("out-redirect", allowing(&[format!("http://127.0.0.1:{}", server.port)]));
    let answer = fetch(&runtime, &[&server.url("/redirect")]);
    assert!(answer.contains("status 302") && answer.trim_end().ends_with("error ErrorCode::HttpRequestDenied"), "{answer}");
}

#[test]
fn a_slow_server_times_out_and_a_large_body_is_cut() {
    let server = Server::start();
    let allow = format!("http://127.0.0.1:{}", server.port);
    let impatient = OutboundConfig { allowed_hosts: vec![allow.clone()], timeout_secs: 1.0, ..OutboundConfig::default() };
    let slow = fetch(&runtime("out-slow", impatient), &[&server.url("/slow")]);
    assert!(slow.starts_with("error") && slow.contains("Timeout"), "{slow}");
    // The default timeout: a loaded machine may take over a second to stream a mebibyte.
    let small = OutboundConfig { allowed_hosts: vec![allow], max_response_mib: 1, ..OutboundConfig::default() };
    let big = fetch(&runtime("out-big", small), &[&server.url("/big")]);
    // The frame that would cross the cap is refused whole, so fewer bytes than the cap may arrive.
    let delivered: Option<usize> = big.split("body cut after ").nth(1).and_then(|rest| rest.split(' ').next()?.parse().ok());
    assert!(big.contains("status 200") && delivered.is_some_and(|n| n <= 1 << 20), "{big}");
}

#[test]
fn requests_in_flight_are_capped_per_instance() {
    let server = Server::start();
    let allow = format!("http://127.0.0.1:{}", server.port);
    let runtime = runtime("out-in-flight", OutboundConfig { allowed_hosts: vec![allow], max_requests_in_flight: 2, ..OutboundConfig::default() });
    let answer = fetch(&runtime, &[&server.url("/hang"), "3"]);
    // The host starts the three at once, so which one is refused is not fixed; that one is.
    let mut outcomes: Vec<&str> = answer.lines().map(|line| line.split_once(": ").map_or(line, |(_, outcome)| outcome)).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["error ErrorCode::HttpRequestDenied", "status 200", "status 200"], "{answer}");
}

#[test]
fn crust_run_allow_http_opens_one_host() {
    let server = Server::start();
    let dir = scratch_dir("out-cli");
    let fetch = inferlet("fetch");
    let allow = format!("127.0.0.1:{}", server.port);
    let run = crust(&["run", fetch.to_str().unwrap(), "--allow-http", &allow, "--", &server.url("/hello")], &dir);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("status 200"), "{}", run.stdout);
    let run = crust(&["run", fetch.to_str().unwrap(), "--allow-http", "ftp://x", "--", &server.url("/hello")], &dir);
    assert_ne!(run.status, Some(0));
    assert!(run.stderr.contains("allowed host `ftp://x`: the scheme must be http, https or *"), "{}", run.stderr);
}

#[test]
fn rules_for_one_user_or_one_program_open_a_host_to_them_alone() {
    let server = Server::start();
    let url = server.url("/hello");
    let allowed = || AllowedHosts { allowed_hosts: vec![format!("http://127.0.0.1:{}", server.port)] };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let fetch_as = |runtime: &Runtime, owner: Option<&str>| {
        let run = match owner {
            Some(owner) => tokio.block_on(run_instance_as(runtime, &inferlet("fetch"), &[&url], owner)),
            None => tokio.block_on(run_instance(runtime, &inferlet("fetch"), &[&url])),
        };
        assert!(run.outcome.is_ok(), "{:?} {}", run.outcome, run.stderr);
        run.stdout
    };

    let for_alice = runtime("out-user", OutboundConfig { users: [("alice".into(), allowed())].into(), ..OutboundConfig::default() });
    assert!(fetch_as(&for_alice, Some("alice")).contains("status 200"));
    assert_eq!(fetch_as(&for_alice, Some("bob")).trim(), "error ErrorCode::HttpRequestDenied", "another user");
    assert_eq!(fetch_as(&for_alice, None).trim(), "error ErrorCode::HttpRequestDenied", "no user");

    let digest = |name: &str| blake3::hash(&std::fs::read(inferlet(name)).unwrap()).to_hex().to_string();
    let for_fetch = runtime("out-program", OutboundConfig { programs: [(digest("fetch"), allowed())].into(), ..OutboundConfig::default() });
    assert!(fetch_as(&for_fetch, Some("bob")).contains("status 200"), "the program's rule, whoever runs it");
    let for_another = runtime("out-other-program", OutboundConfig { programs: [(digest("hello"), allowed())].into(), ..OutboundConfig::default() });
    assert_eq!(fetch_as(&for_another, None).trim(), "error ErrorCode::HttpRequestDenied", "another program's rule");

    // A digest that is not one is refused with the key named.
    let bad = OutboundConfig { programs: [("fetch".into(), allowed())].into(), ..OutboundConfig::default() };
    let refused = bad.policy().unwrap_err().to_string();
    assert!(refused.contains("outbound.programs.fetch") && refused.contains("BLAKE3"), "{refused}");
}
