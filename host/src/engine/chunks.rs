//! Chunked prefill: a pass with more rows than one batch holds runs as
//! consecutive chunks of it, each a pass over some of its rows that sees the
//! KV the chunks before it wrote — the same KV writes and the same outputs as
//! the pass at once. A [`Ticket`] waits for every chunk and gives back the
//! outputs in the order the pass asked for them.

use super::batch::{BatchError, Output, Pass, PassResult, context_length};
use super::check::{Invalid, Part, PassCost, PassLimits, check_arguments, masks_anything};
use super::scheduler::PassReply;

/// Where each output of the whole pass is: (chunk, its position among that
/// chunk's outputs of the same kind).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Assembly {
    tokens: Vec<(usize, usize)>,
    distributions: Vec<(usize, usize)>,
}

/// The chunks of a pass, each with its cost, and how to put their outputs
/// back together (`None`: one chunk, the pass itself).
pub(crate) type Chunks = (Vec<(Pass, PassCost)>, Option<Assembly>);

/// Splits `pass` (whose arguments `check_arguments` accepted, at `cost`) into
/// chunks that each fit a batch; one chunk when it fits as it is. A row that
/// cannot fit a batch even alone is refused.
pub(crate) fn split(pass: Pass, cost: PassCost, limits: &PassLimits) -> Result<Chunks, Invalid> {
    if cost.fits(limits) {
        return Ok((vec![(pass, cost)], None));
    }
    let n = pass.inputs.len();
    let first_slot = context_length(&pass, limits.page_size) - n as u64;
    // What each row adds to a chunk: outputs asked at it, and its mask words.
    let mut rows = vec![PassCost { tokens: 1, ..PassCost::default() }; n];
    for output in &pass.outputs {
        match output {
            Output::Token { index, .. } => rows[*index as usize].samplers += 1,
            Output::Distribution { index, .. } => rows[*index as usize].distributions += 1,
            Output::Embedding { .. } => continue,
        }
        let index = match output {
            Output::Token { index, .. } | Output::Distribution { index, .. } | Output::Embedding { index, .. } => *index,
        };
        rows[index as usize].logit_rows = 1;
    }
    for (i, runs) in pass.mask.iter().enumerate() {
        if masks_anything(runs) {
            rows[i].mask_words = (first_slot + i as u64 + 1).div_ceil(32) as usize;
        }
    }
    // Greedy: each chunk takes rows while they fit.
    let mut bounds = Vec::new();
    let (mut start, mut used) = (0, PassCost::default());
    for (i, row) in rows.iter().enumerate() {
        let pages = (first_slot + i as u64 + 1).div_ceil(limits.page_size as u64) as usize;
        let with = PassCost { page_table: pages, ..used.plus(*row) };
        if with.fits(limits) {
            used = with;
            continue;
        }
        if i == start {
            let problem = with.over(limits).expect("over a limit");
            return Err(Invalid { part: Part::Whole, problem });
        }
        bounds.push((start, i));
        start = i;
        used = PassCost { page_table: pages, ..*row };
        if let Some(problem) = used.over(limits) {
            return Err(Invalid { part: Part::Whole, problem });
        }
    }
    bounds.push((start, n));
    Ok(chunks_of(&pass, &bounds, first_slot, limits))
}

fn chunks_of(pass: &Pass, bounds: &[(usize, usize)], first_slot: u64, limits: &PassLimits) -> Chunks {
    let page_size = limits.page_size as u64;
    let mut assembly = Assembly::default();
    let mut chunks: Vec<Pass> = bounds
        .iter()
        .map(|&(a, b)| {
            let context = first_slot + b as u64;
            Pass {
                inputs: pass.inputs[a..b].to_vec(),
                positions: pass.positions[a..b].to_vec(),
                kv_pages: pass.kv_pages[..context.div_ceil(page_size) as usize].to_vec(),
                last_page_len: ((context - 1) % page_size + 1) as u32,
                mask: if pass.mask.is_empty() { vec![] } else { pass.mask[a..b].to_vec() },
                outputs: vec![],
            }
        })
        .collect();
    let chunk_of = |index: u32| bounds.iter().position(|&(a, b)| (a..b).contains(&(index as usize))).expect("index checked");
    let (mut tokens, mut distributions) = (vec![0; chunks.len()], vec![0; chunks.len()]);
    for output in &pass.outputs {
        let mut output = output.clone();
        let (Output::Token { index, .. } | Output::Distribution { index, .. } | Output::Embedding { index, .. }) = &mut output;
        let c = chunk_of(*index);
        *index -= bounds[c].0 as u32;
        match output {
            Output::Token { .. } => {
                assembly.tokens.push((c, tokens[c]));
                tokens[c] += 1;
            }
            Output::Distribution { .. } => {
                assembly.distributions.push((c, distributions[c]));
                distributions[c] += 1;
            }
            Output::Embedding { .. } => {}
        }
        chunks[c].outputs.push(output);
    }
    let chunks = chunks
        .into_iter()
        .map(|chunk| {
            let cost = check_arguments(&chunk, limits).expect("a chunk of a valid pass is valid");
            (chunk, cost)
        })
        .collect();
    (chunks, Some(assembly))
}

/// A submitted pass's result, once every chunk of it has run.
pub struct Ticket {
    parts: Vec<PassReply>,
    done: Vec<PassResult>,
    assembly: Option<Assembly>,
}

impl Ticket {
    pub(crate) fn new(parts: Vec<PassReply>, assembly: Option<Assembly>) -> Self {
        Self { parts, done: Vec::new(), assembly }
    }

    /// The result if every chunk has run, without waiting; `Some(Err(Stopped))`
    /// style failures come back as errors.
    pub fn try_result(&mut self) -> Option<Result<PassResult, TicketError>> {
        while self.done.len() < self.parts.len() {
            match self.parts[self.done.len()].try_recv() {
                Ok(Ok(result)) => self.done.push(result),
                Ok(Err(e)) => return Some(Err(TicketError::Failed(e))),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return None,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return Some(Err(TicketError::Stopped)),
            }
        }
        Some(Ok(self.assemble()))
    }

    /// Waits for every chunk. Cancel-safe: a dropped wait loses nothing.
    pub async fn result(&mut self) -> Result<PassResult, TicketError> {
        while self.done.len() < self.parts.len() {
            let next = self.done.len();
            match (&mut self.parts[next]).await {
                Ok(Ok(result)) => self.done.push(result),
                Ok(Err(e)) => return Err(TicketError::Failed(e)),
                Err(_) => return Err(TicketError::Stopped),
            }
        }
        Ok(self.assemble())
    }

    fn assemble(&mut self) -> PassResult {
        let Some(assembly) = &self.assembly else { return self.done.pop().unwrap_or_default() };
        PassResult {
            tokens: assembly.tokens.iter().map(|&(c, i)| self.done[c].tokens[i]).collect(),
            distributions: assembly.distributions.iter().map(|&(c, i)| self.done[c].distributions[i].clone()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TicketError {
    #[error("{0}")]
    Failed(BatchError),
    #[error("the engine stopped before the pass ran")]
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::batch::{Input, Sampler};

    fn split(pass: Pass, limits: &PassLimits) -> Result<Chunks, Invalid> {
        let cost = check_arguments(&pass, limits)?;
        super::split(pass, cost, limits)
    }

    fn limits() -> PassLimits {
        PassLimits {
            page_size: 4,
            kv_pages: 64,
            embedding_slots: 2,
            vocab: 10,
            max_top_k: 5,
            batch_tokens: 4,
            batch_outputs: 2,
            page_table_entries: 64,
            mask_words: 64,
        }
    }

    /// `n` rows after `before` slots already in the pages.
    fn pass(before: u32, n: u32) -> Pass {
        let context = before + n;
        Pass {
            inputs: (0..n).map(|t| Input::Token(t % 10)).collect(),
            positions: (before..context).collect(),
            kv_pages: (0..context.div_ceil(4)).collect(),
            last_page_len: (context - 1) % 4 + 1,
            ..Pass::default()
        }
    }

    #[test]
    fn a_pass_that_fits_is_one_chunk() {
        let (chunks, assembly) = split(pass(0, 4), &limits()).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(assembly, None);
    }

    #[test]
    fn rows_are_split_into_batches_that_see_the_chunks_before_them() {
        let mut p = pass(2, 10);
        p.outputs = vec![Output::Token { index: 9, sampler: Sampler::greedy() }, Output::Token { index: 1, sampler: Sampler::greedy() }];
        let (chunks, assembly) = split(p, &limits()).unwrap();
        let shapes: Vec<(Vec<u32>, Vec<u32>, u32)> = chunks.iter().map(|(c, _)| (c.positions.clone(), c.kv_pages.clone(), c.last_page_len)).collect();
        assert_eq!(shapes, [(vec![2, 3, 4, 5], vec![0, 1], 2), (vec![6, 7, 8, 9], vec![0, 1, 2], 2), (vec![10, 11], vec![0, 1, 2], 4)]);
        assert_eq!(chunks[2].0.outputs, [Output::Token { index: 1, sampler: Sampler::greedy() }]);
        assert_eq!(chunks[0].0.outputs, [Output::Token { index: 1, sampler: Sampler::greedy() }]);
        // Asked for row 9 first, then row 1: chunk 2's token, then chunk 0's.
        assert_eq!(assembly.unwrap().tokens, [(2, 0), (0, 0)]);
    }

    #[test]
    fn outputs_count_against_a_chunk_too() {
        let mut p = pass(0, 4);
        p.outputs = (0..4).map(|index| Output::Distribution { index, temperature: 1.0, top_k: 1 }).collect();
        let (chunks, _) = split(p, &limits()).unwrap();
        assert_eq!(chunks.iter().map(|(c, _)| c.inputs.len()).collect::<Vec<_>>(), [2, 2]);
    }

    #[test]
    fn a_row_that_cannot_fit_alone_is_refused() {
        let mut p = pass(0, 1);
        p.outputs = vec![Output::Token { index: 0, sampler: Sampler::greedy() }; 3];
        let error = split(p, &limits()).unwrap_err();
        assert_eq!(error.problem.to_string(), "3 sampled outputs, more than the engine's 2 per pass");
    }
}
