// Q4_1 weights, and Q5_1's with `HIGH_BIT` (Q4_K's and Q5_K's too: the host
// works their sub-block constants out at load): the quants of `nibbles.wgsl`
// and the pair (d, m) per block in `ws`. weight = d * q + m.
#include "quant/nibbles.wgsl"

struct NibbleScale {
    d: f32,
    m: f32,
}

fn nibble_scale(b: u32) -> NibbleScale {
    return NibbleScale(ws[2u * b], ws[2u * b + 1u]);
}

fn nibble_weights(s: NibbleScale, q: vec4<f32>, j: u32) -> vec4<f32> {
    return s.d * q + s.m;
}

fn nibble_weight(s: NibbleScale, q: f32, i: u32) -> f32 {
    return s.d * q + s.m;
}

fn nibble_dot(s: NibbleScale, acc_lo: f32, sum_lo: f32, acc_hi: f32, sum_hi: f32) -> f32 {
    return s.d * (acc_lo + acc_hi) + s.m * (sum_lo + sum_hi);
}
