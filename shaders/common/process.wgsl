// How a step sees its gradients and whether it is skipped: shared by the element-wise kernels
// (common/entry.wgsl) and Muon's passes around Newton-Schulz (shaders/muon.wgsl). Needs
// common/control.wgsl.

// Whether gradient processing (shaders/clip.wgsl) feeds this step: the step is skipped when
// the control block says `found_inf`. Without it gradients are used as they are and the
// control block's gradient fields are never read, whatever a step recorded earlier with
// processing left there.
override GRAD_PROCESSING: bool = false;
// With GRAD_PROCESSING, whether the gradients are multiplied by the global-norm clip
// coefficient (a max_norm is set). UNSCALE and CLIP_VALUE (common/control.wgsl) say whether
// the other stages are on. A stage that is off is the identity exactly (an inverse scale of 1,
// an infinite bound, a coefficient of 1), so leaving it out changes no bit.
override CLIP_NORM: bool = true;

// The gradient as the update sees it: with gradient processing, unscaled, clipped by value
// and times the clip coefficient (the stages that are on); without, as it is.
fn process_grad(g: vec4<f32>, c: Control) -> vec4<f32> {
    if !GRAD_PROCESSING {
        return g;
    }
    var u = g;
    if UNSCALE {
        u = u * c.inv_grad_scale;
    }
    if CLIP_VALUE {
        u = clip_by_value(u, c.clip_value);
    }
    if CLIP_NORM {
        u = u * c.clip_coef;
    }
    return u;
}

// Whether this step is skipped (its gradients hold an inf or NaN, or error_if_nonfinite
// halted the optimizer: the finalize then sets found_inf too).
fn skipped(c: Control) -> bool {
    return GRAD_PROCESSING && c.found_inf != 0u;
}
