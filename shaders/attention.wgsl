// Paged attention: for token t and query head h, softmax(q·K / sqrt(d)) · V over
// the token's visible KV slots, read through its pass's page table, skipping
// masked slots. One workgroup per (head, token); 64 slots per chunk with an
// online softmax, so any context length fits: GPUs, and short batches on CPU
// adapters.

#include "kv.wgsl"
#include "attention_common.wgsl"

const CHUNK: u32 = 64u;

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<KV_T>;
@group(0) @binding(2) var<storage, read> v_cache: array<KV_T>;

var<workgroup> scores: array<f32, 64>;
var<workgroup> slots: array<u32, 64>;
var<workgroup> weights: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    if (h >= p.n_head || t >= p.tokens) {
        return;
    }
    let token = tokens[t];
    let width = (p.n_head + 2u * p.n_kv_head) * p.head_dim;
    let q = t * width + h * p.head_dim;
    let kv_head = h / (p.n_head / p.n_kv_head);
    let kv_width = p.n_kv_head * p.head_dim;

    // This invocation owns dims lid, lid + 64, …: `dims` of them.
    let dims = (p.head_dim + 63u - lid) / 64u;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    var running_max = -3.4e38;
    var running_sum = 0.0;
    for (var start = 0u; start < token.ctx_len; start += CHUNK) {
        let s = start + lid;
        var score = -3.4e38;
        var slot = 0u;
        if (s < token.ctx_len && attends(token, s)) {
            slot = slot_of(token, s);
            let k = slot * kv_width + kv_head * p.head_dim;
            var dot = 0.0;
            for (var d = 0u; d < p.head_dim; d++) {
                dot += qkv[q + d] * f32(k_cache[k + d]);
            }
            score = dot * p.scale;
        }
        scores[lid] = score;
        slots[lid] = slot;
        workgroupBarrier();

        let n = min(CHUNK, token.ctx_len - start);
        var chunk_max = -3.4e38;
        for (var j = 0u; j < n; j++) {
            chunk_max = max(chunk_max, scores[j]);
        }
        // Each invocation weighs its own slot once; all of them then read the weights.
        let new_max = max(running_max, chunk_max);
        weights[lid] = select(0.0, exp(score - new_max), score > -3.0e38);
        workgroupBarrier();
        // A chunk with every slot masked changes nothing.
        if (chunk_max > -3.0e38) {
            let rescale = exp(running_max - new_max);
            running_sum *= rescale;
            for (var i = 0u; i < dims; i++) {
                acc[i] *= rescale;
            }
            for (var j = 0u; j < n; j++) {
                let w = weights[j];
                if (w > 0.0) {
                    running_sum += w;
                    let v = slots[j] * kv_width + kv_head * p.head_dim;
                    for (var i = 0u; i < dims; i++) {
                        acc[i] += w * f32(v_cache[v + lid + 64u * i]);
                    }
                }
            }
            running_max = new_max;
        }
        workgroupBarrier();
    }
    let o = t * p.n_head * p.head_dim + h * p.head_dim;
    for (var i = 0u; i < dims; i++) {
        out[o + lid + 64u * i] = select(0.0, acc[i] / running_sum, running_sum > 0.0);
    }
}
