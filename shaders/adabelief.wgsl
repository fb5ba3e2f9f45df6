// AdaBelief (Zhuang et al. 2020), as the authors' adabelief-pytorch with rectify=False.
//
//   weight_decouple: p *= 1 - lr * weight_decay (fixed_decay: 1 - weight_decay)
//   otherwise:       g += weight_decay * p
//   exp_avg = beta1 * exp_avg + (1 - beta1) * g
//   exp_avg_var = beta2 * exp_avg_var + (1 - beta2) * (g - exp_avg)^2 + eps_root   (in place;
//                 eps_root = eps as adabelief-pytorch, or Optax's own eps_root)
//   amsgrad: max_exp_avg_var = max(max_exp_avg_var, exp_avg_var), used below in its place
//   p -= lr / (1 - beta1^t) * exp_avg / (sqrt(exp_avg_var) / sqrt(1 - beta2^t) + eps)
//
// state0: exp_avg, state1: exp_avg_var, state2: max_exp_avg_var (amsgrad).
// Needs common/adam_hyper.wgsl.

override AMSGRAD: bool = false;
override WEIGHT_DECOUPLE: bool = true;

fn adabelief_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    exp_avg: ptr<function, vec4<f32>>,
    exp_avg_var: ptr<function, vec4<f32>>,
    max_exp_avg_var: ptr<function, vec4<f32>>,
    h: Hyper,
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
    let denom = sqrt(second_moment) / h.bias_correction2_sqrt + h.eps;
    *p = *p - h.step_size * (*exp_avg / denom);
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u || AMSGRAD;
}

fn step_math(e: ptr<function, Elements>, h: Hyper, c: Control) {
    var p = (*e).param;
    var exp_avg = (*e).state0;
    var exp_avg_var = (*e).state1;
    var max_exp_avg_var = (*e).state2;
    adabelief_math(&p, (*e).grad, &exp_avg, &exp_avg_var, &max_exp_avg_var, h);
    (*e).param = p;
    (*e).state0 = exp_avg;
    (*e).state1 = exp_avg_var;
    (*e).state2 = max_exp_avg_var;
}
