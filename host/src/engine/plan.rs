//! Turning a batch of passes into the flat arrays the kernels read: one row
//! per input token (id, position, KV slot, context, page table, mask), the
//! logits rows to compute, and the samplers and distributions over them.
//! Each pass is checked first (`check.rs`), so the GPU never sees an invalid one.

use std::collections::HashMap;

use super::batch::{BatchError, Input, Output, Pass, context_length};
use super::check::{check_pass, masks_anything};
use super::kernels::{EMBED_SLOT_FLAG, GpuDistributionRequest, GpuSampler, GpuToken, NO_MASK};

/// What a batch may address: the limits every pass is checked against.
pub use super::check::PassLimits as PlanLimits;

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
    check_pass(pass, &limits).map_err(|problem| BatchError::Invalid { pass: p, problem })?;
    let n = pass.inputs.len();
    let total = context_length(pass, limits.page_size);
    let first_row = plan.ids.len() as u32;
    let table_offset = plan.page_table.len() as u32;
    plan.page_table.extend(&pass.kv_pages);
    let first_slot = total - n as u64;
    for (i, (input, &position)) in pass.inputs.iter().zip(&pass.positions).enumerate() {
        plan.ids.push(match *input {
            Input::Token(id) => id,
            Input::Embedding(slot) => slot | EMBED_SLOT_FLAG,
        });
        let slot = first_slot + i as u64;
        let page = pass.kv_pages[(slot / limits.page_size as u64) as usize];
        let ctx_len = (slot + 1) as u32;
        let mask_offset = match pass.mask.get(i) {
            Some(runs) => expand_mask(runs, ctx_len, &mut plan.masks),
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
        match *output {
            Output::Token { index, sampler } => {
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
            Output::Distribution { index, temperature, top_k } => {
                let row = logit_row(plan, index);
                route.distributions.push(plan.distributions.len());
                plan.distributions.push(GpuDistributionRequest { row, temperature, k: top_k, _pad: 0 });
            }
            Output::Embedding { index, slot } => plan.embedding_copies.push((first_row + index, slot)),
        }
    }
    plan.routes.push(route);
    Ok(())
}

/// Appends the bit mask of `runs` (attend, mask, attend, …, already checked
/// to cover `ctx_len` slots); returns its first word, or `NO_MASK` when it
/// masks nothing.
fn expand_mask(runs: &[u32], ctx_len: u32, words: &mut Vec<u32>) -> u32 {
    if !masks_anything(runs) {
        return NO_MASK;
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
    offset
}

/// A uniform number in [0, 1) from a seed (SplitMix64; 24 bits, exact in f32).
pub fn uniform_from_seed(seed: u64) -> f32 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}
