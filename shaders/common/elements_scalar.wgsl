// The element buffers of one update dispatch as scalars, and their loads and stores: the
// fallback layout of `elements.wgsl` for chunks it cannot take (a tensor starting inside a
// vec4, or a binding that cannot be rounded up to 16 bytes because its buffer ends first).
//
// Every buffer is bound as `array<f32>` over exactly the chunk being updated. An invocation
// updates four elements at a time, `WORKGROUP_SIZE` apart (so a workgroup's loads of each lane
// are contiguous): `idx` holds their indices, clamped into range past the segment's end, and
// `valid` says which lanes are real. Loads are unconditional (a clamped lane reads a real
// element); stores write only valid lanes.

@group(0) @binding(0) var<storage, read_write> control: Control;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> state0: array<f32>;
@group(0) @binding(5) var<storage, read_write> state1: array<f32>;
@group(0) @binding(6) var<storage, read_write> state2: array<f32>;

// The elements of the `k`-th group of four that invocation `lane` updates in a tile from
// `start`.
fn element_indices(start: u32, lane: u32, k: u32) -> vec4<u32> {
    return start + (4u * k + vec4(0u, 1u, 2u, 3u)) * WORKGROUP_SIZE + lane;
}

// Runs of vec4s per invocation (see `elements.wgsl`) are a vec4-layout setting: here the four
// elements of a group are `WORKGROUP_SIZE` apart already.
const RUNS: bool = false;

// The groups of four an invocation visits in segment `s`: the rows of the segment (a bound
// known only at run time; see `elements.wgsl`). The update stops an invocation at the end.
fn vec4s_of(s: Segment, lane: u32) -> u32 {
    return (s.end - s.start + 4u * WORKGROUP_SIZE - 1u) / (4u * WORKGROUP_SIZE);
}

fn load_param(idx: vec4<u32>) -> vec4<f32> {
    return vec4(param[idx.x], param[idx.y], param[idx.z], param[idx.w]);
}

fn load_grad(idx: vec4<u32>, c: Control) -> vec4<f32> {
    return process_grad(vec4(grad[idx.x], grad[idx.y], grad[idx.z], grad[idx.w]), c);
}

fn load_state0(idx: vec4<u32>) -> vec4<f32> {
    return vec4(state0[idx.x], state0[idx.y], state0[idx.z], state0[idx.w]);
}

fn load_state1(idx: vec4<u32>) -> vec4<f32> {
    return vec4(state1[idx.x], state1[idx.y], state1[idx.z], state1[idx.w]);
}

fn load_state2(idx: vec4<u32>) -> vec4<f32> {
    return vec4(state2[idx.x], state2[idx.y], state2[idx.z], state2[idx.w]);
}

fn store_param(idx: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    if valid.x { param[idx.x] = v.x; }
    if valid.y { param[idx.y] = v.y; }
    if valid.z { param[idx.z] = v.z; }
    if valid.w { param[idx.w] = v.w; }
}

fn store_state0(idx: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    if valid.x { state0[idx.x] = v.x; }
    if valid.y { state0[idx.y] = v.y; }
    if valid.z { state0[idx.z] = v.z; }
    if valid.w { state0[idx.w] = v.w; }
}

fn store_state1(idx: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    if valid.x { state1[idx.x] = v.x; }
    if valid.y { state1[idx.y] = v.y; }
    if valid.z { state1[idx.z] = v.z; }
    if valid.w { state1[idx.w] = v.w; }
}

fn store_state2(idx: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    if valid.x { state2[idx.x] = v.x; }
    if valid.y { state2[idx.y] = v.y; }
    if valid.z { state2[idx.z] = v.z; }
    if valid.w { state2[idx.w] = v.w; }
}
