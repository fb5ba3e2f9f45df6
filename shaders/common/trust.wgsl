// Per-tensor trust ratios inside a many-tensor dispatch (LAMB and LARS: Optax's
// `scale_by_trust_ratio`), without a host round trip:
//
//   ratio = trust_coefficient * ||p|| / (||u|| + trust_eps), 1 where ||p|| = 0 or ||u|| = 0
//   (and 1 for a group with the trust ratio off), u the optimizer's direction
//
// A step records, after the prologue:
//   update_norms, update_tail_norms: the update's dispatches with TRUST_APPLY off. The
//       kernel's `step_math` updates the states it accumulates (LAMB's moments) and leaves
//       the direction u in `Elements.grad`, the parameters unchanged; `trust_accumulate` sums
//       p^2 and u^2, and each segment writes its sums to its slot (one workgroup per main
//       segment, reduced through a tree in workgroup memory; one invocation per tail).
//   trust_fold: one workgroup per tensor folds its slots, in order, into its ratio and writes
//       the ratio back to each of its slots (`trust[slot].x`); `segments` is bound to the
//       plan's tensor folds, one entry per tensor ([start, end) of its slots, its group). On a
//       skipped step it writes nothing: the slots keep the last step's ratios.
//   update, update_tail: with TRUST_APPLY on, `step_math` recomputes u from what the first
//       pass stored and applies it scaled by `trust_ratio()`.
// Each pass stores only what it changes: the parameters (and the master copy) in the second,
// the states the kernel's `writes_state` names in the pass that updates them.
// The order of every addition is fixed by the plan, so the same inputs give the same bits.
// The kernel's Hyper has `trust_coefficient`, `trust_eps` and `trust_on` (1 or 0). Needs
// common/entry.wgsl.

// The second pass (apply the update) rather than the first (states, direction and norms).
override TRUST_APPLY: bool = true;

// Invocation-wide sums of p^2 and u^2, per vec4 lane, over the units it updated.
var<private> param_squares: vec4<f32>;
var<private> direction_squares: vec4<f32>;

// Called by the generated `step_unit` after `step_math`, with the lanes that are the
// tensor's: adds them to this invocation's sums in the first pass.
fn trust_accumulate(e: Elements, valid: vec4<bool>) {
    if TRUST_APPLY {
        return;
    }
    let p = select(vec4(0.0), e.param, valid);
    let u = select(vec4(0.0), e.grad, valid);
    param_squares += p * p;
    direction_squares += u * u;
}

// The trust ratio of the segment being updated (second pass).
fn trust_ratio() -> f32 {
    return trust[current_segment.slot].x;
}

fn lane_sums() -> vec2<f32> {
    let p = param_squares;
    let u = direction_squares;
    return vec2((p.x + p.y) + (p.z + p.w), (u.x + u.y) + (u.z + u.w));
}

var<workgroup> tree: array<vec2<f32>, WORKGROUP_SIZE>;
var<workgroup> rows: array<vec2<f32>, WORKGROUP_SIZE>;

// Lanes per row of `workgroup_sum`'s two-level sum.
const ROW: u32 = 16u;

// The sum of every invocation's `mine` over the workgroup, in an order fixed by
// WORKGROUP_SIZE alone (any size): rows of ROW lanes summed in order, then the rows in order.
// Two levels rather than a binary tree: each level ends in a barrier, and software adapters
// pay for barriers (measured on lavapipe: a binary tree at the end of every 4096-element
// segment cost LAMB a quarter of its step). Every invocation calls it, in uniform control
// flow, and gets the total.
fn workgroup_sum(lane: u32, mine: vec2<f32>) -> vec2<f32> {
    tree[lane] = mine;
    workgroupBarrier();
    let row_count = (WORKGROUP_SIZE + ROW - 1u) / ROW;
    if lane < row_count {
        var row = vec2(0.0);
        for (var j = lane * ROW; j < min(lane * ROW + ROW, WORKGROUP_SIZE); j++) {
            row += tree[j];
        }
        rows[lane] = row;
    }
    workgroupBarrier();
    if lane == 0u {
        var total = vec2(0.0);
        for (var r = 0u; r < row_count; r++) {
            total += rows[r];
        }
        tree[0] = total;
    }
    return workgroupUniformLoad(&tree[0]);
}

// The first pass over main segments: `update`, then the segment's sums to its slot (every
// invocation reaches the barriers of the sum).
@compute @workgroup_size(WORKGROUP_SIZE)
fn update_norms(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let live = step_main_segment(workgroup.y * workgroups.x + workgroup.x, lane);
    let total = workgroup_sum(lane, lane_sums());
    if lane == 0u && live {
        trust[current_segment.slot] = total;
    }
}

// The first pass over tail segments: one invocation each.
@compute @workgroup_size(64)
fn update_tail_norms(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let index = (workgroup.y * workgroups.x + workgroup.x) * 64u + lane;
    let s = segments[min(index, arrayLength(&segments) - 1u)];
    current_segment = s;
    let c = control[control_of(s)];
    let group = groups[group_of(s)];
    if skipped(c) || index >= arrayLength(&segments) {
        return;
    }
    step_unit(s.start + vec4(0u, 1u, 2u, 3u), s, group, c);
    trust[s.slot] = lane_sums();
}

// Workgroup t (a 2-D grid past the device's limit) folds tensor t's slots into its ratio.
@compute @workgroup_size(WORKGROUP_SIZE)
fn trust_fold(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let index = workgroup.y * workgroups.x + workgroup.x;
    let fold = segments[min(index, arrayLength(&segments) - 1u)];
    // A skipped step wrote no sums: the slots keep the last step's ratios.
    let live = index < arrayLength(&segments) && !skipped(control[control_of(fold)]);
    var mine = vec2(0.0);
    for (var i = fold.start + lane; live && i < fold.end; i += WORKGROUP_SIZE) {
        mine += trust[i];
    }
    let sums = workgroup_sum(lane, mine);
    let ratio = trust_ratio_of(sqrt(sums.x), sqrt(sums.y), groups[fold.group].hyper);
    for (var i = fold.start + lane; live && i < fold.end; i += WORKGROUP_SIZE) {
        trust[i] = vec2(ratio, 0.0);
    }
}

// Optax's scale_by_trust_ratio (min_norm 0): 1 where either norm is 0, or the group has it off.
fn trust_ratio_of(param_norm: f32, update_norm: f32, h: Hyper) -> f32 {
    let ratio = h.trust_coefficient * param_norm / (update_norm + h.trust_eps);
    let zero = param_norm == 0.0 || update_norm == 0.0;
    return select(ratio, 1.0, zero || h.trust_on == 0.0);
}
