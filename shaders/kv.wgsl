// What the KV kernels (`rope_kv.wgsl`, `attention.wgsl`) share: the cache's
// element type and the input token record. Included first: `enable` must
// precede every declaration.

// KV_T is f16 when the host defines KV_F16 (the adapter has shader-f16: half
// the KV memory), else f32.
#ifdef KV_F16
enable f16;
alias KV_T = f16;
#else
alias KV_T = f32;
#endif

struct Token {
    position: u32,
    kv_slot: u32,       // physical slot: page * page_size + offset
    ctx_len: u32,       // KV slots the token attends over, its own included
    table_offset: u32,  // first page of its pass in `page_table`
    mask_offset: u32,   // first word of its mask bits, or NO_MASK (causal)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const NO_MASK: u32 = 0xffffffffu;
