//! The 32-weight block every 4-bit-and-up type decodes to: each weight's
//! quant (its high bits included) and two constants that make it a weight.
//! The plain-Rust reference dequantizes through it, and the GPU layout
//! (`shaders/quant/nibbles.wgsl`) is packed from it, so both read one decoding.

use half::f16;

use super::{BLOCK, TensorType, kquants};

/// One block of a nibble type (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NibbleBlock {
    /// Weight i's quant: 4 bits, 5 (Q5_*) or 6 (Q6_K).
    pub q: [u8; BLOCK],
    /// The type's constants: d (Q4_0, Q5_0); d and m (Q4_1, Q5_1, and the
    /// K-quants' sub-block d·scale and −dmin·min); or the scales of weights
    /// 0–15 and 16–31 (Q6_K).
    pub c: [f32; 2],
}

impl NibbleBlock {
    /// Weight i, computed as GGML's reference dequantizer does (same operations, same order).
    pub fn weight(&self, ty: TensorType, i: usize) -> f32 {
        let q = self.q[i] as f32;
        match ty {
            TensorType::Q4_0 => self.c[0] * (q - 8.0),
            TensorType::Q5_0 => self.c[0] * (q - 16.0),
            TensorType::Q6_K => self.c[i / 16] * (q - 32.0),
            _ => self.c[0] * q + self.c[1],
        }
    }

    /// The 16 bytes of low nibbles: byte k holds weight k, then weight k + 16.
    pub fn nibbles(&self) -> [u8; 16] {
        std::array::from_fn(|k| (self.q[k] & 0xf) | (self.q[k + 16] & 0xf) << 4)
    }

    /// Bits 4 and up of every quant, `bits` per weight, weight 0 lowest.
    pub fn high_bits(&self, bits: u32) -> u64 {
        self.q.iter().enumerate().fold(0, |acc, (i, &q)| acc | (((q >> 4) as u64) << (bits as usize * i)))
    }
}

/// High bits per quant in the GPU layout: 0, 1 (Q5_*) or 2 (Q6_K).
pub fn high_bits_per_weight(ty: TensorType) -> u32 {
    match ty {
        TensorType::Q5_0 | TensorType::Q5_1 | TensorType::Q5_K => 1,
        TensorType::Q6_K => 2,
        _ => 0,
    }
}

/// Constants per block in the GPU layout: 1 (Q4_0, Q5_0) or 2.
pub fn constants_per_block(ty: TensorType) -> usize {
    if matches!(ty, TensorType::Q4_0 | TensorType::Q5_0) { 1 } else { 2 }
}

pub(super) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// A legacy block's quants from its 16 nibble bytes and, for Q5_*, its high-bit word.
fn legacy_quants(qs: &[u8], qh: u32) -> [u8; BLOCK] {
    std::array::from_fn(|i| {
        let nibble = if i < 16 { qs[i] & 0xf } else { qs[i - 16] >> 4 };
        nibble | (((qh >> i) & 1) as u8) << 4
    })
}

/// The blocks of `bytes` of nibble type `ty`, in weight order.
pub fn decode(ty: TensorType, bytes: &[u8]) -> Vec<NibbleBlock> {
    let (_, block_bytes) = ty.block_layout();
    let mut blocks = Vec::with_capacity(bytes.len() / block_bytes * ty.block_layout().0 / BLOCK);
    for b in bytes.chunks_exact(block_bytes) {
        match ty {
            TensorType::Q4_0 => blocks.push(NibbleBlock { q: legacy_quants(&b[2..18], 0), c: [f16_at(b, 0), 0.0] }),
            TensorType::Q4_1 => blocks.push(NibbleBlock { q: legacy_quants(&b[4..20], 0), c: [f16_at(b, 0), f16_at(b, 2)] }),
            TensorType::Q5_0 => blocks.push(NibbleBlock { q: legacy_quants(&b[6..22], u32_at(b, 2)), c: [f16_at(b, 0), 0.0] }),
            TensorType::Q5_1 => blocks.push(NibbleBlock { q: legacy_quants(&b[8..24], u32_at(b, 4)), c: [f16_at(b, 0), f16_at(b, 2)] }),
            TensorType::Q4_K | TensorType::Q5_K => blocks.extend(kquants::decode_q45_k(ty, b)),
            TensorType::Q6_K => blocks.extend(kquants::decode_q6_k(b)),
            TensorType::F32 | TensorType::F16 | TensorType::Q8_0 => unreachable!("{ty:?} is not a nibble type"),
        }
    }
    blocks
}

/// Appends blocks to the GPU layout: per block the nibble words then the
/// high-bit words in `quants`, the constants in `scales`.
pub fn pack(ty: TensorType, blocks: &[NibbleBlock], quants: &mut Vec<u32>, scales: &mut Vec<f32>) {
    let bits = high_bits_per_weight(ty);
    for block in blocks {
        quants.extend(block.nibbles().chunks_exact(4).map(|w| u32::from_le_bytes(w.try_into().unwrap())));
        let high = block.high_bits(bits);
        quants.extend((0..bits).map(|word| (high >> (32 * word)) as u32));
        scales.extend(&block.c[..constants_per_block(ty)]);
    }
}

/// Encodes blocks of 32 values as a legacy type (Q4_0, Q4_1, Q5_0, Q5_1),
/// rounding as GGML's reference quantizer does.
pub fn encode_legacy(ty: TensorType, values: &[f32], out: &mut Vec<u8>) {
    let levels = if matches!(ty, TensorType::Q4_0 | TensorType::Q4_1) { 16.0 } else { 32.0 };
    for block in values.chunks_exact(BLOCK) {
        let (d, m, zero) = match ty {
            // The value of largest magnitude maps to the lowest quant.
            TensorType::Q4_0 | TensorType::Q5_0 => {
                let max = block.iter().copied().fold(0.0f32, |a, v| if v.abs() > a.abs() { v } else { a });
                (max / -(levels / 2.0), 0.0, levels / 2.0)
            }
            _ => {
                let min = block.iter().copied().fold(f32::INFINITY, f32::min);
                let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                ((max - min) / (levels - 1.0), min, 0.0)
            }
        };
        let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q: [u8; BLOCK] = std::array::from_fn(|i| (((block[i] - m) * inv + zero + 0.5) as i32).clamp(0, levels as i32 - 1) as u8);
        let block = NibbleBlock { q, c: [0.0; 2] };
        out.extend(f16::from_f32(d).to_le_bytes());
        if matches!(ty, TensorType::Q4_1 | TensorType::Q5_1) {
            out.extend(f16::from_f32(m).to_le_bytes());
        }
        if matches!(ty, TensorType::Q5_0 | TensorType::Q5_1) {
            out.extend((block.high_bits(1) as u32).to_le_bytes());
        }
        out.extend(block.nibbles());
    }
}
