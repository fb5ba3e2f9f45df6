// The two entry points every optimizer kernel shares. The optimizer's own file provides
// `prepare_group(group, step)` (per-step scalars, once per parameter group) and
// `step_elements(idx, valid, hyper, control)` (the fused element-wise update); the elements
// file (`elements.wgsl` or `elements_scalar.wgsl`) provides the buffers and `element_indices`.
//
// Per-element code branches only on overrides (constants after pipeline creation); a runtime
// condition, even one uniform over the dispatch, is a `select` of both results. A software
// adapter runs an `if` as masked code and loses its fast paths inside it: on lavapipe, turning
// `if weight_decay != 0` into a select made AdamW's update 1.38x faster (BENCHMARKS.md).

override WORKGROUP_SIZE: u32 = 256u;
// The vec4s (groups of four elements) each invocation updates in a tile of
// 4 * VEC4S_PER_INVOCATION * WORKGROUP_SIZE elements.
override VEC4S_PER_INVOCATION: u32 = 4u;
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

// The gradient as the update sees it: with gradient processing, unscaled, clipped by value
// and times the clip coefficient; without, as it is.
fn process_grad(g: vec4<f32>, c: Control) -> vec4<f32> {
    if !GRAD_PROCESSING {
        return g;
    }
    return clip_by_value(g * c.inv_grad_scale, c.clip_value) * c.clip_coef;
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
    let c = control;
    let index = workgroup.y * workgroups.x + workgroup.x;
    let s = segments[min(index, arrayLength(&segments) - 1u)];
    let h = hyper[s.group];
    if (GRAD_PROCESSING && c.found_inf != 0u) || index >= arrayLength(&segments) {
        return;
    }
    for (var k = 0u; k < VEC4S_PER_INVOCATION; k++) {
        let idx = element_indices(s.start, lane, k);
        let valid = idx < vec4(s.end);
        // Lane x is the first element: past the end, so is every later vec4.
        if !valid.x {
            break;
        }
        step_elements(min(idx, vec4(s.end - 1u)), valid, h, c);
    }
}
