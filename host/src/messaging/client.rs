//! An instance's link to its client: where its messages go, where the
//! client's come from.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::output::{OutputSink, Stream};

/// What the client sends an instance, in order; closed when the client is gone.
pub type Inbox = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>;

/// The blobs the client uploads to an instance, in order.
pub type BlobInbox = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>>;

pub struct ClientLink {
    pub output: Option<OutputSink>,
    pub inbox: Inbox,
    pub blobs: BlobInbox,
}

impl ClientLink {
    /// Waits while the client has much unread (see `output.rs`).
    pub async fn send(&self, stream: Stream, bytes: Vec<u8>) {
        if let Some(output) = &self.output {
            output.send(stream, bytes).await;
        }
    }
}
