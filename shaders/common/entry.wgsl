// The two entry points every optimizer kernel shares. The optimizer's own file provides
// `prepare_group(group, step)` (per-step scalars, once per parameter group) and
// `step_elements(idx, valid, group, control)` (the fused element-wise update).

override WORKGROUP_SIZE: u32 = 256u;
// Whether gradient processing (shaders/clip.wgsl) feeds this step. Without it gradients are used
// as they are and the control block's gradient fields are never read, whatever a step recorded
// earlier with processing left there.
override GRAD_PROCESSING: bool = false;

// One invocation, once per step, before any update: advance the step counter on the device
// (unless this step is skipped) and derive the per-step scalars of every parameter group.
@compute @workgroup_size(1)
fn prologue() {
    if GRAD_PROCESSING && control.found_inf != 0u {
        return;
    }
    control.step += 1u;
    let step = f32(control.step);
    for (var g = 0u; g < arrayLength(&hyper); g++) {
        prepare_group(g, step);
    }
}

// A piece of one tensor within the bound chunk: elements [start, end), updated by one
// workgroup with parameter group `group`'s hyperparameters (src/arena.rs builds the table).
struct Segment {
    start: u32,
    end: u32,
    group: u32,
    pad: u32,
}

@group(0) @binding(7) var<storage, read> segments: array<Segment>;

// The fused update over one chunk: workgroup i takes segment i (the grid may be 2-D past 65535
// workgroups) and walks it in tiles of 4 * WORKGROUP_SIZE elements, four lanes
// WORKGROUP_SIZE apart; lanes past the segment's end load a clamped element and store nothing.
@compute @workgroup_size(WORKGROUP_SIZE)
fn update(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let c = control;
    if GRAD_PROCESSING && c.found_inf != 0u {
        return;
    }
    let index = workgroup.y * workgroups.x + workgroup.x;
    if index >= arrayLength(&segments) {
        return;
    }
    let s = segments[index];
    let tile = 4u * WORKGROUP_SIZE;
    let lanes = vec4(0u, 1u, 2u, 3u) * WORKGROUP_SIZE + lane;
    for (var start = s.start; start < s.end; start += tile) {
        let idx = start + lanes;
        step_elements(min(idx, vec4(s.end - 1u)), idx < vec4(s.end), s.group, c);
    }
}
