// The streaming ceiling of a compute shader on this adapter: a vec4 copy launched like the
// update kernels (consecutive invocations take consecutive vec4s, several each). The roofline
// and the benchmarks report it beside copy_buffer_to_buffer. Not part of the library.

override WORKGROUP_SIZE: u32 = 256u;
override VEC4S_PER_INVOCATION: u32 = 4u;
// Tuning::runs_per_invocation, as the update kernels deal their vec4s: each invocation a run of
// consecutive vec4s, or consecutive invocations consecutive vec4s.
override RUNS: bool = false;

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn copy(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let tile = (workgroup.y * workgroups.x + workgroup.x) * WORKGROUP_SIZE * VEC4S_PER_INVOCATION;
    for (var k = 0u; k < VEC4S_PER_INVOCATION; k++) {
        let i = tile + select(k * WORKGROUP_SIZE + lane, lane * VEC4S_PER_INVOCATION + k, RUNS);
        if i < arrayLength(&dst) {
            dst[i] = src[i];
        }
    }
}
