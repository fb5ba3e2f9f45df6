// clip_grad_value_ on its own, in place: values = clamp(values, -clip_value, clip_value), for
// gradients that are needed clipped outside an optimizer step. Inside a step the clamp is
// fused into the gradient load instead (see Control.clip_value). Needs common/control.wgsl and
// common/segment.wgsl.
//
// One dispatch per chunk of a span (src/kernel/plan): workgroup w takes segments w, w + W, ... of
// the chunk's table, so the gaps between tensors are never written.

override WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(VALUES_BINDING) var<storage, read_write> values: array<f32>;
@group(0) @binding(BOUND_BINDING) var<storage, read> bound: f32;
@group(0) @binding(SEGMENTS_BINDING) var<storage, read> segments: array<Segment>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn clip_value_in_place(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let clip_value = bound;
    let tile = 4u * WORKGROUP_SIZE;
    let lanes = vec4(0u, 1u, 2u, 3u) * WORKGROUP_SIZE + lane;
    for (var j = workgroup.x; j < arrayLength(&segments); j += workgroups.x) {
        let s = segments[j];
        for (var start = s.start; start < s.end; start += tile) {
            let idx = start + lanes;
            let i = min(idx, vec4(s.end - 1u));
            let v = clip_by_value(vec4(values[i.x], values[i.y], values[i.z], values[i.w]), clip_value);
            for (var k = 0u; k < 4u; k++) {
                if idx[k] < s.end {
                    values[idx[k]] = v[k];
                }
            }
        }
    }
}
