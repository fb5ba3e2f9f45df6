// Adamax (Kingma & Ba 2015, section 7.1), as torch.optim.Adamax and optax.adamax.
//
//   g = maximize ? -g : g
//   g += weight_decay * p
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_inf = max(beta2 * exp_inf, |g| + eps)
//   p -= lr / (1 - beta1^t) * exp_avg / exp_inf
//
// state0: exp_avg, state1: exp_inf.
// Needs common/adam_group.wgsl (step_size is lr / (1 - beta1^t)).

override MAXIMIZE: bool = false;

fn prepare_group(g: u32, step: f32) {
    prepare_adam(g, step);
}

fn adamax_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    exp_avg: ptr<function, vec4<f32>>,
    exp_inf: ptr<function, vec4<f32>>,
    h: Hyper,
    d: Derived,
) {
    let g = l2_grad(grad, *p, h.weight_decay);
    *exp_avg = lerp(*exp_avg, g, h.one_minus_beta1);
    *exp_inf = max(h.beta2 * *exp_inf, abs(g) + h.eps);
    *p = *p - d.step_size * (*exp_avg / *exp_inf);
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var exp_avg = (*e).state0;
    var exp_inf = (*e).state1;
    adamax_math(&p, (*e).grad, &exp_avg, &exp_inf, group.hyper, group.derived);
    (*e).param = p;
    (*e).state0 = exp_avg;
    (*e).state1 = exp_inf;
}
