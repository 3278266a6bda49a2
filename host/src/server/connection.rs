//! One client connection: decode each frame, check who may do what, answer.
//! A bad frame gets an error and the connection goes on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use crust_client::protocol::{self, ClientMessage, EventCode, ServerMessage, subject};
use futures_util::{SinkExt, StreamExt};

use super::Server;
use super::auth::{ANONYMOUS, new_nonce};
use super::instances::{Attachment, LaunchRequest, Outbox, Pending, Served};
use super::outbox::outbox;
use super::programs::compile;
use super::seats::{Closing, Seat};
use super::uploads::{Accepted, Chunk, Uploads};
use crate::runtime::{ConnectionLimits, EntryPoint};

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a connection (a WebSocket, or an HTTP request that runs an instance).
pub fn next_connection_id() -> u64 {
    NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

struct Session {
    id: u64,
    server: Arc<Server>,
    user: Option<String>,
    /// The nonce of the last `challenge`, for the `prove` that answers it.
    challenge: Option<(String, [u8; 32])>,
    uploads: Uploads,
    out: Outbox,
    /// Said `hello`: may be sent Crust's additions.
    crust: Arc<AtomicBool>,
}

/// What a connection may send before it logs in: enough to log in and ask
/// the server what it is, and no more.
const FRAMES_BEFORE_LOGIN: usize = 32;
const FRAME_BYTES_BEFORE_LOGIN: usize = 64 << 10;

/// What a client asked to launch.
struct Launching {
    program: Arc<crate::runtime::Program>,
    /// The hash or reference it was launched by.
    name: String,
    /// What the client calls it (a file name), checked.
    label: Option<String>,
    arguments: Vec<String>,
    detached: bool,
    serve_on: Option<(tokio::net::TcpListener, ConnectionLimits)>,
}

/// The longest name a launch may give its program.
const LABEL_CHARS: usize = 128;

/// A launch's name for its program, fit for listings and log lines.
fn checked_label(label: Option<String>) -> Result<Option<String>, String> {
    match label {
        Some(label) if label.is_empty() || label.chars().count() > LABEL_CHARS || label.chars().any(char::is_control) => {
            Err(format!("a program's name must be 1 to {LABEL_CHARS} characters with no control characters"))
        }
        label => Ok(label),
    }
}

pub async fn serve(socket: WebSocket, server: Arc<Server>, seat: Seat) {
    let (mut writer, mut reader) = socket.split();
    let (out, mut outgoing) = outbox(server.config.outbox_bytes());
    let crust = Arc::new(AtomicBool::new(false));
    let writer_crust = crust.clone();
    // Why the connection closes, told to the client in the close frame.
    let close = Arc::new(Mutex::new(CloseFrame { code: 1001, reason: "the server is shutting down".into() }));
    let writer_close = close.clone();
    let mut writer_task = tokio::spawn(async move {
        while let Some(mut message) = outgoing.recv().await {
            if !writer_crust.load(Ordering::Relaxed) {
                if !message.is_pie() {
                    continue;
                }
                pie_download_count(&mut message);
            }
            if writer.send(Message::Binary(protocol::encode(&message).into())).await.is_err() {
                return;
            }
        }
        let close = match outgoing.overflow_reason() {
            Some(reason) => CloseFrame { code: 1008, reason: reason.into() },
            None => writer_close.lock().unwrap().clone(),
        };
        let _ = writer.send(Message::Close(Some(close))).await;
    });
    let user = (!server.auth.required()).then(|| ANONYMOUS.to_string());
    let id = next_connection_id();
    let mut session = Session { id, server: server.clone(), user, challenge: None, uploads: Uploads::default(), out, crust };
    let mut shutdown = server.shutdown.subscribe();
    let login_timeout = Duration::from_secs_f64(server.config.login_timeout_secs);
    let login_deadline = tokio::time::Instant::now() + login_timeout;
    let mut frames_before_login = 0;
    let refused = |why: String, closing: Closing| {
        tracing::warn!(connection = id, "closing the connection: {why}");
        server.seats.count_closing(closing);
        *close.lock().unwrap() = CloseFrame { code: 1008, reason: why.into() };
    };
    loop {
        let frame = tokio::select! {
            frame = reader.next() => frame,
            _ = shutdown.wait_for(|stopping| *stopping) => {
                session.server_event("the server is shutting down");
                break;
            }
            () = session.out.overflowed() => {
                refused(session.out.overflow_reason(), Closing::SlowReader);
                break;
            }
            () = tokio::time::sleep_until(login_deadline), if session.user.is_none() => {
                let why = format!("not logged in within {login_timeout:?} (server.login_timeout_secs)");
                session.server_event(&why);
                refused(why, Closing::NoLogin);
                break;
            }
        };
        if session.user.is_none() && matches!(frame, Some(Ok(Message::Binary(_) | Message::Text(_)))) {
            frames_before_login += 1;
            let size = match &frame {
                Some(Ok(Message::Binary(bytes))) => bytes.len(),
                Some(Ok(Message::Text(text))) => text.len(),
                _ => 0,
            };
            let why = if frames_before_login > FRAMES_BEFORE_LOGIN {
                format!("more than {FRAMES_BEFORE_LOGIN} frames before logging in")
            } else if size > FRAME_BYTES_BEFORE_LOGIN {
                format!("a frame of {size} bytes before logging in (at most {FRAME_BYTES_BEFORE_LOGIN})")
            } else {
                String::new()
            };
            if !why.is_empty() {
                session.server_event(&why);
                refused(why, Closing::NoLogin);
                break;
            }
        }
        match frame {
            Some(Ok(Message::Binary(bytes))) => session.handle_frame(&bytes).await,
            Some(Ok(Message::Text(_))) => session.server_event("a text frame is not part of the protocol: send msgpack maps in binary frames"),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    server.instances.connection_closed(session.id);
    // The writer ends once every instance has let go of this connection's
    // outbox; one stuck on a client that does not read is cut off.
    drop(session);
    if tokio::time::timeout(Duration::from_secs(5), &mut writer_task).await.is_err() {
        writer_task.abort();
    }
    drop(seat);
}

impl Session {
    async fn handle_frame(&mut self, bytes: &[u8]) {
        match rmp_serde::from_slice::<ClientMessage>(bytes) {
            Ok(message) => self.handle(message).await,
            Err(e) => {
                #[derive(serde::Deserialize)]
                struct CorrId {
                    corr_id: Option<u32>,
                }
                let why = format!("malformed message: {e}");
                tracing::debug!(connection = self.id, %why);
                match rmp_serde::from_slice::<CorrId>(bytes).ok().and_then(|c| c.corr_id) {
                    Some(corr_id) => self.respond(corr_id, Err(why)),
                    None => self.server_event(&why),
                }
            }
        }
    }

    async fn handle(&mut self, message: ClientMessage) {
        use ClientMessage as M;
        // What anyone may send before logging in.
        match message {
            M::Hello { corr_id, protocol } => {
                self.crust.store(true, Ordering::Relaxed);
                let hello = serde_json::json!({
                    "protocol": protocol::PROTOCOL_VERSION.min(protocol.max(1)),
                    "server": format!("crust {}", crate::VERSION),
                    "auth": self.server.auth.required(),
                });
                return self.respond(corr_id, Ok(hello.to_string()));
            }
            M::Authenticate { corr_id, token } => {
                let answer = match (&self.user, self.server.auth.user_of_token(&token)) {
                    (Some(user), _) if !self.server.auth.required() => Ok(user.clone()),
                    (_, Some(user)) => Ok(self.log_in(user)),
                    (_, None) => Err("authentication failed: the token is not one this server trusts".into()),
                };
                return self.respond(corr_id, answer);
            }
            M::Challenge { corr_id, user } => {
                let nonce = new_nonce();
                self.challenge = Some((user, nonce));
                return self.respond(corr_id, Ok(crust_client::keys::hex(&nonce)));
            }
            M::Prove { corr_id, user, signature } => {
                let answer = match self.challenge.take() {
                    Some((asked, nonce)) if asked == user && self.server.auth.verify(&user, &nonce, &signature) => Ok(self.log_in(user)),
                    Some(_) => Err(format!("authentication failed: no authorized key of user {} made this signature", shortened(&user))),
                    None => Err("authentication failed: send `challenge` first".into()),
                };
                return self.respond(corr_id, answer);
            }
            _ => {}
        }
        let Some(user) = self.user.clone() else {
            let why = "not authenticated: this server needs a login (the crust CLI: --token, or --user and --key; \
                       the protocol: `authenticate` with a token, or `challenge`/`prove` with a key)";
            return match corr_id(&message) {
                Some(corr_id) => self.respond(corr_id, Err(why.into())),
                None => self.server_event(why),
            };
        };
        match message {
            M::Query { corr_id, subject, record } => {
                let answer = self.query(&subject, &record);
                self.respond(corr_id, answer)
            }
            M::UploadProgram { corr_id, program_hash, chunk_index, total_chunks, chunk_data } => {
                let chunk = Chunk { corr_id, hash: program_hash.clone(), index: chunk_index, total: total_chunks, data: chunk_data };
                if let Some(bytes) = self.take_chunk("program", chunk) {
                    let answer = self.server.programs.add(&self.server.runtime, &program_hash, bytes).await;
                    tracing::info!(user = %user, program = %program_hash, ok = answer.is_ok(), "program uploaded");
                    self.respond(corr_id, answer.map(|()| program_hash));
                }
            }
            M::UploadBlob { corr_id, instance_id, blob_hash, chunk_index, total_chunks, chunk_data } => {
                let Some(served) = self.running(&user, &instance_id) else {
                    return self.respond(corr_id, Err(no_such_instance(&instance_id)));
                };
                let chunk = Chunk { corr_id, hash: blob_hash.clone(), index: chunk_index, total: total_chunks, data: chunk_data };
                if let Some(bytes) = self.take_chunk(&format!("blob:{instance_id}"), chunk) {
                    served.give_blob(bytes);
                    self.respond(corr_id, Ok(blob_hash));
                }
            }
            M::LaunchInstance { corr_id, program_hash, arguments, detached, name } => {
                let answer = match (checked_label(name), self.server.programs.get(&self.server.runtime, &program_hash).await) {
                    (Err(e), _) | (_, Err(e)) => Err(e),
                    (Ok(label), Ok(program)) => {
                        self.launch(&user, Launching { program, name: program_hash, label, arguments, detached, serve_on: None })
                    }
                };
                self.respond_launched(corr_id, answer);
            }
            M::LaunchReference { corr_id, reference, arguments, detached } => {
                let pulled = match self.server.launchable_registry(&reference) {
                    Ok(()) => self.server.registry.pull(&reference).await.map_err(|e| e.to_string()),
                    Err(refused) => Err(refused),
                };
                let answer = match pulled {
                    Ok(pulled) => match compile(&self.server.runtime, pulled.bytes).await {
                        Ok(program) => self.launch(&user, Launching { program, name: reference, label: None, arguments, detached, serve_on: None }),
                        Err(e) => Err(format!("{reference}: {e}")),
                    },
                    Err(e) => Err(format!("{reference}: {e}")),
                };
                self.respond_launched(corr_id, answer);
            }
            M::LaunchServerInstance { corr_id, port, program_hash, arguments } => {
                let answer = self.launch_server(&user, port, program_hash, arguments).await;
                self.respond_launched(corr_id, answer);
            }
            M::SignalInstance { instance_id, message } => match self.running(&user, &instance_id) {
                Some(served) => served.signal(message),
                None => self.server_event(&format!("signal_instance: {}", no_such_instance(&instance_id))),
            },
            M::TerminateInstance { instance_id } => match self.running(&user, &instance_id) {
                Some(served) => served.stop(EventCode::Aborted, "terminated by its client".into()),
                None => self.server_event(&format!("terminate_instance: {}", no_such_instance(&instance_id))),
            },
            M::AttachInstance { corr_id, instance_id } => match self.server.instances.owned(&user, &instance_id) {
                Some(served) => {
                    // Answer first: the replayed events follow the response.
                    self.respond(corr_id, Ok(instance_id));
                    self.server.instances.attach(&served, self.attachment());
                }
                None => self.respond(corr_id, Err(no_such_instance(&instance_id))),
            },
            M::DetachInstance { corr_id, instance_id } => match self.server.instances.owned(&user, &instance_id) {
                Some(served) => {
                    self.server.instances.detach(&served, self.id);
                    self.respond(corr_id, Ok(instance_id));
                }
                None => self.respond(corr_id, Err(no_such_instance(&instance_id))),
            },
            M::ListInstances { corr_id } => {
                let list = self.server.instances.list(&user);
                self.respond(corr_id, Ok(serde_json::to_string(&list).expect("instance rows encode")));
            }
            M::Hello { .. } | M::Authenticate { .. } | M::Challenge { .. } | M::Prove { .. } => unreachable!("handled above"),
        }
    }

    fn log_in(&mut self, user: String) -> String {
        tracing::info!(connection = self.id, user = %user, "authenticated");
        self.user = Some(user.clone());
        user
    }

    fn query(&self, subject: &str, record: &str) -> Result<String, String> {
        match subject {
            subject::PROGRAM_EXISTS => Ok(self.server.programs.exists(record).to_string()),
            subject::VERSION => Ok(format!("crust {}", crate::VERSION)),
            subject::MODELS => Ok(self.server.models_json()),
            subject::MODEL_STATUS => Ok(self.server.model_status_json()),
            other => Err(format!(
                "unknown query subject `{other}` (known: {}, {}, {}, {})",
                subject::PROGRAM_EXISTS,
                subject::VERSION,
                subject::MODELS,
                subject::MODEL_STATUS
            )),
        }
    }

    /// A server inferlet on `port` of the server's address; it outlives this connection, as in Pie.
    async fn launch_server(&self, user: &str, port: u32, hash: String, arguments: Vec<String>) -> Result<Pending, String> {
        let program = self.server.programs.get(&self.server.runtime, &hash).await?;
        if program.entry != EntryPoint::HttpHandler {
            return Err(format!("{hash} is not a server inferlet: it does not export `wasi:http/incoming-handler` (launch it with launch_instance)"));
        }
        let [first, last] = self.server.config.inferlet_ports;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| (first..=last).contains(p))
            .ok_or_else(|| format!("port {port} is not one server inferlets may use: {first}–{last} (server.inferlet_ports)"))?;
        let listener = tokio::net::TcpListener::bind((self.server.listen_ip, port))
            .await
            .map_err(|e| format!("cannot listen on {}:{port}: {e}", self.server.listen_ip))?;
        let limits = ConnectionLimits {
            max_connections: self.server.config.inferlet_connections,
            header_timeout: Duration::from_secs_f64(self.server.config.inferlet_header_timeout_secs),
        };
        self.launch(user, Launching { program, name: hash, label: None, arguments, detached: true, serve_on: Some((listener, limits)) })
    }

    fn launch(&self, user: &str, launching: Launching) -> Result<Pending, String> {
        let Launching { program, name, label, arguments, detached, serve_on } = launching;
        if self.server.stopping.load(Ordering::SeqCst) {
            return Err("the server is shutting down".into());
        }
        let request = LaunchRequest {
            // A user's instances share export names and topics with each other, and no one else.
            namespace: Some(format!("user/{user}")),
            owner: user.to_string(),
            program,
            program_name: name,
            program_label: label,
            arguments,
            keep: detached,
            attachment: Some(self.attachment()),
            serve_on,
        };
        self.server.instances.launch(&self.server.runtime, request).map_err(|refused| refused.to_string())
    }

    /// The launch response goes out before any of the instance's events: it
    /// is queued on this connection before the instance starts.
    fn respond_launched(&self, corr_id: u32, answer: Result<Pending, String>) {
        match answer {
            Ok(pending) => {
                self.respond(corr_id, Ok(pending.id().to_string()));
                pending.start();
            }
            Err(why) => self.respond(corr_id, Err(why)),
        }
    }

    /// An instance of `user`'s that still runs.
    fn running(&self, user: &str, id: &str) -> Option<Arc<Served>> {
        self.server.instances.owned(user, id).filter(|s| s.is_running())
    }

    /// Feeds a chunk to its upload; returns the payload once complete. Errors are answered here.
    fn take_chunk(&mut self, target: &str, chunk: Chunk) -> Option<Vec<u8>> {
        let corr_id = chunk.corr_id;
        let (abandoned, accepted) = self.uploads.accept(target, chunk, self.server.config.max_upload_bytes());
        if let Some((earlier, why)) = abandoned {
            self.respond(earlier, Err(why));
        }
        match accepted {
            Ok(Accepted::Complete(bytes)) => Some(bytes),
            Ok(Accepted::Partial | Accepted::Ignored) => None,
            Err(why) => {
                self.respond(corr_id, Err(why));
                None
            }
        }
    }

    fn attachment(&self) -> Attachment {
        Attachment { connection: self.id, out: self.out.clone() }
    }

    fn respond(&self, corr_id: u32, answer: Result<String, String>) {
        let (successful, result) = match answer {
            Ok(result) => (true, result),
            Err(why) => (false, why),
        };
        let _ = self.out.send(ServerMessage::Response { corr_id, successful, result });
    }

    fn server_event(&self, message: &str) {
        let _ = self.out.send(ServerMessage::ServerEvent { message: message.to_string() });
    }
}

/// Pie's client 0.1.0 completes a download once it has `total_chunks - 1`
/// chunks, so a Pie connection is told one more than it is sent. Crust's
/// clients say `hello` and get the true count.
fn pie_download_count(message: &mut ServerMessage) {
    if let ServerMessage::DownloadBlob { total_chunks, .. } = message {
        *total_chunks += 1;
    }
}

fn no_such_instance(id: &str) -> String {
    format!("no running instance {} of yours", shortened(id))
}

/// A name the client sent, cut short to be echoed back: an answer is never
/// much bigger than what asked for it.
fn shortened(name: &str) -> String {
    const MOST: usize = 80;
    match name.char_indices().nth(MOST) {
        Some((cut, _)) => format!("{}… ({} bytes)", &name[..cut], name.len()),
        None => name.to_string(),
    }
}

fn corr_id(message: &ClientMessage) -> Option<u32> {
    use ClientMessage as M;
    match message {
        M::Authenticate { corr_id, .. }
        | M::Query { corr_id, .. }
        | M::UploadProgram { corr_id, .. }
        | M::UploadBlob { corr_id, .. }
        | M::LaunchInstance { corr_id, .. }
        | M::LaunchServerInstance { corr_id, .. }
        | M::Hello { corr_id, .. }
        | M::Challenge { corr_id, .. }
        | M::Prove { corr_id, .. }
        | M::LaunchReference { corr_id, .. }
        | M::AttachInstance { corr_id, .. }
        | M::DetachInstance { corr_id, .. }
        | M::ListInstances { corr_id } => Some(*corr_id),
        M::SignalInstance { .. } | M::TerminateInstance { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_programs_name_is_short_and_printable() {
        assert_eq!(checked_label(Some("chat.wasm".into())), Ok(Some("chat.wasm".into())));
        assert_eq!(checked_label(None), Ok(None));
        for bad in ["", "a\nfake log line", &"x".repeat(129)] {
            assert!(checked_label(Some(bad.into())).is_err(), "{bad:?}");
        }
    }
}
