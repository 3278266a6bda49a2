// Q6_K weights: 6-bit quants (`nibbles.wgsl` with `HIGH_2BITS`) and, per
// 32-weight block in `ws`, the scales of weights 0–15 and 16–31 (the host
// works d · sub-block scale out at load). weight = scale * (q - 32).
#define HIGH_2BITS
#include "quant/nibbles.wgsl"

struct NibbleScale {
    lo: f32,
    hi: f32,
}

fn nibble_scale(b: u32) -> NibbleScale {
    return NibbleScale(ws[2u * b], ws[2u * b + 1u]);
}

// Groups j < 4 are weights 0–15.
fn nibble_weights(s: NibbleScale, q: vec4<f32>, j: u32) -> vec4<f32> {
    return select(s.hi, s.lo, j < 4u) * (q - 32.0);
}

fn nibble_weight(s: NibbleScale, q: f32, i: u32) -> f32 {
    return select(s.hi, s.lo, i < 16u) * (q - 32.0);
}

fn nibble_dot(s: NibbleScale, acc_lo: f32, sum_lo: f32, acc_hi: f32, sum_hi: f32) -> f32 {
    return s.lo * (acc_lo - 32.0 * sum_lo) + s.hi * (acc_hi - 32.0 * sum_hi);
}
