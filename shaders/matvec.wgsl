// Decode on a GPU: one workgroup per output row, its 64 invocations
// splitting the row's blocks, then a workgroup sum (`reduce64`, from
// `sum_subgroup.wgsl` when the host defines SUBGROUPS, else
// `sum_shared.wgsl`). Rows past 65535 wrap into y. `block_dot` comes from
// the weight type's loaders; the input's norm (its squares summed by the
// same invocations that read each block) and the modes as in `matrix.wgsl`
// (mode 3: a workgroup per RoPE pair of rows).

#include "matrix.wgsl"
#ifdef SUBGROUPS
#include "sum_subgroup.wgsl"
#else
#include "sum_shared.wgsl"
#endif

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
#endif
) {
#ifdef SUBGROUPS
    lane = sg_lane;
    lanes = sg_size;
#endif
    // Mode 3: a workgroup per RoPE pair of rows.
    let pairs = p.mode == 3u;
    let group = wid.x + wid.y * 65535u;
    let row = select(group, 2u * group, pairs);
    if (row >= p.n) {
        return;
    }
    // A second row: the up row (SwiGLU) or the pair's other row.
    let two_rows = gated() || pairs;
    let second = select(row + p.n, row + 1u, pairs);
    let blocks = p.k / 32u;
    for (var t = 0u; t < p.tokens; t++) {
        let xi = t * p.x_stride / 4u;
        var partial = 0.0;
        var partial_up = 0.0;
        var squares = 0.0;
        for (var b = lid; b < blocks; b += 64u) {
            partial += block_dot(row * blocks + b, xi, 8u * b);
            if (two_rows) {
                partial_up += block_dot(second * blocks + b, xi, 8u * b);
            }
            if (p.norm == 1u) {
                for (var c = 8u * b; c < 8u * b + 8u; c++) {
                    let v = x[xi + c];
                    squares += dot(v, v);
                }
            }
        }
        let total = reduce64(partial, lid);
        var total_up = 0.0;
        if (two_rows) {
            total_up = reduce64(partial_up, lid);
        }
        var scale = 1.0;
        if (p.norm == 1u) {
            scale = rms_scale(reduce64(squares, lid));
        }
        if (lid == 0u) {
            if (pairs) {
                emit_qkv_pair(t, row, scale * total, scale * total_up);
            } else {
                emit(t * p.out_stride + p.out_offset + row, scale, total, total_up);
            }
        }
    }
}
