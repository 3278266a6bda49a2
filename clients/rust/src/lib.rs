//! A client for `crust serve`.
//!
//! ```no_run
//! # async fn demo(wasm: Vec<u8>) -> anyhow::Result<()> {
//! use crust_client::{Client, Event};
//! let client = Client::connect("ws://127.0.0.1:8080").await?;
//! client.authenticate_token("secret").await?;
//! let hash = client.ensure_program(&wasm).await?;
//! let mut instance = client.launch(&hash, &["--prompt".into(), "Hi".into()], false).await?;
//! while let Some(event) = instance.next().await {
//!     if let Event::End(code, text) = event {
//!         println!("{code:?}: {text}");
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod keys;
pub mod protocol;
mod transport;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use protocol::{ClientMessage, ServerMessage, content_hash};
pub use protocol::{EventCode, InstanceInfo};

/// What an instance did, in order; `End` comes once and last.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(String),
    Blob(Vec<u8>),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    End(EventCode, String),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the connection to the server is closed{0}")]
    Closed(String),
    #[error("the server refused: {0}")]
    Refused(String),
}

/// One connection to a server; clones share it.
#[derive(Clone)]
pub struct Client {
    out: mpsc::UnboundedSender<Message>,
    routes: Arc<Mutex<Routes>>,
    next_corr_id: Arc<AtomicU32>,
    server_info: String,
}

#[derive(Default)]
struct Routes {
    pending: HashMap<u32, oneshot::Sender<(bool, String)>>,
    instances: HashMap<String, mpsc::UnboundedSender<Event>>,
    /// Events that arrived before their instance's route: a launch's
    /// response and its first events can overtake the caller.
    early: HashMap<String, Vec<Event>>,
    downloads: HashMap<String, Vec<u8>>,
    /// `server_event`s not yet taken.
    server_events: Vec<String>,
    /// Why the connection closed, once it has.
    closed: Option<String>,
}

/// A launched or attached instance: its id and its events.
#[derive(Debug)]
pub struct Instance {
    pub id: String,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Instance {
    /// The next event; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }
}

impl Client {
    /// Connects (`ws://host:port`, or `wss://` trusting the system's roots) and says hello.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_trusting(url, None).await
    }

    /// Connects, trusting for `wss://` the PEM certificates in `extra_roots_pem`
    /// (a private CA, or a self-signed server's certificate) besides the system's.
    pub async fn connect_trusting(url: &str, extra_roots_pem: Option<&[u8]>) -> Result<Self, ClientError> {
        let connect_error = |reason: String| ClientError::Connect { url: url.to_string(), reason };
        let socket = transport::open(url, extra_roots_pem).await.map_err(connect_error)?;
        let (mut writer, mut reader) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if writer.send(message).await.is_err() {
                    break;
                }
            }
            let _ = writer.close().await;
        });
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader_routes = routes.clone();
        tokio::spawn(async move {
            let why = loop {
                match reader.next().await {
                    Some(Ok(Message::Binary(bytes))) => match rmp_serde::from_slice::<ServerMessage>(&bytes) {
                        Ok(message) => reader_routes.lock().unwrap().route(message),
                        Err(e) => break format!(": the server sent an unreadable message ({e})"),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        break frame.map(|f| format!(": {}", f.reason)).filter(|r| r.len() > 2).unwrap_or_default();
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!(": {e}"),
                    None => break String::new(),
                }
            };
            reader_routes.lock().unwrap().close(why);
        });
        let mut client = Self { out, routes, next_corr_id: Arc::new(AtomicU32::new(1)), server_info: String::new() };
        let corr_id = client.corr_id();
        client.server_info = client
            .request(corr_id, ClientMessage::Hello { corr_id, protocol: protocol::PROTOCOL_VERSION })
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        Ok(client)
    }

    /// The server's hello: JSON with its protocol version and name.
    pub fn server_info(&self) -> &str {
        &self.server_info
    }

    /// Pie's login: a token the server's config trusts. Returns the user.
    pub async fn authenticate_token(&self, token: &str) -> Result<String, ClientError> {
        let corr_id = self.corr_id();
        self.request(corr_id, ClientMessage::Authenticate { corr_id, token: token.into() }).await
    }

    /// Crust's login: sign the server's nonce with `user`'s key.
    pub async fn authenticate_key(&self, user: &str, key: &ed25519_dalek::SigningKey) -> Result<String, ClientError> {
        let corr_id = self.corr_id();
        let nonce = self.request(corr_id, ClientMessage::Challenge { corr_id, user: user.into() }).await?;
        let nonce = keys::unhex(&nonce).ok_or_else(|| ClientError::Refused(format!("a malformed nonce `{nonce}`")))?;
        let signature = keys::sign_challenge(key, &nonce);
        let corr_id = self.corr_id();
        self.request(corr_id, ClientMessage::Prove { corr_id, user: user.into(), signature }).await
    }

    pub async fn query(&self, subject: &str, record: &str) -> Result<String, ClientError> {
        let corr_id = self.corr_id();
        self.request(corr_id, ClientMessage::Query { corr_id, subject: subject.into(), record: record.into() }).await
    }

    pub async fn program_exists(&self, hash: &str) -> Result<bool, ClientError> {
        Ok(self.query(protocol::subject::PROGRAM_EXISTS, hash).await? == "true")
    }

    /// Uploads a program in chunks; returns its hash.
    pub async fn upload_program(&self, wasm: &[u8]) -> Result<String, ClientError> {
        let program_hash = content_hash(wasm);
        self.upload(wasm, |corr_id, chunk_index, total_chunks, chunk_data| ClientMessage::UploadProgram {
            corr_id,
            program_hash: program_hash.clone(),
            chunk_index,
            total_chunks,
            chunk_data,
        })
        .await?;
        Ok(program_hash)
    }

    /// Uploads the program unless the server has it; returns its hash.
    pub async fn ensure_program(&self, wasm: &[u8]) -> Result<String, ClientError> {
        let hash = content_hash(wasm);
        if self.program_exists(&hash).await? { Ok(hash) } else { self.upload_program(wasm).await }
    }

    /// Launches an uploaded program. A `detached` instance outlives this connection.
    pub async fn launch(&self, hash: &str, arguments: &[String], detached: bool) -> Result<Instance, ClientError> {
        self.launch_named(hash, None, arguments, detached).await
    }

    /// [`launch`](Self::launch), naming the program (say, its file name) for listings and logs.
    pub async fn launch_named(&self, hash: &str, name: Option<&str>, arguments: &[String], detached: bool) -> Result<Instance, ClientError> {
        let corr_id = self.corr_id();
        let name = name.map(str::to_string);
        let message = ClientMessage::LaunchInstance { corr_id, program_hash: hash.into(), arguments: arguments.to_vec(), detached, name };
        self.launched(corr_id, message).await
    }

    /// Launches a server inferlet (`wasi:http/incoming-handler`) on `port` of the
    /// server's address; it outlives this connection. Its events are its stdout and stderr.
    pub async fn launch_server(&self, hash: &str, port: u16, arguments: &[String]) -> Result<Instance, ClientError> {
        let corr_id = self.corr_id();
        let message = ClientMessage::LaunchServerInstance { corr_id, port: port.into(), program_hash: hash.into(), arguments: arguments.to_vec() };
        self.launched(corr_id, message).await
    }

    /// Launches a program the server pulls from an OCI registry.
    pub async fn launch_reference(&self, reference: &str, arguments: &[String], detached: bool) -> Result<Instance, ClientError> {
        let corr_id = self.corr_id();
        let message = ClientMessage::LaunchReference { corr_id, reference: reference.into(), arguments: arguments.to_vec(), detached };
        self.launched(corr_id, message).await
    }

    /// Receives a running instance's events from now on, after what it buffered.
    pub async fn attach(&self, id: &str) -> Result<Instance, ClientError> {
        let instance = self.route(id.to_string());
        let corr_id = self.corr_id();
        match self.request(corr_id, ClientMessage::AttachInstance { corr_id, instance_id: id.into() }).await {
            Ok(_) => Ok(instance),
            Err(e) => {
                self.routes.lock().unwrap().instances.remove(id);
                Err(e)
            }
        }
    }

    pub async fn detach(&self, id: &str) -> Result<(), ClientError> {
        let corr_id = self.corr_id();
        self.request(corr_id, ClientMessage::DetachInstance { corr_id, instance_id: id.into() }).await.map(drop)
    }

    pub async fn list(&self) -> Result<Vec<InstanceInfo>, ClientError> {
        let corr_id = self.corr_id();
        let json = self.request(corr_id, ClientMessage::ListInstances { corr_id }).await?;
        serde_json::from_str(&json).map_err(|e| ClientError::Refused(format!("an unreadable instance list: {e}")))
    }

    /// A message for the instance's `message.receive`.
    pub fn signal(&self, id: &str, message: &str) -> Result<(), ClientError> {
        self.send(&ClientMessage::SignalInstance { instance_id: id.into(), message: message.into() })
    }

    /// A blob for the instance's `message.receive-blob`.
    pub async fn upload_blob(&self, id: &str, blob: &[u8]) -> Result<(), ClientError> {
        let blob_hash = content_hash(blob);
        self.upload(blob, |corr_id, chunk_index, total_chunks, chunk_data| ClientMessage::UploadBlob {
            corr_id,
            instance_id: id.into(),
            blob_hash: blob_hash.clone(),
            chunk_index,
            total_chunks,
            chunk_data,
        })
        .await
        .map(drop)
    }

    /// Sends `bytes` in chunks, each message made by `chunk(corr_id, index, total, data)`.
    async fn upload(&self, bytes: &[u8], chunk: impl Fn(u32, usize, usize, Vec<u8>) -> ClientMessage) -> Result<String, ClientError> {
        let corr_id = self.corr_id();
        let chunks = protocol::chunks(bytes);
        let total = chunks.len();
        let answer = self.expect(corr_id);
        for (index, data) in chunks.into_iter().enumerate() {
            self.send(&chunk(corr_id, index, total, data.to_vec()))?;
        }
        self.answer(answer).await
    }

    /// Asks the server to end the instance (it ends with `Aborted`).
    pub fn terminate(&self, id: &str) -> Result<(), ClientError> {
        self.send(&ClientMessage::TerminateInstance { instance_id: id.into() })
    }

    /// What the server said outside any request (errors about frames it
    /// could not answer, its shutdown), since the last call.
    pub fn take_server_events(&self) -> Vec<String> {
        std::mem::take(&mut self.routes.lock().unwrap().server_events)
    }

    /// Sends any frame as is (tests use it to send what a client should not).
    pub fn send_raw(&self, frame: Vec<u8>) -> Result<(), ClientError> {
        self.out.send(Message::Binary(frame.into())).map_err(|_| self.closed())
    }

    /// Sends a frame as is and waits for the response to `corr_id`.
    pub async fn request_raw(&self, corr_id: u32, frame: Vec<u8>) -> Result<String, ClientError> {
        let answer = self.expect(corr_id);
        self.send_raw(frame)?;
        self.answer(answer).await
    }

    /// Sends a launch and routes the new instance's events.
    async fn launched(&self, corr_id: u32, message: ClientMessage) -> Result<Instance, ClientError> {
        let id = self.request(corr_id, message).await?;
        Ok(self.route(id))
    }

    fn corr_id(&self) -> u32 {
        self.next_corr_id.fetch_add(1, Ordering::Relaxed)
    }

    fn send(&self, message: &ClientMessage) -> Result<(), ClientError> {
        self.send_raw(protocol::encode(message))
    }

    async fn request(&self, corr_id: u32, message: ClientMessage) -> Result<String, ClientError> {
        let answer = self.expect(corr_id);
        self.send(&message)?;
        self.answer(answer).await
    }

    fn expect(&self, corr_id: u32) -> oneshot::Receiver<(bool, String)> {
        let (tx, rx) = oneshot::channel();
        let mut routes = self.routes.lock().unwrap();
        // Once closed, nothing will answer: the dropped sender fails the wait at once.
        if routes.closed.is_none() {
            routes.pending.insert(corr_id, tx);
        }
        rx
    }

    async fn answer(&self, answer: oneshot::Receiver<(bool, String)>) -> Result<String, ClientError> {
        match answer.await {
            Ok((true, result)) => Ok(result),
            Ok((false, reason)) => Err(ClientError::Refused(reason)),
            Err(_) => Err(self.closed()),
        }
    }

    fn closed(&self) -> ClientError {
        ClientError::Closed(self.routes.lock().unwrap().closed.clone().unwrap_or_default())
    }

    fn route(&self, id: String) -> Instance {
        let (tx, events) = mpsc::unbounded_channel();
        let mut routes = self.routes.lock().unwrap();
        for event in routes.early.remove(&id).unwrap_or_default() {
            let _ = tx.send(event);
        }
        if routes.closed.is_none() {
            routes.instances.insert(id.clone(), tx);
        }
        Instance { id, events }
    }
}

impl Routes {
    fn route(&mut self, message: ServerMessage) {
        let (id, event) = match message {
            ServerMessage::Response { corr_id, successful, result } => {
                if let Some(waiter) = self.pending.remove(&corr_id) {
                    let _ = waiter.send((successful, result));
                }
                return;
            }
            ServerMessage::ServerEvent { message } => {
                self.server_events.push(message);
                return;
            }
            ServerMessage::InstanceEvent { instance_id, event, message } => {
                let event = match event {
                    EventCode::Message => Event::Message(message),
                    code => Event::End(code, message),
                };
                (instance_id, event)
            }
            ServerMessage::InstanceOutput { instance_id, stream, data } => match stream {
                protocol::OutputStream::Stdout => (instance_id, Event::Stdout(data)),
                protocol::OutputStream::Stderr => (instance_id, Event::Stderr(data)),
            },
            ServerMessage::DownloadBlob { instance_id, blob_hash, chunk_index, total_chunks, chunk_data } => {
                let key = format!("{instance_id}/{blob_hash}");
                let buffer = self.downloads.entry(key.clone()).or_default();
                buffer.extend_from_slice(&chunk_data);
                if chunk_index + 1 < total_chunks {
                    return;
                }
                let blob = self.downloads.remove(&key).unwrap_or_default();
                if content_hash(&blob) != blob_hash {
                    eprintln!("server: a blob from {instance_id} does not match its hash; dropped");
                    return;
                }
                (instance_id, Event::Blob(blob))
            }
        };
        let ended = matches!(event, Event::End(..));
        match self.instances.get(&id) {
            Some(tx) => {
                let _ = tx.send(event);
                if ended {
                    self.instances.remove(&id);
                }
            }
            None => self.early.entry(id).or_default().push(event),
        }
    }

    fn close(&mut self, why: String) {
        self.closed = Some(why);
        self.pending.clear();
        self.instances.clear();
    }
}
