//! The message provider, composed into each inferlet that imports
//! `inferlet:core/message`: client messages and blobs through the host's
//! client link, `broadcast`/`subscribe` through the host's topic bus.
//! Pollables are the host's, so an inferlet waits on them like any other.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "crust:inferlet/message-provider",
    generate_all,
});

use crust::host::messaging as host;
use exports::inferlet::core::message::{Blob, BlobResult, Guest, GuestReceiveResult, GuestSubscription, Pollable, ReceiveResult, Subscription};

struct Provider;

struct Receive {
    inner: host::ClientMessage,
}

struct Subscribed {
    inner: host::TopicSubscription,
}

impl Guest for Provider {
    type Subscription = Subscribed;
    type ReceiveResult = Receive;

    fn send(message: String) {
        host::client_send(&message);
    }

    fn receive() -> ReceiveResult {
        ReceiveResult::new(Receive { inner: host::next_client_message() })
    }

    fn send_blob(blob: Blob) {
        host::client_send_blob(blob);
    }

    fn receive_blob() -> BlobResult {
        host::next_client_blob()
    }

    fn broadcast(topic: String, message: String) {
        host::publish(&topic, &message);
    }

    fn subscribe(topic: String) -> Subscription {
        Subscription::new(Subscribed { inner: host::TopicSubscription::new(&topic) })
    }
}

impl GuestReceiveResult for Receive {
    fn pollable(&self) -> Pollable {
        self.inner.pollable()
    }

    fn get(&self) -> Option<String> {
        self.inner.take()
    }
}

impl GuestSubscription for Subscribed {
    fn pollable(&self) -> Pollable {
        self.inner.pollable()
    }

    fn get(&self) -> Option<String> {
        self.inner.next()
    }

    /// Stops delivery at once.
    fn unsubscribe(&self) {
        self.inner.close();
    }
}

export!(Provider);
