//! What instances say to their clients and to each other: output streams,
//! client inboxes, and the topic bus. Plain types; `api/messaging.rs` serves
//! them to inferlets, the runtime and the server wire them up.

pub mod bus;
pub mod client;
pub mod output;

pub use bus::{Bus, SUBSCRIPTION_BUFFER, SUBSCRIPTION_BYTES, Subscription};
pub use client::{BlobInbox, ClientLink, Inbox};
pub use output::{IN_FLIGHT, OutputChunk, OutputReceiver, OutputSink, Stream};
