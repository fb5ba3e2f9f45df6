// RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond"), as
// torch.optim.RAdam and (OPTAX_FORM) optax.radam.
//
//   g = maximize ? -g : g
//   decoupled: p *= 1 - lr * weight_decay        otherwise: g += weight_decay * p
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
//   rect = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
//   rho_t > threshold (Optax: >=):
//     PyTorch: p -= lr / (1 - beta1^t) * rect * sqrt(1 - beta2^t) * exp_avg / (sqrt(exp_avg_sq) + eps)
//     Optax:   p -= lr / (1 - beta1^t) * rect * exp_avg / (sqrt(exp_avg_sq / (1 - beta2^t) + eps_root) + eps)
//   otherwise: p -= lr / (1 - beta1^t) * exp_avg
//
// state0: exp_avg, state1: exp_avg_sq. Needs common/moments.wgsl and common/rectify.wgsl.

struct Hyper {
    lr: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    ln_beta1: f32,
    ln_beta2: f32,
    eps: f32,
    eps_root: f32,
    weight_decay: f32,
    // 1 - lr * weight_decay
    decay: f32,
    // 2 / (1 - beta2) - 1
    rho_inf: f32,
    // rho_inf / ((rho_inf - 4) (rho_inf - 2)), 0 when rho_inf <= 4
    rect_inf: f32,
    threshold: f32,
}

// What `prepare_group` derives each step (RAdamDerived): lr / (1 - beta1^t); the rectified
// step's multiplier of exp_avg / denom; what exp_avg_sq is divided by in denom (1 - beta2^t
// for Optax, 1 for PyTorch); 1 when the step is rectified, else 0.
struct Derived {
    step_size: f32,
    rectified_step_size: f32,
    bias_correction2: f32,
    rectified: f32,
}

struct Group {
    hyper: Hyper,
    derived: Derived,
}

override MAXIMIZE: bool = false;
override DECOUPLED_WEIGHT_DECAY: bool = false;
// optax.radam: rectified when rho_t >= threshold, eps outside sqrt(bias-corrected v + eps_root).
override OPTAX_FORM: bool = false;

fn prepare_group(g: u32, step: f32) {
    let h = groups[g].hyper;
    let bias_correction1 = bias_correction(h.ln_beta1, step);
    let bias_correction2 = bias_correction(h.ln_beta2, step);
    let rho = radam_rho(h.ln_beta2, h.rho_inf, step);
    var rectified = rho > h.threshold;
    if OPTAX_FORM {
        rectified = rho >= h.threshold;
    }
    let rect = rectification(rho, h.rect_inf);
    let step_size = h.lr / bias_correction1;
    groups[g].derived.step_size = step_size;
    groups[g].derived.rectified = select(0.0, 1.0, rectified);
    if OPTAX_FORM {
        groups[g].derived.rectified_step_size = select(0.0, step_size * rect, rectified);
        groups[g].derived.bias_correction2 = bias_correction2;
    } else {
        groups[g].derived.rectified_step_size = select(0.0, step_size * rect * sqrt(bias_correction2), rectified);
        groups[g].derived.bias_correction2 = 1.0;
    }
}

fn radam_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    exp_avg: ptr<function, vec4<f32>>,
    exp_avg_sq: ptr<function, vec4<f32>>,
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
    let denom = sqrt(*exp_avg_sq / d.bias_correction2 + h.eps_root) + h.eps;
    let adaptive = d.rectified_step_size * (*exp_avg / denom);
    *p = *p - select(d.step_size * *exp_avg, adaptive, d.rectified != 0.0);
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var exp_avg = (*e).state0;
    var exp_avg_sq = (*e).state1;
    radam_math(&p, (*e).grad, &exp_avg, &exp_avg_sq, group.hyper, group.derived);
    (*e).param = p;
    (*e).state0 = exp_avg;
    (*e).state1 = exp_avg_sq;
}
