// The entry points every optimizer kernel shares. The optimizer's own file provides its
// `struct Group` (the record of one parameter group: `hyper`, what the host writes; `derived`,
// what `prepare_group` derives each step; `running`, what it carries across steps),
// `prepare_group(group, step)` (once per parameter group and step) and `uses_state(slot)` and
// `step_math(elements, group, control)` (the fused element-wise update of four elements in
// registers). The generated part (src/kernel/bindings.rs, src/kernel/elements/) declares
// the buffers (`control`, `groups`, `segments` and the element buffers in their storage types)
// and provides `step_segment` (an invocation's part of a segment) and `step_unit` (loads,
// `step_math`, stores of one unit).
// Needs common/segment.wgsl.
//
// Per-element code branches only on overrides (constants after pipeline creation); a runtime
// condition, even one uniform over the dispatch, is a `select` of both results. A software
// adapter runs an `if` as masked code and loses its fast paths inside it: on lavapipe, turning
// `if weight_decay != 0` into a select made AdamW's update 1.38x faster (BENCHMARKS.md). For
// the same reason the hot loop has no code it does not need: stores of partial vec4s live in a
// second dispatch (`update_tail`), gradient-processing stages that are off are not compiled
// in, and one parameter group reads its hyperparameters at a constant address.

override WORKGROUP_SIZE: u32 = 256u;
// The units (of UNIT elements: 4, or 8 where a buffer is 16-bit) each invocation of the vec4
// layout updates in a tile of UNIT * VEC4S_PER_INVOCATION * WORKGROUP_SIZE elements.
override VEC4S_PER_INVOCATION: u32 = 4u;
// Whether the optimizer has a single parameter group: its hyperparameters are then read at a
// constant address rather than at one loaded from the segment table.
override ONE_GROUP: bool = false;
// Whether each parameter group has a control block of its own (a population of replicas, each
// with its own step counter, skip flag, clip coefficient and loss scale) rather than all
// sharing control block 0.
override GROUP_CONTROL: bool = false;
// Whether the pass takes a step: false for a pass that moves the parameters without one
// (Schedule-Free's eval/train switch), whose prologue derives the groups' scalars but leaves
// the step counter alone.
override STEP_PASS: bool = true;

// Once per step, before any update, one invocation per control block: advance its step counter
// on the device (unless its step is skipped) and derive the per-step scalars of its parameter
// groups (every group, or group k with a control block per group).
@compute @workgroup_size(64)
fn prologue(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    if k >= arrayLength(&control) || (GRAD_PROCESSING && control[k].found_inf != 0u) {
        return;
    }
    if STEP_PASS {
        control[k].step += 1u;
    }
    let step = f32(control[k].step);
    if GROUP_CONTROL {
        prepare_group(k, step);
        return;
    }
    for (var g = 0u; g < arrayLength(&groups); g++) {
        prepare_group(g, step);
    }
}

// The segment this invocation updates, for kernels whose math needs more of it than its
// group (the trust ratio of its tensor: common/trust.wgsl).
var<private> current_segment: Segment;

// The parameter group whose record segment `s` uses.
fn group_of(s: Segment) -> u32 {
    if ONE_GROUP {
        return 0u;
    }
    return s.group;
}

// The control block segment `s` is stepped with.
fn control_of(s: Segment) -> u32 {
    if GROUP_CONTROL {
        return s.group;
    }
    return 0u;
}

// Whether every main dispatch is regular (src/kernel/plan/segments.rs: `regular_ends`): whole tiles of one
// tensor in a row, the last perhaps shorter. Its table is then two entries, its first and
// its last segment, read at constant indices, and workgroup i derives segment i from them. On
// lavapipe a load at an index from the workgroup id is a loop over the lanes; one at a
// constant index is a single load (16M AdamW 5% faster, bf16 states 6%: BENCHMARKS.md).
override REGULAR_TILES: bool = false;

// How many segments the main dispatch has.
fn main_count() -> u32 {
    if REGULAR_TILES {
        let first = segments[0];
        let tile = first.end - first.start;
        return select(0u, (segments[1].start - first.start) / tile + 1u, tile != 0u);
    }
    return arrayLength(&segments);
}

// Segment `index` of the main dispatch (the last one past the end: callers check
// `main_count`). Regular tables give what the full table holds there (src/kernel/plan/segments.rs,
// `derived_segment`, checks it for every segment).
fn main_segment(index: u32) -> Segment {
    let last = main_count() - 1u;
    let i = min(index, last);
    if REGULAR_TILES {
        let first = segments[0];
        let offset = i * (first.end - first.start);
        let start = first.start + offset;
        let end = select(start + (first.end - first.start), segments[1].end, i == last);
        return Segment(start, end, first.group, first.tensor, first.tensor_offset + offset, first.slot + i);
    }
    return segments[i];
}

// Updates invocation `lane`'s part of main segment `index` (made `current_segment`): whether
// the segment exists and its step is not skipped. A segment that does not, or a skipped step,
// updates nothing; every invocation returns, so callers may reach a barrier after it.
fn step_main_segment(index: u32, lane: u32) -> bool {
    let s = main_segment(index);
    current_segment = s;
    let c = control[control_of(s)];
    let group = groups[group_of(s)];
    let live = !skipped(c) && index < main_count();
    step_segment(s, lane, group, c, live);
    return live;
}

// The fused update over one chunk: workgroup i takes segment i (the grid may be 2-D past 65535
// workgroups), at most one tile of one tensor, and each invocation updates its vec4s of it.
// Everything uniform is read once per workgroup, before any branch.
@compute @workgroup_size(WORKGROUP_SIZE)
fn update(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    _ = step_main_segment(workgroup.y * workgroups.x + workgroup.x, lane);
}

// The vec4 layout's tail dispatch: one invocation per tail segment, the last 1 to UNIT - 1
// elements of a tensor that ends inside a unit. The unit is loaded whole and stored element by
// element (the pipeline sets PARTIAL_VEC4S), so no element outside a tensor is written.
@compute @workgroup_size(64)
fn update_tail(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let index = (workgroup.y * workgroups.x + workgroup.x) * 64u + lane;
    let s = segments[min(index, arrayLength(&segments) - 1u)];
    let c = control[control_of(s)];
    let group = groups[group_of(s)];
    if skipped(c) || index >= arrayLength(&segments) {
        return;
    }
    current_segment = s;
    step_unit(s.start + vec4(0u, 1u, 2u, 3u), s, group, c);
}
