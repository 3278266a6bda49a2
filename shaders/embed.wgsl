// x[t, :] = the embedding row of token ids[t], dequantized, times `scale`
// (Gemma's √d; 1 for others); an id with the high bit set names an embedding
// slot instead, whose row is copied from `slots`. The embedding may come in
// row ranges (`first_row`, `rows`: a huge vocabulary's does not fit one
// binding), a dispatch each: each writes the tokens in its range, the first
// also the slots.
// `weight_at` comes from the weight type's loaders; embed has no input vector,
// so it takes them without `block_dot`.

#define LOADERS_ONLY
#include "quant.wgsl"

struct Params {
    dim: u32,
    tokens: u32,
    scale: f32,
    first_row: u32,
    rows: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> wq: array<u32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> slots: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const SLOT_FLAG: u32 = 0x80000000u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let t = gid.y;
    if (col >= p.dim || t >= p.tokens) {
        return;
    }
    let id = ids[t];
    if ((id & SLOT_FLAG) != 0u) {
        if (p.first_row == 0u) {
            out[t * p.dim + col] = slots[(id & ~SLOT_FLAG) * p.dim + col];
        }
    } else if (id >= p.first_row && id - p.first_row < p.rows) {
        let blocks = p.dim / 32u;
        out[t * p.dim + col] = weight_at((id - p.first_row) * blocks + col / 32u, col % 32u) * p.scale;
    }
}
