// Newton-Schulz orthogonalization of many matrices at once (Muon): every dispatch covers every
// matrix of the batch (the grid's z is the matrix), so an iteration is three dispatches whatever
// the number of matrices. Each matrix X is m x n with m <= n (a taller input is transposed as it
// is loaded and back as it is stored, as torch.optim.Muon does).
//
//   sum_squares  ss = |U|_F^2                          one workgroup per matrix
//   load         X = U (or U^T) / max(sqrt(ss), eps)
//   per iteration:
//     gram       G = X X^T                             (KIND 0)
//     poly       H = b G + c G G                       (KIND 1)
//     update     X' = a X + H X                        (KIND 2)
//   store        O = X (or X^T)
//
// The multiplies are tiled: a workgroup of 16 x 16 invocations computes a 64 x 64 tile of the
// result, 4 x 4 values each, stepping through the inner dimension 16 at a time through
// workgroup memory. Each value is summed over the inner index in order, as the CPU reference
// (`reference::newton_schulz`) sums it.

struct Mat {
    // Offset of X in `x_in` / `x_out`, of G and H in `gram` / `poly`, of U and O in `input` /
    // `output` (elements).
    x: u32,
    g: u32,
    io: u32,
    // X is m x n (m <= n); `tall`: U is n x m and X its transpose.
    m: u32,
    n: u32,
    tall: u32,
}

struct Coefficients {
    a: f32,
    b: f32,
    c: f32,
    eps: f32,
}

// The coefficients, then one entry per matrix.
struct Table {
    coefficients: Coefficients,
    mats: array<Mat>,
}

@group(0) @binding(TABLE_BINDING) var<storage, read> table: Table;
@group(0) @binding(INPUT_BINDING) var<storage, read> input: array<f32>;
@group(0) @binding(OUTPUT_BINDING) var<storage, read_write> output: array<f32>;
@group(0) @binding(SUMSQ_BINDING) var<storage, read_write> sumsq: array<f32>;
@group(0) @binding(X_IN_BINDING) var<storage, read> x_in: array<f32>;
@group(0) @binding(X_OUT_BINDING) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(GRAM_BINDING) var<storage, read_write> gram: array<f32>;
@group(0) @binding(POLY_BINDING) var<storage, read_write> poly: array<f32>;

// Which product a `multiply` pipeline computes (0 gram, 1 poly, 2 update).
override KIND: u32 = 0u;

const TILE: u32 = 64u;
const STEP: u32 = 16u;
const PER: u32 = 4u;

var<workgroup> a_tile: array<array<f32, TILE>, STEP>;
var<workgroup> b_tile: array<array<f32, TILE>, STEP>;
var<workgroup> partial: array<f32, 256>;

// A's element (i, k) and B's element (k, j) of this KIND's product.
fn a_at(mat: Mat, i: u32, k: u32) -> f32 {
    switch KIND {
        case 0u: { return x_in[mat.x + i * mat.n + k]; }
        case 1u: { return gram[mat.g + i * mat.m + k]; }
        default: { return poly[mat.g + i * mat.m + k]; }
    }
}

fn b_at(mat: Mat, k: u32, j: u32) -> f32 {
    switch KIND {
        case 0u: { return x_in[mat.x + j * mat.n + k]; }
        case 1u: { return gram[mat.g + k * mat.m + j]; }
        default: { return x_in[mat.x + k * mat.n + j]; }
    }
}

// (rows, cols, inner) of this KIND's product.
fn dims(mat: Mat) -> vec3<u32> {
    switch KIND {
        case 0u: { return vec3(mat.m, mat.m, mat.n); }
        case 1u: { return vec3(mat.m, mat.m, mat.m); }
        default: { return vec3(mat.m, mat.n, mat.m); }
    }
}

fn write(mat: Mat, i: u32, j: u32, dot: f32) {
    switch KIND {
        case 0u: { gram[mat.g + i * mat.m + j] = dot; }
        case 1u: {
            let at = mat.g + i * mat.m + j;
            poly[at] = table.coefficients.b * gram[at] + table.coefficients.c * dot;
        }
        default: {
            let at = mat.x + i * mat.n + j;
            x_out[at] = table.coefficients.a * x_in[at] + dot;
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn multiply(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let mat = table.mats[group.z];
    let size = dims(mat);
    let row0 = group.y * TILE;
    let col0 = group.x * TILE;
    // Uniform: the whole workgroup leaves together, before any barrier.
    if row0 >= size.x || col0 >= size.y {
        return;
    }
    let flat = local.y * 16u + local.x;
    var acc: array<array<f32, PER>, PER>;
    for (var k0 = 0u; k0 < size.z; k0 += STEP) {
        // Each invocation loads 4 of A's 64 x 16 values and 4 of B's 16 x 64.
        for (var t = 0u; t < 4u; t++) {
            let e = flat + t * 256u;
            let ai = e / STEP;
            let ak = e % STEP;
            var av = 0.0;
            if row0 + ai < size.x && k0 + ak < size.z {
                av = a_at(mat, row0 + ai, k0 + ak);
            }
            a_tile[ak][ai] = av;
            let bk = e / TILE;
            let bj = e % TILE;
            var bv = 0.0;
            if k0 + bk < size.z && col0 + bj < size.y {
                bv = b_at(mat, k0 + bk, col0 + bj);
            }
            b_tile[bk][bj] = bv;
        }
        workgroupBarrier();
        let steps = min(STEP, size.z - k0);
        for (var k = 0u; k < steps; k++) {
            var a: array<f32, PER>;
            var b: array<f32, PER>;
            for (var r = 0u; r < PER; r++) {
                a[r] = a_tile[k][local.y + r * 16u];
                b[r] = b_tile[k][local.x + r * 16u];
            }
            for (var r = 0u; r < PER; r++) {
                for (var c = 0u; c < PER; c++) {
                    acc[r][c] = acc[r][c] + a[r] * b[c];
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < PER; r++) {
        let i = row0 + local.y + r * 16u;
        for (var c = 0u; c < PER; c++) {
            let j = col0 + local.x + c * 16u;
            if i < size.x && j < size.y {
                write(mat, i, j, acc[r][c]);
            }
        }
    }
}

// ss of matrix `group.x`: 256 invocations each sum a strided share, then a tree.
@compute @workgroup_size(256, 1, 1)
fn sum_squares(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let mat = table.mats[group.x];
    let count = mat.m * mat.n;
    var sum = 0.0;
    for (var e = local; e < count; e += 256u) {
        let v = input[mat.io + e];
        sum += v * v;
    }
    partial[local] = sum;
    for (var half = 128u; half > 0u; half >>= 1u) {
        workgroupBarrier();
        if local < half {
            partial[local] += partial[local + half];
        }
    }
    if local == 0u {
        sumsq[group.x] = partial[0];
    }
}

// X (element (i, j) at invocation (j, i) of the grid) from U, divided by its norm.
@compute @workgroup_size(16, 16, 1)
fn load(@builtin(global_invocation_id) at: vec3<u32>) {
    let mat = table.mats[at.z];
    let i = at.y;
    let j = at.x;
    if i >= mat.m || j >= mat.n {
        return;
    }
    var u: f32;
    if mat.tall != 0u {
        u = input[mat.io + j * mat.m + i];
    } else {
        u = input[mat.io + i * mat.n + j];
    }
    x_out[mat.x + i * mat.n + j] = u / max(sqrt(sumsq[at.z]), table.coefficients.eps);
}

// O from X (read from `x_in`, where the last iteration left it).
@compute @workgroup_size(16, 16, 1)
fn store(@builtin(global_invocation_id) at: vec3<u32>) {
    let mat = table.mats[at.z];
    let i = at.y;
    let j = at.x;
    if i >= mat.m || j >= mat.n {
        return;
    }
    let x = x_in[mat.x + i * mat.n + j];
    if mat.tall != 0u {
        output[mat.io + j * mat.m + i] = x;
    } else {
        output[mat.io + i * mat.n + j] = x;
    }
}
