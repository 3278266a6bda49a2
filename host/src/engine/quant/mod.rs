//! The GGML tensor types Crust loads, their block layouts, and plain-Rust
//! encode/decode — the reference the GPU kernels are checked against.

mod kquants;
pub mod nibbles;

use half::f16;

pub use kquants::SUPER_BLOCK;

/// Weights per quantization block (a K-quant's sub-block).
pub const BLOCK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum TensorType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4_K,
    Q5_K,
    Q6_K,
}

/// Every type Crust loads, by GGML's names, for error messages.
pub const SUPPORTED: &str = "F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K";

impl TensorType {
    const ALL: [TensorType; 10] =
        [Self::F32, Self::F16, Self::Q4_0, Self::Q4_1, Self::Q5_0, Self::Q5_1, Self::Q8_0, Self::Q4_K, Self::Q5_K, Self::Q6_K];

    /// The GGML type id as stored in GGUF, or `None` for types Crust cannot load.
    pub fn from_ggml(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|ty| ty.ggml_id() == id)
    }

    pub fn ggml_id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q4_K => 12,
            Self::Q5_K => 13,
            Self::Q6_K => 14,
        }
    }

    /// Elements per block and bytes per block.
    pub fn block_layout(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_0 => (BLOCK, 18),
            Self::Q4_1 => (BLOCK, 20),
            Self::Q5_0 => (BLOCK, 22),
            Self::Q5_1 => (BLOCK, 24),
            Self::Q8_0 => (BLOCK, 34),
            Self::Q4_K => (SUPER_BLOCK, 144),
            Self::Q5_K => (SUPER_BLOCK, 176),
            Self::Q6_K => (SUPER_BLOCK, 210),
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

    /// Whether blocks decode to [`nibbles::NibbleBlock`]s (every quantized type but Q8_0).
    pub fn is_nibble_type(self) -> bool {
        self.is_quantized() && self != Self::Q8_0
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
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        _ => "unknown",
    }
}

/// Decodes `bytes` of type `ty` into f32 values, as GGML's reference dequantizer does.
pub fn dequantize(ty: TensorType, bytes: &[u8]) -> Vec<f32> {
    match ty {
        TensorType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
        TensorType::F16 => bytes.chunks_exact(2).map(|b| nibbles::f16_at(b, 0)).collect(),
        TensorType::Q8_0 => bytes
            .chunks_exact(34)
            .flat_map(|block| {
                let d = nibbles::f16_at(block, 0);
                block[2..34].iter().map(move |&q| d * (q as i8) as f32)
            })
            .collect(),
        _ => nibbles::decode(ty, bytes).iter().flat_map(|block| (0..BLOCK).map(|i| block.weight(ty, i))).collect(),
    }
}

/// Encodes f32 values as `ty` (the length must fill whole blocks), as GGML's
/// reference quantizers do (the K-quants with a plain range per sub-block,
/// not GGML's search for the best one: the tests need valid blocks, not the
/// least error).
pub fn quantize(ty: TensorType, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    match ty {
        TensorType::F32 => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
        TensorType::F16 => values.iter().for_each(|v| out.extend(f16::from_f32(*v).to_le_bytes())),
        TensorType::Q4_0 | TensorType::Q4_1 | TensorType::Q5_0 | TensorType::Q5_1 => nibbles::encode_legacy(ty, values, &mut out),
        TensorType::Q8_0 => {
            for block in values.chunks_exact(BLOCK) {
                let amax = block.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16::from_f32(d).to_le_bytes());
                out.extend(block.iter().map(|v| ((v * inv).round() as i32).clamp(-128, 127) as i8 as u8));
            }
        }
        TensorType::Q4_K | TensorType::Q5_K => values.chunks_exact(SUPER_BLOCK).for_each(|s| kquants::encode_q45_k(ty, s, &mut out)),
        TensorType::Q6_K => values.chunks_exact(SUPER_BLOCK).for_each(|s| kquants::encode_q6_k(s, &mut out)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_then_dequantize_is_close() {
        let values: Vec<f32> = (0..512).map(|i| ((i * 37 % 64) as f32 - 31.5) / 10.0).collect();
        let types = [
            (TensorType::F32, 0.0),
            (TensorType::F16, 0.002),
            (TensorType::Q8_0, 0.02),
            (TensorType::Q6_K, 0.06),
            (TensorType::Q5_1, 0.11),
            (TensorType::Q5_K, 0.12),
            (TensorType::Q5_0, 0.22),
            (TensorType::Q4_1, 0.22),
            (TensorType::Q4_K, 0.25),
            (TensorType::Q4_0, 0.45),
        ];
        for (ty, tolerance) in types {
            let back = dequantize(ty, &quantize(ty, &values));
            assert_eq!(back.len(), values.len());
            let err = values.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err <= tolerance, "{ty:?}: max error {err}");
        }
    }
}
