//! A connection's outgoing messages, bounded in bytes. The connection's
//! writer drains it as fast as the client reads; a client that stops
//! reading fills it, and the next message past the bound is refused and
//! marks the connection to be closed. Senders treat a refusal as the
//! connection gone, so an instance's output goes to its own bounded buffer
//! instead and nothing grows without limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crust_client::protocol::ServerMessage;
use tokio::sync::{Notify, mpsc};

#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::UnboundedSender<(ServerMessage, usize)>,
    shared: Arc<Shared>,
}

pub struct OutboxReceiver {
    queue: mpsc::UnboundedReceiver<(ServerMessage, usize)>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Bytes queued and not yet taken by the writer.
    queued: AtomicUsize,
    cap: usize,
    overflowed: AtomicBool,
    overflow: Notify,
}

pub fn outbox(cap: usize) -> (Outbox, OutboxReceiver) {
    let (queue, receiver) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared { queued: AtomicUsize::new(0), cap, overflowed: AtomicBool::new(false), overflow: Notify::new() });
    (Outbox { queue, shared: shared.clone() }, OutboxReceiver { queue: receiver, shared })
}

impl Outbox {
    /// Queues `message`; gives it back when the connection is gone or its
    /// client is too slow to take it.
    pub fn send(&self, message: ServerMessage) -> Result<(), ServerMessage> {
        if self.shared.overflowed.load(Ordering::Acquire) {
            return Err(message);
        }
        let size = message_size(&message);
        if self.shared.queued.fetch_add(size, Ordering::AcqRel) + size > self.shared.cap {
            self.shared.queued.fetch_sub(size, Ordering::AcqRel);
            self.shared.overflowed.store(true, Ordering::Release);
            self.shared.overflow.notify_one();
            return Err(message);
        }
        self.queue.send((message, size)).map_err(|returned| returned.0.0)
    }

    /// Resolves once a message was refused for want of room.
    pub async fn overflowed(&self) {
        while !self.shared.overflowed.load(Ordering::Acquire) {
            self.shared.overflow.notified().await;
        }
    }

    pub fn overflow_reason(&self) -> String {
        self.shared.overflow_reason()
    }
}

impl Shared {
    fn overflow_reason(&self) -> String {
        format!("the client read too slowly: over {} KiB waited for it (server.outbox_kib)", self.cap >> 10)
    }
}

impl OutboxReceiver {
    /// The next message; `None` once every sender is gone or the outbox overflowed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        let (message, size) = self.queue.recv().await?;
        self.shared.queued.fetch_sub(size, Ordering::AcqRel);
        (!self.shared.overflowed.load(Ordering::Acquire)).then_some(message)
    }

    /// Why the connection closes, when its client was too slow.
    pub fn overflow_reason(&self) -> Option<String> {
        self.shared.overflowed.load(Ordering::Acquire).then(|| self.shared.overflow_reason())
    }
}

/// About what a message takes in memory and on the wire.
pub fn message_size(message: &ServerMessage) -> usize {
    match message {
        ServerMessage::InstanceEvent { message, .. } => message.len() + 64,
        ServerMessage::DownloadBlob { chunk_data, .. } => chunk_data.len() + 128,
        ServerMessage::InstanceOutput { data, .. } => data.len() + 64,
        ServerMessage::Response { result, .. } => result.len() + 64,
        ServerMessage::ServerEvent { message } => message.len() + 64,
    }
}
