// Workgroup-wide reductions over 256 invocations, for the sampling kernels.
// Every invocation must call them (they hold barriers) and gets the result.

const WG: u32 = 256u;
var<workgroup> scratch: array<f32, 256>;

fn reduce_sum(v: f32, lid: u32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] += scratch[lid + s];
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

fn reduce_max(v: f32, lid: u32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] = max(scratch[lid], scratch[lid + s]);
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

fn reduce_min(v: f32, lid: u32) -> f32 {
    return -reduce_max(-v, lid);
}

// Sets `z_max` to the row's largest scaled logit, so `z_at` is 0 at the top,
// and returns the smallest `z_at` over the row. The kernel provides `z_at`,
// `p_vocab` and the private `z_max`.
fn normalize_row(lid: u32) -> f32 {
    z_max = 0.0;
    var local_max = -3.4e38;
    var local_min = 3.4e38;
    for (var i = lid; i < p_vocab(); i += WG) {
        let v = z_at(i);
        local_max = max(local_max, v);
        local_min = min(local_min, v);
    }
    z_max = reduce_max(local_max, lid);
    return reduce_min(local_min, lid) - z_max;
}

// Log-probabilities (up to a constant) are z = logit / temperature - max; a
// token is kept when z >= theta. These count and weigh the kept tokens.
fn count_at_least(theta: f32, lid: u32) -> f32 {
    var n = 0.0;
    for (var i = lid; i < p_vocab(); i += WG) {
        n += select(0.0, 1.0, z_at(i) >= theta);
    }
    return reduce_sum(n, lid);
}

fn mass_at_least(theta: f32, lid: u32) -> f32 {
    var m = 0.0;
    for (var i = lid; i < p_vocab(); i += WG) {
        let z = z_at(i);
        m += select(0.0, exp(z), z >= theta);
    }
    return reduce_sum(m, lid);
}

// The largest theta in [lo, 0] keeping at least k tokens (bisection in log space).
fn top_k_threshold(k: f32, lo_in: f32, lid: u32) -> f32 {
    var lo = lo_in;
    var hi = 0.0;
    for (var it = 0u; it < 40u; it++) {
        let mid = 0.5 * (lo + hi);
        if (count_at_least(mid, lid) >= k) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}
