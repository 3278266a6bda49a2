// Prefill: out (+)= W · x for many tokens. A workgroup takes 64 rows × 8
// tokens: the 8 tokens' slice of x goes through workgroup memory once per
// block, and each weight block is dequantized once for all 8 tokens (8×
// fewer weight reads than one thread per (row, token)). `dequant_block`
// comes from the weight type's loaders; the input's norm (its squares summed
// as the tile is loaded) and the modes as in `matrix.wgsl` (mode 3: the
// invocations of a RoPE pair's rows trade sums through workgroup memory).

#include "matrix.wgsl"

const TILE_T: u32 = 8u;
var<workgroup> xs: array<f32, 256>;
// Each invocation's share of its token's squared inputs (the norm).
var<workgroup> squares: array<f32, 64>;
// Mode 3: each invocation's 8 sums, for the other row of its RoPE pair.
var<workgroup> pair_sums: array<f32, 512>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x * 64u + lid;
    let t0 = wid.y * TILE_T;
    let blocks = p.k / 32u;
    var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    var acc_up = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    var my_squares = 0.0;
    for (var b = 0u; b < blocks; b++) {
        // 8 tokens × 8 vec4s of this block's inputs: one vec4 per invocation.
        let t = t0 + lid / 8u;
        var v = vec4<f32>(0.0);
        if (t < p.tokens) {
            let raw = x[t * p.x_stride / 4u + 8u * b + lid % 8u];
            my_squares += dot(raw, raw);
            v = input4(t * p.x_stride / 4u, 8u * b + lid % 8u);
        }
        let at = 32u * (lid / 8u) + 4u * (lid % 8u);
        xs[at] = v.x;
        xs[at + 1u] = v.y;
        xs[at + 2u] = v.z;
        xs[at + 3u] = v.w;
        workgroupBarrier();
        if (row < p.n) {
            let w = dequant_block(row * blocks + b);
            for (var t = 0u; t < TILE_T; t++) {
                var s = 0.0;
                for (var i = 0u; i < 32u; i++) {
                    s += w[i] * xs[32u * t + i];
                }
                acc[t] += s;
            }
            if (gated()) {
                let u = dequant_block((row + p.n) * blocks + b);
                for (var t = 0u; t < TILE_T; t++) {
                    var s = 0.0;
                    for (var i = 0u; i < 32u; i++) {
                        s += u[i] * xs[32u * t + i];
                    }
                    acc_up[t] += s;
                }
            }
        }
        workgroupBarrier();
    }
    squares[lid] = my_squares;
    for (var t = 0u; t < TILE_T; t++) {
        pair_sums[TILE_T * lid + t] = acc[t];
    }
    workgroupBarrier();
    // Mode 3: the pair's even row stores both (64 rows per workgroup: pairs
    // never straddle two).
    if (row >= p.n || (p.mode == 3u && lid % 2u == 1u)) {
        return;
    }
    for (var t = 0u; t < TILE_T; t++) {
        let tt = t0 + t;
        if (tt < p.tokens) {
            var scale = 1.0;
            if (p.norm == 1u) {
                var sum = 0.0;
                for (var i = 8u * t; i < 8u * t + 8u; i++) {
                    sum += squares[i];
                }
                scale = rms_scale(sum);
            }
            if (p.mode == 3u) {
                emit_qkv_pair(tt, row, scale * acc[t], scale * pair_sums[TILE_T * (lid + 1u) + t]);
            } else {
                emit(tt * p.out_stride + p.out_offset + row, scale, acc[t], acc_up[t]);
            }
        }
    }
}
