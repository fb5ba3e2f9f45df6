// The gradient of least squares, loss = 1/(2m) |A x - b|^2, in two passes:
// r = A x - b, then grad = A^T r / m.

override M: u32;
override D: u32;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> r: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(64)
fn residual(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= M {
        return;
    }
    var sum = 0.0;
    for (var j = 0u; j < D; j++) {
        sum += a[i * D + j] * x[j];
    }
    r[i] = sum - b[i];
}

@compute @workgroup_size(64)
fn gradient(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    if j >= D {
        return;
    }
    var sum = 0.0;
    for (var i = 0u; i < M; i++) {
        sum += a[i * D + j] * r[i];
    }
    grad[j] = sum / f32(M);
}
