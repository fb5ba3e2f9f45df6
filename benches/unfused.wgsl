// The unfused baseline: AdamW as a chain of one-operation element-wise kernels, one dispatch
// each, as a naive wgpu user or a framework without fusion runs it. Constants are overrides
// (a benchmark runs one step's values over and over). Not part of the library.

override A: f32 = 1.0;
override B: f32 = 0.0;

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;

fn index(id: vec3<u32>, n: vec3<u32>) -> u32 {
    return id.x + id.y * n.x * 256u;
}

// out = A * out + B * x
@compute @workgroup_size(256)
fn axpby(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = index(id, n);
    if i < arrayLength(&out) {
        out[i] = A * out[i] + B * x[i];
    }
}

// out = x * y
@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = index(id, n);
    if i < arrayLength(&out) {
        out[i] = x[i] * y[i];
    }
}

// out = A * sqrt(x) + B
@compute @workgroup_size(256)
fn sqrt_affine(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = index(id, n);
    if i < arrayLength(&out) {
        out[i] = A * sqrt(x[i]) + B;
    }
}

// out = x / y
@compute @workgroup_size(256)
fn div(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = index(id, n);
    if i < arrayLength(&out) {
        out[i] = x[i] / y[i];
    }
}
