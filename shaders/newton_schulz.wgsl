// Newton-Schulz orthogonalization of many matrices at once (Muon): every dispatch covers every
// matrix of the batch (the grid's z is the matrix), so an iteration is three dispatches whatever
// the number of matrices. Each matrix X is m x n with m <= n (a taller input is transposed as it
// is loaded and back as it is stored, as torch.optim.Muon does).
//
//   sum_squares  ss = |U|_F^2                          one workgroup per matrix
//   load         X = U (or U^T) / max(sqrt(ss), eps)   (sqrt(ss) + eps with NORM_PLUS_EPS)
//   per iteration:
//     gram       G = X X^T                             (KIND 0)
//     poly       H = b G + c G G                       (KIND 1)
//     update     X' = a X + H X                        (KIND 2)
//   store        O = X (or X^T)
//
// The multiplies are blocked: each invocation computes 16 x 4 values of the result, reading a
// vec4 of A's rows and of B's at a time. Each value is summed over the inner index in order,
// as the CPU reference (`reference::newton_schulz`) sums it. Rows of X, G and H are padded to a
// multiple of 4 with zeros, so that every storage access moves a vec4.

struct Mat {
    // Offset of X in `x_in` / `x_out`, of G and H in `gram` / `poly` (elements, multiples of 4),
    // of U and O in `input` / `output` (elements).
    x: u32,
    g: u32,
    io: u32,
    // X is m x n (m <= n); `tall`: U is n x m and X its transpose.
    m: u32,
    n: u32,
    tall: u32,
    // Row strides of X and of G and H: n and m rounded up to 4, the padding zeros, so that rows
    // load and store as whole vec4s.
    n4: u32,
    m4: u32,
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
// `x_in` and `x_out` (the iterate X) are declared before this file by src/matrix/newton_schulz.rs
// (`iterate_declarations`), in f32 or as f16 pairs packed in u32, with `x_in_at(at)` and
// `x_out_set(at, v)`: the vec4 of X at vec4 index `at`, in f32 either way.
@group(0) @binding(GRAM_BINDING) var<storage, read_write> gram: array<vec4<f32>>;
@group(0) @binding(POLY_BINDING) var<storage, read_write> poly: array<vec4<f32>>;

// Which product a `multiply` pipeline computes (0 gram, 1 poly, 2 update).
override KIND: u32 = 0u;

// A workgroup of WG_X x WG_Y (8 x 8) invocations computes a tile of WG_Y * ROWS (128) rows by
// TILE (32) columns of the result, each invocation a ROWS x 4 block straight from storage, a
// vec4 of A's rows and of B's at a time: no workgroup memory and no barrier, which on a CPU
// adapter are only copies and suspensions (on a GPU the neighbours' loads meet in its caches).
// 16 rows an invocation: 16 vec4 loads of A and 4 of B for 256 multiply-adds; on lavapipe one
// iteration at 512² took about 0.75 the time of 4 rows (8 rows: 0.85; 32 spill registers and
// take 3 times as long; BENCHMARKS.md), a batch of small matrices a little longer (100 x 32²:
// 1.2x, the tile's unused rows run masked).
const WG_X: u32 = 8u;
const WG_Y: u32 = 8u;
const TILE: u32 = WG_X * 4u;
// Rows of the result an invocation computes (its columns: one vec4; src/matrix/newton_schulz.rs:
// TILE_ROWS is WG_Y * ROWS).
const ROWS: u32 = 16u;
const PER: u32 = 4u;

var<workgroup> partial: array<f32, 256>;

// (rows, cols, inner) of this KIND's product, the inner dimension padded to 4.
fn dims(mat: Mat) -> vec3<u32> {
    switch KIND {
        case 0u: { return vec3(mat.m, mat.m, mat.n4); }
        case 1u: { return vec3(mat.m, mat.m, mat.m4); }
        default: { return vec3(mat.m, mat.n, mat.m4); }
    }
}

// The vec4 of A's row `i` at inner index `k` (a multiple of 4); zeros past the last row.
fn a_row(mat: Mat, rows: u32, i: u32, k: u32) -> vec4<f32> {
    if i >= rows {
        return vec4(0.0);
    }
    switch KIND {
        case 0u: { return x_in_at((mat.x + i * mat.n4 + k) / 4u); }
        case 1u: { return gram[(mat.g + i * mat.m4 + k) / 4u]; }
        default: { return poly[(mat.g + i * mat.m4 + k) / 4u]; }
    }
}

// The vec4 of B's row `k` from column `j` (a multiple of 4) for the poly and update products
// (B is G, or X); zeros past B's m rows.
fn b_row(mat: Mat, k: u32, j: u32) -> vec4<f32> {
    if k >= mat.m {
        return vec4(0.0);
    }
    if KIND == 1u {
        return gram[(mat.g + k * mat.m4 + j) / 4u];
    }
    return x_in_at((mat.x + k * mat.n4 + j) / 4u);
}

// Writes the 4 values of row `i` from column `j` (a multiple of 4; the padding gets zeros).
fn write(mat: Mat, i: u32, j: u32, dot: vec4<f32>) {
    switch KIND {
        case 0u: { gram[(mat.g + i * mat.m4 + j) / 4u] = dot; }
        case 1u: {
            let at = (mat.g + i * mat.m4 + j) / 4u;
            poly[at] = table.coefficients.b * gram[at] + table.coefficients.c * dot;
        }
        default: {
            let at = (mat.x + i * mat.n4 + j) / 4u;
            x_out_set(at, table.coefficients.a * x_in_at(at) + dot);
        }
    }
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn multiply(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let mat = table.mats[group.z];
    let size = dims(mat);
    let i0 = group.y * WG_Y * ROWS + local.y * ROWS;
    let j = group.x * TILE + local.x * PER;
    // Columns run to the padded stride (the padding is written with zeros).
    let stride = select(mat.m4, mat.n4, KIND == 2u);
    if i0 >= size.x || j >= stride {
        return;
    }
    var acc: array<vec4<f32>, ROWS>;
    for (var k = 0u; k < size.z; k += 4u) {
        var a: array<vec4<f32>, ROWS>;
        for (var r = 0u; r < ROWS; r++) {
            a[r] = a_row(mat, size.x, i0 + r, k);
        }
        if KIND == 0u {
            // B = X^T: its columns j..j+3 are rows of X, read as vec4s along k.
            var b: array<vec4<f32>, PER>;
            for (var c = 0u; c < PER; c++) {
                b[c] = a_row(mat, size.x, j + c, k);
            }
            for (var e = 0u; e < 4u; e++) {
                let column = vec4(b[0][e], b[1][e], b[2][e], b[3][e]);
                for (var r = 0u; r < ROWS; r++) {
                    acc[r] = acc[r] + a[r][e] * column;
                }
            }
        } else {
            for (var e = 0u; e < 4u; e++) {
                let row = b_row(mat, k + e, j);
                for (var r = 0u; r < ROWS; r++) {
                    acc[r] = acc[r] + a[r][e] * row;
                }
            }
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        if i0 + r < size.x {
            write(mat, i0 + r, j, acc[r]);
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

// U's element of X's (i, j): transposed for a tall matrix; 0 in the padding.
fn u_at(mat: Mat, i: u32, j: u32) -> f32 {
    if j >= mat.n {
        return 0.0;
    }
    if mat.tall != 0u {
        return input[mat.io + j * mat.m + i];
    }
    return input[mat.io + i * mat.n + j];
}

// Whether U is divided by its norm plus eps (optax.contrib.muon) rather than the larger of the
// two (torch.optim.Muon).
override NORM_PLUS_EPS: bool = false;

// X's row i, columns 4 at.x to 4 at.x + 3, from U, divided by its norm.
@compute @workgroup_size(16, 16, 1)
fn load(@builtin(global_invocation_id) at: vec3<u32>) {
    let mat = table.mats[at.z];
    let i = at.y;
    let j = at.x * 4u;
    if i >= mat.m || j >= mat.n4 {
        return;
    }
    let u = vec4(u_at(mat, i, j), u_at(mat, i, j + 1u), u_at(mat, i, j + 2u), u_at(mat, i, j + 3u));
    let norm = sqrt(sumsq[at.z]);
    let eps = table.coefficients.eps;
    x_out_set((mat.x + i * mat.n4 + j) / 4u, u / select(max(norm, eps), norm + eps, NORM_PLUS_EPS));
}

// O from X's row i, columns 4 at.x to 4 at.x + 3 (read from `x_in`, where the last iteration
// left it).
@compute @workgroup_size(16, 16, 1)
fn store(@builtin(global_invocation_id) at: vec3<u32>) {
    let mat = table.mats[at.z];
    let i = at.y;
    let j0 = at.x * 4u;
    if i >= mat.m || j0 >= mat.n {
        return;
    }
    let x = x_in_at((mat.x + i * mat.n4 + j0) / 4u);
    for (var e = 0u; e < 4u; e++) {
        let j = j0 + e;
        if j < mat.n {
            if mat.tall != 0u {
                output[mat.io + j * mat.m + i] = x[e];
            } else {
                output[mat.io + i * mat.n + j] = x[e];
            }
        }
    }
}
