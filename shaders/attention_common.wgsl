// What both attention kernels (`attention.wgsl`, `attention_per_query.wgsl`)
// share: their parameters, the bindings they read alike, and how a token's
// context slot maps to the cache. Each declares bindings 0-2 (q|k|v and the
// caches) in the element type it loads them as. Include after `kv.wgsl`.

struct Params {
    tokens: u32,
    n_head: u32,
    n_kv_head: u32,
    head_dim: u32,    // at most 256, a multiple of 4
    page_size: u32,
    scale: f32,
    window: u32,      // a sliding-window layer's span (its own slot included); 0: the whole context
    _pad0: u32,
}

@group(0) @binding(3) var<storage, read> page_table: array<u32>;
@group(0) @binding(4) var<storage, read> tokens: array<Token>;
@group(0) @binding(5) var<storage, read> masks: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

fn attends(token: Token, s: u32) -> bool {
    if (p.window != 0u && s + p.window < token.ctx_len) {
        return false;
    }
    if (token.mask_offset == NO_MASK) {
        return true;
    }
    return ((masks[token.mask_offset + s / 32u] >> (s % 32u)) & 1u) == 1u;
}

// The cache slot of context position `s`, through the token's page table.
fn slot_of(token: Token, s: u32) -> u32 {
    return page_table[token.table_offset + s / p.page_size] * p.page_size + s % p.page_size;
}
