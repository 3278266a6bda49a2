// The matrix kernels' parameters, bindings, input loaders and weight loaders
// (included by every `matmul*.wgsl` and `matvec*.wgsl`).
// Mode 0 stores, mode 1 adds into `out` (the residual stream), mode 2 treats
// W as [gate; up] stacked (2n rows) and writes silu(gate) * up.
// With `norm` = 1 the input is RMS-normalized on the way in (the layer's norm
// folded into the matrix that reads it, one dispatch fewer): each input is
// read times the norm's `gain`, and the finished sums of a token are scaled
// by its 1/rms, since W · (x ∘ g / rms) = (W · (x ∘ g)) / rms.

struct Params {
    k: u32,          // input width (a multiple of 32)
    n: u32,          // output rows
    tokens: u32,
    x_stride: u32,
    out_stride: u32,
    out_offset: u32,
    mode: u32,
    norm: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> wq: array<u32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> gain: array<vec4<f32>>;

#include "quant.wgsl"

// The norm's gain for the input's vec4 `c`: 1 when the input is not
// normalized (a select, not a branch, in the kernels' inner loops).
fn gain4(c: u32) -> vec4<f32> {
    return select(vec4<f32>(1.0), gain[c], p.norm == 1u);
}

// The input row that starts at vec4 `row`, its vec4 `c`: times the norm's
// gain when the input is normalized.
fn input4(row: u32, c: u32) -> vec4<f32> {
    return x[row + c] * gain4(c);
}

// 1/rms of a token's input from the sum of its squares.
fn rms_scale(squares: f32) -> f32 {
    return inverseSqrt(squares / f32(p.k) + p.eps);
}

// What a token's sums are scaled by: 1/rms of its input row (starting at
// vec4 `row`) when the input is normalized, else 1.
fn norm_scale(row: u32) -> f32 {
    if (p.norm == 0u) {
        return 1.0;
    }
    var squares = 0.0;
    for (var c = 0u; c < p.k / 4u; c++) {
        let v = x[row + c];
        squares += dot(v, v);
    }
    return rms_scale(squares);
}

// Writes output `o` as the mode says; in SwiGLU mode `sum` is the gate's
// and `up` the up row's (ignored otherwise). `scale` is the token's
// `norm_scale`.
fn emit(o: u32, scale: f32, sum: f32, up: f32) {
    let s = scale * sum;
    if (p.mode == 2u) {
        out[o] = s / (1.0 + exp(-s)) * (scale * up);
    } else if (p.mode == 1u) {
        out[o] = out[o] + s;
    } else {
        out[o] = s;
    }
}
