// Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019) and AMSGrad (Reddi et al. 2018):
// torch.optim.Adam and torch.optim.AdamW.
//
//   g = maximize ? -g : g
//   AdamW: p *= 1 - lr * weight_decay        Adam: g += weight_decay * p
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   amsgrad: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq), used below in its place
//   p -= lr / (1 - beta1^t) * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^t) + eps)
//   (optax_denominator, Optax's form: v = exp_avg_sq / (1 - beta2^t); amsgrad (optax.amsgrad):
//    max_exp_avg_sq = max(max_exp_avg_sq, v), used in its place;
//    p -= lr / (1 - beta1^t) * exp_avg / (sqrt(v + eps_root) + eps))
//
// state0: exp_avg, state1: exp_avg_sq, state2: max_exp_avg_sq (amsgrad).
// Needs common/adam_group.wgsl and common/moments.wgsl.

override AMSGRAD: bool = false;
override MAXIMIZE: bool = false;
// AdamW's decoupled weight decay instead of Adam's L2 penalty.
override DECOUPLED_WEIGHT_DECAY: bool = false;
// Optax's form (optax.adam with eps_root, optax.amsgrad): the second moment bias-corrected
// before the max (amsgrad) and eps_root added to it inside the sqrt.
override OPTAX_DENOMINATOR: bool = false;

fn prepare_group(g: u32, step: f32) {
    prepare_adam(g, step);
}

fn adam_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    exp_avg: ptr<function, vec4<f32>>,
    exp_avg_sq: ptr<function, vec4<f32>>,
    max_exp_avg_sq: ptr<function, vec4<f32>>,
    h: Hyper,
    d: Derived,
) {
    _ = adam_moments(
        p,
        grad,
        exp_avg,
        exp_avg_sq,
        Moments(h.weight_decay, h.decay, h.one_minus_beta1, h.beta2, h.one_minus_beta2),
    );
    var second_moment = *exp_avg_sq;
    if OPTAX_DENOMINATOR {
        second_moment = second_moment / d.bias_correction2;
    }
    if AMSGRAD {
        *max_exp_avg_sq = max(*max_exp_avg_sq, second_moment);
        second_moment = *max_exp_avg_sq;
    }
    var denom = sqrt(second_moment) / d.bias_correction2_sqrt + h.eps;
    if OPTAX_DENOMINATOR {
        denom = sqrt(second_moment + h.eps_root) + h.eps;
    }
    *p = *p - d.step_size * (*exp_avg / denom);
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u || AMSGRAD;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var exp_avg = (*e).state0;
    var exp_avg_sq = (*e).state1;
    var max_exp_avg_sq = (*e).state2;
    adam_math(&p, (*e).grad, &exp_avg, &exp_avg_sq, &max_exp_avg_sq, group.hyper, group.derived);
    (*e).param = p;
    (*e).state0 = exp_avg;
    (*e).state1 = exp_avg_sq;
    (*e).state2 = max_exp_avg_sq;
}
