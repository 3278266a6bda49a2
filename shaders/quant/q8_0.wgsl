// Q8_0 weights, repacked at load: per 32-weight block, 8 words of signed bytes
// in `wq` and the scale d in `ws`. weight = d * q.
const WORDS_PER_BLOCK: u32 = 8u;

fn weight_at(b: u32, i: u32) -> f32 {
    return ws[b] * f32(extractBits(i32(wq[8u * b + i / 4u]), 8u * (i % 4u), 8u));
}

fn dequant_block(b: u32) -> array<f32, 32> {
    var w: array<f32, 32>;
    let d = ws[b];
    for (var i = 0u; i < 8u; i++) {
        let word = i32(wq[8u * b + i]);
        for (var k = 0u; k < 4u; k++) {
            w[4u * i + k] = d * f32(extractBits(word, 8u * k, 8u));
        }
    }
    return w;
}

// A block's constants: its scale d.
alias BlockScale = f32;

fn block_scale(b: u32) -> BlockScale {
    return ws[b];
}

// Weights 4j … 4j+3 of block b (j < 8), whose constants are `s`.
fn dequant4(s: BlockScale, b: u32, j: u32) -> vec4<f32> {
    let word = i32(wq[8u * b + j]);
    let q = vec4<f32>(f32(extractBits(word, 0u, 8u)), f32(extractBits(word, 8u, 8u)), f32(extractBits(word, 16u, 8u)), f32(extractBits(word, 24u, 8u)));
    return s * q;
}

#ifndef LOADERS_ONLY
// Weight block b times the input block at vec4 `c` of the input row that
// starts at vec4 `row` (a block is 8 vec4s), read through the matrix kernels' `input4`.
fn block_dot(b: u32, row: u32, c: u32) -> f32 {
    var acc = 0.0;
    for (var w = 0u; w < 8u; w++) {
        let word = i32(wq[8u * b + w]);
        let q = vec4<f32>(f32(extractBits(word, 0u, 8u)), f32(extractBits(word, 8u, 8u)), f32(extractBits(word, 16u, 8u)), f32(extractBits(word, 24u, 8u)));
        acc += dot(q, input4(row, c + w));
    }
    return ws[b] * acc;
}
#endif
