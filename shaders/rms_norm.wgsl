// out[i, :] = x[rows[i], :] / sqrt(mean(x[rows[i], :]^2) + eps) * w; one workgroup per row.
// `rows` lets the final norm pick only the tokens whose outputs were asked for.
// With `add` = 1 the result is added into `out` instead (Gemma's norms after
// attention and the FFN, on their way into the residual stream).

struct Params {
    dim: u32,
    rows: u32,
    eps: f32,
    add: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = wid.x;
    if (i >= p.rows) {
        return;
    }
    let src = rows[i] * p.dim;
    var sum = 0.0;
    for (var c = lid; c < p.dim; c += 64u) {
        let v = x[src + c];
        sum += v * v;
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let scale = inverseSqrt(partial[0] / f32(p.dim) + p.eps);
    for (var c = lid; c < p.dim; c += 64u) {
        let normed = x[src + c] * scale * w[c];
        out[i * p.dim + c] = select(normed, out[i * p.dim + c] + normed, p.add == 1u);
    }
}
