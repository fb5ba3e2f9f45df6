// A workgroup-wide reduction of `Partial`s with subgroup operations: each subgroup reduces in
// registers, one value per subgroup goes through workgroup memory, and every subgroup then
// folds those in the same order. For devices with `Features::SUBGROUP`. A pipeline always runs
// with the same subgroup size on one adapter, so results are the same bits run after run (but
// may differ from the tree path's in the last place).

const REDUCE_SIZE: u32 = 256u;

struct Invocation {
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
    @builtin(subgroup_size) subgroup_size: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
}

var<workgroup> subgroup_sums: array<f32, REDUCE_SIZE>;
var<workgroup> subgroup_maxes: array<u32, REDUCE_SIZE>;

// Every invocation of the workgroup calls it and gets the workgroup's total.
fn workgroup_reduce(mine: Partial, inv: Invocation) -> Partial {
    let sum = subgroupAdd(mine.sum_of_powers);
    let max_bits = subgroupMax(mine.max_abs_bits);
    if inv.subgroup_lane == 0u {
        subgroup_sums[inv.subgroup] = sum;
        subgroup_maxes[inv.subgroup] = max_bits;
    }
    workgroupBarrier();
    var folded = Partial(0.0, 0u);
    for (var i = inv.subgroup_lane; i < inv.subgroups; i += inv.subgroup_size) {
        folded = combine(folded, Partial(subgroup_sums[i], subgroup_maxes[i]));
    }
    let total = Partial(subgroupAdd(folded.sum_of_powers), subgroupMax(folded.max_abs_bits));
    // The workgroup memory is read before any later call overwrites it.
    workgroupBarrier();
    return total;
}
