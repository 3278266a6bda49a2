// Workgroup sum over 64 invocations: `subgroupAdd` within each subgroup, then
// one partial per subgroup through workgroup memory. The kernel's entry point
// stores its subgroup builtins in `lane` and `lanes` (entry-point builtins
// cannot be read from here).
var<private> lane: u32;
var<private> lanes: u32;
var<workgroup> sums: array<f32, 64>;

fn reduce64(v: f32, lid: u32) -> f32 {
    let s = subgroupAdd(v);
    if (lane == 0u) {
        sums[lid / lanes] = s;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < (64u + lanes - 1u) / lanes; i++) {
        total += sums[i];
    }
    workgroupBarrier();
    return total;
}
