// Prefill: out (+)= W · x for many tokens. A workgroup takes 64 rows × 8
// tokens: the 8 tokens' slice of x goes through workgroup memory once per
// block, and each weight block is dequantized once for all 8 tokens (8×
// fewer weight reads than one thread per (row, token)). `dequant_block`
// comes from the weight type's loaders; modes as in `matrix.wgsl`.

#include "matrix.wgsl"

const TILE_T: u32 = 8u;
var<workgroup> xs: array<f32, 256>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x * 64u + lid;
    let t0 = wid.y * TILE_T;
    let blocks = p.k / 32u;
    var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    var acc_up = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (var b = 0u; b < blocks; b++) {
        // 8 tokens × 8 vec4s of this block's inputs: one vec4 per invocation.
        let t = t0 + lid / 8u;
        var v = vec4<f32>(0.0);
        if (t < p.tokens) {
            v = x[(t * p.x_stride + 32u * b) / 4u + lid % 8u];
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
            if (p.mode == 2u) {
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
    if (row >= p.n) {
        return;
    }
    for (var t = 0u; t < TILE_T; t++) {
        let tt = t0 + t;
        if (tt < p.tokens) {
            let o = tt * p.out_stride + p.out_offset + row;
            emit(o, acc[t], acc_up[t]);
        }
    }
}
