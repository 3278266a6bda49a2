//! GGML's K-quants (Q4_K, Q5_K, Q6_K): super-blocks of 256 weights whose
//! sub-block scales are themselves quantized. Each decodes to eight 32-weight
//! [`NibbleBlock`]s with the sub-block constants worked out in f32 exactly as
//! GGML does (d·scale, dmin·min), so the kernels never see a super-block.

use half::f16;

use super::nibbles::{NibbleBlock, f16_at};
use super::{BLOCK, TensorType};

/// Weights per super-block.
pub const SUPER_BLOCK: usize = 256;

/// Sub-block j's 6-bit scale and min from Q4_K's and Q5_K's 12 packed bytes:
/// j < 4 in the low 6 bits of bytes j and j + 4; j ≥ 4 in byte j + 4's
/// nibbles, with the top 2 bits in the top bits of bytes j − 4 and j.
fn scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 { (s[j] & 63, s[j + 4] & 63) } else { ((s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4, (s[j + 4] >> 4) | (s[j] >> 6) << 4) }
}

/// The inverse of [`scale_min`].
fn pack_scale_min(scales: &[u8; 8], mins: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = scales[j] | (scales[j + 4] >> 4) << 6;
        s[j + 4] = mins[j] | (mins[j + 4] >> 4) << 6;
        s[j + 8] = (scales[j + 4] & 0xf) | (mins[j + 4] & 0xf) << 4;
    }
    s
}

/// Q4_K (d, dmin, scales[12], qs[128]) or Q5_K (… then qh[32] before qs):
/// sub-block j's weight l is nibble `j % 2` of qs[32·(j/2) + l], plus bit j of qh[l] · 16.
pub fn decode_q45_k(ty: TensorType, b: &[u8]) -> [NibbleBlock; 8] {
    let (d, dmin, scales) = (f16_at(b, 0), f16_at(b, 2), &b[4..16]);
    let (qh, qs) = if ty == TensorType::Q5_K { (Some(&b[16..48]), &b[48..176]) } else { (None, &b[16..144]) };
    std::array::from_fn(|j| {
        let (sc, m) = scale_min(j, scales);
        let q = std::array::from_fn(|l| {
            let nibble = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xf;
            nibble | qh.map_or(0, |qh| ((qh[l] >> j) & 1) << 4)
        });
        NibbleBlock { q, c: [d * sc as f32, -(dmin * m as f32)] }
    })
}

/// Q6_K (ql[128], qh[64], scales[16] as i8, d): two halves of 128 weights;
/// block r of half n takes nibble r / 2 of ql[64n + 32·(r % 2) + l] and bits
/// 2r of qh[32n + l], and sub-block scales 8n + 2r and 8n + 2r + 1.
pub fn decode_q6_k(b: &[u8]) -> [NibbleBlock; 8] {
    let (ql, qh, scales, d) = (&b[0..128], &b[128..192], &b[192..208], f16_at(b, 208));
    std::array::from_fn(|k| {
        let (n, r) = (k / 4, k % 4);
        let q = std::array::from_fn(|l| {
            let nibble = (ql[64 * n + 32 * (r % 2) + l] >> (4 * (r / 2))) & 0xf;
            nibble | ((qh[32 * n + l] >> (2 * r)) & 3) << 4
        });
        let scale = |i: usize| d * (scales[8 * n + 2 * r + i] as i8) as f32;
        NibbleBlock { q, c: [scale(0), scale(1)] }
    })
}

/// Encodes 256 values as Q4_K or Q5_K: per sub-block an affine range whose
/// scale and min are quantized to 6 bits against the super-block's d and dmin.
pub fn encode_q45_k(ty: TensorType, values: &[f32], out: &mut Vec<u8>) {
    let top = if ty == TensorType::Q5_K { 31.0 } else { 15.0 };
    let subs: Vec<&[f32]> = values.chunks_exact(BLOCK).collect();
    // Each sub-block spans [min ≤ 0, max]: weight = scale·q − min_magnitude.
    let ranges: Vec<(f32, f32)> = subs
        .iter()
        .map(|s| {
            let min = s.iter().copied().fold(0.0f32, f32::min);
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            ((max - min) / top, -min)
        })
        .collect();
    let d = f16::from_f32(ranges.iter().map(|r| r.0).fold(0.0, f32::max) / 63.0);
    let dmin = f16::from_f32(ranges.iter().map(|r| r.1).fold(0.0, f32::max) / 63.0);
    let six_bits = |v: f32, unit: f16| if unit.to_f32() > 0.0 { (v / unit.to_f32()).round().clamp(0.0, 63.0) as u8 } else { 0 };
    let scales: [u8; 8] = std::array::from_fn(|j| six_bits(ranges[j].0, d));
    let mins: [u8; 8] = std::array::from_fn(|j| six_bits(ranges[j].1, dmin));
    let quants: Vec<[u8; BLOCK]> = (0..8)
        .map(|j| {
            let (scale, min) = (d.to_f32() * scales[j] as f32, dmin.to_f32() * mins[j] as f32);
            std::array::from_fn(|l| if scale > 0.0 { ((subs[j][l] + min) / scale).round().clamp(0.0, top) as u8 } else { 0 })
        })
        .collect();
    out.extend(d.to_le_bytes());
    out.extend(dmin.to_le_bytes());
    out.extend(pack_scale_min(&scales, &mins));
    if ty == TensorType::Q5_K {
        out.extend((0..BLOCK).map(|l| (0..8).fold(0u8, |acc, j| acc | ((quants[j][l] >> 4) & 1) << j)));
    }
    for pair in quants.chunks_exact(2) {
        out.extend((0..BLOCK).map(|l| (pair[0][l] & 0xf) | (pair[1][l] & 0xf) << 4));
    }
}

/// Encodes 256 values as Q6_K: per 16 weights a signed 8-bit scale against d,
/// quants −32 … 31 stored with an offset of 32.
pub fn encode_q6_k(values: &[f32], out: &mut Vec<u8>) {
    let amax: Vec<f32> = values.chunks_exact(16).map(|s| s.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 31.0).collect();
    let d = f16::from_f32(amax.iter().copied().fold(0.0, f32::max) / 127.0);
    let scales: Vec<i8> = amax.iter().map(|&a| if d.to_f32() > 0.0 { (a / d.to_f32()).round().clamp(-128.0, 127.0) as i8 } else { 0 }).collect();
    let q: Vec<u8> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let scale = d.to_f32() * scales[i / 16] as f32;
            (if scale != 0.0 { (v / scale).round().clamp(-32.0, 31.0) } else { 0.0 } as i32 + 32) as u8
        })
        .collect();
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for n in 0..2 {
        for r in 0..4 {
            for l in 0..BLOCK {
                let v = q[128 * n + 32 * r + l];
                ql[64 * n + 32 * (r % 2) + l] |= (v & 0xf) << (4 * (r / 2));
                qh[32 * n + l] |= (v >> 4) << (2 * r);
            }
        }
    }
    out.extend(ql);
    out.extend(qh);
    out.extend(scales.iter().map(|&s| s as u8));
    out.extend(d.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_scales_and_mins_unpack_to_themselves() {
        let scales = [0, 63, 17, 32, 5, 48, 63, 1];
        let mins = [63, 0, 9, 40, 33, 2, 16, 63];
        let packed = pack_scale_min(&scales, &mins);
        for j in 0..8 {
            assert_eq!(scale_min(j, &packed), (scales[j], mins[j]), "sub-block {j}");
        }
    }
}
