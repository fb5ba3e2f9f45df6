//! Mirrors of each optimizer's WGSL math function, line for line, on one element in f32.
//! Read them beside `shaders/<name>.wgsl`.

// Constants carry the same decimal digits as the WGSL source, so both round to the same f32.
#![allow(clippy::excessive_precision)]

use super::math::{bias_correction, expm1_nonpositive, lerp, sign};
use crate::optim::{
    AdaBeliefOptions, AdadeltaHyper, AdadeltaOptions, AdagradHyper, AdagradOptions, AdamHyper,
    AdamOptions, AdamaxOptions, AdoptHyper, AdoptOptions, LambHyper, LarsHyper, LionHyper,
    LionOptions, NAdamHyper, NAdamOptions, RAdamHyper, RAdamOptions, RmsPropHyper, RmsPropOptions,
    ScheduleFreeAdamWHyper, ScheduleFreeSgdHyper, SgdHyper, SgdOptions,
};

/// `prepare_adam` of `shaders/common/adam_hyper.wgsl`: `prepare_group` of `shaders/adam.wgsl`
/// and `shaders/adamax.wgsl`.
pub fn prepare_adam(h: &mut AdamHyper, step: f32) {
    h.step_size = h.lr / bias_correction(h.ln_beta1, step);
    h.bias_correction2 = bias_correction(h.ln_beta2, step);
    h.bias_correction2_sqrt = h.bias_correction2.sqrt();
}

/// `prepare_group` of `shaders/adabelief.wgsl`.
pub fn prepare_adabelief(h: &mut AdamHyper, step: f32, o: AdaBeliefOptions) {
    prepare_adam(h, step);
    if !o.rectify {
        return;
    }
    let rho = radam_rho(h.ln_beta2, h.rho_inf, step);
    let rectified = rho >= 5.0;
    let rectified_step_size =
        h.step_size * rectification(rho, h.rect_inf) * h.bias_correction2_sqrt;
    h.rectified_step_size = if rectified { rectified_step_size } else { 0.0 };
    h.rectified = if rectified { 1.0 } else { 0.0 };
}

/// `prepare_group` of `shaders/adagrad.wgsl`.
pub fn prepare_adagrad(h: &mut AdagradHyper, step: f32) {
    // `step - 1.0` is exact, as the WGSL's integer count of the steps before this one.
    h.clr = h.lr / (1.0 + (step - 1.0) * h.lr_decay);
}

/// `sgd_math` of `shaders/sgd.wgsl`.
pub fn sgd_math(
    p: &mut f32,
    grad: f32,
    momentum_buffer: &mut f32,
    first_step: bool,
    h: &SgdHyper,
    o: SgdOptions,
) {
    let mut d_p = l2_grad(grad, *p, h.weight_decay, o.maximize);
    if o.momentum {
        if first_step {
            *momentum_buffer = d_p;
        } else {
            *momentum_buffer = h.momentum * *momentum_buffer + h.one_minus_dampening * d_p;
        }
        if o.nesterov {
            d_p += h.momentum * *momentum_buffer;
        } else {
            d_p = *momentum_buffer;
        }
    }
    *p -= h.lr * d_p;
}

/// `adagrad_math` of `shaders/adagrad.wgsl`.
pub fn adagrad_math(p: &mut f32, grad: f32, sum: &mut f32, h: &AdagradHyper, o: AdagradOptions) {
    let g = l2_grad(grad, *p, h.weight_decay, o.maximize);
    *sum += g * g;
    if o.eps_in_sqrt {
        let scaled = if *sum > 0.0 {
            g / (*sum + h.eps).sqrt()
        } else {
            0.0
        };
        *p -= h.clr * scaled;
    } else {
        let denom = sum.sqrt() + h.eps;
        *p -= h.clr * (g / denom);
    }
}

/// `prepare_group` of `shaders/rmsprop.wgsl`.
pub fn prepare_rmsprop(h: &mut RmsPropHyper, step: f32, o: RmsPropOptions) {
    if o.bias_correction {
        h.bias_correction = bias_correction(h.ln_alpha, step);
    }
}

/// `centered_variance` of `shaders/rmsprop.wgsl`: `square_avg - grad_avg^2`, inf (PyTorch's
/// fused `addcmul`'s value) where `square_avg` is inf and `grad_avg` finite.
pub fn centered_variance(square_avg: f32, grad_avg: f32) -> f32 {
    let v = square_avg - grad_avg * grad_avg;
    if square_avg == f32::INFINITY && grad_avg.is_finite() {
        square_avg
    } else {
        v
    }
}

/// `rmsprop_math` of `shaders/rmsprop.wgsl`.
pub fn rmsprop_math(
    p: &mut f32,
    grad: f32,
    square_avg: &mut f32,
    momentum_buffer: &mut f32,
    grad_avg: &mut f32,
    h: &RmsPropHyper,
    o: RmsPropOptions,
) {
    let g = l2_grad(grad, *p, h.weight_decay, o.maximize);
    *square_avg = h.alpha * *square_avg + h.one_minus_alpha * g * g;
    let mut v = *square_avg;
    if o.bias_correction {
        v /= h.bias_correction;
    }
    if o.centered {
        *grad_avg = lerp(*grad_avg, g, h.one_minus_alpha);
        let mut m = *grad_avg;
        if o.bias_correction {
            m /= h.bias_correction;
        }
        v = centered_variance(v, m);
    }
    let avg = if o.eps_in_sqrt {
        (v + h.eps).sqrt()
    } else {
        v.sqrt() + h.eps
    };
    if o.momentum {
        *momentum_buffer = h.momentum * *momentum_buffer + g / avg;
        *p -= h.lr * *momentum_buffer;
    } else {
        *p -= h.lr * (g / avg);
    }
}

/// `adam_math` of `shaders/adam.wgsl`.
pub fn adam_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_sq: &mut f32,
    max_exp_avg_sq: &mut f32,
    h: &AdamHyper,
    o: AdamOptions,
) {
    adam_moments(p, grad, exp_avg, exp_avg_sq, &h.moments(), o.into());
    let mut second_moment = *exp_avg_sq;
    if o.optax_denominator {
        second_moment /= h.bias_correction2;
    }
    if o.amsgrad {
        *max_exp_avg_sq = max(*max_exp_avg_sq, second_moment);
        second_moment = *max_exp_avg_sq;
    }
    let mut denom = second_moment.sqrt() / h.bias_correction2_sqrt + h.eps;
    if o.optax_denominator {
        denom = (second_moment + h.eps_root).sqrt() + h.eps;
    }
    *p -= h.step_size * (*exp_avg / denom);
}

/// `adabelief_math` of `shaders/adabelief.wgsl`.
pub fn adabelief_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_var: &mut f32,
    max_exp_avg_var: &mut f32,
    h: &AdamHyper,
    o: AdaBeliefOptions,
) {
    let mut g = grad;
    if h.weight_decay != 0.0 {
        if o.weight_decouple {
            *p *= h.decay;
        } else {
            g += h.weight_decay * *p;
        }
    }
    *exp_avg = h.beta1 * *exp_avg + h.one_minus_beta1 * g;
    let grad_residual = g - *exp_avg;
    *exp_avg_var = h.beta2 * *exp_avg_var + h.one_minus_beta2 * grad_residual * grad_residual;
    *exp_avg_var += h.eps_root;
    let mut second_moment = *exp_avg_var;
    if o.amsgrad {
        *max_exp_avg_var = max(*max_exp_avg_var, *exp_avg_var);
        second_moment = *max_exp_avg_var;
    }
    if o.rectify {
        let adaptive = h.rectified_step_size * (*exp_avg / (exp_avg_var.sqrt() + h.eps));
        let sgd = if o.degenerated_to_sgd {
            h.step_size * *exp_avg
        } else {
            0.0
        };
        *p -= if h.rectified != 0.0 { adaptive } else { sgd };
        return;
    }
    let denom = second_moment.sqrt() / h.bias_correction2_sqrt + h.eps;
    *p -= h.step_size * (*exp_avg / denom);
}

/// `lion_math` of `shaders/lion.wgsl`.
pub fn lion_math(p: &mut f32, grad: f32, exp_avg: &mut f32, h: &LionHyper, o: LionOptions) {
    let g = if o.maximize { -grad } else { grad };
    if h.weight_decay != 0.0 {
        *p *= h.decay;
    }
    let update = sign(h.beta1 * *exp_avg + h.one_minus_beta1 * g);
    *p -= h.lr * update;
    *exp_avg = h.beta2 * *exp_avg + h.one_minus_beta2 * g;
}

/// `prepare_group` of `shaders/lamb.wgsl`.
pub fn prepare_lamb(h: &mut LambHyper, step: f32) {
    h.bias_correction1 = bias_correction(h.ln_beta1, step);
    h.bias_correction2 = bias_correction(h.ln_beta2, step);
}

/// LAMB's moments, the first pass of `step_math` in `shaders/lamb.wgsl`.
pub fn lamb_moments(grad: f32, exp_avg: &mut f32, exp_avg_sq: &mut f32, h: &LambHyper) {
    *exp_avg = h.one_minus_beta1 * grad + h.beta1 * *exp_avg;
    *exp_avg_sq = h.one_minus_beta2 * (grad * grad) + h.beta2 * *exp_avg_sq;
}

/// `lamb_direction` of `shaders/lamb.wgsl`.
pub fn lamb_direction(p: f32, exp_avg: f32, exp_avg_sq: f32, h: &LambHyper) -> f32 {
    let m_hat = exp_avg / h.bias_correction1;
    let v_hat = exp_avg_sq / h.bias_correction2;
    m_hat / ((v_hat + h.eps_root).sqrt() + h.eps) + h.weight_decay * p
}

/// LARS's direction, `g + weight_decay * p` (`shaders/lars.wgsl`).
pub fn lars_direction(p: f32, grad: f32, h: &LarsHyper) -> f32 {
    grad + h.weight_decay * p
}

/// The second pass of `step_math` in `shaders/lars.wgsl`: momentum over the scaled update.
pub fn lars_apply(
    p: &mut f32,
    grad: f32,
    trace: &mut f32,
    ratio: f32,
    h: &LarsHyper,
    nesterov: bool,
) {
    let s = -h.lr * (lars_direction(*p, grad, h) * ratio);
    *trace = s + h.momentum * *trace;
    *p += if nesterov {
        s + h.momentum * *trace
    } else {
        *trace
    };
}

/// `trust_ratio_of` of `shaders/common/trust.wgsl`: Optax's `scale_by_trust_ratio`.
pub fn trust_ratio(param_norm: f32, update_norm: f32, coefficient: f32, eps: f32, on: bool) -> f32 {
    let ratio = coefficient * param_norm / (update_norm + eps);
    if param_norm == 0.0 || update_norm == 0.0 || !on {
        1.0
    } else {
        ratio
    }
}

/// `adamax_math` of `shaders/adamax.wgsl` (its `prepare_group` is [`prepare_adam`]).
pub fn adamax_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_inf: &mut f32,
    h: &AdamHyper,
    o: AdamaxOptions,
) {
    let g = l2_grad(grad, *p, h.weight_decay, o.maximize);
    *exp_avg = lerp(*exp_avg, g, h.one_minus_beta1);
    *exp_inf = max(h.beta2 * *exp_inf, g.abs() + h.eps);
    *p -= h.step_size * (*exp_avg / *exp_inf);
}

/// `nadam_mu` of `shaders/nadam.wgsl`: (mu_t, 1 - mu_t).
pub fn nadam_mu(h: &NAdamHyper, step: f32) -> (f32, f32) {
    let e = expm1_nonpositive(step * h.ln_mu_base);
    let half_beta1 = 0.5 * h.beta1;
    (
        half_beta1 * (1.0 - e),
        h.one_minus_beta1 + half_beta1 * (1.0 + e),
    )
}

/// `nadam_ln_mu_product` of `shaders/nadam.wgsl`: ln(mu_1 mu_2 ... mu_t), PyTorch's
/// `mu_product` in closed form.
pub fn nadam_ln_mu_product(h: &NAdamHyper, step: f32) -> f32 {
    let mut sum = 0.0_f32;
    let mut half_power = 1.0_f32;
    for k in 1..=24u32 {
        half_power *= 0.5;
        let ln_qk = k as f32 * h.ln_mu_base;
        let one_minus_qk = -expm1_nonpositive(ln_qk);
        let one_minus_qkt = -expm1_nonpositive(step * ln_qk);
        let geometric = if one_minus_qk > 0.0 {
            (1.0 - one_minus_qk) * (one_minus_qkt / one_minus_qk)
        } else {
            step
        };
        sum += half_power / k as f32 * geometric;
    }
    step * h.ln_beta1 - sum
}

/// `prepare_group` of `shaders/nadam.wgsl`.
pub fn prepare_nadam(h: &mut NAdamHyper, step: f32, o: NAdamOptions) {
    h.bias_correction2 = bias_correction(h.ln_beta2, step);
    if o.optax_form {
        h.grad_coef = h.lr * h.one_minus_beta1 / bias_correction(h.ln_beta1, step);
        h.exp_avg_coef = h.lr * h.beta1 / bias_correction(h.ln_beta1, step + 1.0);
        return;
    }
    let (_, one_minus_mu) = nadam_mu(h, step);
    let (mu_next, _) = nadam_mu(h, step + 1.0);
    let one_minus_product = -expm1_nonpositive(nadam_ln_mu_product(h, step));
    let one_minus_product_next = -expm1_nonpositive(nadam_ln_mu_product(h, step + 1.0));
    h.grad_coef = h.lr * one_minus_mu / one_minus_product;
    h.exp_avg_coef = h.lr * mu_next / one_minus_product_next;
}

/// `nadam_math` of `shaders/nadam.wgsl`.
pub fn nadam_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_sq: &mut f32,
    h: &NAdamHyper,
    o: NAdamOptions,
) {
    let g = adam_moments(p, grad, exp_avg, exp_avg_sq, &h.moments(), o.into());
    let denom = (*exp_avg_sq / h.bias_correction2 + h.eps_root).sqrt() + h.eps;
    *p -= h.grad_coef * (g / denom);
    *p -= h.exp_avg_coef * (*exp_avg / denom);
}

/// `radam_series` of `shaders/common/rectify.wgsl`: `1 / (1 - e^-x) - 1 / x - 1 / 2` for `0 <= x < 1`.
pub fn radam_series(x: f32) -> f32 {
    let x2 = x * x;
    let mut s: f32 = 2.0876756988e-08;
    s = s * x2 - 8.2671957672e-07;
    s = s * x2 + 3.3068783069e-05;
    s = s * x2 - 1.3888888889e-03;
    s = s * x2 + 8.3333333333e-02;
    x * s
}

/// `radam_rho` of `shaders/common/rectify.wgsl`: PyTorch's `rho_t`, without its cancellation.
pub fn radam_rho(ln_beta2: f32, rho_inf: f32, step: f32) -> f32 {
    let a = -ln_beta2;
    let u = step * a;
    if u < 1.0 {
        return 2.0 * radam_series(a) + step * (1.0 - 2.0 * radam_series(u));
    }
    let bias_correction2 = bias_correction(ln_beta2, step);
    rho_inf - 2.0 * step * (1.0 - bias_correction2) / bias_correction2
}

/// `rectification` of `shaders/common/rectify.wgsl`: the rectification term `r_t`.
pub fn rectification(rho: f32, rect_inf: f32) -> f32 {
    ((rho - 4.0) * (rho - 2.0) / rho * rect_inf).sqrt()
}

/// `prepare_group` of `shaders/radam.wgsl`.
pub fn prepare_radam(h: &mut RAdamHyper, step: f32, o: RAdamOptions) {
    let bias_correction1 = bias_correction(h.ln_beta1, step);
    let bias_correction2 = bias_correction(h.ln_beta2, step);
    let rho = radam_rho(h.ln_beta2, h.rho_inf, step);
    let rectified = if o.optax_form {
        rho >= h.threshold
    } else {
        rho > h.threshold
    };
    let rect = rectification(rho, h.rect_inf);
    let step_size = h.lr / bias_correction1;
    h.step_size = step_size;
    h.rectified = if rectified { 1.0 } else { 0.0 };
    let (rectified_step_size, denom_bias_correction) = if o.optax_form {
        (step_size * rect, bias_correction2)
    } else {
        (step_size * rect * bias_correction2.sqrt(), 1.0)
    };
    h.rectified_step_size = if rectified { rectified_step_size } else { 0.0 };
    h.bias_correction2 = denom_bias_correction;
}

/// `radam_math` of `shaders/radam.wgsl`.
pub fn radam_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_sq: &mut f32,
    h: &RAdamHyper,
    o: RAdamOptions,
) {
    adam_moments(p, grad, exp_avg, exp_avg_sq, &h.moments(), o.into());
    let denom = (*exp_avg_sq / h.bias_correction2 + h.eps_root).sqrt() + h.eps;
    let adaptive = h.rectified_step_size * (*exp_avg / denom);
    *p -= if h.rectified != 0.0 {
        adaptive
    } else {
        h.step_size * *exp_avg
    };
}

/// `adadelta_math` of `shaders/adadelta.wgsl`.
pub fn adadelta_math(
    p: &mut f32,
    grad: f32,
    square_avg: &mut f32,
    acc_delta: &mut f32,
    h: &AdadeltaHyper,
    o: AdadeltaOptions,
) {
    let g = l2_grad(grad, *p, h.weight_decay, o.maximize);
    *square_avg = h.rho * *square_avg + h.one_minus_rho * g * g;
    let square_avg_root = (*square_avg + h.eps).sqrt();
    let delta = (*acc_delta + h.eps).sqrt() / square_avg_root * g;
    *acc_delta = h.rho * *acc_delta + h.one_minus_rho * delta * delta;
    *p -= h.lr * delta;
}

/// `prepare_group` of `shaders/adopt.wgsl`.
pub fn prepare_adopt(h: &mut AdoptHyper, step: f32, o: AdoptOptions) {
    let count = if o.optax_form { step - 1.0 } else { step };
    h.clip = count.sqrt().sqrt();
}

/// `adopt_math` of `shaders/adopt.wgsl`.
pub fn adopt_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_sq: &mut f32,
    first_step: bool,
    h: &AdoptHyper,
    o: AdoptOptions,
) {
    let g = decayed_grad(p, grad, &h.moments(), o.into());
    let mut normed = g / max(exp_avg_sq.sqrt(), h.eps);
    if o.use_clipping {
        // WGSL's clamp(e, low, high) is min(max(e, low), high).
        normed = max(normed, -h.clip).min(h.clip);
    }
    let next = lerp(*exp_avg, normed, h.one_minus_beta1);
    let mut update = next;
    if o.nesterov {
        update = lerp(next, normed, h.one_minus_beta1);
    }
    // The first step only initialises the second moment.
    if first_step {
        *exp_avg_sq += g * g;
        return;
    }
    *exp_avg = next;
    *p -= h.lr * update;
    *exp_avg_sq = h.beta2 * *exp_avg_sq + h.one_minus_beta2 * g * g;
}

/// `schedule_free_power` of `shaders/common/schedule_free.wgsl`: Python's `x ** y` for
/// x, y >= 0.
pub fn schedule_free_power(x: f32, y: f32) -> f32 {
    if y == 0.0 {
        return 1.0;
    }
    if x == 0.0 {
        return 0.0;
    }
    x.powf(y)
}

/// `ScheduleFreeStep` of `shaders/common/schedule_free.wgsl`: a step's scalars and the running
/// values after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleFreeStep {
    /// The warmed-up lr.
    pub lr: f32,
    /// The averaging weight.
    pub ckp1: f32,
    /// `lr * (beta * (1 - ckp1) - 1)`, y's multiplier of the gradient.
    pub y_step: f32,
    /// The running largest lr.
    pub lr_max: f32,
    /// The running sum of the averaging weights.
    pub weight_sum: f32,
}

/// `schedule_free_schedule` of `shaders/common/schedule_free.wgsl`: the step's scalars at step
/// `step`, from `lr`, `beta` (AdamW's beta1, SGD's momentum), `warmup_steps`, `r`,
/// `weight_lr_power` and the running `lr_max`, `weight_sum` before it.
#[allow(clippy::too_many_arguments)]
pub fn schedule_free_schedule(
    lr: f32,
    beta: f32,
    warmup_steps: f32,
    r: f32,
    weight_lr_power: f32,
    lr_max: f32,
    weight_sum: f32,
    step: f32,
) -> ScheduleFreeStep {
    let scheduled = if step <= warmup_steps {
        lr * (step / warmup_steps)
    } else {
        lr
    };
    let lr_max = max(scheduled, lr_max);
    let weight = schedule_free_power(step, r) * schedule_free_power(lr_max, weight_lr_power);
    let weight_sum = weight_sum + weight;
    let ckp1 = if weight_sum == 0.0 {
        0.0
    } else {
        weight / weight_sum
    };
    ScheduleFreeStep {
        lr: scheduled,
        ckp1,
        y_step: scheduled * (beta * (1.0 - ckp1) - 1.0),
        lr_max,
        weight_sum,
    }
}

/// `prepare_group` of `shaders/schedule_free_adamw.wgsl`: the per-step scalars, and the
/// running `lr_max` and `weight_sum`.
pub fn prepare_schedule_free_adamw(h: &mut ScheduleFreeAdamWHyper, step: f32) {
    let s = schedule_free_schedule(
        h.lr,
        h.beta1,
        h.warmup_steps,
        h.r,
        h.weight_lr_power,
        h.lr_max,
        h.weight_sum,
        step,
    );
    (h.scheduled_lr, h.ckp1, h.y_step) = (s.lr, s.ckp1, s.y_step);
    h.bias_correction2 = bias_correction(h.ln_beta2, step);
    (h.lr_max, h.weight_sum) = (s.lr_max, s.weight_sum);
}

/// `prepare_group` of `shaders/schedule_free_sgd.wgsl`.
pub fn prepare_schedule_free_sgd(h: &mut ScheduleFreeSgdHyper, step: f32) {
    let s = schedule_free_schedule(
        h.lr,
        h.momentum,
        h.warmup_steps,
        h.r,
        h.weight_lr_power,
        h.lr_max,
        h.weight_sum,
        step,
    );
    (h.scheduled_lr, h.ckp1, h.y_step) = (s.lr, s.ckp1, s.y_step);
    (h.lr_max, h.weight_sum) = (s.lr_max, s.weight_sum);
}

/// `schedule_free_update` of `shaders/common/schedule_free.wgsl`: y and z from the gradient
/// `grad` (AdamW's normalized one), weight decay taken at y.
pub fn schedule_free_update(
    y: &mut f32,
    z: &mut f32,
    grad: f32,
    weight_decay: f32,
    ckp1: f32,
    y_step: f32,
    lr: f32,
) {
    let mut g = grad;
    if weight_decay != 0.0 {
        g += weight_decay * *y;
    }
    *y = lerp(*y, *z, ckp1) + y_step * g;
    *z -= lr * g;
}

/// `schedule_free_adamw_math` of `shaders/schedule_free_adamw.wgsl`.
pub fn schedule_free_adamw_math(
    y: &mut f32,
    grad: f32,
    z: &mut f32,
    exp_avg_sq: &mut f32,
    h: &ScheduleFreeAdamWHyper,
) {
    *exp_avg_sq = h.beta2 * *exp_avg_sq + h.one_minus_beta2 * grad * grad;
    let denom = (*exp_avg_sq / h.bias_correction2).sqrt() + h.eps;
    let g = grad / denom;
    schedule_free_update(y, z, g, h.weight_decay, h.ckp1, h.y_step, h.scheduled_lr);
}

/// `step_math` of `shaders/schedule_free_sgd.wgsl`.
pub fn schedule_free_sgd_math(y: &mut f32, grad: f32, z: &mut f32, h: &ScheduleFreeSgdHyper) {
    schedule_free_update(y, z, grad, h.weight_decay, h.ckp1, h.y_step, h.scheduled_lr);
}

/// The step's part of `schedule_free_begin` in `shaders/common/schedule_free.wgsl`: z starts
/// as the parameters, at the first step.
pub fn schedule_free_begin(y: &mut f32, z: &mut f32, first_step: bool) {
    if first_step {
        *z = *y;
    }
}

/// The eval/train switch of `schedule_free_begin` in `shaders/common/schedule_free.wgsl`: y
/// to x (`eval`, weight `eval_weight`) or x to y (`train_weight`), nothing before the first
/// step.
pub fn schedule_free_switch(
    p: &mut f32,
    z: f32,
    eval: bool,
    step: u32,
    (eval_weight, train_weight): (f32, f32),
) {
    let weight = if eval { eval_weight } else { train_weight };
    if step != 0 {
        *p = lerp(*p, z, weight);
    }
}

/// `Moments` of `shaders/common/moments.wgsl`.
pub struct Moments {
    /// The L2 term's factor.
    pub weight_decay: f32,
    /// The decoupled decay's multiplier, `1 - lr * weight_decay`.
    pub decay: f32,
    /// `1 - beta1`.
    pub one_minus_beta1: f32,
    /// `beta2`.
    pub beta2: f32,
    /// `1 - beta2`.
    pub one_minus_beta2: f32,
}

/// The structural options the moments read.
#[derive(Clone, Copy)]
pub struct MomentOptions {
    /// Maximize: the gradient's sign flipped.
    pub maximize: bool,
    /// AdamW's decoupled weight decay instead of Adam's L2 term.
    pub decoupled_weight_decay: bool,
}

/// The moments' hyperparameters and options of each kernel that has them, as its WGSL file
/// builds `Moments` from its `Hyper`.
macro_rules! moments_of {
    ($($hyper:ty, $options:ty);*) => {
        $(impl $hyper {
            /// The moments' hyperparameters.
            pub fn moments(&self) -> Moments {
                Moments {
                    weight_decay: self.weight_decay,
                    decay: self.decay,
                    one_minus_beta1: self.one_minus_beta1,
                    beta2: self.beta2,
                    one_minus_beta2: self.one_minus_beta2,
                }
            }
        }

        impl From<$options> for MomentOptions {
            fn from(o: $options) -> Self {
                MomentOptions {
                    maximize: o.maximize,
                    decoupled_weight_decay: o.decoupled_weight_decay,
                }
            }
        })*
    };
}

moments_of!(
    AdamHyper, AdamOptions;
    NAdamHyper, NAdamOptions;
    RAdamHyper, RAdamOptions;
    AdoptHyper, AdoptOptions
);

/// `l2_grad` of `shaders/common/l2.wgsl`: the sign for maximize, then the L2 term.
pub fn l2_grad(grad: f32, p: f32, weight_decay: f32, maximize: bool) -> f32 {
    let g = if maximize { -grad } else { grad };
    if weight_decay != 0.0 {
        g + weight_decay * p
    } else {
        g
    }
}

/// `decayed_grad` of `shaders/common/moments.wgsl`: the sign and the weight decay (decoupled,
/// `p` decayed in place; else the L2 term added to the gradient returned).
pub fn decayed_grad(p: &mut f32, grad: f32, m: &Moments, o: MomentOptions) -> f32 {
    if o.decoupled_weight_decay {
        *p *= m.decay;
        return if o.maximize { -grad } else { grad };
    }
    l2_grad(grad, *p, m.weight_decay, o.maximize)
}

/// `adam_moments` of `shaders/common/moments.wgsl`: the sign, the weight decay and both
/// moments; returns the gradient the moments saw.
pub fn adam_moments(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_sq: &mut f32,
    m: &Moments,
    o: MomentOptions,
) -> f32 {
    let g = decayed_grad(p, grad, m, o);
    *exp_avg = lerp(*exp_avg, g, m.one_minus_beta1);
    *exp_avg_sq = m.beta2 * *exp_avg_sq + m.one_minus_beta2 * g * g;
    g
}

/// WGSL's `max`: IEEE maxNum on the platforms we test (a NaN operand yields the other).
fn max(a: f32, b: f32) -> f32 {
    a.max(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NAdamConfig, RAdamConfig};

    /// PyTorch's fused `addcmul` keeps an overflowed square_avg at inf when grad_avg^2
    /// overflows too (torch 2.15: centered RMSprop with 1e20 gradients leaves the parameter
    /// finite); inf - inf would be NaN.
    #[test]
    fn centered_variance_keeps_an_infinite_square_avg() {
        assert_eq!(centered_variance(f32::INFINITY, 3e19), f32::INFINITY);
        assert_eq!(centered_variance(f32::INFINITY, -1e19), f32::INFINITY);
        assert_eq!(centered_variance(0.5, 0.5), 0.25);
        assert!(centered_variance(f32::INFINITY, f32::INFINITY).is_nan());
        assert!(centered_variance(1e38, 3e19).is_nan() || centered_variance(1e38, 3e19) < 0.0);
    }

    /// `rho_t` against PyTorch's f64 formula, at small steps (where the direct f32 form
    /// cancels) and large ones, and across the threshold.
    #[test]
    fn radam_rho_matches_f64_within_a_few_ulp() {
        let mut worst = 0.0_f64;
        for beta2 in [
            0.7,
            0.875,
            0.9,
            0.99,
            0.999,
            0.9990234375,
            0.9999,
            0.999_999,
        ] {
            let h = RAdamConfig::default().with_betas(0.9, beta2).hyper();
            let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
            let steps = (1..=64).chain([100, 1000, 1001, 10_000, 100_000, 1_000_000, 16_777_216]);
            for step in steps {
                // With expm1: f64's 1 - beta2^t from powf is itself off by 1e-4 at beta2
                // 0.999999, t = 2, once the difference cancels.
                let x = step as f64 * f64::ln(beta2);
                let exact = rho_inf - 2.0 * step as f64 * x.exp() / -x.exp_m1();
                let got = f64::from(radam_rho(h.ln_beta2, h.rho_inf, step as f32));
                // ln(beta2) rounded to f32 moves rho_t by up to its own half ulp relative.
                let ulps = (got - exact).abs() / (exact.abs() * f64::from(f32::EPSILON));
                worst = worst.max(ulps);
                assert!(
                    ulps <= 8.0,
                    "beta2 {beta2} step {step}: {got} vs {exact} ({ulps} ulp)"
                );
            }
        }
        eprintln!("radam_rho: worst {worst:.2} ulp");
    }

    /// `1 - mu_product` from the closed form against PyTorch's running product, in f64.
    #[test]
    fn nadam_mu_product_matches_the_running_product() {
        let mut worst = 0.0_f64;
        for momentum_decay in [0.0, 1e-6, 4e-3, 0.1, 1.0, 50.0] {
            for beta1 in [0.0, 0.5, 0.9, 0.99, 0.999] {
                let h = NAdamConfig::default()
                    .with_betas(beta1, 0.999)
                    .with_momentum_decay(momentum_decay)
                    .hyper();
                let mut product = 1.0_f64;
                for step in 1..=20_000u32 {
                    let t = f64::from(step);
                    product *= beta1 * (1.0 - 0.5 * 0.96_f64.powf(t * momentum_decay));
                    if step > 64 && step % 97 != 0 {
                        continue;
                    }
                    let exact = 1.0 - product;
                    let got = f64::from(-expm1_nonpositive(nadam_ln_mu_product(&h, step as f32)));
                    // The exponent's own rounding: |ln mu_product| * eps relative to the product.
                    let ln_product = product.ln().max(-104.0);
                    let slack = (1.0 + ln_product.abs()) * product;
                    let ulps = (got - exact).abs() / ((exact + slack) * f64::from(f32::EPSILON));
                    worst = worst.max(ulps);
                    assert!(
                        ulps <= 8.0,
                        "beta1 {beta1} momentum_decay {momentum_decay} step {step}: \
                         1 - mu_product {got} vs {exact} ({ulps} ulp)"
                    );
                }
            }
        }
        eprintln!("nadam_ln_mu_product: worst {worst:.2} ulp");
    }
}
