//! `inferlet:core/tokenize`: arrives with the tokenize provider component.

use wasmtime::component::Resource;

use super::bindings::inferlet::core::tokenize::{Host, HostTokenizer, Tokenizer};
use super::common::ModelHandle;
use super::not_implemented;
use crate::runtime::InstanceState;

impl HostTokenizer for InstanceState {
    async fn tokenize(&mut self, _: Resource<Tokenizer>, _: String) -> wasmtime::Result<Vec<u32>> {
        not_implemented("tokenize.tokenizer.tokenize")
    }

    async fn detokenize(&mut self, _: Resource<Tokenizer>, _: Vec<u32>) -> wasmtime::Result<String> {
        not_implemented("tokenize.tokenizer.detokenize")
    }

    async fn get_vocabs(&mut self, _: Resource<Tokenizer>) -> wasmtime::Result<(Vec<u32>, Vec<Vec<u8>>)> {
        not_implemented("tokenize.tokenizer.get-vocabs")
    }

    async fn drop(&mut self, _: Resource<Tokenizer>) -> wasmtime::Result<()> {
        not_implemented("tokenize.tokenizer.drop")
    }
}

impl Host for InstanceState {
    async fn get_tokenizer(&mut self, _: Resource<ModelHandle>) -> wasmtime::Result<Resource<Tokenizer>> {
        not_implemented("tokenize.get-tokenizer")
    }
}
