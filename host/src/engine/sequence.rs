//! A context the host fills itself (`crust forward`, `crust generate`, the
//! benchmarks): its KV pages are allocated as it grows and its passes go
//! through the same holdings and scheduler as every inferlet's.

use std::sync::Arc;

use super::batch::{Input, Output, Pass, PassResult, Sampler};
use super::chunks::TicketError;
use super::holdings::{Holdings, HoldingsError, PassError, Quotas};
use super::owner::Owner;
use super::pool::ResourceKind;
use super::scheduler::Priority;
use super::service::ModelService;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SequenceError {
    #[error("{0}")]
    Holdings(#[from] HoldingsError),
    #[error("{0}")]
    Refused(#[from] PassError),
    #[error("{0}")]
    Failed(#[from] TicketError),
    #[error("the text has no tokens")]
    Empty,
}

/// How a generation samples.
#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    /// 0 is greedy.
    pub temperature: f32,
    pub top_p: Option<f32>,
    pub seed: u64,
}

impl GenerateOptions {
    /// The sampler of the `step`-th token (0: the one after the prompt).
    pub fn sampler(&self, step: u64) -> Sampler {
        Sampler {
            temperature: self.temperature,
            top_k: None,
            top_p: self.top_p,
            min_p: None,
            seed: self.seed.wrapping_mul(0x9e37_79b9).wrapping_add(step),
        }
    }
}

pub struct Sequence {
    holdings: Holdings,
    /// The context's pages, as the holdings' pointers.
    pages: Vec<u32>,
    len: u32,
}

impl Sequence {
    /// An empty context that may use the whole pool.
    pub fn new(service: Arc<ModelService>) -> Self {
        let (kv_pages, embedding_slots) = (service.capacity.kv_pages as usize, service.capacity.embedding_slots as usize);
        let quotas = Quotas { kv_pages, embedding_slots, queued_passes: usize::MAX };
        Self { holdings: Holdings::new(service, Owner::new("host"), quotas, Default::default()), pages: Vec::new(), len: 0 }
    }

    fn service(&self) -> &ModelService {
        &self.holdings.service
    }

    /// Appends `tokens` in one pass, asking for `outputs` (indices into `tokens`).
    pub async fn extend(&mut self, tokens: &[u32], outputs: Vec<Output>) -> Result<PassResult, SequenceError> {
        let page_size = self.service().page_size();
        let len = self.len + tokens.len() as u32;
        let needed = len.div_ceil(page_size) as usize;
        if needed > self.pages.len() {
            let more = self.holdings.allocate(ResourceKind::KvPage, (needed - self.pages.len()) as u32)?;
            self.pages.extend(more);
        }
        let pass = Pass {
            inputs: tokens.iter().map(|&t| Input::Token(t)).collect(),
            positions: (self.len..len).collect(),
            kv_pages: self.pages.clone(),
            last_page_len: (len - 1) % page_size + 1,
            mask: vec![],
            outputs,
        };
        let mut ticket = self.holdings.submit(pass, Priority::Normal, None)?;
        self.len = len;
        Ok(ticket.result().await?)
    }

    /// Appends `tokens` (in as many passes as the engine needs) and samples
    /// the token after them.
    pub async fn next_token(&mut self, tokens: &[u32], sampler: Sampler) -> Result<u32, SequenceError> {
        let chunk = self.service().limits.batch_tokens as usize;
        let pieces: Vec<&[u32]> = tokens.chunks(chunk).collect();
        let Some((last, before)) = pieces.split_last() else { return Err(SequenceError::Empty) };
        for piece in before {
            self.extend(piece, vec![]).await?;
        }
        let sample = Output::Token { index: last.len() as u32 - 1, sampler };
        Ok(self.extend(last, vec![sample]).await?.tokens[0])
    }

    /// For every token of `tokens`, the top-k distribution of the next one.
    pub async fn teacher_forced(&mut self, tokens: &[u32], top_k: u32) -> Result<Vec<(Vec<u32>, Vec<f32>)>, SequenceError> {
        let limits = self.service().limits;
        let chunk = limits.batch_outputs.min(limits.batch_tokens) as usize;
        let mut distributions = Vec::with_capacity(tokens.len());
        for piece in tokens.chunks(chunk) {
            let outputs = (0..piece.len() as u32).map(|index| Output::Distribution { index, temperature: 1.0, top_k }).collect();
            distributions.extend(self.extend(piece, outputs).await?.distributions);
        }
        Ok(distributions)
    }

    /// Generates after `prompt` until a token of `stops` or `options.max_tokens`,
    /// handing each new token to `on_token` as it comes.
    pub async fn generate(
        &mut self,
        prompt: &[u32],
        options: &GenerateOptions,
        stops: &[u32],
        on_token: &mut (dyn FnMut(u32) + Send),
    ) -> Result<Vec<u32>, SequenceError> {
        let mut generated = Vec::new();
        let mut next = self.next_token(prompt, options.sampler(0)).await?;
        while !stops.contains(&next) && generated.len() < options.max_tokens {
            generated.push(next);
            on_token(next);
            if generated.len() == options.max_tokens {
                break;
            }
            next = self.next_token(&[next], options.sampler(generated.len() as u64)).await?;
        }
        Ok(generated)
    }
}
