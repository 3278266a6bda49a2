// Q4_0 weights, and Q5_0's with `HIGH_BIT`: the quants of `nibbles.wgsl` and
// the scale d per block in `ws`. weight = d * (q - ZERO), ZERO the middle of
// the quants' range.
#include "quant/nibbles.wgsl"

#ifdef HIGH_BIT
const ZERO: f32 = 16.0;
#else
const ZERO: f32 = 8.0;
#endif

struct NibbleScale {
    d: f32,
}

fn nibble_scale(b: u32) -> NibbleScale {
    return NibbleScale(ws[b]);
}

fn nibble_weights(s: NibbleScale, q: vec4<f32>, j: u32) -> vec4<f32> {
    return s.d * (q - ZERO);
}

fn nibble_weight(s: NibbleScale, q: f32, i: u32) -> f32 {
    return s.d * (q - ZERO);
}

fn nibble_dot(s: NibbleScale, acc_lo: f32, sum_lo: f32, acc_hi: f32, sum_hi: f32) -> f32 {
    return s.d * (acc_lo + acc_hi - ZERO * (sum_lo + sum_hi));
}
