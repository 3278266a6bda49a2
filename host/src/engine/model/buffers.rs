//! The per-batch buffers, allocated once at their capacity: the arrays a
//! plan fills and the activations the forward passes along.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::capacity::Capacity;
use super::config::LlamaConfig;
use crate::engine::kernels::{GpuDistributionRequest, GpuSampler, GpuToken};
use crate::engine::plan::BatchPlan;

pub struct Buffers {
    // Filled from the plan each batch.
    pub ids: wgpu::Buffer,
    pub tokens: wgpu::Buffer,
    pub page_table: wgpu::Buffer,
    pub masks: wgpu::Buffer,
    pub logit_rows: wgpu::Buffer,
    pub samplers: wgpu::Buffer,
    pub requests: wgpu::Buffer,
    /// 0, 1, 2, …: a layer's norm, when it is its own dispatch, takes every row.
    pub all_rows: wgpu::Buffer,
    pub slots: wgpu::Buffer,
    // Activations, one row per input row (`h_out`, `logits`: per output row).
    pub x: wgpu::Buffer,
    /// A layer's normed rows, when the norm is its own dispatch.
    pub h: wgpu::Buffer,
    pub qkv: wgpu::Buffer,
    pub attn: wgpu::Buffer,
    /// The out-projection's or the down-projection's rows before their norm
    /// (models with post-norms: Gemma 3).
    pub proj: wgpu::Buffer,
    pub ffn: wgpu::Buffer,
    pub h_out: wgpu::Buffer,
    pub logits: wgpu::Buffer,
}

/// A buffer of at least `bytes`; wgpu wants a size that is a multiple of 4, and 16 at least for uniforms.
pub fn buffer(device: &wgpu::Device, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: bytes.max(16).div_ceil(4) * 4, usage, mapped_at_creation: false })
}

/// Writes `data` at the start of `buffer` (nothing to write is no write); returns its size in bytes.
pub fn write<T: Pod>(queue: &wgpu::Queue, buffer: &wgpu::Buffer, data: &[T]) -> usize {
    if !data.is_empty() {
        queue.write_buffer(buffer, 0, bytemuck::cast_slice(data));
    }
    size_of_val(data)
}

impl Buffers {
    pub fn new(device: &wgpu::Device, c: &LlamaConfig, capacity: &Capacity) -> Self {
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let (tokens, outputs) = (capacity.batch_tokens as u64, capacity.batch_outputs as u64);
        let words = |label: &str, n: u64| buffer(device, label, n * 4, storage);
        let records = |label: &str, n: u64, size: usize| buffer(device, label, n * size as u64, storage);
        let all_rows: Vec<u32> = (0..capacity.batch_tokens).collect();
        Self {
            ids: words("ids", tokens),
            tokens: records("tokens", tokens, size_of::<GpuToken>()),
            page_table: words("page_table", capacity.page_table_entries as u64),
            masks: words("masks", capacity.mask_words as u64),
            logit_rows: words("logit_rows", outputs),
            samplers: records("samplers", outputs, size_of::<GpuSampler>()),
            requests: records("requests", outputs, size_of::<GpuDistributionRequest>()),
            all_rows: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("all_rows"),
                contents: bytemuck::cast_slice(&all_rows),
                usage: wgpu::BufferUsages::STORAGE,
            }),
            slots: words("embedding_slots", capacity.embedding_slots as u64 * c.d_model as u64),
            x: words("x", tokens * c.d_model as u64),
            h: words("h", tokens * c.d_model as u64),
            qkv: words("qkv", tokens * c.qkv_width() as u64),
            attn: words("attn", tokens * (c.n_head * c.head_dim) as u64),
            proj: words("proj", if c.post_norms { tokens * c.d_model as u64 } else { 1 }),
            ffn: words("ffn", tokens * c.d_ff as u64),
            h_out: words("h_out", outputs * c.d_model as u64),
            logits: words("logits", outputs * c.vocab as u64),
        }
    }

    /// The plan's arrays, for the kernels to read.
    /// The plan's inputs; returns the bytes written.
    pub fn write(&self, queue: &wgpu::Queue, plan: &BatchPlan) -> usize {
        write(queue, &self.ids, &plan.ids)
            + write(queue, &self.tokens, &plan.tokens)
            + write(queue, &self.page_table, &plan.page_table)
            + write(queue, &self.masks, &plan.masks)
            + write(queue, &self.logit_rows, &plan.logit_rows)
            + write(queue, &self.samplers, &plan.samplers)
            + write(queue, &self.requests, &plan.distributions)
    }

    /// Copies the rows the plan asks to keep (final hidden states, before the
    /// output norm) into their embedding slots.
    pub fn copy_embeddings(&self, encoder: &mut wgpu::CommandEncoder, plan: &BatchPlan, d_model: usize) {
        let row_bytes = d_model as u64 * 4;
        for &(row, slot) in &plan.embedding_copies {
            encoder.copy_buffer_to_buffer(&self.x, row as u64 * row_bytes, &self.slots, slot as u64 * row_bytes, row_bytes);
        }
    }

    /// Zeroes embedding slots (a new holder reads nothing of the last one's).
    pub fn clear_slots(&self, encoder: &mut wgpu::CommandEncoder, slots: &[u32], d_model: usize) {
        let row_bytes = d_model as u64 * 4;
        for &slot in slots {
            encoder.clear_buffer(&self.slots, slot as u64 * row_bytes, Some(row_bytes));
        }
    }
}
