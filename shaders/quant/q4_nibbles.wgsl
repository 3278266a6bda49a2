// The 4-bit layout Q4_0 and Q4_1 share, repacked at load: per 32-weight block,
// 4 words of nibbles in `wq` (byte j holds weight j in its low nibble, weight
// j+16 in its high one). The including type file says what a nibble means:
// `Q4Scale` and `q4_scale(b)` (the block's constants in `ws`), `q4_weight(s, q)`
// (one weight from its nibble q), `q4_weights(s, q)` (four at once) and
// `q4_dot(s, acc, xsum)` (a block's dot product from acc = sum q * x and
// xsum = sum x).
const WORDS_PER_BLOCK: u32 = 4u;

fn weight_at(b: u32, i: u32) -> f32 {
    let byte = (wq[4u * b + (i % 16u) / 4u] >> (8u * (i % 4u))) & 0xffu;
    let q = select(byte & 0xfu, byte >> 4u, i >= 16u);
    return q4_weight(q4_scale(b), f32(q));
}

fn dequant_block(b: u32) -> array<f32, 32> {
    var w: array<f32, 32>;
    let s = q4_scale(b);
    for (var i = 0u; i < 4u; i++) {
        let word = wq[4u * b + i];
        for (var k = 0u; k < 4u; k++) {
            let byte = (word >> (8u * k)) & 0xffu;
            w[4u * i + k] = q4_weight(s, f32(byte & 0xfu));
            w[4u * i + k + 16u] = q4_weight(s, f32(byte >> 4u));
        }
    }
    return w;
}

// A block's constants.
alias BlockScale = Q4Scale;

fn block_scale(b: u32) -> BlockScale {
    return q4_scale(b);
}

// Weights 4j … 4j+3 of block b (j < 8), whose constants are `s`: word j % 4's
// low nibbles, or its high ones for j ≥ 4.
fn dequant4(s: BlockScale, b: u32, j: u32) -> vec4<f32> {
    let word = wq[4u * b + j % 4u] >> select(0u, 4u, j >= 4u);
    let q = vec4<f32>(vec4<u32>(word, word >> 8u, word >> 16u, word >> 24u) & vec4<u32>(0xfu));
    return q4_weights(s, q);
}

#ifndef LOADERS_ONLY
// Weight block b times the input block at vec4 `c` of the input row that
// starts at vec4 `row` (a block is 8 vec4s), read through the matrix kernels' `input4`.
fn block_dot(b: u32, row: u32, c: u32) -> f32 {
    let s = q4_scale(b);
    var acc = 0.0;
    var xsum = 0.0;
    for (var w = 0u; w < 4u; w++) {
        let word = wq[4u * b + w];
        let lo = vec4<f32>(vec4<u32>(word, word >> 8u, word >> 16u, word >> 24u) & vec4<u32>(0xfu));
        let hi = vec4<f32>(vec4<u32>(word >> 4u, word >> 12u, word >> 20u, word >> 28u) & vec4<u32>(0xfu));
        let x0 = input4(row, c + w);
        let x1 = input4(row, c + w + 4u);
        acc += dot(lo, x0) + dot(hi, x1);
        xsum += dot(x0 + x1, vec4<f32>(1.0));
    }
    return q4_dot(s, acc, xsum);
}
#endif
