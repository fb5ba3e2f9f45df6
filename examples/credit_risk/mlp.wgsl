// The credit-default network's forward and backward passes (examples/credit_risk/mlp.rs):
// one tiled matrix multiply with its epilogues, the bias gradient, the batch gather and the
// focal loss. Activations are row-major [rows, features]; a layer's weight is row-major
// [inputs, outputs], so the forward pass is H = relu(X W + b).

// ---- matmul: C[M, N] = op(A)[M, K] op(B)[K, N] (+ bias) (relu) (* (mask > 0)) -------------

// A is stored [K, M] (its transpose is multiplied): the weight gradient X^T dZ.
override TRANS_A: bool = false;
// B is stored [N, K]: the input gradient dZ W^T.
override TRANS_B: bool = false;
// Add bias[n] (forward).
override BIAS: bool = false;
// max(0, .) (forward, hidden layers).
override RELU: bool = false;
// Multiply by (mask[m, n] > 0): the ReLU's derivative in the backward pass, from the layer's
// own output (H > 0 exactly where Z > 0).
override MASK: bool = false;
// B and the bias are the layer's weights stored as bfloat16, two per word (`--precision
// bf16...`): read from `b16` and `bias16`, widened exactly.
override B_BF16: bool = false;

// A workgroup computes a 64 x 64 tile of C; each of its 16 x 16 invocations a 4 x 4 block of
// it (rows local.y + 16 i, columns local.x + 16 j), from 64 x 16 and 16 x 64 tiles of A and B
// staged in workgroup memory, 16 multiply-adds per pair of 4-value loads.
const TILE: u32 = 64u;
const STEP: u32 = 32u;

struct Dims {
    m: u32,
    n: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@group(0) @binding(6) var<storage, read> b16: array<u32>;
@group(0) @binding(7) var<storage, read> bias16: array<u32>;

// Element `e` of a bfloat16 array (element 2j in the low half of word j), as f32.
fn bf16_in(word: u32, e: u32) -> f32 {
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, e % 2u == 1u));
}

var<workgroup> tile_a: array<array<f32, 32>, 64>;
var<workgroup> tile_b: array<array<f32, 64>, 32>;

fn load_a(m: u32, k: u32) -> f32 {
    if m >= dims.m || k >= dims.k {
        return 0.0;
    }
    if TRANS_A {
        return a[k * dims.m + m];
    }
    return a[m * dims.k + k];
}

fn load_b(k: u32, n: u32) -> f32 {
    if k >= dims.k || n >= dims.n {
        return 0.0;
    }
    let e = select(k * dims.n + n, n * dims.k + k, TRANS_B);
    if B_BF16 {
        return bf16_in(b16[e / 2u], e);
    }
    return b[e];
}

fn load_bias(n: u32) -> f32 {
    if B_BF16 {
        return bf16_in(bias16[n / 2u], n);
    }
    return bias[n];
}

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let row0 = group.y * TILE;
    let col0 = group.x * TILE;
    var acc: array<vec4<f32>, 4>;
    let steps = (dims.k + STEP - 1u) / STEP;
    for (var t = 0u; t < steps; t++) {
        let k0 = t * STEP;
        for (var r = 0u; r < 4u; r++) {
            for (var h = 0u; h < 2u; h++) {
                tile_a[local.y + 16u * r][local.x + 16u * h] =
                    load_a(row0 + local.y + 16u * r, k0 + local.x + 16u * h);
                tile_b[local.y + 16u * h][local.x + 16u * r] =
                    load_b(k0 + local.y + 16u * h, col0 + local.x + 16u * r);
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < STEP; kk++) {
            let bv = vec4(
                tile_b[kk][local.x],
                tile_b[kk][local.x + 16u],
                tile_b[kk][local.x + 32u],
                tile_b[kk][local.x + 48u],
            );
            acc[0] += tile_a[local.y][kk] * bv;
            acc[1] += tile_a[local.y + 16u][kk] * bv;
            acc[2] += tile_a[local.y + 32u][kk] * bv;
            acc[3] += tile_a[local.y + 48u][kk] * bv;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + local.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + local.x + 16u * j;
            if row >= dims.m || col >= dims.n {
                continue;
            }
            var sum = acc[i][j];
            if BIAS {
                sum += load_bias(col);
            }
            if RELU {
                sum = max(sum, 0.0);
            }
            if MASK {
                sum = select(0.0, sum, mask[row * dims.n + col] > 0.0);
            }
            c[row * dims.n + col] = sum;
        }
    }
}

// ---- bias gradient: db[n] = sum over rows of dZ[m, n] -------------------------------------

@compute @workgroup_size(64)
fn bias_grad(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = id.x;
    if n >= dims.n {
        return;
    }
    var sum = 0.0;
    for (var m = 0u; m < dims.m; m++) {
        sum += a[m * dims.n + n];
    }
    c[n] = sum;
}
