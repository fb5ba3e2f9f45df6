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

// The fused update over one chunk: a grid-stride loop over tiles of 4 * WORKGROUP_SIZE
// elements, so any length works with at most `max_compute_workgroups_per_dimension` workgroups.
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
    let n = arrayLength(&param);
    let tile = 4u * WORKGROUP_SIZE;
    let lanes = vec4(0u, 1u, 2u, 3u) * WORKGROUP_SIZE + lane;
    for (var start = workgroup.x * tile; start < n; start += workgroups.x * tile) {
        let idx = start + lanes;
        step_elements(min(idx, vec4(n - 1u)), idx < vec4(n), 0u, c);
    }
}
