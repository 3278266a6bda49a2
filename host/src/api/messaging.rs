//! `crust:host/messaging`: what the message provider builds on — this
//! instance's link to its client, and the host-wide topic bus.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, mpsc};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::bindings::crust::host::messaging::{Host, HostClientMessage, HostTopicSubscription};
use super::common::{Blob, BlobResult};
use crate::runtime::{InstanceState, Stream};

/// Messages a subscription holds before the oldest are dropped.
pub const SUBSCRIPTION_BUFFER: usize = 1024;

/// What the client sends an instance, in order; closed when the client is gone.
pub type Inbox = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>;

/// The blobs the client uploads to an instance, in order.
pub type BlobInbox = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>>;

/// The next message from the client, once it arrives.
pub struct ClientMessage {
    inbox: Inbox,
    message: Option<String>,
}

#[async_trait::async_trait]
impl Pollable for ClientMessage {
    async fn ready(&mut self) {
        if self.message.is_none() {
            // Cancel-safe: a dropped wait loses no message.
            let mut inbox = self.inbox.lock().await;
            // `None`: the client is gone; stay ready, with nothing to take.
            self.message = inbox.recv().await;
        }
    }
}

/// One subscriber's queue on the bus.
#[derive(Default)]
struct Queue {
    messages: Mutex<VecDeque<String>>,
    arrived: Notify,
    dropped: AtomicU64,
    closed: AtomicBool,
}

/// Topics and their subscribers, for the whole host.
#[derive(Default)]
pub struct Bus {
    topics: Mutex<HashMap<String, Vec<Weak<Queue>>>>,
}

impl Bus {
    fn subscribe(&self, topic: &str) -> Arc<Queue> {
        let queue = Arc::new(Queue::default());
        self.topics.lock().unwrap().entry(topic.to_string()).or_default().push(Arc::downgrade(&queue));
        queue
    }

    /// Delivers to every live subscriber; forgets the ones that are gone.
    pub fn publish(&self, topic: &str, message: &str) {
        let mut topics = self.topics.lock().unwrap();
        let Some(subscribers) = topics.get_mut(topic) else { return };
        subscribers.retain(|weak| {
            let Some(queue) = weak.upgrade() else { return false };
            if queue.closed.load(Ordering::Relaxed) {
                return false;
            }
            let mut messages = queue.messages.lock().unwrap();
            if messages.len() == SUBSCRIPTION_BUFFER {
                messages.pop_front();
                queue.dropped.fetch_add(1, Ordering::Relaxed);
            }
            messages.push_back(message.to_string());
            queue.arrived.notify_one();
            true
        });
        if subscribers.is_empty() {
            topics.remove(topic);
        }
    }
}

pub struct TopicSubscription {
    queue: Arc<Queue>,
}

#[async_trait::async_trait]
impl Pollable for TopicSubscription {
    async fn ready(&mut self) {
        loop {
            if self.queue.closed.load(Ordering::Relaxed) || !self.queue.messages.lock().unwrap().is_empty() {
                return;
            }
            // `notify_one` keeps a permit when nobody waits: no lost wake-up.
            self.queue.arrived.notified().await;
        }
    }
}

impl HostClientMessage for InstanceState {
    async fn pollable(&mut self, this: Resource<ClientMessage>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(&mut self.table, this)
    }

    async fn take(&mut self, this: Resource<ClientMessage>) -> wasmtime::Result<Option<String>> {
        let m = self.table.get_mut(&this)?;
        if m.message.is_none() {
            if let Ok(mut inbox) = m.inbox.try_lock() {
                m.message = inbox.try_recv().ok();
            }
        }
        Ok(m.message.take())
    }

    async fn drop(&mut self, this: Resource<ClientMessage>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl HostTopicSubscription for InstanceState {
    async fn new(&mut self, topic: String) -> wasmtime::Result<Resource<TopicSubscription>> {
        let queue = self.inferlet.host.bus.subscribe(&topic);
        Ok(self.table.push(TopicSubscription { queue })?)
    }

    async fn pollable(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(&mut self.table, this)
    }

    async fn next(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<Option<String>> {
        let queue = &self.table.get(&this)?.queue;
        if queue.closed.load(Ordering::Relaxed) {
            return Ok(None);
        }
        Ok(queue.messages.lock().unwrap().pop_front())
    }

    async fn dropped(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.queue.dropped.load(Ordering::Relaxed))
    }

    async fn close(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<()> {
        let queue = &self.table.get(&this)?.queue;
        queue.closed.store(true, Ordering::Relaxed);
        queue.messages.lock().unwrap().clear();
        queue.arrived.notify_one();
        Ok(())
    }

    async fn drop(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl Host for InstanceState {
    async fn client_send(&mut self, message: String) -> wasmtime::Result<()> {
        self.inferlet.client.send(Stream::Message, message.into_bytes());
        Ok(())
    }

    async fn client_send_blob(&mut self, blob: Resource<Blob>) -> wasmtime::Result<()> {
        let blob = self.table.delete(blob)?;
        self.inferlet.client.send(Stream::Blob, blob.0);
        Ok(())
    }

    async fn next_client_message(&mut self) -> wasmtime::Result<Resource<ClientMessage>> {
        let inbox = self.inferlet.client.inbox.clone();
        Ok(self.table.push(ClientMessage { inbox, message: None })?)
    }

    async fn next_client_blob(&mut self) -> wasmtime::Result<Resource<BlobResult>> {
        let from = self.inferlet.client.blobs.clone();
        Ok(self.table.push(BlobResult { blob: None, from: Some(from), closed: false })?)
    }

    async fn publish(&mut self, topic: String, message: String) -> wasmtime::Result<()> {
        self.inferlet.host.bus.publish(&topic, &message);
        Ok(())
    }
}
