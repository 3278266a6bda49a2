// Decode on CPU adapters (batches under 4 rows): one invocation per 8 weight
// rows of one token, in workgroups of 8 (one SIMD vector of lavapipe's lanes,
// so no workgroup is mostly idle). Each step loads 4 inputs once for the 8
// rows — the same word in every lane — and each row's block constants once
// per block. `dequant4` comes from the weight type's loaders; the input's
// norm and the modes as in `matrix.wgsl` (mode 3: the 8 rows are 4 RoPE pairs) (SwiGLU: rows r … r+3 of gate and of up, so 4 outputs per
// invocation).

#include "matrix.wgsl"

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let swiglu = gated();
    let outputs = select(8u, 4u, swiglu);
    let r0 = gid.x * outputs;
    let t = gid.y;
    if (r0 >= p.n || t >= p.tokens) {
        return;
    }
    // Rows past the last one repeat it (their sums are not stored).
    let last = p.n - 1u;
    var lo = min(vec4<u32>(r0, r0 + 1u, r0 + 2u, r0 + 3u), vec4<u32>(last));
    var hi = min(vec4<u32>(r0 + 4u, r0 + 5u, r0 + 6u, r0 + 7u), vec4<u32>(last));
    if (swiglu) {
        hi = lo + vec4<u32>(p.n);
    }
    let xi = t * p.x_stride / 4u;
    let blocks = p.k / 32u;
    var sum_lo = vec4<f32>(0.0);
    var sum_hi = vec4<f32>(0.0);
    for (var b = 0u; b < blocks; b++) {
        let bl = lo * blocks + vec4<u32>(b);
        let bh = hi * blocks + vec4<u32>(b);
        let s0 = block_scale(bl.x);
        let s1 = block_scale(bl.y);
        let s2 = block_scale(bl.z);
        let s3 = block_scale(bl.w);
        let s4 = block_scale(bh.x);
        let s5 = block_scale(bh.y);
        let s6 = block_scale(bh.z);
        let s7 = block_scale(bh.w);
        for (var j = 0u; j < 8u; j++) {
            let xv = input4(xi, 8u * b + j);
            // The columns are the rows' weights: xv · w is their 4 dot products.
            sum_lo += xv * mat4x4<f32>(dequant4(s0, bl.x, j), dequant4(s1, bl.y, j), dequant4(s2, bl.z, j), dequant4(s3, bl.w, j));
            sum_hi += xv * mat4x4<f32>(dequant4(s4, bh.x, j), dequant4(s5, bh.y, j), dequant4(s6, bh.z, j), dequant4(s7, bh.w, j));
        }
    }
    let scale = norm_scale(xi);
    let sums = array<f32, 8>(sum_lo.x, sum_lo.y, sum_lo.z, sum_lo.w, sum_hi.x, sum_hi.y, sum_hi.z, sum_hi.w);
    if (p.mode == 3u) {
        // The 8 rows are 4 pairs (`n` is even).
        for (var r = 0u; r < 8u; r += 2u) {
            if (r0 + r < p.n) {
                emit_qkv_pair(t, r0 + r, scale * sums[r], scale * sums[r + 1u]);
            }
        }
        return;
    }
    for (var r = 0u; r < outputs; r++) {
        let row = r0 + r;
        if (row >= p.n) {
            break;
        }
        // SwiGLU: the up row's sum is 4 on.
        emit(t * p.out_stride + p.out_offset + row, scale, sums[r], sums[(r + 4u) % 8u]);
    }
}
