// F32 weights as raw bits in `wq`. `ws` is unused; the `_ = ws[0]` lines keep
// its binding, so every weight type shares one bind-group layout.
const WORDS_PER_BLOCK: u32 = 32u;

fn weight_at(b: u32, i: u32) -> f32 {
    _ = ws[0];
    return bitcast<f32>(wq[32u * b + i]);
}

fn dequant_block(b: u32) -> array<f32, 32> {
    _ = ws[0];
    var w: array<f32, 32>;
    for (var i = 0u; i < 32u; i++) {
        w[i] = bitcast<f32>(wq[32u * b + i]);
    }
    return w;
}

#include "quant/unscaled.wgsl"

// Weights 4j … 4j+3 of block b (j < 8), whose constants are `s`.
fn dequant4(s: BlockScale, b: u32, j: u32) -> vec4<f32> {
    let o = 32u * b + 4u * j;
    return bitcast<vec4<f32>>(vec4<u32>(wq[o], wq[o + 1u], wq[o + 2u], wq[o + 3u]));
}

#ifndef LOADERS_ONLY
// Weight block b times the input block at vec4 `c` of the input row that
// starts at vec4 `row` (a block is 8 vec4s), read through the matrix kernels' `input4`.
fn block_dot(b: u32, row: u32, c: u32) -> f32 {
    _ = ws[0];
    var acc = 0.0;
    for (var w = 0u; w < 8u; w++) {
        let q = vec4<f32>(bitcast<f32>(wq[32u * b + 4u * w]), bitcast<f32>(wq[32u * b + 4u * w + 1u]), bitcast<f32>(wq[32u * b + 4u * w + 2u]), bitcast<f32>(wq[32u * b + 4u * w + 3u]));
        acc += dot(q, input4(row, c + w));
    }
    return acc;
}
#endif
