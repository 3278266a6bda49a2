// Top-k distributions, one workgroup per request: softmax(logits /
// temperature) over the whole vocabulary, then every token at or above the
// k-th largest probability is written out as (id, p), at most `cap` of them;
// the host sorts and keeps k.

#include "reduce.wgsl"

struct Params {
    vocab: u32,
    requests: u32,
    cap: u32,
    _pad: u32,
}

struct Request {
    row: u32,
    temperature: f32,   // 0 is taken as 1 here; the host makes the result one-hot
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> requests: array<Request>;
@group(0) @binding(2) var<storage, read_write> out_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out_probs: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_counts: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

var<private> row_base: u32;
var<private> inv_temp: f32;
var<private> z_max: f32;
var<workgroup> kept: atomic<u32>;

fn p_vocab() -> u32 {
    return p.vocab;
}

fn z_at(i: u32) -> f32 {
    return logits[row_base + i] * inv_temp - z_max;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let request = requests[wid.x];
    row_base = request.row * p.vocab;
    inv_temp = select(1.0, 1.0 / request.temperature, request.temperature > 0.0);
    let z_min = normalize_row(lid);
    let total = mass_at_least(z_min, lid);
    let k = min(request.k, p.vocab);
    let theta = top_k_threshold(f32(k), z_min, lid);

    if (lid == 0u) {
        atomicStore(&kept, 0u);
    }
    workgroupBarrier();
    let base = wid.x * p.cap;
    for (var i = lid; i < p.vocab; i += WG) {
        let z = z_at(i);
        if (z >= theta) {
            let j = atomicAdd(&kept, 1u);
            if (j < p.cap) {
                out_ids[base + j] = i;
                out_probs[base + j] = exp(z) / total;
            }
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        out_counts[wid.x] = min(atomicLoad(&kept), p.cap);
    }
}
