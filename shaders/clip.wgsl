// Gradient processing before an optimizer step, on the device (PyTorch's `scaler.unscale_`,
// `clip_grad_value_`, `clip_grad_norm_` and `scaler.update`; Optax's `clip_by_global_norm`).
//
//   u = g / grad_scale                         (unscale; found_inf if any u is inf or NaN)
//   c = clamp(u, -clip_value, clip_value)      (clip by value)
//   norm = sqrt(sum c^2)  or  max |c|          (global over every tensor of the optimizer)
//   clip_coef = min(1, max_norm / (norm + 1e-6))            PyTorch clip_grad_norm_
//             = norm < max_norm ? 1 : max_norm / norm       Optax clip_by_global_norm
//
// Three entry points, recorded in this order:
//   grad_partials: one dispatch per chunk of a span (src/plan.rs: an Arena's tensors share
//                  one), walking its segment table, so gaps between tensors are never read;
//                  each workgroup writes one Partial into one buffer shared by all chunks.
//   grad_local:    one workgroup; folds every Partial into NormStats: this device's sum of
//                  squares (or max |c|) and non-finite flag. Data-parallel callers all-reduce
//                  NormStats across devices here (SUM for the 2-norm, MAX for the inf-norm).
//   grad_finalize: one invocation; norm, clip coefficient, found_inf and the loss-scale update,
//                  written into the optimizer's control block for its prologue and update.
//
// The order of every addition is fixed by the dispatch sizes, never by timing: no atomics, so
// the same gradients give the same bits, run after run. The file that precedes this one
// (common/reduce_workgroup.wgsl or common/reduce_subgroup.wgsl) provides `Invocation` and
// `workgroup_reduce`; common/grad_f32.wgsl or common/grad_16bit.wgsl binds the gradients in
// their storage type (`grad_vec4`, `grad_element`). Needs common/control.wgsl and
// common/segment.wgsl.

struct GradHyper {
    max_norm: f32,
    // CLIP_NONE, CLIP_PYTORCH or CLIP_OPTAX.
    clip_mode: u32,
    // Non-zero for the inf-norm (max |c|) instead of the 2-norm.
    inf_norm: u32,
    // Non-zero when dynamic loss scaling (GradScaler) is on.
    scaler: u32,
    growth_factor: f32,
    backoff_factor: f32,
    growth_interval: u32,
    // Non-zero to halt (and report at the next readback) instead of skipping.
    error_if_nonfinite: u32,
}

const CLIP_NONE: u32 = 0u;
const CLIP_PYTORCH: u32 = 1u;
const CLIP_OPTAX: u32 = 2u;

// What one workgroup saw: the sum of c^2, and the largest `abs_bits` key (see `key`).
struct Partial {
    sum_of_squares: f32,
    max_abs_bits: u32,
}

// One device's contribution to the global norm, in a form a collective can all-reduce.
struct NormStats {
    // The sum of c^2 (2-norm) or max |c| (inf-norm); inf or NaN when a gradient is.
    value: f32,
    // 1 when a gradient is inf or NaN, else 0.
    nonfinite: f32,
}

@group(0) @binding(0) var<storage, read_write> control: Control;
@group(0) @binding(1) var<storage, read> grad_hyper: GradHyper;
@group(0) @binding(3) var<storage, read_write> partials: array<Partial>;
@group(0) @binding(4) var<storage, read_write> stats: NormStats;
// The control block again, read-only, for the partials: dispatches that only read it need no
// barrier between them.
@group(0) @binding(5) var<storage, read> control_in: Control;
// The chunk's segments: every element of its tensors exactly once, each segment starting on a
// vec4 (zeroed entries are empty).
@group(0) @binding(7) var<storage, read> segments: array<Segment>;

fn combine(a: Partial, b: Partial) -> Partial {
    return Partial(a.sum_of_squares + b.sum_of_squares, max(a.max_abs_bits, b.max_abs_bits));
}

// The max-reduction key of one element: the bits of |c|, or of |u| when u is inf or NaN, so
// that a non-finite gradient dominates (NaN over inf) whatever the value clip made of it.
fn key(u: vec4<f32>, c: vec4<f32>) -> vec4<u32> {
    let u_bits = bitcast<vec4<u32>>(u) & vec4(ABS_MASK);
    let c_bits = bitcast<vec4<u32>>(c) & vec4(ABS_MASK);
    return select(c_bits, u_bits, u_bits >= vec4(INF_BITS));
}

// Adds the gradients `u` (unscaled) of the lanes where `valid` holds to one invocation's
// running sums, per vec4 lane: their squares (clipped by value first, with CLIP_VALUE) to
// `block`, their keys to `max_bits`.
fn add(block: ptr<function, vec4<f32>>, max_bits: ptr<function, vec4<u32>>, u: vec4<f32>, valid: vec4<bool>, clip_value: f32) {
    var c = u;
    if CLIP_VALUE {
        c = clip_by_value(u, clip_value);
    }
    let clamped = select(vec4(0.0), c, valid);
    *block += clamped * clamped;
    *max_bits = max(*max_bits, select(vec4(0u), key(u, clamped), valid));
}

// The unscaled gradients of a vec4, when the pipeline unscales (UNSCALE).
fn unscaled(g: vec4<f32>, inv_grad_scale: f32) -> vec4<f32> {
    if UNSCALE {
        return g * inv_grad_scale;
    }
    return g;
}

// This invocation's share of one chunk: workgroup w takes a run of consecutive segments, the
// w-th of W (W workgroups; a small, contiguous footprint per workgroup); within a segment, consecutive invocations read consecutive vec4s (one 16-byte
// load each), then the segment's last 1 to 3 elements, when it ends inside a vec4, one lane
// each. Each segment's squares are summed apart (a few vec4s per invocation: at most a tile)
// and the segment sums into a total, so rounding errors grow with the vec4s per invocation of
// a tile plus the segments per workgroup, never with the length of the chunk. (Compensated
// summation is no option: WGSL compilers may reassociate floating-point arithmetic, and
// lavapipe's does fold Kahan's correction away.)
fn accumulate(inv: Invocation) -> Partial {
    let count = arrayLength(&segments);
    let inv_grad_scale = 1.0 / control_in.grad_scale;
    let clip_value = control_in.clip_value;
    var total = vec4(0.0);
    var max_bits = vec4(0u);
    let run = (count + inv.workgroups.x - 1u) / inv.workgroups.x;
    let first = inv.workgroup.x * run;
    for (var j = first; j < min(first + run, count); j++) {
        let s = segments[j];
        let body_end = s.end / 4u;
        var block = vec4(0.0);
        for (var i = s.start / 4u + inv.lane; i < body_end; i += REDUCE_SIZE) {
            add(&block, &max_bits, unscaled(grad_vec4(i), inv_grad_scale), vec4(true), clip_value);
        }
        let tail = 4u * body_end + inv.lane;
        if tail < s.end {
            let u = unscaled(vec4(grad_element(tail), 0.0, 0.0, 0.0), inv_grad_scale);
            add(&block, &max_bits, u, vec4(true, false, false, false), clip_value);
        }
        total += block;
    }
    let max_key = max(max(max_bits.x, max_bits.y), max(max_bits.z, max_bits.w));
    return Partial((total.x + total.y) + (total.z + total.w), max_key);
}

// Workgroup w of a chunk writes partial `base + w` of the chunk's segments (src/plan.rs:
// `Plan::partials`), modulo the buffer's length: past its end the slot already holds an
// earlier chunk's partial, which this one combines with, in dispatch order.
@compute @workgroup_size(REDUCE_SIZE)
fn grad_partials(inv: Invocation) {
    let total = workgroup_reduce(accumulate(inv), inv);
    if inv.lane == 0u {
        let index = segments[0].base + inv.workgroup.x;
        let slot = index % arrayLength(&partials);
        if index >= arrayLength(&partials) {
            partials[slot] = combine(partials[slot], total);
        } else {
            partials[slot] = total;
        }
    }
}

@compute @workgroup_size(REDUCE_SIZE)
fn grad_local(inv: Invocation) {
    var mine = Partial(0.0, 0u);
    for (var i = inv.lane; i < arrayLength(&partials); i += REDUCE_SIZE) {
        mine = combine(mine, partials[i]);
    }
    let total = workgroup_reduce(mine, inv);
    if inv.lane == 0u {
        stats = norm_stats(total);
    }
}

fn norm_stats(total: Partial) -> NormStats {
    let value = bitcast<f32>(total.max_abs_bits);
    if !is_finite(value) {
        // NaN if any gradient is NaN, else inf: what PyTorch's norm of them is.
        return NormStats(value, 1.0);
    }
    if grad_hyper.inf_norm != 0u {
        return NormStats(value, 0.0);
    }
    // May overflow to inf from finite gradients (1e20^2): PyTorch's f32 norm does too.
    return NormStats(total.sum_of_squares, 0.0);
}

// PyTorch's clip coefficient, or Optax's. A non-finite norm gives what both give: 0 for inf
// (max_norm / inf), NaN for NaN.
fn clip_coefficient(norm: f32, h: GradHyper) -> f32 {
    if h.clip_mode == CLIP_NONE {
        return 1.0;
    }
    if !is_finite(norm) {
        return select(0.0, norm, (bitcast<u32>(norm) & ABS_MASK) > INF_BITS);
    }
    if h.clip_mode == CLIP_PYTORCH {
        return min(1.0, h.max_norm / (norm + 1e-6));
    }
    if norm < h.max_norm {
        return 1.0;
    }
    return h.max_norm / norm;
}

// GradScaler.update (ATen's `_amp_update_scale_`): back off on a non-finite step; grow after
// `growth_interval` consecutive finite ones, unless growing would overflow to inf.
fn update_scale(found_inf: bool, h: GradHyper) {
    if found_inf {
        control.grad_scale *= h.backoff_factor;
        control.growth_tracker = 0u;
        return;
    }
    let successful = control.growth_tracker + 1u;
    if successful == h.growth_interval {
        let grown = control.grad_scale * h.growth_factor;
        if is_finite(grown) {
            control.grad_scale = grown;
        }
        control.growth_tracker = 0u;
    } else {
        control.growth_tracker = successful;
    }
}

@compute @workgroup_size(1)
fn grad_finalize() {
    if control.nonfinite_step != 0u {
        // Halted by error_if_nonfinite: nothing changes until the host clears it.
        control.found_inf = 1u;
        return;
    }
    let h = grad_hyper;
    let s = stats;
    let found_inf = (bitcast<u32>(s.nonfinite) & ABS_MASK) != 0u;
    var norm = s.value;
    if h.inf_norm == 0u && is_finite(norm) {
        norm = sqrt(norm);
    }
    control.grad_norm = norm;
    control.clip_coef = clip_coefficient(norm, h);
    control.inv_grad_scale = 1.0 / control.grad_scale;
    control.found_inf = u32(found_inf);
    // clip_grad_norm_(error_if_nonfinite=True) raises on a non-finite total norm: also when
    // finite gradients overflow it.
    if h.error_if_nonfinite != 0u && (found_inf || !is_finite(norm)) {
        control.found_inf = 1u;
        control.nonfinite_step = control.step + 1u;
        return;
    }
    if found_inf {
        control.skipped_steps += 1u;
    }
    if h.scaler != 0u {
        update_scale(found_inf, h);
    }
}
