//! `inferlet:core/forward`: an inferlet builds a pass call by call; `execute`
//! resolves its pointers, makes shared pages it writes private (copy-on-
//! write), checks it, and submits it to the model's scheduler. The result
//! resolves through `wasi:io/poll` when its batch has run.

use std::sync::Arc;

use tokio::sync::oneshot;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::bindings::inferlet::core::common::Pointer;
use super::bindings::inferlet::core::forward::{Host, HostForwardPass, HostForwardPassResult};
use super::common::{QueueHandle, misuse};
use crate::engine::batch::{BatchError, Input, Output, Pass, PassResult, Sampler};
use crate::engine::plan::plan;
use crate::engine::service::{ModelService, ResourceKind, Submitter};
use crate::runtime::InstanceState;

/// An output asked for, with embedding pointers still unresolved.
enum Wanted {
    Output(Output),
    Embedding { index: u32, pointer: u32 },
}

/// A forward pass being built.
pub struct PassBuilder {
    service_id: u32,
    service: Arc<ModelService>,
    queue_priority: crate::engine::service::Priority,
    /// Tokens, or embedding pointers still unresolved.
    inputs: Vec<(bool, u32)>,
    positions: Vec<u32>,
    kv: Option<(Vec<u32>, u32)>,
    mask: Vec<Vec<u32>>,
    outputs: Vec<Wanted>,
    executed: bool,
}

/// A submitted pass's result.
pub struct PassOutcome {
    pending: Option<oneshot::Receiver<Result<PassResult, BatchError>>>,
    result: Option<Result<PassResult, String>>,
    wants_tokens: bool,
    wants_distributions: bool,
}

impl PassOutcome {
    /// `None`: the engine went away without an answer.
    fn settle(&mut self, result: Option<Result<PassResult, BatchError>>) {
        self.pending = None;
        self.result = Some(match result {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the engine stopped before the pass ran".into()),
        });
    }

    /// The result if it is in, without waiting.
    fn try_result(&mut self) -> Option<&Result<PassResult, String>> {
        if let Some(pending) = &mut self.pending {
            match pending.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return None,
                Ok(r) => self.settle(Some(r)),
                Err(oneshot::error::TryRecvError::Closed) => self.settle(None),
            }
        }
        self.result.as_ref()
    }
}

#[async_trait::async_trait]
impl Pollable for PassOutcome {
    async fn ready(&mut self) {
        // Polled and dropped until ready: keep the receiver until it answers.
        if let Some(pending) = &mut self.pending {
            let r = pending.await;
            self.settle(r.ok());
        }
    }
}

fn sampler(temperature: f32, top_k: Option<u32>, top_p: Option<f32>, min_p: Option<f32>) -> Sampler {
    Sampler { temperature, top_k, top_p, min_p, seed: fresh_seed() }
}

/// A different seed for every draw.
fn fresh_seed() -> u64 {
    use std::hash::BuildHasher;
    static DRAWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let draw = DRAWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::collections::hash_map::RandomState::new().hash_one(draw)
}

impl InstanceState {
    fn pass(&mut self, pass: &Resource<PassBuilder>, call: &str) -> wasmtime::Result<&mut PassBuilder> {
        let pass = self.table.get_mut(pass)?;
        if pass.executed {
            return misuse(format!("{call}: the pass was already executed"));
        }
        Ok(pass)
    }

    fn want_tokens(&mut self, pass: &Resource<PassBuilder>, call: &str, indices: Vec<u32>, sampler: Sampler) -> wasmtime::Result<()> {
        if !(sampler.temperature >= 0.0 && sampler.temperature.is_finite()) {
            return misuse(format!("{call}: temperature {} must be a finite number ≥ 0", sampler.temperature));
        }
        let pass = self.pass(pass, call)?;
        pass.outputs.extend(indices.into_iter().map(|index| Wanted::Output(Output::Token { index, sampler })));
        Ok(())
    }
}

impl HostForwardPass for InstanceState {
    async fn execute(&mut self, this: Resource<PassBuilder>) -> wasmtime::Result<Option<Resource<PassOutcome>>> {
        const CALL: &str = "forward.forward-pass.execute";
        let owner = self.inferlet.owner;
        let builder = self.pass(&this, CALL)?;
        builder.executed = true;
        let (service_id, service, priority) = (builder.service_id, builder.service.clone(), builder.queue_priority);
        let inputs = std::mem::take(&mut builder.inputs);
        let positions = std::mem::take(&mut builder.positions);
        let mask = std::mem::take(&mut builder.mask);
        let wanted = std::mem::take(&mut builder.outputs);
        let Some((kv_pointers, last_page_len)) = builder.kv.take() else {
            return misuse(format!("{CALL}: the pass has no KV cache (call forward.kv-cache first)"));
        };
        let holdings = self.holdings_on(service_id, service.clone());

        // Copy-on-write: the pages this pass's inputs are written into.
        let page_size = service.page_size as usize;
        if !kv_pointers.is_empty() && (1..=page_size as u32).contains(&last_page_len) && !inputs.is_empty() {
            let context = (kv_pointers.len() - 1) * page_size + last_page_len as usize;
            let first = context.saturating_sub(inputs.len()) / page_size;
            holdings.make_private(&kv_pointers[first.min(kv_pointers.len())..], CALL).or_else(misuse)?;
        }
        let kv_pages = holdings.resolve_all(ResourceKind::KvPage, &kv_pointers, "forward.kv-cache").or_else(misuse)?;
        let inputs = inputs
            .into_iter()
            .map(|(is_token, v)| match is_token {
                true => Ok(Input::Token(v)),
                false => holdings.resolve(ResourceKind::EmbeddingSlot, v, "forward.input-embeddings").map(Input::Embedding),
            })
            .collect::<Result<Vec<_>, _>>()
            .or_else(misuse)?;
        let outputs = wanted
            .into_iter()
            .map(|w| match w {
                Wanted::Output(o) => Ok(o),
                Wanted::Embedding { index, pointer } => holdings
                    .resolve(ResourceKind::EmbeddingSlot, pointer, "forward.output-embeddings")
                    .map(|slot| Output::Embedding { index, slot }),
            })
            .collect::<Result<Vec<_>, _>>()
            .or_else(misuse)?;
        let wants_tokens = outputs.iter().any(|o| matches!(o, Output::Token { .. }));
        let wants_distributions = outputs.iter().any(|o| matches!(o, Output::Distribution { .. }));
        let pass = Pass { inputs, positions, kv_pages, last_page_len, mask, outputs };

        // Every invalid argument is named here, before the scheduler sees it.
        let checked = plan(std::slice::from_ref(&pass), service.limits);
        if let Err(BatchError::Invalid { problem, .. }) = checked {
            return misuse(format!("{CALL}: {problem}"));
        }
        let cap = service.capacity;
        if pass.inputs.len() > cap.batch_tokens as usize {
            return misuse(format!("{CALL}: {} inputs, more than the engine's {} per pass (engine.batch_tokens)", pass.inputs.len(), cap.batch_tokens));
        }
        let reply = service.submit_by(pass, Submitter { owner, priority });
        if !wants_tokens && !wants_distributions {
            return Ok(None);
        }
        let outcome = PassOutcome { pending: Some(reply), result: None, wants_tokens, wants_distributions };
        Ok(Some(self.table.push(outcome)?))
    }

    async fn drop(&mut self, this: Resource<PassBuilder>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl HostForwardPassResult for InstanceState {
    async fn pollable(&mut self, this: Resource<PassOutcome>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(&mut self.table, this)
    }

    async fn get_distributions(&mut self, this: Resource<PassOutcome>) -> wasmtime::Result<Option<Vec<(Vec<u32>, Vec<f32>)>>> {
        let outcome = self.table.get_mut(&this)?;
        let wants = outcome.wants_distributions;
        match outcome.try_result() {
            None => Ok(None),
            Some(Err(e)) => misuse(format!("forward.forward-pass-result.get-distributions: the pass failed: {e}")),
            Some(Ok(r)) => Ok(wants.then(|| r.distributions.clone())),
        }
    }

    async fn get_tokens(&mut self, this: Resource<PassOutcome>) -> wasmtime::Result<Option<Vec<u32>>> {
        let outcome = self.table.get_mut(&this)?;
        let wants = outcome.wants_tokens;
        match outcome.try_result() {
            None => Ok(None),
            Some(Err(e)) => misuse(format!("forward.forward-pass-result.get-tokens: the pass failed: {e}")),
            Some(Ok(r)) => Ok(wants.then(|| r.tokens.clone())),
        }
    }

    async fn drop(&mut self, this: Resource<PassOutcome>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl Host for InstanceState {
    async fn create_forward_pass(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<Resource<PassBuilder>> {
        let q = self.table.get(&queue)?;
        let pass = PassBuilder {
            service_id: q.service_id,
            service: q.service.clone(),
            queue_priority: q.priority,
            inputs: vec![],
            positions: vec![],
            kv: None,
            mask: vec![],
            outputs: vec![],
            executed: false,
        };
        Ok(self.table.push(pass)?)
    }

    async fn attention_mask(&mut self, pass: Resource<PassBuilder>, mask: Vec<Vec<u32>>) -> wasmtime::Result<()> {
        self.pass(&pass, "forward.attention-mask")?.mask = mask;
        Ok(())
    }

    async fn kv_cache(&mut self, pass: Resource<PassBuilder>, kv_page_ptrs: Vec<Pointer>, last_kv_page_len: u32) -> wasmtime::Result<()> {
        const CALL: &str = "forward.kv-cache";
        let builder = self.pass(&pass, CALL)?;
        let page_size = builder.service.page_size;
        if kv_page_ptrs.is_empty() {
            return misuse(format!("{CALL}: the page list is empty"));
        }
        if !(1..=page_size).contains(&last_kv_page_len) {
            return misuse(format!("{CALL}: last-kv-page-len is {last_kv_page_len}, must be 1..={page_size}"));
        }
        builder.kv = Some((kv_page_ptrs, last_kv_page_len));
        Ok(())
    }

    async fn input_embeddings(&mut self, pass: Resource<PassBuilder>, emb_ptrs: Vec<Pointer>, positions: Vec<u32>) -> wasmtime::Result<()> {
        const CALL: &str = "forward.input-embeddings";
        if emb_ptrs.len() != positions.len() {
            return misuse(format!("{CALL}: {} embedding pointers but {} positions", emb_ptrs.len(), positions.len()));
        }
        let builder = self.pass(&pass, CALL)?;
        builder.inputs.extend(emb_ptrs.into_iter().map(|p| (false, p)));
        builder.positions.extend(positions);
        Ok(())
    }

    async fn input_tokens(&mut self, pass: Resource<PassBuilder>, input_tokens: Vec<u32>, positions: Vec<u32>) -> wasmtime::Result<()> {
        const CALL: &str = "forward.input-tokens";
        if input_tokens.len() != positions.len() {
            return misuse(format!("{CALL}: {} tokens but {} positions", input_tokens.len(), positions.len()));
        }
        let builder = self.pass(&pass, CALL)?;
        let vocab = builder.service.vocab;
        if let Some(bad) = input_tokens.iter().find(|&&t| t >= vocab) {
            return misuse(format!("{CALL}: token id {bad} is not below the vocabulary size {vocab}"));
        }
        builder.inputs.extend(input_tokens.into_iter().map(|t| (true, t)));
        builder.positions.extend(positions);
        Ok(())
    }

    async fn output_embeddings(&mut self, pass: Resource<PassBuilder>, emb_ptrs: Vec<Pointer>, indices: Vec<u32>) -> wasmtime::Result<()> {
        const CALL: &str = "forward.output-embeddings";
        if emb_ptrs.len() != indices.len() {
            return misuse(format!("{CALL}: {} embedding pointers but {} indices", emb_ptrs.len(), indices.len()));
        }
        let builder = self.pass(&pass, CALL)?;
        builder.outputs.extend(indices.into_iter().zip(emb_ptrs).map(|(index, pointer)| Wanted::Embedding { index, pointer }));
        Ok(())
    }

    async fn output_distributions(&mut self, pass: Resource<PassBuilder>, indices: Vec<u32>, temperature: f32, top_k: Option<u32>) -> wasmtime::Result<()> {
        const CALL: &str = "forward.output-distributions";
        if !(temperature >= 0.0 && temperature.is_finite()) {
            return misuse(format!("{CALL}: temperature {temperature} must be a finite number ≥ 0"));
        }
        let top_k = top_k.unwrap_or(32);
        let builder = self.pass(&pass, CALL)?;
        let max = builder.service.limits.max_top_k;
        if top_k == 0 || top_k > max {
            return misuse(format!("{CALL}: top-k {top_k} must be 1..={max}"));
        }
        builder.outputs.extend(indices.into_iter().map(|index| Wanted::Output(Output::Distribution { index, temperature, top_k })));
        Ok(())
    }

    async fn output_tokens(&mut self, pass: Resource<PassBuilder>, indices: Vec<u32>, temperature: f32) -> wasmtime::Result<()> {
        self.want_tokens(&pass, "forward.output-tokens", indices, sampler(temperature, None, None, None))
    }

    async fn output_tokens_top_k(&mut self, pass: Resource<PassBuilder>, indices: Vec<u32>, temperature: f32, top_k: u32) -> wasmtime::Result<()> {
        self.want_tokens(&pass, "forward.output-tokens-top-k", indices, sampler(temperature, Some(top_k), None, None))
    }

    async fn output_tokens_top_p(&mut self, pass: Resource<PassBuilder>, indices: Vec<u32>, temperature: f32, top_p: f32) -> wasmtime::Result<()> {
        self.want_tokens(&pass, "forward.output-tokens-top-p", indices, sampler(temperature, None, Some(top_p), None))
    }

    async fn output_tokens_min_p(&mut self, pass: Resource<PassBuilder>, indices: Vec<u32>, temperature: f32, min_p: f32) -> wasmtime::Result<()> {
        self.want_tokens(&pass, "forward.output-tokens-min-p", indices, sampler(temperature, None, None, Some(min_p)))
    }

    async fn output_tokens_top_k_top_p(&mut self, pass: Resource<PassBuilder>, indices: Vec<u32>, temperature: f32, top_k: u32, top_p: f32) -> wasmtime::Result<()> {
        self.want_tokens(&pass, "forward.output-tokens-top-k-top-p", indices, sampler(temperature, Some(top_k), Some(top_p), None))
    }
}
