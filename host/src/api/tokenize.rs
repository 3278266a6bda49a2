//! `inferlet:core/tokenize`: forwarded to the tokenize provider component.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::InferletView;
use super::bindings::inferlet::core::tokenize::{Host, HostTokenizer};
use super::common::ModelHandle;
use super::misuse;
use crate::providers::tokenize::{TokenizeProvider, TokenizerHandle};

impl InferletView<'_> {
    fn tokenize_provider(&self, call: &'static str) -> impl Future<Output = wasmtime::Result<Arc<TokenizeProvider>>> + Send + 'static {
        let host = self.ctx.host.clone();
        async move { host.tokenize_provider().await.or_else(|e| misuse(format!("{call}: {e}"))) }
    }
}

impl HostTokenizer for InferletView<'_> {
    async fn tokenize(&mut self, this: Resource<TokenizerHandle>, text: String) -> wasmtime::Result<Vec<u32>> {
        const CALL: &str = "tokenize.tokenizer.tokenize";
        let provider = self.tokenize_provider(CALL).await?;
        provider.tokenize(self.table.get_mut(&this)?, &text).await.or_else(|e| misuse(format!("{CALL}: {e}")))
    }

    async fn detokenize(&mut self, this: Resource<TokenizerHandle>, tokens: Vec<u32>) -> wasmtime::Result<String> {
        const CALL: &str = "tokenize.tokenizer.detokenize";
        let provider = self.tokenize_provider(CALL).await?;
        provider.detokenize(self.table.get_mut(&this)?, &tokens).await.or_else(|e| misuse(format!("{CALL}: {e}")))
    }

    async fn get_vocabs(&mut self, this: Resource<TokenizerHandle>) -> wasmtime::Result<(Vec<u32>, Vec<Vec<u8>>)> {
        const CALL: &str = "tokenize.tokenizer.get-vocabs";
        let provider = self.tokenize_provider(CALL).await?;
        provider.get_vocabs(self.table.get_mut(&this)?).await.or_else(|e| misuse(format!("{CALL}: {e}")))
    }

    async fn drop(&mut self, this: Resource<TokenizerHandle>) -> wasmtime::Result<()> {
        let handle = self.table.delete(this)?;
        let host = self.ctx.host.clone();
        if let Ok(provider) = host.tokenize_provider().await {
            provider.release(handle).await;
        }
        Ok(())
    }
}

impl Host for InferletView<'_> {
    async fn get_tokenizer(&mut self, model: Resource<ModelHandle>) -> wasmtime::Result<Resource<TokenizerHandle>> {
        const CALL: &str = "tokenize.get-tokenizer";
        let model = self.table.get(&model)?.model.clone();
        // Name a bad model file here, at the call that needs it.
        if let Err(e) = model.metadata().await {
            return misuse(format!("{CALL}: {e}"));
        }
        self.tokenize_provider(CALL).await?;
        Ok(self.table.push(TokenizerHandle::new(model))?)
    }
}
