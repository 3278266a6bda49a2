// On-GPU sampling, one workgroup per sampled token. Temperature 0 is argmax
// (lowest id on ties). Otherwise the logits are scaled by 1/temperature,
// filtered by top-k, then top-p (over what top-k kept), then min-p, and a
// token is drawn from what remains by inverse CDF in id order with the
// caller's uniform number.

#include "reduce.wgsl"

struct Params {
    vocab: u32,
    samplers: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Sampler {
    row: u32,          // logits row
    temperature: f32,
    top_k: u32,        // 0: off
    top_p: f32,        // >= 1: off
    min_p: f32,        // <= 0: off
    uniform: f32,      // in [0, 1)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> samplers: array<Sampler>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

var<private> row_base: u32;
var<private> inv_temp: f32;
var<private> z_max: f32;

fn p_vocab() -> u32 {
    return p.vocab;
}

fn z_at(i: u32) -> f32 {
    return logits[row_base + i] * inv_temp - z_max;
}

var<workgroup> best_id: array<u32, 256>;
var<workgroup> chunk_mass: array<f32, 256>;
var<workgroup> picked: u32;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let sampler = samplers[wid.x];
    row_base = sampler.row * p.vocab;

    if (sampler.temperature <= 0.0) {
        // Argmax: each invocation scans a stride, then a tree picks the best (lowest id on ties).
        var best = -3.4e38;
        var id = 0xffffffffu;
        for (var i = lid; i < p.vocab; i += WG) {
            let v = logits[row_base + i];
            if (v > best) {
                best = v;
                id = i;
            }
        }
        scratch[lid] = best;
        best_id[lid] = id;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s >>= 1u) {
            if (lid < s) {
                let a = scratch[lid];
                let b = scratch[lid + s];
                if (b > a || (b == a && best_id[lid + s] < best_id[lid])) {
                    scratch[lid] = b;
                    best_id[lid] = best_id[lid + s];
                }
            }
            workgroupBarrier();
        }
        if (lid == 0u) {
            out[wid.x] = best_id[0];
        }
        return;
    }

    inv_temp = 1.0 / sampler.temperature;
    let z_min = normalize_row(lid);

    var theta = z_min;
    if (sampler.top_k > 0u && sampler.top_k < p.vocab) {
        theta = top_k_threshold(f32(sampler.top_k), theta, lid);
    }
    if (sampler.top_p < 1.0) {
        let target_mass = sampler.top_p * mass_at_least(theta, lid);
        var lo = theta;
        var hi = 0.0;
        for (var it = 0u; it < 40u; it++) {
            let mid = 0.5 * (lo + hi);
            if (mass_at_least(mid, lid) >= target_mass) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        theta = lo;
    }
    if (sampler.min_p > 0.0) {
        theta = max(theta, log(sampler.min_p));
    }

    // Inverse CDF over the kept tokens in id order: contiguous chunks per invocation.
    let chunk = (p.vocab + WG - 1u) / WG;
    let begin = lid * chunk;
    let end = min(begin + chunk, p.vocab);
    var m = 0.0;
    for (var i = begin; i < end; i++) {
        let z = z_at(i);
        m += select(0.0, exp(z), z >= theta);
    }
    chunk_mass[lid] = m;
    workgroupBarrier();
    if (lid == 0u) {
        var total = 0.0;
        for (var c = 0u; c < WG; c++) {
            total += chunk_mass[c];
        }
        var remaining = sampler.uniform * total;
        var c = 0u;
        var fallback = 0xffffffffu;
        loop {
            if (c >= WG) {
                break;
            }
            if (chunk_mass[c] > 0.0) {
                fallback = c;
                if (remaining < chunk_mass[c]) {
                    break;
                }
                remaining -= chunk_mass[c];
            }
            c++;
        }
        // Rounding can run past the last chunk: take the last one with mass.
        if (c >= WG) {
            c = fallback;
            remaining = chunk_mass[c];
        }
        let first = c * chunk;
        let last = min(first + chunk, p.vocab);
        var id = first;
        var last_kept = first;
        for (var i = first; i < last; i++) {
            let z = z_at(i);
            if (z >= theta) {
                last_kept = i;
                let e = exp(z);
                if (remaining < e) {
                    id = i;
                    break;
                }
                remaining -= e;
            }
            id = last_kept;
        }
        picked = id;
    }
    workgroupBarrier();
    if (lid == 0u) {
        out[wid.x] = picked;
    }
}
