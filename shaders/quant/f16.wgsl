// F16 weights, two per word in `wq`. `ws` is unused; the `_ = ws[0]` lines keep
// its binding, so every weight type shares one bind-group layout.
const WORDS_PER_BLOCK: u32 = 16u;

fn weight_at(b: u32, i: u32) -> f32 {
    _ = ws[0];
    let pair = unpack2x16float(wq[16u * b + i / 2u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

fn dequant_block(b: u32) -> array<f32, 32> {
    _ = ws[0];
    var w: array<f32, 32>;
    for (var i = 0u; i < 16u; i++) {
        let pair = unpack2x16float(wq[16u * b + i]);
        w[2u * i] = pair.x;
        w[2u * i + 1u] = pair.y;
    }
    return w;
}

#include "quant/unscaled.wgsl"

// Weights 4j … 4j+3 of block b (j < 8), whose constants are `s`.
fn dequant4(s: BlockScale, b: u32, j: u32) -> vec4<f32> {
    let o = 16u * b + 2u * j;
    return vec4<f32>(unpack2x16float(wq[o]), unpack2x16float(wq[o + 1u]));
}

#ifndef LOADERS_ONLY
// Weight block b times the input block at vec4 `c` of the input row that
// starts at vec4 `row` (a block is 8 vec4s), read through the matrix kernels' `input4`.
fn block_dot(b: u32, row: u32, c: u32) -> f32 {
    _ = ws[0];
    var acc = 0.0;
    for (var w = 0u; w < 8u; w++) {
        let lo = unpack2x16float(wq[16u * b + 2u * w]);
        let hi = unpack2x16float(wq[16u * b + 2u * w + 1u]);
        acc += dot(vec4<f32>(lo, hi), input4(row, c + w));
    }
    return acc;
}
#endif
