//! The model's weights uploaded: matrices repacked for the kernels (fused
//! where one dispatch computes several), norm weights as f32.

use super::weights::{GpuMatrix, LayerTensors, ModelTensors, TensorRef, WeightsError, storage};

pub struct GpuLayer {
    pub attn_norm: wgpu::Buffer,
    /// q | k | v stacked.
    pub qkv: GpuMatrix,
    pub o: GpuMatrix,
    pub ffn_norm: wgpu::Buffer,
    /// gate | up stacked.
    pub gate_up: GpuMatrix,
    pub down: GpuMatrix,
    /// What `rope_kv` applies before rotating: the q|k|v biases (zeros
    /// without), then the query and key head norms' gains (ones without).
    pub qkv_extras: wgpu::Buffer,
    /// Gemma 3's norms after attention and after the FFN.
    pub post_norms: Option<[wgpu::Buffer; 2]>,
}

pub struct GpuWeights {
    /// In row ranges that each fit a binding (one, unless the vocabulary is huge).
    pub embed: Vec<GpuMatrix>,
    /// `None` when the model ties its LM head to the embedding.
    head: Option<Vec<GpuMatrix>>,
    pub output_norm: wgpu::Buffer,
    pub layers: Vec<GpuLayer>,
}

fn norm_weights(device: &wgpu::Device, t: &TensorRef) -> wgpu::Buffer {
    storage(device, t.name, bytemuck::cast_slice(&t.to_f32()))
}

/// A layer's `qkv_extras`: `qkv` biases, then the q and k head norms' gains.
fn qkv_extras(t: &LayerTensors, (qkv_width, head_dim): (usize, usize)) -> Vec<f32> {
    let mut extras = match &t.qkv_bias {
        Some(biases) => biases.iter().flat_map(|b| b.to_f32()).collect(),
        None => vec![0.0; qkv_width],
    };
    match &t.qk_norm {
        Some(norms) => extras.extend(norms.iter().flat_map(|n| n.to_f32())),
        None => extras.extend(std::iter::repeat_n(1.0, 2 * head_dim)),
    }
    extras
}

impl GpuWeights {
    /// `progress` is told each tensor's size as it lands.
    /// `widths`: a q|k|v row's and a head's.
    /// `max_binding`: `Capacity::max_weight_binding`.
    pub fn upload(
        device: &wgpu::Device,
        tensors: &ModelTensors,
        widths: (usize, usize),
        max_binding: Option<u64>,
        progress: &dyn Fn(u64),
    ) -> Result<Self, WeightsError> {
        let limits = device.limits();
        let max_binding = max_binding.unwrap_or(u64::MAX).min(limits.max_storage_buffer_binding_size).min(limits.max_buffer_size);
        let embed = GpuMatrix::upload_rows(device, tensors.embed, max_binding)?;
        progress(tensors.embed.bytes.len() as u64);
        let head = if std::ptr::eq(tensors.lm_head.bytes, tensors.embed.bytes) {
            None
        } else {
            progress(tensors.lm_head.bytes.len() as u64);
            Some(GpuMatrix::upload_rows(device, tensors.lm_head, max_binding)?)
        };
        let output_norm = norm_weights(device, &tensors.output_norm);
        let mut layers = Vec::with_capacity(tensors.layers.len());
        for t in &tensors.layers {
            layers.push(GpuLayer {
                attn_norm: norm_weights(device, &t.attn_norm),
                qkv: GpuMatrix::upload(device, &[t.q, t.k, t.v])?,
                o: GpuMatrix::upload(device, &[t.o])?,
                ffn_norm: norm_weights(device, &t.ffn_norm),
                gate_up: GpuMatrix::upload(device, &[t.gate, t.up])?,
                down: GpuMatrix::upload(device, &[t.down])?,
                qkv_extras: storage(device, "qkv_extras", bytemuck::cast_slice(&qkv_extras(t, widths))),
                post_norms: t.post_norms.map(|norms| norms.map(|n| norm_weights(device, &n))),
            });
            progress([t.q, t.k, t.v, t.o, t.gate, t.up, t.down, t.attn_norm, t.ffn_norm].iter().map(|t| t.bytes.len() as u64).sum());
        }
        Ok(Self { embed, head, output_norm, layers })
    }

    pub fn head(&self) -> &[GpuMatrix] {
        self.head.as_ref().unwrap_or(&self.embed)
    }
}
