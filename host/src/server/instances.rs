//! The server's instances: who owns each, which connection receives its
//! events (or the bounded buffer that keeps them while none does), and the
//! one terminal event each instance ends with.
//!
//! Disconnect policy: an instance launched `detached` (or detached later)
//! keeps running when its connection closes and buffers its events for a
//! later attach; any other instance is ended (as Pie's server does), so a
//! vanished client leaves no pages behind.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crust_client::protocol::{CHUNK_SIZE, EventCode, InstanceInfo, OutputStream, ServerMessage, content_hash};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::runtime::{ConnectionLimits, HttpLaunch, InstanceError, Launch, OutputReceiver, OutputSink, Program, Runtime, Stream};

pub use super::outbox::Outbox;
use super::outbox::message_size;

#[derive(Clone)]
pub struct Attachment {
    pub connection: u64,
    pub out: Outbox,
}

/// How an instance ended: Pie's event code and its text.
pub type Ending = (EventCode, String);

pub struct Served {
    pub id: String,
    pub owner: String,
    pub program: String,
    /// What the launching client called the program (a file name).
    pub label: Option<String>,
    pub arguments: Vec<String>,
    started: Instant,
    inbox: mpsc::UnboundedSender<String>,
    blobs: mpsc::UnboundedSender<Vec<u8>>,
    stop: Mutex<Option<oneshot::Sender<Ending>>>,
    delivery: Mutex<Delivery>,
    buffer_cap: usize,
}

#[derive(Default)]
struct Delivery {
    attached: Option<Attachment>,
    buffer: VecDeque<ServerMessage>,
    buffered_bytes: usize,
    ended: Option<EventCode>,
    /// Outlives its connection.
    keep: bool,
}

impl Served {
    /// Sends to the attached connection, or buffers; a detached instance
    /// whose buffer is full is ended with `OutOfResources`.
    fn deliver(&self, message: ServerMessage) {
        let mut delivery = self.delivery.lock().unwrap();
        if let Some(attachment) = &delivery.attached {
            match attachment.out.send(message) {
                Ok(()) => return,
                Err(returned) => {
                    // The connection is gone (or closing: its client stopped reading) and has not said so yet.
                    delivery.attached = None;
                    return self.buffer(delivery, returned);
                }
            }
        }
        self.buffer(delivery, message);
    }

    fn buffer(&self, mut delivery: std::sync::MutexGuard<'_, Delivery>, message: ServerMessage) {
        let size = message_size(&message);
        if delivery.buffered_bytes + size > self.buffer_cap {
            drop(delivery);
            let why =
                format!("its output buffer is full ({} bytes buffered while no client was attached; server.output_buffer_kib)", self.buffer_cap);
            return self.stop(EventCode::OutOfResources, why);
        }
        delivery.buffered_bytes += size;
        delivery.buffer.push_back(message);
    }

    /// Ends the instance (if it still runs) with this event.
    pub fn stop(&self, code: EventCode, text: String) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send((code, text));
        }
    }

    pub fn signal(&self, message: String) {
        let _ = self.inbox.send(message);
    }

    pub fn give_blob(&self, blob: Vec<u8>) {
        let _ = self.blobs.send(blob);
    }

    pub fn is_running(&self) -> bool {
        self.delivery.lock().unwrap().ended.is_none()
    }

    /// Delivers the terminal event. Returns whether the record can go: its
    /// event reached a connection, or nobody will ever collect it.
    fn finish(&self, (code, text): Ending) -> bool {
        let mut delivery = self.delivery.lock().unwrap();
        delivery.ended = Some(code);
        let message = ServerMessage::InstanceEvent { instance_id: self.id.clone(), event: code, message: text };
        if let Some(attachment) = delivery.attached.take()
            && attachment.out.send(message.clone()).is_ok()
        {
            return true;
        }
        if !delivery.keep {
            return true;
        }
        // The terminal event is kept whatever the buffer holds: it is how the client learns the end.
        delivery.buffer.push_back(message);
        false
    }

    /// Sends what was buffered to `attachment` and makes it the receiver.
    /// Returns whether the instance had already ended (its record can go).
    fn attach(&self, attachment: Attachment) -> bool {
        let mut delivery = self.delivery.lock().unwrap();
        if let Some(previous) = delivery.attached.take()
            && previous.connection != attachment.connection
        {
            let note = format!("instance {} was attached by another connection", self.id);
            let _ = previous.out.send(ServerMessage::ServerEvent { message: note });
        }
        for message in delivery.buffer.drain(..) {
            let _ = attachment.out.send(message);
        }
        delivery.buffered_bytes = 0;
        if delivery.ended.is_some() {
            return true;
        }
        delivery.attached = Some(attachment);
        false
    }

    fn info(&self) -> InstanceInfo {
        let delivery = self.delivery.lock().unwrap();
        InstanceInfo {
            id: self.id.clone(),
            state: delivery.ended.map(state_name).unwrap_or("running").to_string(),
            owner: self.owner.clone(),
            age_secs: self.started.elapsed().as_secs_f64(),
            program: self.program.clone(),
            name: self.label.clone(),
            arguments: self.arguments.clone(),
            attached: delivery.attached.is_some(),
        }
    }
}

fn state_name(code: EventCode) -> &'static str {
    match code {
        EventCode::Message => "running",
        EventCode::Completed => "completed",
        EventCode::Aborted => "aborted",
        EventCode::Exception => "exception",
        EventCode::ServerError => "server_error",
        EventCode::OutOfResources => "out_of_resources",
    }
}

/// What a launch needs besides the program.
pub struct LaunchRequest {
    pub owner: String,
    pub program: Arc<Program>,
    pub program_name: String,
    /// What the launching client calls the program, checked (`None`: nothing).
    pub program_label: Option<String>,
    pub arguments: Vec<String>,
    pub keep: bool,
    pub attachment: Option<Attachment>,
    /// A server inferlet: answer HTTP here, an instance per request, until stopped.
    pub serve_on: Option<(tokio::net::TcpListener, ConnectionLimits)>,
    /// See `Launch::namespace`.
    pub namespace: Option<String>,
}

/// What each user's instances are limited to where `[limits]` is not what applies.
pub type UsersLimits = std::collections::BTreeMap<String, crate::config::UserLimits>;

/// An admitted instance, not yet started (so its launch can be answered first).
#[must_use = "an admitted instance counts against the caps until it starts and ends"]
pub struct Pending {
    served: Arc<Served>,
    task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl Pending {
    pub fn id(&self) -> &str {
        &self.served.id
    }

    pub fn served(&self) -> Arc<Served> {
        self.served.clone()
    }

    pub fn start(self) {
        tokio::spawn(self.task);
    }
}

/// Why the server refused to launch an instance.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LaunchRefused {
    #[error("the server runs its maximum of {0} instances (limits.max_instances): try again later")]
    ServerFull(usize),
    #[error("user {user} already runs {running} instances, the most one user may (server.max_instances_per_user)")]
    UserFull { user: String, running: usize },
}

pub struct Instances {
    table: Mutex<HashMap<String, Arc<Served>>>,
    /// Request instances of server inferlets alive now, by user: they count against the user's cap.
    requests: Mutex<HashMap<String, usize>>,
    running: AtomicUsize,
    all_ended: Notify,
    max_total: usize,
    max_per_user: usize,
    buffer_cap: usize,
    users: UsersLimits,
}

impl Instances {
    pub fn new(max_total: usize, max_per_user: usize, buffer_cap: usize, users: UsersLimits) -> Self {
        let running = AtomicUsize::new(0);
        Self { table: Mutex::default(), requests: Mutex::default(), running, all_ended: Notify::new(), max_total, max_per_user, buffer_cap, users }
    }

    /// Admits an instance; an error says which cap it hit. It runs once started.
    pub fn launch(self: &Arc<Self>, runtime: &Arc<Runtime>, request: LaunchRequest) -> Result<Pending, LaunchRefused> {
        let mut table = self.table.lock().unwrap();
        let running: Vec<&Arc<Served>> = table.values().filter(|s| s.is_running()).collect();
        if running.len() >= self.max_total {
            return Err(LaunchRefused::ServerFull(self.max_total));
        }
        let requests = self.requests.lock().unwrap().get(&request.owner).copied().unwrap_or(0);
        if running.iter().filter(|s| s.owner == request.owner).count() + requests >= self.max_per_user {
            return Err(LaunchRefused::UserFull { user: request.owner.to_string(), running: self.max_per_user });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (inbox, inbox_rx) = mpsc::unbounded_channel();
        let (blobs, blobs_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        let served = Arc::new(Served {
            id: id.clone(),
            owner: request.owner,
            program: request.program_name,
            label: request.program_label,
            arguments: request.arguments.clone(),
            started: Instant::now(),
            inbox,
            blobs,
            stop: Mutex::new(Some(stop)),
            delivery: Mutex::new(Delivery { attached: request.attachment, keep: request.keep, ..Delivery::default() }),
            buffer_cap: self.buffer_cap,
        });
        table.insert(id.clone(), served.clone());
        self.running.fetch_add(1, Ordering::SeqCst);
        drop(table);

        let (sink, output) = OutputSink::channel();
        let launch = Launch {
            arguments: request.arguments,
            output: Some(sink),
            instance_id: Some(id.clone()),
            inbox: Some(inbox_rx),
            blobs: Some(blobs_rx),
            namespace: request.namespace,
            owner: Some(served.owner.clone()),
            limits: self.users.get(&served.owner).copied(),
        };
        tracing::info!(instance = %id, user = %served.owner, program = %served.program, name = ?served.label, "launched");
        let (this, runtime, program, task_served) = (self.clone(), runtime.clone(), request.program.clone(), served.clone());
        let serve_on = request.serve_on;
        let task = Box::pin(async move {
            let pump = tokio::spawn(pump_output(task_served.clone(), output));
            let ending = {
                let work = async {
                    match serve_on {
                        None => ending_of(runtime.run(&program, launch).await),
                        Some((listener, connections)) => {
                            let http = HttpLaunch {
                                arguments: launch.arguments,
                                output: launch.output,
                                instance_id: id,
                                limits: launch.limits,
                                owner: launch.owner,
                                namespace: launch.namespace,
                                connections,
                                user_seats: Some(Arc::new(RequestSeats { instances: this.clone(), user: task_served.owner.clone() })),
                            };
                            let error = Runtime::serve_http(runtime.clone(), program.clone(), listener, http).await;
                            (EventCode::ServerError, format!("its HTTP listener failed: {error}"))
                        }
                    }
                };
                tokio::select! {
                    ending = work => ending,
                    Ok(ending) = stop_rx => ending,
                }
            };
            // The store is gone: its output ends, and so does the pump.
            let _ = pump.await;
            tracing::info!(instance = %task_served.id, outcome = state_name(ending.0), detail = %ending.1, "ended");
            if task_served.finish(ending) {
                this.table.lock().unwrap().remove(&task_served.id);
            }
            task_served.stop.lock().unwrap().take();
            if this.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                this.all_ended.notify_waiters();
            }
        });
        Ok(Pending { served, task })
    }

    /// The instance, if `user` owns it.
    pub fn owned(&self, user: &str, id: &str) -> Option<Arc<Served>> {
        self.table.lock().unwrap().get(id).filter(|s| s.owner == user).cloned()
    }

    pub fn attach(&self, served: &Served, attachment: Attachment) {
        if served.attach(attachment) {
            self.table.lock().unwrap().remove(&served.id);
        }
    }

    /// Lets the instance outlive `connection`.
    pub fn detach(&self, served: &Served, connection: u64) {
        let mut delivery = served.delivery.lock().unwrap();
        if delivery.attached.as_ref().is_some_and(|a| a.connection == connection) {
            delivery.attached = None;
        }
        delivery.keep = true;
    }

    /// The connection closed: its kept instances buffer from now on; the rest end.
    pub fn connection_closed(&self, connection: u64) {
        let table: Vec<Arc<Served>> = self.table.lock().unwrap().values().cloned().collect();
        for served in table {
            let mut delivery = served.delivery.lock().unwrap();
            if delivery.attached.as_ref().is_some_and(|a| a.connection == connection) {
                delivery.attached = None;
                if !delivery.keep {
                    drop(delivery);
                    served.stop(EventCode::Aborted, "its client disconnected".into());
                }
            }
        }
    }

    pub fn list(&self, user: &str) -> Vec<InstanceInfo> {
        let mut rows: Vec<InstanceInfo> = self.table.lock().unwrap().values().filter(|s| s.owner == user).map(|s| s.info()).collect();
        rows.sort_by(|a, b| b.age_secs.total_cmp(&a.age_secs));
        rows
    }

    /// Every instance, for metrics.
    pub fn all(&self) -> Vec<InstanceInfo> {
        self.table.lock().unwrap().values().map(|s| s.info()).collect()
    }

    /// Ends every instance with `Aborted` and waits until all have ended.
    pub async fn stop_all(&self, why: &str) {
        let table: Vec<Arc<Served>> = self.table.lock().unwrap().values().cloned().collect();
        for served in table {
            served.stop(EventCode::Aborted, why.to_string());
        }
        loop {
            let ended = self.all_ended.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            ended.await;
        }
    }
}

fn ending_of(outcome: Result<Option<String>, InstanceError>) -> Ending {
    match outcome {
        Ok(value) => (EventCode::Completed, value.unwrap_or_default()),
        Err(InstanceError::Limit(limit)) => (EventCode::OutOfResources, limit.to_string()),
        Err(error) => (EventCode::Exception, error.to_string()),
    }
}

/// Turns the instance's output into protocol messages, in order.
async fn pump_output(served: Arc<Served>, mut output: OutputReceiver) {
    let id = &served.id;
    while let Some(chunk) = output.recv().await {
        match chunk.stream {
            Stream::Stdout | Stream::Stderr => {
                let stream = if chunk.stream == Stream::Stdout { OutputStream::Stdout } else { OutputStream::Stderr };
                served.deliver(ServerMessage::InstanceOutput { instance_id: id.clone(), stream, data: chunk.bytes.to_vec() });
            }
            Stream::Message => served.deliver(ServerMessage::InstanceEvent {
                instance_id: id.clone(),
                event: EventCode::Message,
                message: String::from_utf8_lossy(&chunk.bytes).into_owned(),
            }),
            Stream::Blob => {
                let blob_hash = content_hash(&chunk.bytes);
                let pieces = crust_client::protocol::chunks(&chunk.bytes);
                let total_chunks = pieces.len();
                for (chunk_index, piece) in pieces.into_iter().enumerate() {
                    debug_assert!(piece.len() <= CHUNK_SIZE);
                    served.deliver(ServerMessage::DownloadBlob {
                        instance_id: id.clone(),
                        blob_hash: blob_hash.clone(),
                        chunk_index,
                        total_chunks,
                        chunk_data: piece.to_vec(),
                    });
                }
            }
        }
    }
}

/// Seats for a server inferlet's request instances among its user's instances.
struct RequestSeats {
    instances: Arc<Instances>,
    user: String,
}

impl crate::runtime::UserSeats for RequestSeats {
    fn take(&self) -> Result<Box<dyn Send>, String> {
        let table = self.instances.table.lock().unwrap();
        let running = table.values().filter(|s| s.owner == self.user && s.is_running()).count();
        let mut requests = self.instances.requests.lock().unwrap();
        let taken = requests.entry(self.user.clone()).or_default();
        if running + *taken >= self.instances.max_per_user {
            let user = self.user.clone();
            return Err(LaunchRefused::UserFull { user, running: self.instances.max_per_user }.to_string());
        }
        *taken += 1;
        Ok(Box::new(RequestSeat { instances: self.instances.clone(), user: self.user.clone() }))
    }
}

/// One request instance's seat, given back when it ends.
struct RequestSeat {
    instances: Arc<Instances>,
    user: String,
}

impl Drop for RequestSeat {
    fn drop(&mut self) {
        let mut requests = self.instances.requests.lock().unwrap();
        if let Some(taken) = requests.get_mut(&self.user) {
            *taken -= 1;
            if *taken == 0 {
                requests.remove(&self.user);
            }
        }
    }
}
