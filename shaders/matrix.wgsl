// The matrix kernels' parameters, bindings, input loaders, weight loaders and
// epilogues (included by every `matmul*.wgsl` and `matvec*.wgsl`).
// Mode 0 stores, mode 1 adds into `out` (the residual stream), mode 2 treats
// W as [gate; up] stacked (2n rows) and writes silu(gate) * up (mode 4:
// gelu(gate) * up, GeGLU with GELU's tanh form, as Gemma), mode 3 is
// q|k|v with RoPE and the paged KV write folded in (`emit_qkv_pair`: the
// kernels that hold both rows of a pair in one invocation or workgroup).
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
    // Mode 3: the q and k|v row counts, the head size, the leading dims of a
    // head that rotate, RoPE's base, and whether the KV cache holds f16.
    q_rows: u32,
    kv_rows: u32,
    head_dim: u32,
    rope_dim: u32,
    freq_base: f32,
    kv_f16: u32,
    _pad: u32,
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

// Whether W is [gate; up] stacked (modes 2 and 4).
fn gated() -> bool {
    return p.mode == 2u || p.mode == 4u;
}

// Writes output `o` as the mode says; in SwiGLU mode `sum` is the gate's
// and `up` the up row's (ignored otherwise). `scale` is the token's
// `norm_scale`.
fn emit(o: u32, scale: f32, sum: f32, up: f32) {
    let s = scale * sum;
    if (p.mode == 2u) {
        out[o] = s / (1.0 + exp(-s)) * (scale * up);
    } else if (p.mode == 4u) {
        out[o] = 0.5 * s * (1.0 + tanh(0.7978845608 * (s + 0.044715 * s * s * s))) * (scale * up);
    } else if (p.mode == 1u) {
        out[o] = out[o] + s;
    } else {
        out[o] = s;
    }
}

#ifdef QKV
#include "kv.wgsl"

// Mode 3 only (the q|k|v variants, `QKV`): the tokens' positions and KV
// slots, and the layer's KV cache as words (f32, or f16 pairs). The other
// matrices bind none of them: wgpu's cost to record a dispatch grows with
// the buffers bound.
@group(0) @binding(6) var<storage, read> tokens: array<Token>;
@group(0) @binding(7) var<storage, read_write> k_cache: array<u32>;
@group(0) @binding(8) var<storage, read_write> v_cache: array<u32>;

// Mode 3: outputs `row` (even) and `row + 1` of token `t` are a pair, `a`
// and `b`: rotated by RoPE at the token's position where they are q or k dims
// that rotate (adjacent pairs, GGUF llama), then stored; k and v pairs also
// go to the token's slot of the KV cache (one word of f16s, or two f32s).
fn emit_qkv_pair(t: u32, row: u32, a: f32, b: f32) {
    let token = tokens[t];
    var lo = a;
    var hi = b;
    let d = row % p.head_dim;
    if (row < p.q_rows + p.kv_rows && d < p.rope_dim) {
        let theta = f32(token.position) * pow(p.freq_base, -2.0 * f32(d / 2u) / f32(p.rope_dim));
        let c = cos(theta);
        let s = sin(theta);
        lo = a * c - b * s;
        hi = a * s + b * c;
    }
    let o = t * p.out_stride + p.out_offset + row;
    out[o] = lo;
    out[o + 1u] = hi;
    if (row < p.q_rows) {
        return;
    }
    let is_v = row >= p.q_rows + p.kv_rows;
    let e = token.kv_slot * p.kv_rows + row - select(p.q_rows, p.q_rows + p.kv_rows, is_v);
    if (p.kv_f16 == 1u) {
        let word = pack2x16float(vec2<f32>(lo, hi));
        if (is_v) {
            v_cache[e / 2u] = word;
        } else {
            k_cache[e / 2u] = word;
        }
    } else if (is_v) {
        v_cache[e] = bitcast<u32>(lo);
        v_cache[e + 1u] = bitcast<u32>(hi);
    } else {
        k_cache[e] = bitcast<u32>(lo);
        k_cache[e + 1u] = bitcast<u32>(hi);
    }
}
#else
// Never called: only q|k|v runs in mode 3.
fn emit_qkv_pair(t: u32, row: u32, a: f32, b: f32) {}
#endif
