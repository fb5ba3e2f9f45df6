// The device-side control block of one optimizer: everything a step depends on that is data,
// not configuration. Written by kernels on the device (never read back during training), so a
// step can be skipped, unscaled or clipped without a host round trip.

struct Control {
    // The loss scale for the next backward pass (GradScaler's `scale`; 1 without a scaler).
    // First, so that a loss kernel can bind these 4 bytes alone as `var<storage> f32`.
    grad_scale: f32,
    // Optimizer steps taken so far; the prologue advances it before the update reads it.
    step: u32,
    // Non-zero when this step's gradients hold an inf or NaN: the step changes nothing.
    found_inf: u32,
    // 1 / the loss scale the gradients of this step were computed with.
    inv_grad_scale: f32,
    // The global-norm clip coefficient of this step.
    clip_coef: f32,
    // clip_grad_value_'s bound (inf when off); written by the host.
    clip_value: f32,
    // The global norm of this step's gradients (unscaled, clipped by value), before clipping.
    grad_norm: f32,
    // GradScaler's `_growth_tracker`: consecutive finite steps since the scale last changed.
    growth_tracker: u32,
    // Steps skipped for non-finite gradients.
    skipped_steps: u32,
    // With error_if_nonfinite: the step whose gradients were first found non-finite (0: none).
    // While it is set, every step changes nothing until the host clears it.
    nonfinite_step: u32,
}

// Gradient-processing stages a pipeline compiles in (see GradStages in src/kernel/pipelines.rs): whether
// gradients are divided by the loss scale (a GradScaler is on) and clipped by value. Off, a
// stage is the identity exactly (an inverse scale of 1, an infinite bound), so leaving it out
// changes no bit. The defaults keep both, for modules that do not set them.
override UNSCALE: bool = true;
override CLIP_VALUE: bool = true;

// clip_grad_value_ on unscaled gradients u. How a step sees each gradient, as PyTorch's AMP
// recipe orders it: unscaled (`scaler.unscale_`: g * inv_grad_scale), clipped by value (this),
// scaled by the global-norm clip coefficient (`clip_grad_norm_`). Without gradient processing
// every stage is the identity (the bound is then inf: no clamp at all). NaN stays NaN, as in
// PyTorch's clamp (WGSL's clamp may turn it into a bound).
fn clip_by_value(u: vec4<f32>, clip_value: f32) -> vec4<f32> {
    let nan = (bitcast<vec4<u32>>(u) & vec4(ABS_MASK)) > vec4(INF_BITS);
    let clamped = select(clamp(u, vec4(-clip_value), vec4(clip_value)), u, nan);
    // A select, not an early return: per-element code does not branch (common/entry.wgsl).
    return select(u, clamped, is_finite(clip_value));
}

// Bits of |x| for an f32 x: ordered as |x| for finite values, and at least `INF_BITS` exactly
// when x is inf or NaN (NaN above inf). Tests on bits survive compilers that assume finite math.
const ABS_MASK: u32 = 0x7fffffffu;
const INF_BITS: u32 = 0x7f800000u;

fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & ABS_MASK) < INF_BITS;
}
