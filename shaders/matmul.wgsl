// out[t, off + r] (+)= sum_k W[r, k] * x[t, k] for a quantized W; one thread per
// (row, token). `block_dot` comes from the weight type's loaders; the input's
// norm and the modes as in `matrix.wgsl`.
// Mode 1 adds into `out` (the residual stream); mode 2 treats W as [gate; up]
// stacked (2n rows) and writes silu(gate) * up.

#include "matrix.wgsl"

fn row_dot(row: u32, xi: u32) -> f32 {
    let blocks = p.k / 32u;
    var acc = 0.0;
    for (var b = 0u; b < blocks; b++) {
        acc += block_dot(row * blocks + b, xi, 8u * b);
    }
    return acc;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    let t = gid.y;
    if (row >= p.n || t >= p.tokens) {
        return;
    }
    let xi = t * p.x_stride / 4u;
    let o = t * p.out_stride + p.out_offset + row;
    var up = 0.0;
    if (gated()) {
        up = row_dot(row + p.n, xi);
    }
    emit(o, norm_scale(xi), row_dot(row, xi), up);
}
