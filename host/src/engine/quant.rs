//! The GGML tensor types Crust loads, their block layouts, and plain-Rust
//! encode/decode — the reference the GPU kernels are checked against.

use half::f16;

/// Weights per quantization block.
pub const BLOCK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q8_0,
}

impl TensorType {
    /// The GGML type id as stored in GGUF, or `None` for types Crust cannot load.
    pub fn from_ggml(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            _ => return None,
        })
    }

    pub fn ggml_id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 8,
        }
    }

    /// Elements per block and bytes per block.
    pub fn block_layout(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_0 => (BLOCK, 18),
            Self::Q4_1 => (BLOCK, 20),
            Self::Q8_0 => (BLOCK, 34),
        }
    }

    /// Bytes taken by `elements` values, or `None` if they do not fill whole blocks.
    pub fn byte_size(self, elements: usize) -> Option<usize> {
        let (per_block, bytes) = self.block_layout();
        elements.is_multiple_of(per_block).then(|| elements / per_block * bytes)
    }

    pub fn is_quantized(self) -> bool {
        !matches!(self, Self::F32 | Self::F16)
    }
}

/// GGML's name for a type id, for error messages.
pub fn ggml_type_name(id: u32) -> &'static str {
    match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        30 => "BF16",
        _ => "unknown",
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Decodes `bytes` of type `ty` into f32 values.
pub fn dequantize(ty: TensorType, bytes: &[u8]) -> Vec<f32> {
    let (per_block, block_bytes) = ty.block_layout();
    let mut out = Vec::with_capacity(bytes.len() / block_bytes * per_block);
    for block in bytes.chunks_exact(block_bytes) {
        match ty {
            TensorType::F32 => out.push(f32::from_le_bytes(block.try_into().unwrap())),
            TensorType::F16 => out.push(f16_at(block, 0)),
            TensorType::Q4_0 => {
                let d = f16_at(block, 0);
                let qs = &block[2..18];
                out.extend(qs.iter().map(|q| d * ((q & 0x0f) as f32 - 8.0)));
                out.extend(qs.iter().map(|q| d * ((q >> 4) as f32 - 8.0)));
            }
            TensorType::Q4_1 => {
                let (d, m) = (f16_at(block, 0), f16_at(block, 2));
                let qs = &block[4..20];
                out.extend(qs.iter().map(|q| d * (q & 0x0f) as f32 + m));
                out.extend(qs.iter().map(|q| d * (q >> 4) as f32 + m));
            }
            TensorType::Q8_0 => {
                let d = f16_at(block, 0);
                out.extend(block[2..34].iter().map(|&q| d * (q as i8) as f32));
            }
        }
    }
    out
}

/// Encodes f32 values as `ty` (the length must fill whole blocks), as GGML does.
pub fn quantize(ty: TensorType, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    match ty {
        TensorType::F32 => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
        TensorType::F16 => values.iter().for_each(|v| out.extend(f16::from_f32(*v).to_le_bytes())),
        TensorType::Q4_0 => {
            for block in values.chunks_exact(BLOCK) {
                // The value of largest magnitude maps to -8.
                let max = block.iter().copied().fold(0.0f32, |a, v| if v.abs() > a.abs() { v } else { a });
                let d = max / -8.0;
                let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16::from_f32(d).to_le_bytes());
                let q = |v: f32| ((v * inv + 8.5) as i32).clamp(0, 15) as u8;
                for j in 0..16 {
                    out.push(q(block[j]) | (q(block[j + 16]) << 4));
                }
            }
        }
        TensorType::Q4_1 => {
            for block in values.chunks_exact(BLOCK) {
                let min = block.iter().copied().fold(f32::INFINITY, f32::min);
                let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16::from_f32(d).to_le_bytes());
                out.extend(f16::from_f32(min).to_le_bytes());
                let q = |v: f32| (((v - min) * inv + 0.5) as i32).clamp(0, 15) as u8;
                for j in 0..16 {
                    out.push(q(block[j]) | (q(block[j + 16]) << 4));
                }
            }
        }
        TensorType::Q8_0 => {
            for block in values.chunks_exact(BLOCK) {
                let amax = block.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16::from_f32(d).to_le_bytes());
                out.extend(block.iter().map(|v| ((v * inv).round() as i32).clamp(-128, 127) as i8 as u8));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_then_dequantize_is_close() {
        let values: Vec<f32> = (0..64).map(|i| ((i * 37 % 64) as f32 - 31.5) / 10.0).collect();
        for (ty, tolerance) in
            [(TensorType::F32, 0.0), (TensorType::F16, 0.002), (TensorType::Q8_0, 0.02), (TensorType::Q4_1, 0.22), (TensorType::Q4_0, 0.45)]
        {
            let back = dequantize(ty, &quantize(ty, &values));
            assert_eq!(back.len(), values.len());
            let err = values.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err <= tolerance, "{ty:?}: max error {err}");
        }
    }
}
