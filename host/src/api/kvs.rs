//! `inferlet:core/kvs`: arrives with the kvs provider component.

use super::bindings::inferlet::core::kvs::Host;
use super::not_implemented;
use crate::runtime::InstanceState;

impl Host for InstanceState {
    async fn store_get(&mut self, _: String) -> wasmtime::Result<Option<String>> {
        not_implemented("kvs.store-get")
    }

    async fn store_set(&mut self, _: String, _: String) -> wasmtime::Result<()> {
        not_implemented("kvs.store-set")
    }

    async fn store_delete(&mut self, _: String) -> wasmtime::Result<()> {
        not_implemented("kvs.store-delete")
    }

    async fn store_exists(&mut self, _: String) -> wasmtime::Result<bool> {
        not_implemented("kvs.store-exists")
    }

    async fn store_list_keys(&mut self) -> wasmtime::Result<Vec<String>> {
        not_implemented("kvs.store-list-keys")
    }
}
