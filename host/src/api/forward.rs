//! `inferlet:core/forward`: an inferlet builds a pass call by call, in its
//! own pointers; `execute` hands it to the instance's holdings on the model
//! (`engine/holdings.rs`), which resolve, check and submit it. The result
//! resolves through `wasi:io/poll` when its batch has run. Arguments are
//! checked at the call that gives them where they can be (with the engine's
//! own checks), the rest at `execute`; the error names the call.

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::bindings::inferlet::core::common::Pointer;
use super::bindings::inferlet::core::forward::{Host, HostForwardPass, HostForwardPassResult};
use super::common::QueueHandle;
use super::{InferletView, misuse};
use crate::engine::batch::{Input, Output, Pass, PassResult, Sampler};
use crate::engine::check::{self, Part, Problem};
use crate::engine::chunks::Ticket;
use crate::engine::holdings::PassError;
use crate::engine::service::{ModelService, Priority};

const EXECUTE: &str = "forward.forward-pass.execute";

/// A forward pass being built: a [`Pass`] whose KV pages and embedding slots
/// are still the instance's pointers.
pub struct PassBuilder {
    service_id: u32,
    service: Arc<ModelService>,
    priority: Priority,
    pass: Pass,
    has_kv_cache: bool,
    executed: bool,
    /// Bytes charged to the instance's host memory for what the pass holds.
    charged: usize,
}

/// A submitted pass's result.
pub struct PassOutcome {
    ticket: Ticket,
    result: Option<Result<PassResult, String>>,
    wants_tokens: bool,
    wants_distributions: bool,
}

impl PassOutcome {
    /// The result if it is in, without waiting.
    fn try_result(&mut self) -> Option<&Result<PassResult, String>> {
        if self.result.is_none() {
            self.result = self.ticket.try_result().map(|r| r.map_err(|e| e.to_string()));
        }
        self.result.as_ref()
    }
}

#[async_trait::async_trait]
impl Pollable for PassOutcome {
    async fn ready(&mut self) {
        // Polled and dropped until ready: the ticket keeps what has arrived.
        if self.result.is_none() {
            self.result = Some(self.ticket.result().await.map_err(|e| e.to_string()));
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

/// The WIT call an engine-side part of a pass comes from.
fn call_of(part: Part) -> Option<&'static str> {
    Some(match part {
        Part::InputTokens => "input-tokens",
        Part::InputEmbeddings => "input-embeddings",
        Part::KvCache => "kv-cache",
        Part::AttentionMask => "attention-mask",
        Part::OutputTokens => "output-tokens",
        Part::OutputDistributions => "output-distributions",
        Part::OutputEmbeddings => "output-embeddings",
        Part::Whole => return None,
    })
}

/// The instance's error text for a refused pass.
fn refused(error: PassError) -> String {
    match error {
        PassError::Invalid(invalid) => match call_of(invalid.part) {
            Some(call) => format!("{EXECUTE}: {call}: {}", invalid.problem),
            None => format!("{EXECUTE}: {}", invalid.problem),
        },
        PassError::Holdings(e) => format!("{EXECUTE}: {e}"),
    }
}

/// An argument refused at the call that gave it.
fn bad_argument<T>(call: &str, problem: Problem) -> wasmtime::Result<T> {
    misuse(format!("{call}: {problem}"))
}

impl InferletView<'_> {
    fn pass(&mut self, pass: &Resource<PassBuilder>, call: &str) -> wasmtime::Result<&mut PassBuilder> {
        let pass = self.table.get_mut(pass)?;
        if pass.executed {
            return misuse(format!("{call}: the pass was already executed"));
        }
        Ok(pass)
    }

    /// The pass, after charging what `call` adds to it (`bytes`) to the instance's host memory.
    fn growing_pass(&mut self, pass: &Resource<PassBuilder>, call: &str, bytes: usize) -> wasmtime::Result<&mut PassBuilder> {
        self.charge(call, bytes)?;
        let builder = self.pass(pass, call)?;
        builder.charged += bytes;
        Ok(builder)
    }

    fn want_tokens(&mut self, pass: &Resource<PassBuilder>, call: &str, indices: Vec<u32>, sampler: Sampler) -> wasmtime::Result<()> {
        if let Err(problem) = check::sampler(&sampler) {
            return bad_argument(call, problem);
        }
        let pass = self.growing_pass(pass, call, indices.len() * size_of::<Output>())?;
        pass.pass.outputs.extend(indices.into_iter().map(|index| Output::Token { index, sampler }));
        Ok(())
    }
}

impl HostForwardPass for InferletView<'_> {
    async fn execute(&mut self, this: Resource<PassBuilder>) -> wasmtime::Result<Option<Resource<PassOutcome>>> {
        let builder = self.pass(&this, EXECUTE)?;
        builder.executed = true;
        let charged = std::mem::take(&mut builder.charged);
        if !builder.has_kv_cache {
            return misuse(format!("{EXECUTE}: the pass has no KV cache (call forward.kv-cache first)"));
        }
        let (service_id, service, priority) = (builder.service_id, builder.service.clone(), builder.priority);
        let pass = std::mem::take(&mut builder.pass);
        // Queued, its bytes stay charged until it has run.
        let bytes = self.ctx.host_memory.held(charged);
        let wants_tokens = pass.outputs.iter().any(|o| matches!(o, Output::Token { .. }));
        let wants_distributions = pass.outputs.iter().any(|o| matches!(o, Output::Distribution { .. }));
        let ticket = match self.ctx.holdings_on(service_id, &service).submit(pass, priority, Some(bytes)) {
            Ok(ticket) => ticket,
            Err(e) => return misuse(refused(e)),
        };
        if !wants_tokens && !wants_distributions {
            return Ok(None);
        }
        let outcome = PassOutcome { ticket, result: None, wants_tokens, wants_distributions };
        Ok(Some(self.table.push(outcome)?))
    }

    async fn drop(&mut self, this: Resource<PassBuilder>) -> wasmtime::Result<()> {
        let builder = self.table.delete(this)?;
        self.refund(builder.charged);
        Ok(())
    }
}

impl HostForwardPassResult for InferletView<'_> {
    async fn pollable(&mut self, this: Resource<PassOutcome>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(self.table, this)
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

impl Host for InferletView<'_> {
    async fn create_forward_pass(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<Resource<PassBuilder>> {
        let q = self.table.get(&queue)?;
        let pass = PassBuilder {
            service_id: q.service_id,
            service: q.service.clone(),
            priority: q.priority,
            pass: Pass::default(),
            has_kv_cache: false,
            executed: false,
            charged: 0,
        };
        Ok(self.table.push(pass)?)
    }

    async fn attention_mask(&mut self, pass: Resource<PassBuilder>, mask: Vec<Vec<u32>>) -> wasmtime::Result<()> {
        let bytes = mask.iter().map(|runs| size_of::<Vec<u32>>() + runs.len() * 4).sum();
        self.growing_pass(&pass, "forward.attention-mask", bytes)?.pass.mask = mask;
        Ok(())
    }

    async fn kv_cache(&mut self, pass: Resource<PassBuilder>, kv_page_ptrs: Vec<Pointer>, last_kv_page_len: u32) -> wasmtime::Result<()> {
        const CALL: &str = "forward.kv-cache";
        let builder = self.growing_pass(&pass, CALL, kv_page_ptrs.len() * 4)?;
        if let Err(problem) = check::kv_cache(kv_page_ptrs.len(), last_kv_page_len, builder.service.page_size()) {
            return bad_argument(CALL, problem);
        }
        (builder.pass.kv_pages, builder.pass.last_page_len, builder.has_kv_cache) = (kv_page_ptrs, last_kv_page_len, true);
        Ok(())
    }

    async fn input_embeddings(&mut self, pass: Resource<PassBuilder>, emb_ptrs: Vec<Pointer>, positions: Vec<u32>) -> wasmtime::Result<()> {
        const CALL: &str = "forward.input-embeddings";
        if emb_ptrs.len() != positions.len() {
            return misuse(format!("{CALL}: {} embedding pointers but {} positions", emb_ptrs.len(), positions.len()));
        }
        let builder = self.growing_pass(&pass, CALL, emb_ptrs.len() * (size_of::<Input>() + 4))?;
        builder.pass.inputs.extend(emb_ptrs.into_iter().map(Input::Embedding));
        builder.pass.positions.extend(positions);
        Ok(())
    }

    async fn input_tokens(&mut self, pass: Resource<PassBuilder>, input_tokens: Vec<u32>, positions: Vec<u32>) -> wasmtime::Result<()> {
        const CALL: &str = "forward.input-tokens";
        if input_tokens.len() != positions.len() {
            return misuse(format!("{CALL}: {} tokens but {} positions", input_tokens.len(), positions.len()));
        }
        let builder = self.growing_pass(&pass, CALL, input_tokens.len() * (size_of::<Input>() + 4))?;
        if let Err(problem) = check::token_ids(&input_tokens, builder.service.vocab()) {
            return bad_argument(CALL, problem);
        }
        builder.pass.inputs.extend(input_tokens.into_iter().map(Input::Token));
        builder.pass.positions.extend(positions);
        Ok(())
    }

    async fn output_embeddings(&mut self, pass: Resource<PassBuilder>, emb_ptrs: Vec<Pointer>, indices: Vec<u32>) -> wasmtime::Result<()> {
        const CALL: &str = "forward.output-embeddings";
        if emb_ptrs.len() != indices.len() {
            return misuse(format!("{CALL}: {} embedding pointers but {} indices", emb_ptrs.len(), indices.len()));
        }
        let builder = self.growing_pass(&pass, CALL, indices.len() * size_of::<Output>())?;
        builder.pass.outputs.extend(indices.into_iter().zip(emb_ptrs).map(|(index, slot)| Output::Embedding { index, slot }));
        Ok(())
    }

    async fn output_distributions(
        &mut self,
        pass: Resource<PassBuilder>,
        indices: Vec<u32>,
        temperature: f32,
        top_k: Option<u32>,
    ) -> wasmtime::Result<()> {
        const CALL: &str = "forward.output-distributions";
        let top_k = top_k.unwrap_or(32);
        let builder = self.growing_pass(&pass, CALL, indices.len() * size_of::<Output>())?;
        if let Err(problem) = check::distribution(temperature, top_k, builder.service.limits.max_top_k) {
            return bad_argument(CALL, problem);
        }
        builder.pass.outputs.extend(indices.into_iter().map(|index| Output::Distribution { index, temperature, top_k }));
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

    async fn output_tokens_top_k_top_p(
        &mut self,
        pass: Resource<PassBuilder>,
        indices: Vec<u32>,
        temperature: f32,
        top_k: u32,
        top_p: f32,
    ) -> wasmtime::Result<()> {
        self.want_tokens(&pass, "forward.output-tokens-top-k-top-p", indices, sampler(temperature, Some(top_k), Some(top_p), None))
    }
}
