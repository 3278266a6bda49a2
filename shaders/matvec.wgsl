// Decode on a GPU: one workgroup per output row, its 64 invocations
// splitting the row's blocks, then a workgroup sum (`reduce64`, from
// `sum_subgroup.wgsl` when the host defines SUBGROUPS, else
// `sum_shared.wgsl`). Rows past 65535 wrap into y. `block_dot` comes from
// the weight type's loaders; the input's norm (its squares summed by the
// same invocations that read each block) and the modes as in `matrix.wgsl`.

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
    let row = wid.x + wid.y * 65535u;
    if (row >= p.n) {
        return;
    }
    let blocks = p.k / 32u;
    for (var t = 0u; t < p.tokens; t++) {
        let xi = t * p.x_stride / 4u;
        var partial = 0.0;
        var partial_up = 0.0;
        var squares = 0.0;
        for (var b = lid; b < blocks; b += 64u) {
            partial += block_dot(row * blocks + b, xi, 8u * b);
            if (p.mode == 2u) {
                partial_up += block_dot((row + p.n) * blocks + b, xi, 8u * b);
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
        if (p.mode == 2u) {
            total_up = reduce64(partial_up, lid);
        }
        var scale = 1.0;
        if (p.norm == 1u) {
            scale = rms_scale(reduce64(squares, lid));
        }
        if (lid == 0u) {
            let o = t * p.out_stride + p.out_offset + row;
            emit(o, scale, total, total_up);
        }
    }
}
