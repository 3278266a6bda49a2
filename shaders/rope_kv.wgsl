// For every token: add the q|k|v biases, RMS-normalize each query and key
// head (`qk_norm`), rotate the query and key heads in place (RoPE at the
// token's position), then write its key and value heads into its slot of the
// paged KV cache. `qkv` rows are [q heads | k heads | v heads]; `extras` holds
// the biases (zeros for models without) then the q and k head norms' gains.
// One workgroup per token.

#include "kv.wgsl"

struct Params {
    tokens: u32,
    n_head: u32,
    n_kv_head: u32,
    head_dim: u32,
    rope_dim: u32,    // leading dims of each head that rotate
    neox: u32,        // 0: rotate adjacent pairs (GGUF llama); 1: rotate halves (neox, qwen2)
    freq_base: f32,
    qk_norm: u32,     // 1: normalize each query and key head first (Qwen3)
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> tokens: array<Token>;
@group(0) @binding(2) var<storage, read_write> k_cache: array<KV_T>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<KV_T>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> extras: array<f32>;

// Head `head` of the row at `row` (query heads first, then key heads) times
// its gain over its root mean square.
fn norm_head(row: u32, head: u32) {
    let base = row + head * p.head_dim;
    var squares = 0.0;
    for (var i = 0u; i < p.head_dim; i++) {
        squares += qkv[base + i] * qkv[base + i];
    }
    let scale = inverseSqrt(squares / f32(p.head_dim) + p.eps);
    let width = (p.n_head + 2u * p.n_kv_head) * p.head_dim;
    let gain = width + select(p.head_dim, 0u, head < p.n_head);
    for (var i = 0u; i < p.head_dim; i++) {
        qkv[base + i] = qkv[base + i] * scale * extras[gain + i];
    }
}

fn rotate(base: u32, pair: u32, pos: f32) {
    let half_dim = p.rope_dim / 2u;
    let theta = pos * pow(p.freq_base, -2.0 * f32(pair) / f32(p.rope_dim));
    let c = cos(theta);
    let s = sin(theta);
    var i0 = base + 2u * pair;
    var i1 = i0 + 1u;
    if (p.neox == 1u) {
        i0 = base + pair;
        i1 = base + pair + half_dim;
    }
    let a = qkv[i0];
    let b = qkv[i1];
    qkv[i0] = a * c - b * s;
    qkv[i1] = a * s + b * c;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wid.x;
    if (t >= p.tokens) {
        return;
    }
    let token = tokens[t];
    let pos = f32(token.position);
    let width = (p.n_head + 2u * p.n_kv_head) * p.head_dim;
    let row = t * width;
    for (var i = lid; i < width; i += 64u) {
        qkv[row + i] += extras[i];
    }
    storageBarrier();
    if (p.qk_norm == 1u) {
        for (var head = lid; head < p.n_head + p.n_kv_head; head += 64u) {
            norm_head(row, head);
        }
        storageBarrier();
    }
    let pairs = p.rope_dim / 2u;
    let rotations = (p.n_head + p.n_kv_head) * pairs;
    for (var i = lid; i < rotations; i += 64u) {
        let head = i / pairs;
        rotate(row + head * p.head_dim, i % pairs, pos);
    }
    storageBarrier();
    let kv_width = p.n_kv_head * p.head_dim;
    let k_start = row + p.n_head * p.head_dim;
    let v_start = k_start + kv_width;
    let dst = token.kv_slot * kv_width;
    for (var i = lid; i < kv_width; i += 64u) {
        k_cache[dst + i] = KV_T(qkv[k_start + i]);
        v_cache[dst + i] = KV_T(qkv[v_start + i]);
    }
}
