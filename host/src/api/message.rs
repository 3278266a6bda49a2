//! `inferlet:core/message`: arrives with the message provider component.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::bindings::inferlet::core::common::{Blob, BlobResult};
use super::bindings::inferlet::core::message::{Host, HostReceiveResult, HostSubscription, ReceiveResult, Subscription};
use super::not_implemented;
use crate::runtime::InstanceState;

impl HostSubscription for InstanceState {
    async fn pollable(&mut self, _: Resource<Subscription>) -> wasmtime::Result<Resource<DynPollable>> {
        not_implemented("message.subscription.pollable")
    }

    async fn get(&mut self, _: Resource<Subscription>) -> wasmtime::Result<Option<String>> {
        not_implemented("message.subscription.get")
    }

    async fn unsubscribe(&mut self, _: Resource<Subscription>) -> wasmtime::Result<()> {
        not_implemented("message.subscription.unsubscribe")
    }

    async fn drop(&mut self, _: Resource<Subscription>) -> wasmtime::Result<()> {
        not_implemented("message.subscription.drop")
    }
}

impl HostReceiveResult for InstanceState {
    async fn pollable(&mut self, _: Resource<ReceiveResult>) -> wasmtime::Result<Resource<DynPollable>> {
        not_implemented("message.receive-result.pollable")
    }

    async fn get(&mut self, _: Resource<ReceiveResult>) -> wasmtime::Result<Option<String>> {
        not_implemented("message.receive-result.get")
    }

    async fn drop(&mut self, _: Resource<ReceiveResult>) -> wasmtime::Result<()> {
        not_implemented("message.receive-result.drop")
    }
}

impl Host for InstanceState {
    async fn send(&mut self, _: String) -> wasmtime::Result<()> {
        not_implemented("message.send")
    }

    async fn receive(&mut self) -> wasmtime::Result<Resource<ReceiveResult>> {
        not_implemented("message.receive")
    }

    async fn send_blob(&mut self, _: Resource<Blob>) -> wasmtime::Result<()> {
        not_implemented("message.send-blob")
    }

    async fn receive_blob(&mut self) -> wasmtime::Result<Resource<BlobResult>> {
        not_implemented("message.receive-blob")
    }

    async fn broadcast(&mut self, _: String, _: String) -> wasmtime::Result<()> {
        not_implemented("message.broadcast")
    }

    async fn subscribe(&mut self, _: String) -> wasmtime::Result<Resource<Subscription>> {
        not_implemented("message.subscribe")
    }
}
