// Muon's element-wise passes around the batched Newton-Schulz iteration
// (shaders/newton_schulz.wgsl), for the Muon groups of an optimizer (src/optimizer/muon.rs).
// They read the optimizer's own control block: one step counter, one skip flag, one loss scale
// and one global-norm clip coefficient for every parameter, Muon's and the others'.
//
//   muon_momentum: B <- lerp(B, g, 1 - mu); U <- nesterov ? lerp(g, B, mu) : B  (into `ns_in`)
//   (Newton-Schulz: O <- NS_k(U), into `ns_out`)
//   muon_apply:    p <- p * (1 - lr * weight_decay); p <- p + (-lr * ratio) * O
// (PyTorch's form; Optax's, per matrix: B <- (1 - mu) g + mu B, U bias-corrected,
//  p <- p + (-lr) (ratio O + weight_decay p).)
//   muon_combine:  the Muon gradients' norm stats added to the other parameters' (before the
//                  finalize derives the norm, clip coefficient and skip flag from them)
//
// `g` is the gradient as common/process.wgsl has every step see it (unscaled, clipped by value,
// times the clip coefficient). A skipped step changes neither B nor p. Each matrix's
// hyperparameters are in its own record (`MuonMatrix`: the adjusted learning rate depends on
// its shape), written by the host. Every element is read and written as a scalar: the two
// passes are a small share of a Muon step, whose cost is the products of the iteration.
// Needs common/control.wgsl, common/math.wgsl and common/process.wgsl, and the binding
// numbers of src/optimizer/muon.rs (MuonBinding) in the prelude.

// One matrix's record (MuonMatrix in src/optimizer/muon.rs).
struct MuonMatrix {
    // First element in the span's `param` and `grad` bindings, in `momentum`, and in the
    // Newton-Schulz batch's input and output.
    param: u32,
    grad: u32,
    state: u32,
    io: u32,
    len: u32,
    // Non-zero for Nesterov's look-ahead.
    nesterov: u32,
    momentum: f32,
    // 1 - momentum, computed in f64.
    one_minus_momentum: f32,
    // 1 - lr * weight_decay, computed in f64.
    decay: f32,
    // -(lr * ratio(rows, cols)), computed in f64: the step along the orthogonalized update.
    step: f32,
    // Non-zero for optax.contrib.muon's form: bias-corrected momentum (ln(momentum) for the
    // corrections), `p + (-lr) (scale O + weight_decay p)`.
    optax: u32,
    ln_momentum: f32,
    // ratio(rows, cols), weight_decay and -lr, in f32.
    scale: f32,
    weight_decay: f32,
    neg_lr: f32,
    pad: u32,
}

// A workgroup's share of a span: `MUON_TILE` elements of one matrix from `start`.
struct MuonTile {
    matrix: u32,
    start: u32,
}

// One device's contribution to the global norm (NormStats in shaders/clip.wgsl).
struct MuonNormStats {
    value: f32,
    nonfinite: f32,
}

@group(0) @binding(CONTROL_BINDING) var<storage, read> control: array<Control>;
@group(0) @binding(MATRICES_BINDING) var<storage, read> matrices: array<MuonMatrix>;
@group(0) @binding(TILES_BINDING) var<storage, read> tiles: array<MuonTile>;
@group(0) @binding(PARAM_BINDING) var<storage, read_write> param: array<f32>;
@group(0) @binding(GRAD_BINDING) var<storage, read> grad: array<f32>;
@group(0) @binding(MOMENTUM_BINDING) var<storage, read_write> momentum: array<f32>;
@group(0) @binding(NS_IN_BINDING) var<storage, read_write> ns_in: array<f32>;
@group(0) @binding(NS_OUT_BINDING) var<storage, read> ns_out: array<f32>;
// muon_combine's bind group: the optimizer's norm stats, and the Muon gradients'.
@group(0) @binding(STATS_BINDING) var<storage, read_write> stats: array<MuonNormStats>;
@group(0) @binding(MUON_STATS_BINDING) var<storage, read> muon_stats: array<MuonNormStats>;

const MUON_WORKGROUP: u32 = 256u;
// Elements a workgroup takes (src/optimizer/muon.rs: TILE).
const MUON_TILE: u32 = 1024u;

// A workgroup's work: its tile, the tile's matrix, the control block, and how many of the
// tile's elements it steps (0 past the last tile, and when the step is skipped).
struct MuonWork {
    tile: MuonTile,
    matrix: MuonMatrix,
    control: Control,
    len: u32,
}

// The work of `workgroup` (a 2-D grid past the device's limit).
fn work_of(workgroup: vec3<u32>, workgroups: vec3<u32>) -> MuonWork {
    let index = workgroup.y * workgroups.x + workgroup.x;
    let t = tiles[min(index, arrayLength(&tiles) - 1u)];
    let m = matrices[t.matrix];
    let c = control[0];
    let live = index < arrayLength(&tiles) && !skipped(c);
    return MuonWork(t, m, c, select(0u, min(MUON_TILE, m.len - t.start), live));
}

@compute @workgroup_size(MUON_WORKGROUP)
fn muon_momentum(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let w = work_of(workgroup, workgroups);
    let t = w.tile;
    let m = w.matrix;
    let c = w.control;
    // Optax's bias corrections 1 - momentum^t and 1 - momentum^(t + 1), t the step the
    // prologue just counted.
    let step = f32(c.step);
    let correction = bias_correction(m.ln_momentum, step);
    let next_correction = bias_correction(m.ln_momentum, step + 1.0);
    let optax = m.optax != 0u;
    let nesterov = m.nesterov != 0u;
    for (var i = lane; i < w.len; i += MUON_WORKGROUP) {
        let e = t.start + i;
        let g = process_grad(vec4(grad[m.grad + e]), c);
        let old = vec4(momentum[m.state + e]);
        // torch: buf.lerp_(grad, 1 - momentum); grad.lerp(buf, momentum) with Nesterov.
        let b_torch = lerp(old, g, m.one_minus_momentum);
        let u_torch = select(b_torch, lerp(g, b_torch, m.momentum), nesterov);
        // optax: (1 - beta) g + beta mu, then bias-corrected.
        let b_optax = m.one_minus_momentum * g + m.momentum * old;
        let u_nesterov = m.momentum * (b_optax / next_correction)
            + m.one_minus_momentum * (g / correction);
        let u_optax = select(b_optax / correction, u_nesterov, nesterov);
        momentum[m.state + e] = select(b_torch, b_optax, optax).x;
        ns_in[m.io + e] = select(u_torch, u_optax, optax).x;
    }
}

@compute @workgroup_size(MUON_WORKGROUP)
fn muon_apply(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let w = work_of(workgroup, workgroups);
    let t = w.tile;
    let m = w.matrix;
    for (var i = lane; i < w.len; i += MUON_WORKGROUP) {
        let e = t.start + i;
        let p = param[m.param + e];
        let o = ns_out[m.io + e];
        // torch: p.mul_(1 - lr wd); p.add_(O, alpha=-lr ratio).
        let decayed = p * m.decay;
        let torch = decayed + m.step * o;
        // optax: p + (-lr) (ratio O + wd p).
        let optax = p + m.neg_lr * (m.scale * o + m.weight_decay * p);
        param[m.param + e] = select(torch, optax, m.optax != 0u);
    }
}

// Whether the norm is the inf-norm (its stats are maxima, not sums).
override INF_NORM: bool = false;

// Adds the Muon gradients' stats to the others': sums of |c|^p add; inf-norm maxima combine
// by their bits, which order non-negative values, inf and NaN as clip.wgsl's keys do.
@compute @workgroup_size(1)
fn muon_combine() {
    let a = stats[0];
    let b = muon_stats[0];
    var value = a.value + b.value;
    if INF_NORM {
        value = bitcast<f32>(max(bitcast<u32>(a.value), bitcast<u32>(b.value)));
    }
    stats[0] = MuonNormStats(value, a.nonfinite + b.nonfinite);
}
