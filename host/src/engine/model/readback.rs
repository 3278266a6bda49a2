//! What a batch brings back to the host: the sampling kernels' result buffers
//! and the one mappable buffer they are copied into. Its layout (sampled ids,
//! distribution counts, then the distributions' ids and probabilities) is
//! written down once, in `Sections`, for both the copies and the
//! decoding, packed for each batch so that only what it produced is read.

use std::ops::Range;

use super::buffers::buffer;
use super::capacity::Capacity;
use crate::engine::batch::{BatchError, PassResult};
use crate::engine::plan::BatchPlan;

pub struct Readback {
    /// One token id per sampler.
    pub sampled: wgpu::Buffer,
    /// Per distribution request: how many of its `cap` entries it filled.
    pub counts: wgpu::Buffer,
    /// Per request, `cap` token ids and their probabilities.
    pub ids: wgpu::Buffer,
    pub probs: wgpu::Buffer,
    host: wgpu::Buffer,
    cap: usize,
}

/// A batch's sections of the readback buffer, in 4-byte words.
struct Sections {
    sampled: Range<usize>,
    counts: Range<usize>,
    ids: Range<usize>,
    probs: Range<usize>,
}

impl Sections {
    /// `samples` sampled ids, `requests` counts, then `requests` × `cap` ids and as many probabilities.
    fn new(samples: usize, requests: usize, cap: usize) -> Self {
        let counts = samples..samples + requests;
        let ids = counts.end..counts.end + requests * cap;
        let probs = ids.end..ids.end + requests * cap;
        Self { sampled: 0..samples, counts, ids, probs }
    }

    fn of(plan: &BatchPlan, cap: usize) -> Self {
        Self::new(plan.samplers.len(), plan.distributions.len(), cap)
    }

    /// The bytes to map: the sections, rounded up to the mapping alignment (never empty).
    fn mapped_bytes(&self) -> u64 {
        (self.probs.end as u64 * 4).max(1).next_multiple_of(wgpu::MAP_ALIGNMENT)
    }
}

impl Readback {
    pub fn new(device: &wgpu::Device, capacity: &Capacity) -> Self {
        let outputs = capacity.batch_outputs as usize;
        let cap = capacity.distribution_cap() as usize;
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let words = |label: &str, n: usize, usage| buffer(device, label, n as u64 * 4, usage);
        let full = Sections::new(outputs, outputs, cap);
        let host = buffer(device, "readback", full.mapped_bytes(), wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        Self {
            sampled: words("sampled", outputs, storage),
            counts: words("dist_counts", outputs, storage),
            ids: words("dist_ids", outputs * cap, storage),
            probs: words("dist_probs", outputs * cap, storage),
            host,
            cap,
        }
    }

    /// Copies what `plan` produced into the readback buffer.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder, plan: &BatchPlan) {
        let at = &Sections::of(plan, self.cap);
        let (samples, requests) = (plan.samplers.len(), plan.distributions.len());
        let copies = [
            (&self.sampled, at.sampled.start, samples),
            (&self.counts, at.counts.start, requests),
            (&self.ids, at.ids.start, requests * self.cap),
            (&self.probs, at.probs.start, requests * self.cap),
        ];
        for (source, offset, words) in copies {
            if words > 0 {
                encoder.copy_buffer_to_buffer(source, 0, &self.host, offset as u64 * 4, words as u64 * 4);
            }
        }
    }

    /// Waits for the submitted batch and takes what it produced from the readback buffer.
    pub fn read(&self, device: &wgpu::Device, plan: &BatchPlan) -> Result<Vec<u8>, BatchError> {
        let slice = self.host.slice(..Sections::of(plan, self.cap).mapped_bytes());
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| BatchError::Gpu(e.to_string()))?;
        rx.recv().map_err(|e| BatchError::Gpu(e.to_string()))?.map_err(|e| BatchError::Gpu(e.to_string()))?;
        let bytes = slice.get_mapped_range().map_err(|e| BatchError::Gpu(format!("{e:?}")))?.to_vec();
        self.host.unmap();
        Ok(bytes)
    }

    /// Each pass's tokens and distributions, from what [`Self::read`] returned.
    pub fn results(&self, plan: &BatchPlan, bytes: &[u8]) -> Vec<PassResult> {
        let words: &[u32] = bytemuck::cast_slice(bytes);
        let at = &Sections::of(plan, self.cap);
        let (sampled, counts, ids) = (&words[at.sampled.clone()], &words[at.counts.clone()], &words[at.ids.clone()]);
        let probs: &[f32] = bytemuck::cast_slice(&words[at.probs.clone()]);
        let cap = self.cap;
        plan.routes
            .iter()
            .map(|route| PassResult {
                tokens: route.samplers.iter().map(|&s| sampled[s]).collect(),
                distributions: route
                    .distributions
                    .iter()
                    .map(|&r| {
                        let request = &plan.distributions[r];
                        let n = counts[r] as usize;
                        let mut pairs: Vec<(u32, f32)> = (0..n).map(|j| (ids[r * cap + j], probs[r * cap + j])).collect();
                        // Highest first; ties by id so results are deterministic.
                        pairs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                        pairs.truncate(request.k as usize);
                        if request.temperature == 0.0 {
                            // Greedy: a one-hot distribution on the most likely token.
                            for (j, pair) in pairs.iter_mut().enumerate() {
                                pair.1 = if j == 0 { 1.0 } else { 0.0 };
                            }
                        }
                        pairs.into_iter().unzip()
                    })
                    .collect(),
            })
            .collect()
    }
}
