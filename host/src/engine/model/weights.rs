//! A Llama model's tensors by their GGUF names, checked against the config,
//! and their GPU form: quantized matrices repacked so every block's scale
//! sits apart from its quants (aligned words the kernels read directly).

use half::f16;
use wgpu::util::DeviceExt;

use super::config::LlamaConfig;
use crate::engine::gguf::GgufFile;
use crate::engine::quant::{TensorType, dequantize, nibbles, quantize};

/// One tensor in the mapped file.
#[derive(Clone, Copy)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub ty: TensorType,
    /// Output units (1 for vectors).
    pub rows: usize,
    /// Input width.
    pub cols: usize,
    pub bytes: &'a [u8],
}

impl TensorRef<'_> {
    pub fn to_f32(&self) -> Vec<f32> {
        dequantize(self.ty, self.bytes)
    }
}

pub struct LayerTensors<'a> {
    pub attn_norm: TensorRef<'a>,
    pub q: TensorRef<'a>,
    pub k: TensorRef<'a>,
    pub v: TensorRef<'a>,
    pub o: TensorRef<'a>,
    pub ffn_norm: TensorRef<'a>,
    pub gate: TensorRef<'a>,
    pub up: TensorRef<'a>,
    pub down: TensorRef<'a>,
    /// The Qwen2 shape's biases of q, k and v (`LlamaConfig::qkv_bias`).
    pub qkv_bias: Option<[TensorRef<'a>; 3]>,
    /// The Qwen3 shape's per-head norms of queries and keys (`LlamaConfig::qk_norm`).
    pub qk_norm: Option<[TensorRef<'a>; 2]>,
    /// Gemma 3's norms on the attention's and the FFN's outputs (`LlamaConfig::post_norms`).
    pub post_norms: Option<[TensorRef<'a>; 2]>,
}

pub struct ModelTensors<'a> {
    pub embed: TensorRef<'a>,
    pub output_norm: TensorRef<'a>,
    /// The LM head; the embedding when the model ties them.
    pub lm_head: TensorRef<'a>,
    pub layers: Vec<LayerTensors<'a>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("the model lacks tensor `{0}`")]
    Missing(String),
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected:?} (innermost first)")]
    Shape { tensor: String, expected: Vec<u64>, actual: Vec<u64> },
    #[error("tensors {0} must have one input width to be fused")]
    MixedWidths(String),
}

impl<'a> ModelTensors<'a> {
    pub fn from_gguf(file: &'a GgufFile, c: &LlamaConfig) -> Result<Self, WeightsError> {
        let get = |name: &str, dims: &[usize]| -> Result<TensorRef<'a>, WeightsError> {
            let info = file.tensor(name).ok_or_else(|| WeightsError::Missing(name.into()))?;
            let expected: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
            if info.dims != expected {
                return Err(WeightsError::Shape { tensor: name.into(), expected, actual: info.dims.clone() });
            }
            Ok(TensorRef { name: &info.name, ty: info.ty, rows: dims.get(1).copied().unwrap_or(1), cols: dims[0], bytes: file.tensor_bytes(info) })
        };
        let embed = get("token_embd.weight", &[c.d_model, c.vocab])?;
        let lm_head = if file.tensor("output.weight").is_some() { get("output.weight", &[c.d_model, c.vocab])? } else { embed };
        let (d, h, kv, ff) = (c.d_model, c.n_head * c.head_dim, c.kv_width(), c.d_ff);
        let layers = (0..c.n_layer)
            .map(|i| {
                let t = |suffix: &str, dims: &[usize]| get(&format!("blk.{i}.{suffix}"), dims);
                let hd = c.head_dim;
                Ok(LayerTensors {
                    attn_norm: t("attn_norm.weight", &[d])?,
                    q: t("attn_q.weight", &[d, h])?,
                    k: t("attn_k.weight", &[d, kv])?,
                    v: t("attn_v.weight", &[d, kv])?,
                    o: t("attn_output.weight", &[h, d])?,
                    ffn_norm: t("ffn_norm.weight", &[d])?,
                    gate: t("ffn_gate.weight", &[d, ff])?,
                    up: t("ffn_up.weight", &[d, ff])?,
                    down: t("ffn_down.weight", &[ff, d])?,
                    qkv_bias: match c.qkv_bias {
                        true => Some([t("attn_q.bias", &[h])?, t("attn_k.bias", &[kv])?, t("attn_v.bias", &[kv])?]),
                        false => None,
                    },
                    qk_norm: match c.qk_norm {
                        true => Some([t("attn_q_norm.weight", &[hd])?, t("attn_k_norm.weight", &[hd])?]),
                        false => None,
                    },
                    post_norms: match c.post_norms {
                        true => Some([t("post_attention_norm.weight", &[d])?, t("post_ffw_norm.weight", &[d])?]),
                        false => None,
                    },
                })
            })
            .collect::<Result<_, WeightsError>>()?;
        Ok(Self { embed, output_norm: get("output_norm.weight", &[d])?, lm_head, layers })
    }
}

/// A weight matrix on the GPU: `rows` × `cols`, in `ty`, repacked.
pub struct GpuMatrix {
    pub ty: TensorType,
    /// The first of its tensor's rows it holds (a vocabulary-sized matrix
    /// may be split in row ranges: see [`GpuMatrix::upload_rows`]).
    pub first_row: usize,
    pub rows: usize,
    pub cols: usize,
    /// Quants (or f16 pairs, or f32 bits), block after block.
    pub quants: wgpu::Buffer,
    /// Per-block constants (see `nibbles::constants_per_block`; Q8_0's d); a
    /// placeholder for F16/F32.
    pub scales: wgpu::Buffer,
}

impl GpuMatrix {
    /// Uploads `parts` stacked row-wise (q|k|v, gate|up): one matrix, one
    /// dispatch. Parts of different types (a K-quant file's q and k beside a
    /// v in more bits) are stacked as F16, which every type converts to
    /// closely; the fusion saves more than the wider reads cost.
    pub fn upload(device: &wgpu::Device, parts: &[TensorRef]) -> Result<Self, WeightsError> {
        let first = parts[0];
        if parts.iter().any(|p| p.cols != first.cols) {
            let names: Vec<&str> = parts.iter().map(|p| p.name).collect();
            return Err(WeightsError::MixedWidths(names.join(", ")));
        }
        let ty = if parts.iter().all(|p| p.ty == first.ty) { first.ty } else { TensorType::F16 };
        let (mut quants, mut scales) = (Vec::new(), Vec::new());
        for part in parts {
            if part.ty == ty {
                repack(ty, part.bytes, &mut quants, &mut scales);
            } else {
                repack(ty, &quantize(ty, &part.to_f32()), &mut quants, &mut scales);
            }
        }
        if scales.is_empty() {
            scales.push(0.0);
        }
        let label = first.name;
        Ok(Self {
            ty,
            first_row: 0,
            rows: parts.iter().map(|p| p.rows).sum(),
            cols: first.cols,
            quants: storage(device, label, bytemuck::cast_slice(&quants)),
            scales: storage(device, label, bytemuck::cast_slice(&scales)),
        })
    }
}

impl GpuMatrix {
    /// Uploads `tensor` in row ranges whose buffers each fit in
    /// `max_binding` bytes (a GPU binds at most that much of one buffer:
    /// 128 MiB on lavapipe, less than a 262k-token vocabulary's embedding).
    pub fn upload_rows(device: &wgpu::Device, tensor: TensorRef, max_binding: u64) -> Result<Vec<Self>, WeightsError> {
        let row_bytes = tensor.bytes.len() / tensor.rows;
        let (mut quants, mut scales) = (Vec::new(), Vec::new());
        repack(tensor.ty, &tensor.bytes[..row_bytes], &mut quants, &mut scales);
        let gpu_row_bytes = (quants.len().max(scales.len()) * 4) as u64;
        let rows_per_part = ((max_binding / gpu_row_bytes) as usize).clamp(1, tensor.rows);
        (0..tensor.rows)
            .step_by(rows_per_part)
            .map(|first| {
                let rows = rows_per_part.min(tensor.rows - first);
                let part = TensorRef { rows, bytes: &tensor.bytes[first * row_bytes..(first + rows) * row_bytes], ..tensor };
                Ok(Self { first_row: first, ..Self::upload(device, &[part])? })
            })
            .collect()
    }
}

/// A read-only storage buffer holding `bytes`.
pub fn storage(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
    })
}

fn words(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes.chunks_exact(4).map(|w| u32::from_le_bytes(w.try_into().unwrap()))
}

/// GGUF blocks → the kernels' layout (see `shaders/quant/*.wgsl`): raw
/// words for F32 and F16, Q8_0's bytes apart from its scales, and every
/// other type through its decoded 32-weight blocks.
fn repack(ty: TensorType, bytes: &[u8], quants: &mut Vec<u32>, scales: &mut Vec<f32>) {
    match ty {
        TensorType::F32 | TensorType::F16 => quants.extend(words(bytes)),
        TensorType::Q8_0 => {
            for block in bytes.chunks_exact(34) {
                scales.push(f16::from_le_bytes([block[0], block[1]]).to_f32());
                quants.extend(words(&block[2..34]));
            }
        }
        _ => nibbles::pack(ty, &nibbles::decode(ty, bytes), quants, scales),
    }
}
