// The matrix kernels' parameters, bindings and weight loaders (included by
// every `matmul*.wgsl` and `matvec*.wgsl`).
// Mode 0 stores, mode 1 adds into `out` (the residual stream), mode 2 treats
// W as [gate; up] stacked (2n rows) and writes silu(gate) * up.

struct Params {
    k: u32,          // input width (a multiple of 32)
    n: u32,          // output rows
    tokens: u32,
    x_stride: u32,
    out_stride: u32,
    out_offset: u32,
    mode: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> wq: array<u32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

#include "quant.wgsl"

// Writes output `o` as the mode says; in SwiGLU mode `sum` is the gate's
// and `up` the up row's (ignored otherwise).
fn emit(o: u32, sum: f32, up: f32) {
    if (p.mode == 2u) {
        out[o] = sum / (1.0 + exp(-sum)) * up;
    } else if (p.mode == 1u) {
        out[o] = out[o] + sum;
    } else {
        out[o] = sum;
    }
}
