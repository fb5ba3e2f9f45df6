// The device-side control block of one optimizer: everything a step depends on that is data,
// not configuration. Written by kernels on the device (never read back during training), so a
// step can be skipped or rescaled without a host round trip.

struct Control {
    // Optimizer steps taken so far; the prologue advances it before the update reads it.
    step: u32,
    // Non-zero when a gradient of this step is inf or NaN: the step changes nothing.
    found_inf: u32,
    // Multiplies every gradient as it is loaded: the global-norm clip coefficient.
    clip_coef: f32,
    // Multiplies every gradient as it is loaded: 1 / loss scale.
    inv_grad_scale: f32,
}

@group(0) @binding(0) var<storage, read_write> control: Control;
