//! How much one batch and the KV pool may hold: what the model allocates for.

use crate::engine::batch::BatchError;
use crate::engine::plan::{BatchPlan, PlanLimits};

/// How much one batch and the KV pool may hold.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub page_size: u32,
    pub kv_pages: u32,
    pub embedding_slots: u32,
    /// Input rows per batch.
    pub batch_tokens: u32,
    /// Logits rows per batch (sampled or distribution rows).
    pub batch_outputs: u32,
    pub page_table_entries: u32,
    pub mask_words: u32,
    pub max_top_k: u32,
    /// Keep the KV cache in f16 when the adapter has shader-f16 (half the memory).
    pub kv_f16: bool,
    /// The most bytes of one weight buffer a kernel binds; a bigger matrix
    /// (a huge vocabulary's embedding and LM head) is split in row ranges.
    /// `None`: what the adapter allows.
    pub max_weight_binding: Option<u64>,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            page_size: 16,
            kv_pages: 512,
            embedding_slots: 256,
            batch_tokens: 512,
            batch_outputs: 128,
            page_table_entries: 1 << 16,
            mask_words: 1 << 20,
            max_top_k: 256,
            kv_f16: true,
            max_weight_binding: None,
        }
    }
}

impl Capacity {
    /// What a batch may address in a model with `vocab` tokens.
    pub fn plan_limits(&self, vocab: u32) -> PlanLimits {
        PlanLimits {
            page_size: self.page_size,
            kv_pages: self.kv_pages,
            embedding_slots: self.embedding_slots,
            vocab,
            max_top_k: self.max_top_k,
            batch_tokens: self.batch_tokens,
            batch_outputs: self.batch_outputs,
            page_table_entries: self.page_table_entries,
            mask_words: self.mask_words,
        }
    }

    /// Whether the model's buffers hold `plan`.
    pub(super) fn check_fits(&self, plan: &BatchPlan) -> Result<(), BatchError> {
        let over =
            |what: &str, n: usize, max: u32| (n > max as usize).then(|| BatchError::TooLarge(format!("{n} {what}, the engine's maximum is {max}")));
        over("input rows", plan.ids.len(), self.batch_tokens)
            .or_else(|| over("output rows", plan.logit_rows.len(), self.batch_outputs))
            .or_else(|| over("page-table entries", plan.page_table.len(), self.page_table_entries))
            .or_else(|| over("mask words", plan.masks.len(), self.mask_words))
            .map_or(Ok(()), Err)
    }

    /// Room in a distribution's output for ties at its k-th probability.
    pub(super) fn distribution_cap(&self) -> u32 {
        self.max_top_k + 64
    }
}
