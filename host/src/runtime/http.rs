//! Server inferlets: a component exporting `wasi:http/incoming-handler`
//! answers HTTP on a port, a fresh instance (with its own store, limits and
//! resources) per request, as Pie runs them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::instance::Launch;
use super::program::{EntryPoint, Program};
use super::state::InstanceState;
use super::{OutputSink, Runtime};

/// What every request's instance is given.
#[derive(Clone)]
pub struct HttpLaunch {
    pub arguments: Vec<String>,
    /// Where every request's stdout and stderr go.
    pub output: Option<OutputSink>,
    /// `runtime.get-instance-id` for every request: the server instance's id.
    pub instance_id: String,
    /// In place of the runtime's `[limits]`: the launching user's own settings.
    pub limits: Option<crate::config::UserLimits>,
    /// The launching user, whom each request's instance acts for (see `Launch::owner`).
    pub owner: Option<String>,
    /// The export names and topics each request's instance sees (see `Launch::namespace`).
    pub namespace: Option<String>,
    pub connections: ConnectionLimits,
    /// Where each request's instance takes a seat among its user's instances; `None`: no such cap.
    pub user_seats: Option<Arc<dyn UserSeats>>,
}

/// The launching user's instance seats, so each request's instance counts
/// against the user's cap like any other instance of theirs.
pub trait UserSeats: Send + Sync {
    /// A seat held while the request's instance lives, or why there is none.
    fn take(&self) -> Result<Box<dyn Send>, String>;
}

/// What the listener allows its clients.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// The longest a client may take to send a request's head.
    pub header_timeout: Duration,
}

impl Runtime {
    /// Serves HTTP/1.1 on `listener` until the returned future is dropped (which
    /// also drops the connections in flight), or the listener fails.
    pub async fn serve_http(runtime: Arc<Runtime>, program: Arc<Program>, listener: TcpListener, launch: HttpLaunch) -> std::io::Error {
        if program.entry != EntryPoint::HttpHandler {
            return std::io::Error::other("not a server inferlet: it does not export `wasi:http/incoming-handler`");
        }
        let pre = match ProxyPre::new(program.pre.clone()) {
            Ok(pre) => pre,
            Err(e) => return std::io::Error::other(format!("its `wasi:http/incoming-handler` is not one Crust serves: {e:#}")),
        };
        let mut connections = JoinSet::new();
        loop {
            // At the cap, finish a connection before taking another: a flood of
            // slow clients waits in the kernel's queue, not in tasks.
            if connections.len() >= launch.connections.max_connections.max(1) {
                connections.join_next().await;
                continue;
            }
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => return e,
                },
                Some(_) = connections.join_next() => continue,
            };
            let (runtime, pre, launch, hash) = (runtime.clone(), pre.clone(), launch.clone(), program.hash);
            let header_timeout = launch.connections.header_timeout;
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let (runtime, pre, launch) = (runtime.clone(), pre.clone(), launch.clone());
                    async move { Ok::<_, std::convert::Infallible>(runtime.handle(hash, pre, launch, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// One request in a fresh instance; a failure is a 500 whose body says why.
    async fn handle(
        self: Arc<Self>,
        program: blake3::Hash,
        pre: ProxyPre<InstanceState>,
        launch: HttpLaunch,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        let seat = match self.seats.take() {
            Ok(seat) => seat,
            Err(limit) => return failure(hyper::StatusCode::SERVICE_UNAVAILABLE, limit.to_string()),
        };
        let user_seat = match launch.user_seats.as_ref().map(|seats| seats.take()).transpose() {
            Ok(seat) => seat,
            Err(why) => return failure(hyper::StatusCode::SERVICE_UNAVAILABLE, why),
        };
        let user_limits = launch.limits.unwrap_or_default();
        let mut store = self.new_store(
            program,
            Launch {
                arguments: launch.arguments,
                output: launch.output,
                instance_id: Some(launch.instance_id),
                inbox: None,
                blobs: None,
                namespace: launch.namespace,
                owner: launch.owner,
                limits: launch.limits,
            },
        );
        // The epoch deadline stops a handler that computes; one that waits (on a
        // slow request body, or a client slow to take its response) is cut off here.
        let (wall_time, cpu) = self.limit_time(&mut store, user_limits);
        let (sender, response) = tokio::sync::oneshot::channel();
        let prepared = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .and_then(|request| Ok((request, store.data_mut().http().new_response_outparam(sender)?)));
        let (request, out) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return failure(hyper::StatusCode::BAD_REQUEST, format!("{e:#}")),
        };
        // The handler may go on writing the body after it has set the response.
        let task = tokio::spawn(tokio::time::timeout(
            wall_time,
            cpu.meter(async move {
                let _seats = (seat, user_seat);
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy.wasi_http_incoming_handler().call_handle(&mut store, request, out).await
            }),
        ));
        let Ok(response) = tokio::time::timeout(wall_time, response).await else {
            return failure(
                hyper::StatusCode::GATEWAY_TIMEOUT,
                format!("the handler gave no response within the wall-time limit of {wall_time:?} (limits.wall_time_secs)"),
            );
        };
        match response {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => failure(hyper::StatusCode::INTERNAL_SERVER_ERROR, format!("the handler failed: {code:?}")),
            Err(_) => {
                let why = match task.await {
                    Ok(Ok(Ok(()))) => "the handler returned without setting a response".to_string(),
                    Ok(Ok(Err(e))) => format!("the handler trapped: {}", e.root_cause()),
                    Ok(Err(_)) => format!("the handler ran past the wall-time limit of {wall_time:?} (limits.wall_time_secs)"),
                    Err(e) => format!("the handler's task failed: {e}"),
                };
                failure(hyper::StatusCode::INTERNAL_SERVER_ERROR, why)
            }
        }
    }
}

fn failure(status: hyper::StatusCode, why: String) -> hyper::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(Bytes::from(why + "\n")).map_err(wasmtime_wasi_http::Error::from);
    let mut response = hyper::Response::new(body.boxed_unsync());
    *response.status_mut() = status;
    response
}
