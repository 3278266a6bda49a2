//! Messaging and key-value helpers over the raw `message` and `kvs` calls.

use crate::executor::wait_for;
use crate::{kvs, message};

/// Sends a message to this instance's client.
pub fn send(text: &str) {
    message::send(text);
}

/// The next message from this instance's client.
pub async fn receive() -> String {
    let result = message::receive();
    wait_for(result.pollable()).await;
    result.get().unwrap_or_default()
}

/// Sends bytes to this instance's client.
pub fn send_blob(bytes: &[u8]) {
    message::send_blob(crate::common::Blob::new(bytes));
}

/// The next blob from this instance's client; `None` once the client is gone.
pub async fn receive_blob() -> Option<Vec<u8>> {
    let result = message::receive_blob();
    wait_for(result.pollable()).await;
    let blob = result.get()?;
    Some(blob.read(0, blob.size()))
}

/// Publishes to every instance subscribed to `topic`.
pub fn broadcast(topic: &str, text: &str) {
    message::broadcast(topic, text);
}

/// A topic's messages published after this call, in order.
pub struct Subscription {
    inner: message::Subscription,
}

pub fn subscribe(topic: &str) -> Subscription {
    Subscription { inner: message::subscribe(topic) }
}

impl Subscription {
    pub async fn next(&self) -> String {
        loop {
            if let Some(text) = self.inner.get() {
                return text;
            }
            wait_for(self.inner.pollable()).await;
        }
    }
}

/// The value under `key` in the host's key-value store.
pub fn get(key: &str) -> Option<String> {
    kvs::store_get(key)
}

/// Stores `value` under `key`; durable once this returns (with the default provider).
pub fn set(key: &str, value: &str) {
    kvs::store_set(key, value);
}

/// Removes `key` from the host's key-value store.
pub fn delete(key: &str) {
    kvs::store_delete(key);
}

/// Every key in the host's key-value store.
pub fn keys() -> Vec<String> {
    kvs::store_list_keys()
}
