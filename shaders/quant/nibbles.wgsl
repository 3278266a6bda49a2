// The layout every nibble type shares (Q4_0, Q4_1, Q5_0, Q5_1, Q6_K, and
// Q4_K and Q5_K, whose sub-blocks the host repacks into Q4_1's and Q5_1's),
// per 32-weight block in `wq`: 4 words of low nibbles (byte k holds weight k's
// in its low half, weight k+16's in its high one), then the quants' high bits:
// none, one word of one bit each (`HIGH_BIT`: bit i is weight i's), or two
// words of two bits each (`HIGH_2BITS`: weight i's at bit 2(i % 16) of word
// i / 16). The including type file says what a quant means: `NibbleScale` and
// `nibble_scale(b)` (the block's constants in `ws`), `nibble_weights(s, q, j)`
// (weights 4j … 4j+3 from their quants), `nibble_weight(s, q, i)` (weight i)
// and `nibble_dot(s, acc_lo, sum_lo, acc_hi, sum_hi)` (a block's dot product
// from the sums of quant × input and of input over weights 0–15 and 16–31).
#ifdef HIGH_BIT
const WORDS_PER_BLOCK: u32 = 5u;
#else
#ifdef HIGH_2BITS
const WORDS_PER_BLOCK: u32 = 6u;
#else
const WORDS_PER_BLOCK: u32 = 4u;
#endif
#endif

// The high bits of weights 4j … 4j+3 of block b, in place above the nibble.
fn high4(b: u32, j: u32) -> vec4<u32> {
#ifdef HIGH_BIT
    let h = wq[WORDS_PER_BLOCK * b + 4u] >> (4u * j);
    return (vec4<u32>(h, h >> 1u, h >> 2u, h >> 3u) & vec4<u32>(1u)) << vec4<u32>(4u);
#else
#ifdef HIGH_2BITS
    let h = wq[WORDS_PER_BLOCK * b + 4u + j / 4u] >> (8u * (j % 4u));
    return (vec4<u32>(h, h >> 2u, h >> 4u, h >> 6u) & vec4<u32>(3u)) << vec4<u32>(4u);
#else
    return vec4<u32>(0u);
#endif
#endif
}

// The quants of weights 4j … 4j+3 of block b (j < 8): word j % 4's low
// nibbles, or its high ones for j ≥ 4, with their high bits.
fn quants4(b: u32, j: u32) -> vec4<f32> {
    let word = wq[WORDS_PER_BLOCK * b + j % 4u] >> select(0u, 4u, j >= 4u);
    let q = vec4<u32>(word, word >> 8u, word >> 16u, word >> 24u) & vec4<u32>(0xfu);
    return vec4<f32>(q | high4(b, j));
}

fn weight_at(b: u32, i: u32) -> f32 {
    return nibble_weight(nibble_scale(b), quants4(b, i / 4u)[i % 4u], i);
}

// A block's constants.
alias BlockScale = NibbleScale;

fn block_scale(b: u32) -> BlockScale {
    return nibble_scale(b);
}

// Weights 4j … 4j+3 of block b (j < 8), whose constants are `s`.
fn dequant4(s: BlockScale, b: u32, j: u32) -> vec4<f32> {
    return nibble_weights(s, quants4(b, j), j);
}

fn dequant_block(b: u32) -> array<f32, 32> {
    let s = nibble_scale(b);
    var w: array<f32, 32>;
    for (var j = 0u; j < 8u; j++) {
        let v = dequant4(s, b, j);
        w[4u * j] = v.x;
        w[4u * j + 1u] = v.y;
        w[4u * j + 2u] = v.z;
        w[4u * j + 3u] = v.w;
    }
    return w;
}

#ifndef LOADERS_ONLY
// Weight block b times the input block at vec4 `c` of the input row that
// starts at vec4 `row` (a block is 8 vec4s), read through the matrix kernels' `input4`.
fn block_dot(b: u32, row: u32, c: u32) -> f32 {
    let s = nibble_scale(b);
    var acc_lo = 0.0;
    var acc_hi = 0.0;
    var sum_lo = 0.0;
    var sum_hi = 0.0;
    for (var w = 0u; w < 4u; w++) {
        let x0 = input4(row, c + w);
        let x1 = input4(row, c + w + 4u);
        acc_lo += dot(quants4(b, w), x0);
        acc_hi += dot(quants4(b, w + 4u), x1);
        sum_lo += dot(x0, vec4<f32>(1.0));
        sum_hi += dot(x1, vec4<f32>(1.0));
    }
    return nibble_dot(s, acc_lo, sum_lo, acc_hi, sum_hi);
}
#endif
