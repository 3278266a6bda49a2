// Q4_1 weights: the nibbles of `q4_nibbles.wgsl` and the pair (d, m) per block
// in `ws`. weight = d * q + m.
#include "quant/q4_nibbles.wgsl"

struct Q4Scale {
    d: f32,
    m: f32,
}

fn q4_scale(b: u32) -> Q4Scale {
    return Q4Scale(ws[2u * b], ws[2u * b + 1u]);
}

fn q4_weight(s: Q4Scale, q: f32) -> f32 {
    return s.d * q + s.m;
}

fn q4_weights(s: Q4Scale, q: vec4<f32>) -> vec4<f32> {
    return s.d * q + s.m;
}

fn q4_dot(s: Q4Scale, acc: f32, xsum: f32) -> f32 {
    return s.d * acc + s.m * xsum;
}
