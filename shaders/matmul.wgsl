// out[t, off + r] (+)= sum_k W[r, k] * x[t, k] for a quantized W. One
// invocation per (row, 8 tokens): each weight block is dequantized once and
// applied to up to 8 tokens, with no barriers — the shape CPU adapters
// (lavapipe) run best. The quant include before this file defines
// `block_vec4`. Mode 1 adds into `out` (the residual stream); mode 2 treats W
// as [gate; up] stacked (2n rows) and writes silu(gate) * up.

struct Params {
    k: u32,          // input width (a multiple of 32)
    n: u32,          // output rows
    tokens: u32,
    x_stride: u32,
    out_stride: u32,
    out_offset: u32,
    mode: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> wq: array<u32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const GROUP: u32 = 8u;

/// Row `row` against tokens t0..t0+count, into `acc`.
fn rows_dot(row: u32, t0: u32, count: u32) -> array<f32, 8> {
    var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let blocks = p.k / 32u;
    let stride = p.x_stride / 4u;
    for (var b = 0u; b < blocks; b++) {
        for (var i = 0u; i < 8u; i++) {
            let w = block_vec4(row * blocks + b, i);
            let xi = t0 * stride + 8u * b + i;
            for (var t = 0u; t < count; t++) {
                acc[t] += dot(w, x[xi + t * stride]);
            }
        }
    }
    return acc;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    let t0 = gid.y * GROUP;
    if (row >= p.n || t0 >= p.tokens) {
        return;
    }
    let count = min(GROUP, p.tokens - t0);
    let acc = rows_dot(row, t0, count);
    var up = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    if (p.mode == 2u) {
        up = rows_dot(row + p.n, t0, count);
    }
    for (var t = 0u; t < count; t++) {
        let o = (t0 + t) * p.out_stride + p.out_offset + row;
        if (p.mode == 2u) {
            out[o] = acc[t] / (1.0 + exp(-acc[t])) * up[t];
        } else if (p.mode == 1u) {
            out[o] = out[o] + acc[t];
        } else {
            out[o] = acc[t];
        }
    }
}
