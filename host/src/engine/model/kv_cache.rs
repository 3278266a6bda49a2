//! The paged KV cache: every layer's keys and values, `page_size` slots a page.

use super::buffers::buffer;
use super::capacity::Capacity;
use super::config::LlamaConfig;
use crate::engine::device::Gpu;
use crate::engine::kernels::KvType;

pub struct KvCache {
    pub ty: KvType,
    /// Per layer: keys, values.
    pub layers: Vec<[wgpu::Buffer; 2]>,
    page_bytes: u64,
}

impl KvCache {
    pub fn new(device: &wgpu::Device, c: &LlamaConfig, capacity: &Capacity, ty: KvType) -> Self {
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let page_bytes = capacity.page_size as u64 * c.kv_width() as u64 * ty.bytes();
        let bytes = capacity.kv_pages as u64 * page_bytes;
        let layers = (0..c.n_layer)
            .map(|i| [buffer(device, &format!("blk.{i}.k_cache"), bytes, usage), buffer(device, &format!("blk.{i}.v_cache"), bytes, usage)])
            .collect();
        Self { ty, layers, page_bytes }
    }

    /// Copies one page (every layer's keys and values) onto another: the
    /// private copy a writer gets of a page others still hold. (A buffer
    /// cannot be copied onto itself, so it goes through a scratch buffer.)
    pub fn copy_page(&self, gpu: &Gpu, from: u32, to: u32) {
        let bytes = self.page_bytes;
        let scratch = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kv_page_copy"),
            size: bytes * 2 * self.layers.len() as u64,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("copy_kv_page") });
        let caches = self.layers.iter().flatten();
        for (i, cache) in caches.clone().enumerate() {
            encoder.copy_buffer_to_buffer(cache, from as u64 * bytes, &scratch, i as u64 * bytes, bytes);
        }
        for (i, cache) in caches.enumerate() {
            encoder.copy_buffer_to_buffer(&scratch, i as u64 * bytes, cache, to as u64 * bytes, bytes);
        }
        gpu.queue.submit([encoder.finish()]);
    }

    /// Zeroes pages in every layer's keys and values.
    pub fn clear_pages(&self, encoder: &mut wgpu::CommandEncoder, pages: &[u32]) {
        for cache in self.layers.iter().flatten() {
            for &page in pages {
                encoder.clear_buffer(cache, page as u64 * self.page_bytes, Some(self.page_bytes));
            }
        }
    }
}
