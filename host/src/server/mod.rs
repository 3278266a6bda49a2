//! `crust serve`: a long-running server. One WebSocket endpoint speaks Pie's
//! client protocol plus Crust's additions (`connection`); `GET /metrics`
//! reports in Prometheus' format. Models load once, programs compile once,
//! and instances outlive the connections that launched them when asked to.

mod auth;
mod connection;
mod cors;
mod instances;
mod metrics;
mod openai;
mod outbox;
mod programs;
mod seats;
mod tls;
mod uploads;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::config::{Config, ServerConfig};
use crate::oci::Registry;
use crate::runtime::Runtime;
use auth::Auth;
use instances::Instances;
use programs::Programs;

/// What every connection shares.
pub struct Server {
    runtime: Arc<Runtime>,
    config: ServerConfig,
    auth: Auth,
    programs: Programs,
    instances: Arc<Instances>,
    registry: Registry,
    /// The endpoint inferlet behind the OpenAI API, or why there is none.
    openai_inferlet: Result<Arc<crate::runtime::Program>, String>,
    /// Server inferlets listen on this address, at the port their client names.
    listen_ip: std::net::IpAddr,
    /// Set when the server begins to stop: launches are refused.
    stopping: std::sync::atomic::AtomicBool,
    /// Becomes true once every instance has ended: connections say goodbye and close.
    shutdown: watch::Sender<bool>,
    /// Open WebSocket connections, capped.
    seats: Arc<seats::Seats>,
}

pub struct ServeOptions {
    pub listen: Option<String>,
    pub no_auth: bool,
    /// A PEM certificate chain and its key: serve `wss://` and `https://`.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Told how each model's weights reach the GPU (the command line's progress bar).
    pub load_observer: Option<crate::models::LoadObserver>,
}

/// Serves until SIGINT or SIGTERM, then ends every instance (each client is
/// told), closes every connection, and returns.
pub async fn serve(config: Config, options: ServeOptions) -> anyhow::Result<()> {
    let listen = options.listen.clone().unwrap_or_else(|| config.server.listen.clone());
    let addresses: Vec<SocketAddr> =
        tokio::net::lookup_host(&listen).await.map_err(|e| anyhow::anyhow!("cannot resolve the listen address {listen}: {e}"))?.collect();
    if options.no_auth && !addresses.iter().all(|a| a.ip().is_loopback()) {
        anyhow::bail!("--no-auth is refused on {listen}: without authentication the server may only listen on a loopback address");
    }
    let auth = Auth::from_config(&config.server, !options.no_auth).map_err(anyhow::Error::msg)?;
    let tls = options.tls.as_ref().map(|(cert, key)| tls::acceptor(cert, key)).transpose()?;
    let runtime = Arc::new(Runtime::new(&config)?);
    if let Some(observer) = options.load_observer.clone() {
        runtime.models().observe_loading(observer);
    }
    for name in runtime.models().names() {
        let model = runtime.models().get(&name).expect("a listed model").clone();
        match model.service().await {
            Ok(_) => tracing::info!(model = %name, "model loaded"),
            Err(e) => tracing::warn!(model = %name, "model not loaded (instances that use it will get this error): {e}"),
        }
    }
    let openai_inferlet = load_openai_inferlet(&runtime, &config).await;
    if let Err(e) = &openai_inferlet {
        tracing::warn!("the OpenAI API will answer 500: {e}");
    }
    let listener = tokio::net::TcpListener::bind(&addresses[..]).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    let server = Arc::new(Server {
        instances: Arc::new(Instances::new(
            config.limits.max_instances,
            config.server.max_instances_per_user,
            config.server.output_buffer_bytes(),
            config.server.users.clone(),
        )),
        programs: Programs::new(config.data_dir().join("programs")),
        registry: Registry::new(&config.registry, &config.cache_dir()),
        listen_ip: local.ip(),
        openai_inferlet,
        config: config.server.clone(),
        auth,
        runtime,
        stopping: Default::default(),
        shutdown: watch::channel(false).0,
        seats: seats::Seats::new(config.server.max_connections, config.server.max_connections_per_address),
    });
    let app = Router::new()
        .route("/", get(upgrade))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{id}", get(openai::model))
        .route("/v1/chat/completions", axum::routing::post(openai::chat_completions))
        .route("/v1/completions", axum::routing::post(openai::completions))
        .fallback(openai::no_route)
        .method_not_allowed_fallback(openai::wrong_method)
        .with_state(server.clone());
    let app = match &config.server.cors_allowed_origins[..] {
        [] => app,
        origins => app.layer(axum::middleware::from_fn_with_state(cors::AllowedOrigins(Arc::new(origins.to_vec())), cors::cors)),
    };
    let (stop_accepting, accepting) = tokio::sync::oneshot::channel::<()>();
    let http = match tls {
        Some(acceptor) => tokio::spawn(tls::serve(listener, app, acceptor, accepting)),
        None => {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let graceful = axum::serve(listener, app).with_graceful_shutdown(async move { drop(accepting.await) });
            tokio::spawn(async move { drop(graceful.await) })
        }
    };
    let (ws, http_scheme) = tls::schemes(options.tls.is_some());
    let auth_note = if server.auth.required() { "" } else { " (no authentication)" };
    println!(
        "crust serve: listening on {ws}://{local}{auth_note} (OpenAI API: {http_scheme}://{local}/v1, metrics: {http_scheme}://{local}/metrics)"
    );
    tracing::info!(%local, "listening");

    shutdown_signal().await;
    println!("crust serve: shutting down");
    let _ = stop_accepting.send(());
    server.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    if tokio::time::timeout(Duration::from_secs(30), server.instances.stop_all("the server is shutting down")).await.is_err() {
        tracing::warn!("some instances did not end within 30 s");
    }
    server.shutdown.send_replace(true);
    // Connections say goodbye once their instances have sent their last events.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.seats.open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
    println!("crust serve: stopped");
    Ok(())
}

/// The configured endpoint inferlet, else the `openai-chat` built with Crust.
async fn load_openai_inferlet(runtime: &Arc<Runtime>, config: &Config) -> Result<Arc<crate::runtime::Program>, String> {
    let path = crate::providers::locate(config.server.openai_inferlet.as_deref(), "openai_chat.wasm")?;
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    programs::compile(runtime, bytes).await.map_err(|e| format!("{}: {e}", path.display()))
}

async fn upgrade(State(server): State<Arc<Server>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, upgrade: WebSocketUpgrade) -> Response {
    let seat = match server.seats.take(peer.ip()) {
        Ok(seat) => seat,
        Err(why) => {
            tracing::warn!(%peer, "connection refused: {why}");
            return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
        }
    };
    // Room for a full chunk and its envelope.
    upgrade.max_message_size(4 << 20).on_upgrade(move |socket| connection::serve(socket, server, seat)).into_response()
}

/// For load balancers and probes: the server answers (no key needed).
async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn metrics(State(server): State<Arc<Server>>, headers: axum::http::HeaderMap) -> Response {
    let authorization = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match server.auth.may_read_metrics(authorization) {
        Ok(()) => ([("content-type", "text/plain; version=0.0.4")], metrics::render(&server)).into_response(),
        Err(why) => (StatusCode::UNAUTHORIZED, why).into_response(),
    }
}

impl Server {
    /// Whether clients may launch from the registry `reference` names: only
    /// those in `server.registries`, so the server fetches from no other host.
    fn launchable_registry(&self, reference: &str) -> Result<(), String> {
        let registry = crate::oci::registry_of(reference).map_err(|e| e.to_string())?;
        if self.config.registries.contains(&registry) {
            return Ok(());
        }
        Err(if self.config.registries.is_empty() {
            "this server launches no inferlets from registries (server.registries is empty): upload the program and launch it by hash".into()
        } else {
            format!("registry {registry} is not one this server launches from (server.registries: {})", self.config.registries.join(", "))
        })
    }

    fn models_json(&self) -> String {
        let models: Vec<serde_json::Value> = self
            .runtime
            .models()
            .names()
            .iter()
            .filter_map(|name| self.runtime.models().get(name))
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "description": m.description,
                    "traits": m.traits,
                    "kv_page_size": m.page_size,
                    "service_id": m.service_id,
                })
            })
            .collect();
        serde_json::Value::Array(models).to_string()
    }

    fn model_status_json(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let status: serde_json::Map<String, serde_json::Value> = self
            .runtime
            .models()
            .loaded()
            .map(|s| {
                let free = s.free_pages();
                let status = serde_json::json!({
                    "forward_passes": s.stats.batched_passes.load(Relaxed),
                    "forward_tokens": s.stats.batched_tokens.load(Relaxed),
                    "batches": s.stats.batches.load(Relaxed),
                    "kv_pages_free": free,
                    "kv_pages_used": s.capacity.kv_pages as usize - free,
                });
                (s.name.clone(), status)
            })
            .collect();
        serde_json::Value::Object(status).to_string()
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
