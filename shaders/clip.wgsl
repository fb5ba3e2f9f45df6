// Gradient processing before an optimizer step, on the device (PyTorch's `scaler.unscale_`,
// `clip_grad_value_`, `clip_grad_norm_` and `scaler.update`; Optax's `clip_by_global_norm`).
//
//   u = g / grad_scale                         (unscale; found_inf if any u is inf or NaN)
//   c = clamp(u, -clip_value, clip_value)      (clip by value)
//   norm = sqrt(sum c^2), (sum |c|^p)^(1/p)  or  max |c|     (global over every tensor)
//   clip_coef = min(1, max_norm / (norm + 1e-6))            PyTorch clip_grad_norm_
//             = norm < max_norm ? 1 : max_norm / norm       Optax clip_by_global_norm
//
// Every array indexed by a control group (`control`, `grad_hyper`, `stats`, `folds`) has one
// entry per control block: one for an optimizer whose parameter groups share it, one per group
// for a population of replicas, each clipped and skipped alone (src/kernel/plan: `ControlMode`).
//
// Three entry points, recorded in this order:
//   grad_partials: one dispatch per chunk of a span (src/kernel/plan: an Arena's tensors share
//                  one), walking its segment table, so gaps between tensors are never read;
//                  each workgroup takes a run of one control group's segments (its
//                  `ReduceWork`) and writes one Partial into one buffer shared by all chunks.
//   grad_local:    one workgroup per control group; folds the group's Partials into its
//                  NormStats: the sum of |c|^p (or max |c|) and non-finite flag. Data-parallel
//                  callers all-reduce NormStats across devices here (SUM for any finite p, MAX
//                  for the inf-norm).
//   grad_finalize: one invocation per control group; norm, clip coefficient, found_inf and the
//                  loss-scale update, written into its control block for the prologue and
//                  the update.
//
// The order of every addition is fixed by the dispatch sizes, never by timing: no atomics, so
// the same gradients give the same bits, run after run. The file that precedes this one
// (common/reduce_workgroup.wgsl or common/reduce_subgroup.wgsl) provides `Invocation` and
// `workgroup_reduce`; common/grad_f32.wgsl or common/grad_16bit.wgsl binds the gradients in
// their storage type (`grad_vec4`, `grad_element`). Needs common/control.wgsl and
// common/segment.wgsl, and the binding numbers of src/grad/processing.rs (GradBinding) in the
// prelude.

struct GradHyper {
    max_norm: f32,
    // CLIP_NONE, CLIP_PYTORCH or CLIP_OPTAX.
    clip_mode: u32,
    // Non-zero for the inf-norm (max |c|) instead of a p-norm.
    inf_norm: u32,
    // Non-zero when dynamic loss scaling (GradScaler) is on.
    scaler: u32,
    growth_factor: f32,
    backoff_factor: f32,
    growth_interval: u32,
    // Non-zero to halt (and report at the next readback) instead of skipping.
    error_if_nonfinite: u32,
    // p of a finite norm (2 for the 2-norm), and 1 / p computed in f64.
    norm_type: f32,
    inv_norm_type: f32,
}

const CLIP_NONE: u32 = 0u;
const CLIP_PYTORCH: u32 = 1u;
const CLIP_OPTAX: u32 = 2u;

// What one workgroup saw: the sum of |c|^p (c^2 for the 2-norm), and the largest `abs_bits`
// key (see `key`).
struct Partial {
    sum_of_powers: f32,
    max_abs_bits: u32,
}

// One device's contribution to the global norm, in a form a collective can all-reduce.
struct NormStats {
    // The sum of |c|^p (finite p) or max |c| (inf-norm); inf or NaN when a gradient is.
    value: f32,
    // 1 when a gradient is inf or NaN, else 0.
    nonfinite: f32,
}

// A run of one control group's segments of a chunk (indices into `segments`: its main
// segments, then its tails) and the partial it goes to.
struct ReduceWork {
    main_first: u32,
    main_end: u32,
    tail_first: u32,
    tail_end: u32,
    partial: u32,
    control: u32,
}

// The partials [first, end) of one control group.
struct Fold {
    first: u32,
    end: u32,
}

@group(0) @binding(CONTROL_BINDING) var<storage, read_write> control: array<Control>;
@group(0) @binding(GRAD_HYPER_BINDING) var<storage, read> grad_hyper: array<GradHyper>;
@group(0) @binding(PARTIALS_BINDING) var<storage, read_write> partials: array<Partial>;
@group(0) @binding(STATS_BINDING) var<storage, read_write> stats: array<NormStats>;
// The control blocks again, read-only, for the partials: dispatches that only read them need
// no barrier between them.
@group(0) @binding(CONTROL_IN_BINDING) var<storage, read> control_in: array<Control>;
// The chunk's segments: every element of its tensors exactly once, each segment starting on a
// vec4 (zeroed entries are empty).
@group(0) @binding(SEGMENTS_BINDING) var<storage, read> segments: array<Segment>;
// The chunk's reduction work, one entry per workgroup.
@group(0) @binding(WORK_BINDING) var<storage, read> work: array<ReduceWork>;
// One entry per control group.
@group(0) @binding(FOLDS_BINDING) var<storage, read> folds: array<Fold>;

fn combine(a: Partial, b: Partial) -> Partial {
    return Partial(a.sum_of_powers + b.sum_of_powers, max(a.max_abs_bits, b.max_abs_bits));
}

// The max-reduction key of one element: the bits of |c|, or of |u| when u is inf or NaN, so
// that a non-finite gradient dominates (NaN over inf) whatever the value clip made of it.
fn key(u: vec4<f32>, c: vec4<f32>) -> vec4<u32> {
    let u_bits = bitcast<vec4<u32>>(u) & vec4(ABS_MASK);
    let c_bits = bitcast<vec4<u32>>(c) & vec4(ABS_MASK);
    return select(c_bits, u_bits, u_bits >= vec4(INF_BITS));
}

// Whether some control group's norm is a finite p-norm other than the 2-norm (`GradStages`
// in src/kernel/pipelines.rs): without it the reduction squares, as it always did.
override POWER_NORM: bool = false;

// |c|^p, exactly c^2 for p = 2 and |c| for p = 1; WGSL's pow otherwise (0 for c = 0).
fn power(c: vec4<f32>, p: f32) -> vec4<f32> {
    let a = abs(c);
    if p == 2.0 {
        return a * a;
    }
    if p == 1.0 {
        return a;
    }
    return select(pow(a, vec4(p)), vec4(0.0), a == vec4(0.0));
}

// Adds the gradients `u` (unscaled) of the lanes where `valid` holds to one invocation's
// running sums, per vec4 lane: their squares, or |c|^p with POWER_NORM (clipped by value
// first, with CLIP_VALUE), to `block`, their keys to `max_bits`.
fn add(block: ptr<function, vec4<f32>>, max_bits: ptr<function, vec4<u32>>, u: vec4<f32>, valid: vec4<bool>, clip_value: f32, p: f32) {
    var c = u;
    if CLIP_VALUE {
        c = clip_by_value(u, clip_value);
    }
    let clamped = select(vec4(0.0), c, valid);
    if POWER_NORM {
        *block += power(clamped, p);
    } else {
        *block += clamped * clamped;
    }
    *max_bits = max(*max_bits, select(vec4(0u), key(u, clamped), valid));
}

// The unscaled gradients of a vec4, when the pipeline unscales (UNSCALE).
fn unscaled(g: vec4<f32>, inv_grad_scale: f32) -> vec4<f32> {
    if UNSCALE {
        return g * inv_grad_scale;
    }
    return g;
}

// One workgroup's share of a chunk: its run of one control group's segments (src/kernel/plan/ cuts
// each group's segments, main then tails, into equal runs, one per workgroup, as alone). Within
// a segment, consecutive invocations read consecutive vec4s (one 16-byte load each), then the
// segment's last 1 to 3 elements, when it ends inside a vec4, one lane each. Each segment's
// squares are summed apart (a few vec4s per invocation: at most a tile) and the segment sums
// into a total, so rounding errors grow with the vec4s per invocation of a tile plus the
// segments per workgroup, never with the length of the chunk. (Compensated summation is no
// option: WGSL compilers may reassociate floating-point arithmetic, and lavapipe's does fold
// Kahan's correction away.)
fn accumulate(inv: Invocation, w: ReduceWork) -> Partial {
    let c = control_in[w.control];
    let inv_grad_scale = 1.0 / c.grad_scale;
    let clip_value = c.clip_value;
    // Uniform over the workgroup: every run is one control group's.
    let norm_type = select(2.0, grad_hyper[w.control].norm_type, POWER_NORM);
    var total = vec4(0.0);
    var max_bits = vec4(0u);
    let main_count = w.main_end - w.main_first;
    let count = main_count + (w.tail_end - w.tail_first);
    for (var p = 0u; p < count; p++) {
        // (The discarded operand may wrap around: u32 arithmetic is modular.)
        let s = segments[select(w.tail_first + p - main_count, w.main_first + p, p < main_count)];
        let body_end = s.end / 4u;
        var block = vec4(0.0);
        for (var i = s.start / 4u + inv.lane; i < body_end; i += REDUCE_SIZE) {
            add(&block, &max_bits, unscaled(grad_vec4(i), inv_grad_scale), vec4(true), clip_value, norm_type);
        }
        let tail = 4u * body_end + inv.lane;
        if tail < s.end {
            let u = unscaled(vec4(grad_element(tail), 0.0, 0.0, 0.0), inv_grad_scale);
            add(&block, &max_bits, u, vec4(true, false, false, false), clip_value, norm_type);
        }
        total += block;
    }
    let max_key = max(max(max_bits.x, max_bits.y), max(max_bits.z, max_bits.w));
    return Partial((total.x + total.y) + (total.z + total.w), max_key);
}

// Workgroup w of a chunk (a 2-D grid past the device's limit) does work[w]: its partial goes
// to slot `partial` modulo the buffer's length; past its end the slot already holds an earlier
// workgroup's partial, which this one combines with, in dispatch order.
@compute @workgroup_size(REDUCE_SIZE)
fn grad_partials(inv: Invocation) {
    let index = inv.workgroup.y * inv.workgroups.x + inv.workgroup.x;
    let w = work[min(index, arrayLength(&work) - 1u)];
    let total = workgroup_reduce(accumulate(inv, w), inv);
    if inv.lane == 0u && index < arrayLength(&work) {
        let slot = w.partial % arrayLength(&partials);
        if w.partial >= arrayLength(&partials) {
            partials[slot] = combine(partials[slot], total);
        } else {
            partials[slot] = total;
        }
    }
}

// Workgroup k folds control group k's partials.
@compute @workgroup_size(REDUCE_SIZE)
fn grad_local(inv: Invocation) {
    let k = inv.workgroup.x;
    let fold = folds[k];
    var mine = Partial(0.0, 0u);
    for (var i = fold.first + inv.lane; i < fold.end; i += REDUCE_SIZE) {
        mine = combine(mine, partials[i]);
    }
    let total = workgroup_reduce(mine, inv);
    if inv.lane == 0u {
        stats[k] = norm_stats(total, grad_hyper[k]);
    }
}

fn norm_stats(total: Partial, h: GradHyper) -> NormStats {
    let value = bitcast<f32>(total.max_abs_bits);
    if !is_finite(value) {
        // NaN if any gradient is NaN, else inf: what PyTorch's norm of them is.
        return NormStats(value, 1.0);
    }
    if h.inf_norm != 0u {
        return NormStats(value, 0.0);
    }
    // May overflow to inf from finite gradients (1e20^2): PyTorch's f32 norm does too.
    return NormStats(total.sum_of_powers, 0.0);
}

// The p-th root of a sum of |c|^p: sqrt for the 2-norm (as it always was), the sum itself for
// the 1-norm, WGSL's pow otherwise. A non-finite sum stays as it is.
fn norm_of(sum: f32, h: GradHyper) -> f32 {
    if h.inf_norm != 0u || !is_finite(sum) || h.norm_type == 1.0 {
        return sum;
    }
    if h.norm_type == 2.0 {
        return sqrt(sum);
    }
    return select(pow(sum, h.inv_norm_type), 0.0, sum == 0.0);
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

// GradScaler.update (ATen's `_amp_update_scale_`) of control block k: back off on a
// non-finite step; grow after `growth_interval` consecutive finite ones, unless growing would
// overflow to inf.
fn update_scale(k: u32, found_inf: bool, h: GradHyper) {
    let ctl = &control[k];
    if found_inf {
        (*ctl).grad_scale *= h.backoff_factor;
        (*ctl).growth_tracker = 0u;
        return;
    }
    // At or past the interval: a tracker restored from before a shorter interval grows at the
    // next finite step rather than never (PyTorch's `==` meets the same states otherwise).
    let successful = (*ctl).growth_tracker + 1u;
    if successful >= h.growth_interval {
        let grown = (*ctl).grad_scale * h.growth_factor;
        if is_finite(grown) {
            (*ctl).grad_scale = grown;
        }
        (*ctl).growth_tracker = 0u;
    } else {
        (*ctl).growth_tracker = successful;
    }
}

// Invocation k finalizes control block k.
@compute @workgroup_size(64)
fn grad_finalize(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    if k >= arrayLength(&control) {
        return;
    }
    let ctl = &control[k];
    if (*ctl).nonfinite_step != 0u {
        // Halted by error_if_nonfinite: nothing changes until the host clears it.
        (*ctl).found_inf = 1u;
        return;
    }
    let h = grad_hyper[k];
    let s = stats[k];
    let found_inf = (bitcast<u32>(s.nonfinite) & ABS_MASK) != 0u;
    let norm = norm_of(s.value, h);
    (*ctl).grad_norm = norm;
    (*ctl).clip_coef = clip_coefficient(norm, h);
    (*ctl).inv_grad_scale = 1.0 / (*ctl).grad_scale;
    (*ctl).found_inf = u32(found_inf);
    // clip_grad_norm_(error_if_nonfinite=True) raises on a non-finite total norm: also when
    // finite gradients overflow it.
    if h.error_if_nonfinite != 0u && (found_inf || !is_finite(norm)) {
        (*ctl).found_inf = 1u;
        (*ctl).nonfinite_step = (*ctl).step + 1u;
        return;
    }
    if found_inf {
        (*ctl).skipped_steps += 1u;
    }
    if h.scaler != 0u {
        update_scale(k, found_inf, h);
    }
}
