// Prefill and batched decode on CPU adapters: out (+)= W · x with one
// invocation per 4 weight rows × 8 tokens, the 32 sums held in eight vec4
// registers (named, not an array: a CPU compiler keeps those in registers and
// spills an indexed array to memory). Each step loads 4 weights of each row
// once for all 8 tokens and 4 inputs of each token once for all 4 rows: 32
// multiply-adds per 12 vec4 loads, where `matmul.wgsl` does 4 per 2. The
// input's address depends only on the workgroup, so every lane reads the same
// word. `dequant4` comes from the weight type's loaders; modes as in
// `matrix.wgsl` (SwiGLU: the 4 rows are gate r, r+1 and up r, r+1, so 2
// outputs per invocation; mode 3: 2 RoPE pairs). Its input is never
// normalized on the way in (`norm` is 0): the gain would cost a multiply per
// weight vec4 and the squares a barrier, together ≈ 30% of batched decode on
// lavapipe, where the separate norm dispatch costs ≈ 40 µs
// (`Choice::folds_norms`).

#include "matrix.wgsl"

const TOKENS: u32 = 8u;

fn rows_times(w: mat4x4<f32>, xv: vec4<f32>) -> vec4<f32> {
    // The columns of `w` are the 4 rows' weights: xv · w is their 4 dot products.
    return xv * w;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let swiglu = gated();
    let outputs = select(4u, 2u, swiglu);
    let r0 = gid.x * outputs;
    if (r0 >= p.n) {
        return;
    }
    // Rows past the last one repeat it (their sums are not stored).
    let last = p.n - 1u;
    var rows = vec4<u32>(r0, r0 + 1u, r0 + 2u, r0 + 3u);
    if (swiglu) {
        rows = vec4<u32>(r0, r0 + 1u, r0 + p.n, r0 + 1u + p.n);
        rows = min(rows, vec4<u32>(last, last, last + p.n, last + p.n));
    } else {
        rows = min(rows, vec4<u32>(last));
    }
    // Tokens past the last one repeat it likewise.
    let t0 = gid.y * TOKENS;
    let lt = p.tokens - 1u;
    let stride = p.x_stride / 4u;
    let x0 = min(t0, lt) * stride;
    let x1 = min(t0 + 1u, lt) * stride;
    let x2 = min(t0 + 2u, lt) * stride;
    let x3 = min(t0 + 3u, lt) * stride;
    let x4 = min(t0 + 4u, lt) * stride;
    let x5 = min(t0 + 5u, lt) * stride;
    let x6 = min(t0 + 6u, lt) * stride;
    let x7 = min(t0 + 7u, lt) * stride;
    let blocks = p.k / 32u;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    for (var b = 0u; b < blocks; b++) {
        let bs = rows * blocks + vec4<u32>(b);
        // Each row's block constants once per block, not once per 4 weights.
        let s0 = block_scale(bs.x);
        let s1 = block_scale(bs.y);
        let s2 = block_scale(bs.z);
        let s3 = block_scale(bs.w);
        for (var j = 0u; j < 8u; j++) {
            let w = mat4x4<f32>(dequant4(s0, bs.x, j), dequant4(s1, bs.y, j), dequant4(s2, bs.z, j), dequant4(s3, bs.w, j));
            let i = 8u * b + j;
            a0 += rows_times(w, x[x0 + i]);
            a1 += rows_times(w, x[x1 + i]);
            a2 += rows_times(w, x[x2 + i]);
            a3 += rows_times(w, x[x3 + i]);
            a4 += rows_times(w, x[x4 + i]);
            a5 += rows_times(w, x[x5 + i]);
            a6 += rows_times(w, x[x6 + i]);
            a7 += rows_times(w, x[x7 + i]);
        }
    }
    let sums = array<vec4<f32>, 8>(a0, a1, a2, a3, a4, a5, a6, a7);
    for (var t = 0u; t < TOKENS; t++) {
        let token = t0 + t;
        if (token >= p.tokens) {
            break;
        }
        let s = sums[t];
        if (p.mode == 3u) {
            // The 4 rows are 2 RoPE pairs (`n` is even).
            for (var r = 0u; r < 4u; r += 2u) {
                if (r0 + r < p.n) {
                    emit_qkv_pair(token, r0 + r, s[r], s[r + 1u]);
                }
            }
            continue;
        }
        for (var r = 0u; r < outputs; r++) {
            let row = r0 + r;
            if (row >= p.n) {
                break;
            }
            // SwiGLU: the up row's sum is 2 lanes on.
            emit(token * p.out_stride + p.out_offset + row, 1.0, s[r], s[(r + 2u) % 4u]);
        }
    }
}
