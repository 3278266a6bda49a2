//! The topic bus of `message.broadcast`/`subscribe`: topics and their
//! subscribers' bounded queues.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// Messages a subscription holds before the oldest are dropped.
pub const SUBSCRIPTION_BUFFER: usize = 1024;
/// Bytes a subscription holds before the oldest are dropped (what it costs
/// its instance's host memory); a message longer than this is dropped.
pub const SUBSCRIPTION_BYTES: usize = 64 << 10;

/// One subscriber's queue on the bus.
#[derive(Default)]
pub struct Subscription {
    messages: Mutex<Buffered>,
    arrived: Notify,
    dropped: AtomicU64,
    closed: AtomicBool,
}

impl Subscription {
    /// The oldest message not yet taken; nothing once closed.
    pub fn next(&self) -> Option<String> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        self.messages.lock().unwrap().pop()
    }

    /// Messages lost because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops delivery; what was queued is dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        *self.messages.lock().unwrap() = Buffered::default();
        self.arrived.notify_one();
    }

    /// Resolves once a message is queued or the subscription is closed.
    pub async fn wait(&self) {
        loop {
            if self.closed.load(Ordering::Relaxed) || !self.messages.lock().unwrap().queue.is_empty() {
                return;
            }
            // `notify_one` keeps a permit when nobody waits: no lost wake-up.
            self.arrived.notified().await;
        }
    }
}

/// A subscription's messages, within both bounds.
#[derive(Default)]
struct Buffered {
    queue: VecDeque<String>,
    bytes: usize,
}

impl Buffered {
    /// Queues `message`, dropping the oldest to make room; returns how many were dropped.
    fn push(&mut self, message: &str) -> u64 {
        if message.len() > SUBSCRIPTION_BYTES {
            return 1;
        }
        let mut dropped = 0;
        while self.queue.len() == SUBSCRIPTION_BUFFER || self.bytes + message.len() > SUBSCRIPTION_BYTES {
            self.pop();
            dropped += 1;
        }
        self.bytes += message.len();
        self.queue.push_back(message.to_string());
        dropped
    }

    fn pop(&mut self) -> Option<String> {
        let message = self.queue.pop_front()?;
        self.bytes -= message.len();
        Some(message)
    }
}

/// Topics and their subscribers, for the whole host, by namespace (see
/// `Launch::namespace`): a topic of one namespace is not one of another's.
#[derive(Default)]
pub struct Bus {
    topics: Mutex<HashMap<Topic, Vec<Weak<Subscription>>>>,
}

/// A topic: its namespace, and its name there.
type Topic = (String, String);

impl Bus {
    pub fn subscribe(&self, namespace: &str, topic: &str) -> Arc<Subscription> {
        let queue = Arc::new(Subscription::default());
        self.topics.lock().unwrap().entry((namespace.to_string(), topic.to_string())).or_default().push(Arc::downgrade(&queue));
        queue
    }

    /// Delivers to every live subscriber; forgets the ones that are gone.
    pub fn publish(&self, namespace: &str, topic: &str, message: &str) {
        let mut topics = self.topics.lock().unwrap();
        let key = (namespace.to_string(), topic.to_string());
        let Some(subscribers) = topics.get_mut(&key) else { return };
        subscribers.retain(|weak| {
            let Some(queue) = weak.upgrade() else { return false };
            if queue.closed.load(Ordering::Relaxed) {
                return false;
            }
            let dropped = queue.messages.lock().unwrap().push(message);
            queue.dropped.fetch_add(dropped, Ordering::Relaxed);
            queue.arrived.notify_one();
            true
        });
        if subscribers.is_empty() {
            topics.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_holds_at_most_its_bytes_dropping_the_oldest() {
        let bus = Bus::default();
        let subscription = bus.subscribe("", "t");
        let big = "x".repeat(SUBSCRIPTION_BYTES / 2);
        (0..3).for_each(|_| bus.publish("", "t", &big));
        bus.publish("other", "t", "another namespace's topic");
        bus.publish("", "t", &"y".repeat(SUBSCRIPTION_BYTES + 1));
        assert_eq!(subscription.dropped(), 2, "the oldest one to make room, and the one that never fits");
        assert_eq!(subscription.next().map(|m| m.len()), Some(big.len()));
        assert_eq!(subscription.next().map(|m| m.len()), Some(big.len()));
        assert_eq!(subscription.next(), None);
    }
}
