//! Turning a batch of passes into the flat arrays the kernels read: one row
//! per input token (id, position, KV slot, context, page table, mask), the
//! logits rows to compute, and the samplers and distributions over them.
//! Every invalid argument is caught here, named, before the GPU sees it.

use std::collections::HashMap;

use super::batch::{BatchError, Input, Output, Pass, context_length};
use super::kernels::{EMBED_SLOT_FLAG, GpuDistributionRequest, GpuSampler, GpuToken, NO_MASK};

/// What a batch may address.
#[derive(Debug, Clone, Copy)]
pub struct PlanLimits {
    pub page_size: u32,
    pub kv_pages: u32,
    pub embedding_slots: u32,
    pub vocab: u32,
    pub max_top_k: u32,
}

/// Where a pass's results are in the batch's outputs.
#[derive(Debug, Default, Clone)]
pub struct PassRoute {
    pub samplers: Vec<usize>,
    pub distributions: Vec<usize>,
}

#[derive(Debug, Default)]
pub struct BatchPlan {
    pub ids: Vec<u32>,
    pub tokens: Vec<GpuToken>,
    pub page_table: Vec<u32>,
    pub masks: Vec<u32>,
    /// Batch row of each logits row.
    pub logit_rows: Vec<u32>,
    pub samplers: Vec<GpuSampler>,
    pub distributions: Vec<GpuDistributionRequest>,
    /// (batch row, embedding slot) copies of final hidden states.
    pub embedding_copies: Vec<(u32, u32)>,
    pub routes: Vec<PassRoute>,
}

pub fn plan(passes: &[Pass], limits: PlanLimits) -> Result<BatchPlan, BatchError> {
    let mut plan = BatchPlan::default();
    for (p, pass) in passes.iter().enumerate() {
        plan_pass(&mut plan, p, pass, limits)?;
    }
    Ok(plan)
}

fn plan_pass(plan: &mut BatchPlan, p: usize, pass: &Pass, limits: PlanLimits) -> Result<(), BatchError> {
    let bad = |problem: String| BatchError::invalid(p, problem);
    let n = pass.inputs.len();
    if n == 0 {
        return Err(bad("input-tokens: the pass has no input tokens or embeddings".into()));
    }
    if pass.positions.len() != n {
        return Err(bad(format!("input-tokens: {n} inputs but {} positions", pass.positions.len())));
    }
    if pass.kv_pages.is_empty() {
        return Err(bad("kv-cache: the pass has no KV pages".into()));
    }
    if !(1..=limits.page_size).contains(&pass.last_page_len) {
        return Err(bad(format!(
            "kv-cache: last-kv-page-len is {}, must be 1..={}",
            pass.last_page_len, limits.page_size
        )));
    }
    if let Some(&page) = pass.kv_pages.iter().find(|&&page| page >= limits.kv_pages) {
        return Err(bad(format!("kv-cache: page {page} does not exist (the pool has {} pages)", limits.kv_pages)));
    }
    let total = context_length(pass, limits.page_size);
    if total < n as u64 {
        return Err(bad(format!("kv-cache: the pages hold {total} slots, fewer than the pass's {n} inputs")));
    }
    if !pass.mask.is_empty() && pass.mask.len() != n {
        return Err(bad(format!("attention-mask: {} masks for {n} inputs", pass.mask.len())));
    }

    let first_row = plan.ids.len() as u32;
    let table_offset = plan.page_table.len() as u32;
    plan.page_table.extend(&pass.kv_pages);
    let first_slot = total - n as u64;
    for (i, (input, &position)) in pass.inputs.iter().zip(&pass.positions).enumerate() {
        plan.ids.push(match *input {
            Input::Token(id) if id < limits.vocab => id,
            Input::Token(id) => return Err(bad(format!("input-tokens: token id {id} is not below the vocabulary size {}", limits.vocab))),
            Input::Embedding(slot) if slot < limits.embedding_slots => slot | EMBED_SLOT_FLAG,
            Input::Embedding(slot) => return Err(bad(format!("input-embeddings: embedding slot {slot} does not exist"))),
        });
        let slot = first_slot + i as u64;
        let page = pass.kv_pages[(slot / limits.page_size as u64) as usize];
        let ctx_len = (slot + 1) as u32;
        let mask_offset = match pass.mask.get(i) {
            Some(runs) => expand_mask(runs, ctx_len, &mut plan.masks).map_err(|e| bad(format!("attention-mask: row {i}: {e}")))?,
            None => NO_MASK,
        };
        plan.tokens.push(GpuToken {
            position,
            kv_slot: page * limits.page_size + (slot % limits.page_size as u64) as u32,
            ctx_len,
            table_offset,
            mask_offset,
            _pad: [0; 3],
        });
    }

    let mut route = PassRoute::default();
    let mut logit_row_of: HashMap<u32, u32> = HashMap::new();
    let mut logit_row = |plan: &mut BatchPlan, index: u32| {
        *logit_row_of.entry(index).or_insert_with(|| {
            plan.logit_rows.push(first_row + index);
            plan.logit_rows.len() as u32 - 1
        })
    };
    for output in &pass.outputs {
        let index = match output {
            Output::Token { index, .. } | Output::Distribution { index, .. } | Output::Embedding { index, .. } => *index,
        };
        if index as usize >= n {
            return Err(bad(format!("output index {index} is past the pass's {n} inputs")));
        }
        match output {
            Output::Token { sampler, .. } => {
                check_sampler(sampler).map_err(&bad)?;
                let row = logit_row(plan, index);
                route.samplers.push(plan.samplers.len());
                plan.samplers.push(GpuSampler {
                    row,
                    temperature: sampler.temperature,
                    top_k: sampler.top_k.unwrap_or(0),
                    top_p: sampler.top_p.unwrap_or(1.0),
                    min_p: sampler.min_p.unwrap_or(0.0),
                    uniform: uniform_from_seed(sampler.seed),
                    _pad: [0; 2],
                });
            }
            Output::Distribution { temperature, top_k, .. } => {
                if !(temperature.is_finite() && *temperature >= 0.0) {
                    return Err(bad(format!("output-distributions: temperature {temperature} is not a finite number >= 0")));
                }
                if *top_k == 0 || *top_k > limits.max_top_k {
                    return Err(bad(format!("output-distributions: top-k {top_k} must be 1..={}", limits.max_top_k)));
                }
                let row = logit_row(plan, index);
                route.distributions.push(plan.distributions.len());
                plan.distributions.push(GpuDistributionRequest { row, temperature: *temperature, k: *top_k, _pad: 0 });
            }
            Output::Embedding { slot, .. } => {
                if *slot >= limits.embedding_slots {
                    return Err(bad(format!("output-embeddings: embedding slot {slot} does not exist")));
                }
                plan.embedding_copies.push((first_row + index, *slot));
            }
        }
    }
    plan.routes.push(route);
    Ok(())
}

fn check_sampler(s: &super::batch::Sampler) -> Result<(), String> {
    if !(s.temperature.is_finite() && s.temperature >= 0.0) {
        return Err(format!("output-tokens: temperature {} is not a finite number >= 0", s.temperature));
    }
    if s.top_k == Some(0) {
        return Err("output-tokens-top-k: top-k must be at least 1".into());
    }
    if let Some(p) = s.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
        return Err(format!("output-tokens-top-p: top-p {p} must be in (0, 1]"));
    }
    if let Some(p) = s.min_p.filter(|p| !(*p >= 0.0 && *p <= 1.0)) {
        return Err(format!("output-tokens-min-p: min-p {p} must be in [0, 1]"));
    }
    Ok(())
}

/// Appends the bit mask of `runs` (attend, mask, attend, …) over `ctx_len`
/// slots; returns its first word, or `NO_MASK` when it masks nothing.
fn expand_mask(runs: &[u32], ctx_len: u32, words: &mut Vec<u32>) -> Result<u32, String> {
    let covered: u64 = runs.iter().map(|&r| r as u64).sum();
    if covered != ctx_len as u64 {
        return Err(format!("the runs cover {covered} slots, expected {ctx_len} (the row's context, its own slot included)"));
    }
    if runs.iter().skip(1).step_by(2).all(|&r| r == 0) {
        return Ok(NO_MASK);
    }
    let offset = words.len() as u32;
    let start = words.len();
    words.resize(start + ctx_len.div_ceil(32) as usize, 0);
    let mut slot = 0u32;
    for (k, &run) in runs.iter().enumerate() {
        if k % 2 == 0 {
            for s in slot..slot + run {
                words[start + (s / 32) as usize] |= 1 << (s % 32);
            }
        }
        slot += run;
    }
    Ok(offset)
}

/// A uniform number in [0, 1) from a seed (SplitMix64; 24 bits, exact in f32).
pub fn uniform_from_seed(seed: u64) -> f32 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}
