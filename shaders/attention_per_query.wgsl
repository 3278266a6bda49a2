// Paged attention for CPU adapters: one invocation per (token, query head),
// walking the token's visible slots one at a time with an online softmax held
// in registers. No workgroup memory and no barriers, which a CPU adapter
// (lavapipe) runs as costly switches between invocations; the invocations of
// a workgroup are consecutive tokens of one head, so they read the same keys
// and values. Same bindings and results as `attention.wgsl`.

#include "kv.wgsl"
#include "attention_common.wgsl"

@group(0) @binding(0) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<KV_T>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<KV_T>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let h = gid.y;
    if (t >= p.tokens || h >= p.n_head) {
        return;
    }
    let token = tokens[t];
    // Everything below counts vec4s.
    let dims = p.head_dim / 4u;
    let width = (p.n_head + 2u * p.n_kv_head) * dims;
    let kv_head = h / (p.n_head / p.n_kv_head);
    let kv_width = p.n_kv_head * dims;

    var q: array<vec4<f32>, 64>;
    var acc: array<vec4<f32>, 64>;
    let q0 = t * width + h * dims;
    for (var i = 0u; i < dims; i++) {
        q[i] = qkv[q0 + i] * p.scale;
        acc[i] = vec4<f32>(0.0);
    }
    var running_max = -3.4e38;
    var running_sum = 0.0;
    for (var s = 0u; s < token.ctx_len; s++) {
        if (!attends(token, s)) {
            continue;
        }
        let kv = slot_of(token, s) * kv_width + kv_head * dims;
        var score = 0.0;
        for (var i = 0u; i < dims; i++) {
            score += dot(q[i], vec4<f32>(k_cache[kv + i]));
        }
        // Rescale what is summed only when the maximum moves.
        if (score > running_max) {
            let rescale = exp(running_max - score);
            running_sum *= rescale;
            for (var i = 0u; i < dims; i++) {
                acc[i] *= rescale;
            }
            running_max = score;
        }
        let w = exp(score - running_max);
        running_sum += w;
        for (var i = 0u; i < dims; i++) {
            acc[i] += w * vec4<f32>(v_cache[kv + i]);
        }
    }
    let o = (t * p.n_head + h) * p.head_dim;
    let norm = select(0.0, 1.0 / running_sum, running_sum > 0.0);
    for (var i = 0u; i < dims; i++) {
        let v = acc[i] * norm;
        out[o + 4u * i] = v.x;
        out[o + 4u * i + 1u] = v.y;
        out[o + 4u * i + 2u] = v.z;
        out[o + 4u * i + 3u] = v.w;
    }
}
