// A workgroup-wide reduction of `Partial`s through a tree in workgroup memory: the portable
// path, for adapters without subgroup operations. The order of additions depends only on
// REDUCE_SIZE, so results are the same bits run after run.

const REDUCE_SIZE: u32 = 256u;

struct Invocation {
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
}

var<workgroup> tree_sums: array<f32, REDUCE_SIZE>;
var<workgroup> tree_maxes: array<u32, REDUCE_SIZE>;

// Every invocation of the workgroup calls it and gets the workgroup's total.
fn workgroup_reduce(mine: Partial, inv: Invocation) -> Partial {
    tree_sums[inv.lane] = mine.sum_of_powers;
    tree_maxes[inv.lane] = mine.max_abs_bits;
    for (var stride = REDUCE_SIZE / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if inv.lane < stride {
            tree_sums[inv.lane] += tree_sums[inv.lane + stride];
            tree_maxes[inv.lane] = max(tree_maxes[inv.lane], tree_maxes[inv.lane + stride]);
        }
    }
    workgroupBarrier();
    let total = Partial(tree_sums[0], tree_maxes[0]);
    // The workgroup memory is read before any later call overwrites it.
    workgroupBarrier();
    return total;
}
