//! The topic bus of `message.broadcast`/`subscribe`: topics and their
//! subscribers' bounded queues.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// Messages a subscription holds before the oldest are dropped.
pub const SUBSCRIPTION_BUFFER: usize = 1024;

/// One subscriber's queue on the bus.
#[derive(Default)]
pub struct Subscription {
    messages: Mutex<VecDeque<String>>,
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
        self.messages.lock().unwrap().pop_front()
    }

    /// Messages lost because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops delivery; what was queued is dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.messages.lock().unwrap().clear();
        self.arrived.notify_one();
    }

    /// Resolves once a message is queued or the subscription is closed.
    pub async fn wait(&self) {
        loop {
            if self.closed.load(Ordering::Relaxed) || !self.messages.lock().unwrap().is_empty() {
                return;
            }
            // `notify_one` keeps a permit when nobody waits: no lost wake-up.
            self.arrived.notified().await;
        }
    }
}

/// Topics and their subscribers, for the whole host.
#[derive(Default)]
pub struct Bus {
    topics: Mutex<HashMap<String, Vec<Weak<Subscription>>>>,
}

impl Bus {
    pub fn subscribe(&self, topic: &str) -> Arc<Subscription> {
        let queue = Arc::new(Subscription::default());
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
