// Workgroup sum over 64 invocations through workgroup memory (no subgroups).
var<workgroup> sums: array<f32, 64>;

fn reduce64(v: f32, lid: u32) -> f32 {
    sums[lid] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) {
            sums[lid] += sums[lid + s];
        }
        workgroupBarrier();
    }
    let total = sums[0];
    workgroupBarrier();
    return total;
}
