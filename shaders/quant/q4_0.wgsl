// Q4_0 weights: the nibbles of `q4_nibbles.wgsl` and the scale d per block in
// `ws`. weight = d * (q - 8).
#include "quant/q4_nibbles.wgsl"

struct Q4Scale {
    d: f32,
}

fn q4_scale(b: u32) -> Q4Scale {
    return Q4Scale(ws[b]);
}

fn q4_weight(s: Q4Scale, q: f32) -> f32 {
    return s.d * (q - 8.0);
}

fn q4_weights(s: Q4Scale, q: vec4<f32>) -> vec4<f32> {
    return s.d * (q - 8.0);
}

fn q4_dot(s: Q4Scale, acc: f32, xsum: f32) -> f32 {
    return s.d * (acc - 8.0 * xsum);
}
