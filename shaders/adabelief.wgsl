// AdaBelief (Zhuang et al. 2020), as the authors' adabelief-pytorch (rectify on or off).
//
//   weight_decouple: p *= 1 - lr * weight_decay (fixed_decay: 1 - weight_decay)
//   otherwise:       g += weight_decay * p
//   exp_avg = beta1 * exp_avg + (1 - beta1) * g
//   exp_avg_var = beta2 * exp_avg_var + (1 - beta2) * (g - exp_avg)^2 + eps_root   (in place;
//                 eps_root = eps as adabelief-pytorch, or Optax's own eps_root)
//   amsgrad: max_exp_avg_var = max(max_exp_avg_var, exp_avg_var), used below in its place
//   p -= lr / (1 - beta1^t) * exp_avg / (sqrt(exp_avg_var) / sqrt(1 - beta2^t) + eps)
//   rectify (RAdam's rectification, as adabelief-pytorch's default), in place of the last line:
//     rho_t >= 5: p -= lr / (1 - beta1^t) * r_t * sqrt(1 - beta2^t) * exp_avg / (sqrt(exp_avg_var) + eps)
//                 (exp_avg_var even with amsgrad, as adabelief-pytorch)
//     otherwise:  p -= lr / (1 - beta1^t) * exp_avg with degenerated_to_sgd, else p is left as it is
//
// state0: exp_avg, state1: exp_avg_var, state2: max_exp_avg_var (amsgrad).
// Needs common/adam_group.wgsl and common/rectify.wgsl.

override AMSGRAD: bool = false;
override WEIGHT_DECOUPLE: bool = true;
override RECTIFY: bool = false;
// With RECTIFY: an SGD step with momentum while rho_t < 5 (else none).
override DEGENERATED_TO_SGD: bool = true;

fn prepare_group(g: u32, step: f32) {
    prepare_adam(g, step);
    if !RECTIFY {
        return;
    }
    let h = groups[g].hyper;
    let d = groups[g].derived;
    let rho = radam_rho(h.ln_beta2, h.rho_inf, step);
    let rectified = rho >= 5.0;
    let rectified_step_size = d.step_size * rectification(rho, h.rect_inf) * d.bias_correction2_sqrt;
    groups[g].derived.rectified_step_size = select(0.0, rectified_step_size, rectified);
    groups[g].derived.rectified = select(0.0, 1.0, rectified);
}

fn adabelief_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    exp_avg: ptr<function, vec4<f32>>,
    exp_avg_var: ptr<function, vec4<f32>>,
    max_exp_avg_var: ptr<function, vec4<f32>>,
    h: Hyper,
    d: Derived,
) {
    var g = grad;
    if WEIGHT_DECOUPLE {
        *p = *p * h.decay;
    } else {
        g = select(g, g + h.weight_decay * *p, h.weight_decay != 0.0);
    }
    *exp_avg = h.beta1 * *exp_avg + h.one_minus_beta1 * g;
    let grad_residual = g - *exp_avg;
    *exp_avg_var = h.beta2 * *exp_avg_var + h.one_minus_beta2 * grad_residual * grad_residual;
    *exp_avg_var = *exp_avg_var + h.eps_root;
    var second_moment = *exp_avg_var;
    if AMSGRAD {
        *max_exp_avg_var = max(*max_exp_avg_var, *exp_avg_var);
        second_moment = *max_exp_avg_var;
    }
    if RECTIFY {
        let adaptive = d.rectified_step_size * (*exp_avg / (sqrt(*exp_avg_var) + h.eps));
        let sgd = select(vec4(0.0), d.step_size * *exp_avg, DEGENERATED_TO_SGD);
        *p = *p - select(sgd, adaptive, d.rectified != 0.0);
        return;
    }
    let denom = sqrt(second_moment) / d.bias_correction2_sqrt + h.eps;
    *p = *p - d.step_size * (*exp_avg / denom);
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u || AMSGRAD;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var exp_avg = (*e).state0;
    var exp_avg_var = (*e).state1;
    var max_exp_avg_var = (*e).state2;
    adabelief_math(&p, (*e).grad, &exp_avg, &exp_avg_var, &max_exp_avg_var, group.hyper, group.derived);
    (*e).param = p;
    (*e).state0 = exp_avg;
    (*e).state1 = exp_avg_var;
    (*e).state2 = max_exp_avg_var;
}
