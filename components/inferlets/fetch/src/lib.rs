//! `fetch URL [N]`: GETs URL with `wasi:http`, following up to 3 redirects,
//! and prints each hop's status, then the body's length and its first bytes
//! — or the error code the host answered with. With N, makes N requests at
//! once and prints each outcome (requests in flight).

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, IncomingResponse, Method, OutgoingRequest, Scheme};

fn request(url: &str) -> Result<outgoing_handler::FutureIncomingResponse, String> {
    let (scheme, rest) = url.split_once("://").ok_or("a URL has a scheme")?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "method")?;
    request.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http })).map_err(|()| "scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "authority")?;
    request.set_path_with_query(Some(path)).map_err(|()| "path")?;
    outgoing_handler::handle(request, None).map_err(|e| format!("error {e:?}"))
}

fn response(future: outgoing_handler::FutureIncomingResponse) -> Result<IncomingResponse, String> {
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(code))) => Err(format!("error {code:?}")),
        other => Err(format!("no response: {other:?}")),
    }
}

/// The body's length and first 40 bytes, or the code that cut it short.
fn body(response: IncomingResponse) -> String {
    let body = response.consume().expect("a body");
    let stream = body.stream().expect("a stream");
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend(chunk),
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(wasip2::io::streams::StreamError::LastOperationFailed(e)) => {
                let code: Option<ErrorCode> = wasip2::http::types::http_error_code(&e);
                return format!("body cut after {} bytes: error {code:?}", bytes.len());
            }
        }
    }
    format!("body {} bytes: {}", bytes.len(), String::from_utf8_lossy(&bytes[..bytes.len().min(40)]))
}

fn fetch(url: &str) -> Result<(), String> {
    let mut url = url.to_string();
    for _ in 0..=3 {
        let response = response(request(&url)?)?;
        let status = response.status();
        println!("status {status} from {url}");
        let location = response.headers().get("location").first().map(|l| String::from_utf8_lossy(l).into_owned());
        match location {
            Some(next) if (300..400).contains(&status) => url = next,
            _ => {
                println!("{}", body(response));
                return Ok(());
            }
        }
    }
    Err("too many redirects".into())
}

fn run() -> Result<(), String> {
    let args = crust_sdk::runtime::get_arguments();
    let url = args.first().ok_or("fetch URL [N]")?;
    match args.get(1).map(|n| n.parse::<usize>()) {
        None => {
            if let Err(e) = fetch(url) {
                println!("{e}");
            }
        }
        Some(Ok(n)) => {
            // Sent at once; their outcomes in order.
            let futures: Vec<_> = (0..n).map(|_| request(url)).collect();
            for (i, future) in futures.into_iter().enumerate() {
                match future.and_then(response) {
                    Ok(response) => println!("{i}: status {}", response.status()),
                    Err(e) => println!("{i}: {e}"),
                }
            }
        }
        Some(Err(_)) => return Err("N is a number".into()),
    }
    Ok(())
}

crust_sdk::entry!(run);
