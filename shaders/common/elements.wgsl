// The element buffers of one update dispatch as vec4s, and their loads and stores: the layout
// of every chunk whose tensors start at multiples of 4 elements and whose bindings can be
// rounded up to 16 bytes (src/optim/mod.rs decides; `elements_scalar.wgsl` takes the rest).
//
// An invocation updates whole vec4s: `idx` holds the element indices of one (4q .. 4q + 3),
// with lanes past the segment's end clamped to its last element, and `valid` says which lanes
// are real. The binding covers the whole last vec4, so loads read it entire (lanes past the end
// read padding or bytes of no tensor, never used). The update's segments end on vec4
// boundaries and store whole vec4s; the tail dispatch (PARTIAL_VEC4S) stores the partial vec4
// at a tensor's end lane by lane, so no byte outside a tensor is ever written.

@group(0) @binding(0) var<storage, read_write> control: Control;
@group(0) @binding(2) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> state0: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> state1: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> state2: array<vec4<f32>>;

// How a workgroup's vec4s are dealt to its invocations (Tuning::runs_per_invocation). Off:
// consecutive invocations take consecutive vec4s, row after row (coalesced 16-byte loads on
// GPUs). On: each invocation takes a run of VEC4S_PER_INVOCATION consecutive vec4s, which
// suits adapters that run invocations as SIMD batches on a CPU (lavapipe): a batch then
// streams through one contiguous piece of each buffer.
override RUNS: bool = false;

// The elements of the `k`-th vec4 that invocation `lane` updates in a tile from `start`.
fn element_indices(start: u32, lane: u32, k: u32) -> vec4<u32> {
    if RUNS {
        return start + 4u * (lane * VEC4S_PER_INVOCATION + k) + vec4(0u, 1u, 2u, 3u);
    }
    return start + 4u * (k * WORKGROUP_SIZE + lane) + vec4(0u, 1u, 2u, 3u);
}

// How many of its vec4s invocation `lane` visits in segment `s`: a bound known only at run
// time, so that compilers keep a loop that ends with the segment rather than unroll it into
// masked code that runs every vec4 for every segment (on lavapipe, 1000 tensors of 1000
// elements then took 1.5x longer). With runs it is exact per invocation; without, it counts
// the rows of the segment, and the update stops an invocation at the segment's end.
fn vec4s_of(s: Segment, lane: u32) -> u32 {
    let vec4s = (s.end - s.start + 3u) / 4u;
    if RUNS {
        let first = lane * VEC4S_PER_INVOCATION;
        return select(0u, min(VEC4S_PER_INVOCATION, vec4s - first), vec4s > first);
    }
    return (vec4s + WORKGROUP_SIZE - 1u) / WORKGROUP_SIZE;
}

fn load_param(idx: vec4<u32>) -> vec4<f32> {
    return param[idx.x / 4u];
}

fn load_grad(idx: vec4<u32>, c: Control) -> vec4<f32> {
    return process_grad(grad[idx.x / 4u], c);
}

fn load_state0(idx: vec4<u32>) -> vec4<f32> {
    return state0[idx.x / 4u];
}

fn load_state1(idx: vec4<u32>) -> vec4<f32> {
    return state1[idx.x / 4u];
}

fn load_state2(idx: vec4<u32>) -> vec4<f32> {
    return state2[idx.x / 4u];
}

// Set for the tail dispatch (`update_tail` in common/entry.wgsl) only: stores write the lanes
// where `valid` holds. The main update stores whole vec4s, with no per-lane code in its loop.
override PARTIAL_VEC4S: bool = false;

fn store_param(idx: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    let q = idx.x / 4u;
    if !PARTIAL_VEC4S {
        param[q] = v;
        return;
    }
    for (var lane = 0u; lane < 4u; lane++) {
        if valid[lane] { param[q][lane] = v[lane]; }
    }
}

fn store_state0(idx: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    let q = idx.x / 4u;
    if !PARTIAL_VEC4S {
        state0[q] = v;
        return;
    }
    for (var lane = 0u; lane < 4u; lane++) {
        if valid[lane] { state0[q][lane] = v[lane]; }
    }
}

fn store_state1(idx: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    let q = idx.x / 4u;
    if !PARTIAL_VEC4S {
        state1[q] = v;
        return;
    }
    for (var lane = 0u; lane < 4u; lane++) {
        if valid[lane] { state1[q][lane] = v[lane]; }
    }
}

fn store_state2(idx: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    let q = idx.x / 4u;
    if !PARTIAL_VEC4S {
        state2[q] = v;
        return;
    }
    for (var lane = 0u; lane < 4u; lane++) {
        if valid[lane] { state2[q][lane] = v[lane]; }
    }
}
