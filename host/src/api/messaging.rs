//! `crust:host/messaging`: what the message provider builds on — this
//! instance's link to its client, and the host-wide topic bus.

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::InferletView;
use super::bindings::crust::host::messaging::{Host, HostClientMessage, HostTopicSubscription};
use super::common::{Blob, BlobResult};
use crate::messaging::{Inbox, Stream, Subscription};

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

pub struct TopicSubscription {
    queue: Arc<Subscription>,
    _seat: crate::engine::owner::SubscriptionSeat,
}

#[async_trait::async_trait]
impl Pollable for TopicSubscription {
    async fn ready(&mut self) {
        self.queue.wait().await;
    }
}

impl HostClientMessage for InferletView<'_> {
    async fn pollable(&mut self, this: Resource<ClientMessage>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(self.table, this)
    }

    async fn take(&mut self, this: Resource<ClientMessage>) -> wasmtime::Result<Option<String>> {
        let m = self.table.get_mut(&this)?;
        if m.message.is_none()
            && let Ok(mut inbox) = m.inbox.try_lock()
        {
            m.message = inbox.try_recv().ok();
        }
        Ok(m.message.take())
    }

    async fn drop(&mut self, this: Resource<ClientMessage>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl HostTopicSubscription for InferletView<'_> {
    async fn new(&mut self, topic: String) -> wasmtime::Result<Resource<TopicSubscription>> {
        let cap = self.ctx.subscriptions_per_owner;
        let seat = match self.ctx.owner.subscribe(cap) {
            Ok(seat) => seat,
            Err(held) => {
                let owner = &self.ctx.owner.name;
                return super::misuse(format!(
                    "message.subscribe: {owner} already holds {held} topic subscriptions, the most one user may (limits.subscriptions_per_user)"
                ));
            }
        };
        self.charge("message.subscribe", super::host_memory::SUBSCRIPTION_COST)?;
        let queue = self.ctx.host.bus.subscribe(self.ctx.namespace.scope_of(&topic), &topic);
        Ok(self.table.push(TopicSubscription { queue, _seat: seat })?)
    }

    async fn pollable(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(self.table, this)
    }

    async fn next(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&this)?.queue.next())
    }

    async fn dropped(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.queue.dropped())
    }

    async fn close(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<()> {
        self.table.get(&this)?.queue.close();
        Ok(())
    }

    async fn drop(&mut self, this: Resource<TopicSubscription>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.refund(super::host_memory::SUBSCRIPTION_COST);
        Ok(())
    }
}

impl Host for InferletView<'_> {
    async fn client_send(&mut self, message: String) -> wasmtime::Result<()> {
        self.ctx.client.send(Stream::Message, message.into_bytes()).await;
        Ok(())
    }

    async fn client_send_blob(&mut self, blob: Resource<Blob>) -> wasmtime::Result<()> {
        let blob = self.table.delete(blob)?;
        self.refund(blob.0.len());
        self.ctx.client.send(Stream::Blob, blob.0).await;
        Ok(())
    }

    async fn next_client_message(&mut self) -> wasmtime::Result<Resource<ClientMessage>> {
        let inbox = self.ctx.client.inbox.clone();
        Ok(self.table.push(ClientMessage { inbox, message: None })?)
    }

    async fn next_client_blob(&mut self) -> wasmtime::Result<Resource<BlobResult>> {
        let from = self.ctx.client.blobs.clone();
        Ok(self.table.push(BlobResult { blob: None, from: Some(from), closed: false })?)
    }

    async fn publish(&mut self, topic: String, message: String) -> wasmtime::Result<()> {
        self.ctx.host.bus.publish(self.ctx.namespace.scope_of(&topic), &topic, &message);
        Ok(())
    }
}
