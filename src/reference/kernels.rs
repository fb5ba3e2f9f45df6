//! Mirrors of each optimizer's WGSL math function, line for line, on one element in f32.
//! Read them beside `shaders/<name>.wgsl`.

use super::math::{bias_correction, lerp, sign};
use crate::optim::{
    AdaBeliefOptions, AdagradHyper, AdagradOptions, AdamHyper, AdamOptions, LionHyper, LionOptions,
    RmsPropHyper, RmsPropOptions, SgdHyper, SgdOptions,
};

/// `prepare_group` of `shaders/common/adam_hyper.wgsl`.
pub fn prepare_adam(h: &mut AdamHyper, step: f32) {
    h.step_size = h.lr / bias_correction(h.ln_beta1, step);
    h.bias_correction2 = bias_correction(h.ln_beta2, step);
    h.bias_correction2_sqrt = h.bias_correction2.sqrt();
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
    let mut d_p = if o.maximize { -grad } else { grad };
    if h.weight_decay != 0.0 {
        d_p += h.weight_decay * *p;
    }
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
    let mut g = if o.maximize { -grad } else { grad };
    if h.weight_decay != 0.0 {
        g += h.weight_decay * *p;
    }
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
    let mut g = if o.maximize { -grad } else { grad };
    if h.weight_decay != 0.0 {
        g += h.weight_decay * *p;
    }
    *square_avg = h.alpha * *square_avg + h.one_minus_alpha * g * g;
    let mut v = *square_avg;
    if o.centered {
        *grad_avg = lerp(*grad_avg, g, h.one_minus_alpha);
        v = *square_avg - *grad_avg * *grad_avg;
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
    let mut g = if o.maximize { -grad } else { grad };
    if h.weight_decay != 0.0 {
        if o.decoupled_weight_decay {
            *p *= h.decay;
        } else {
            g += h.weight_decay * *p;
        }
    }
    *exp_avg = lerp(*exp_avg, g, h.one_minus_beta1);
    *exp_avg_sq = h.beta2 * *exp_avg_sq + h.one_minus_beta2 * g * g;
    let mut second_moment = *exp_avg_sq;
    if o.amsgrad {
        if o.amsgrad_bias_corrected {
            *max_exp_avg_sq = max(*max_exp_avg_sq, *exp_avg_sq / h.bias_correction2);
            let denom = (*max_exp_avg_sq + h.eps_root).sqrt() + h.eps;
            *p -= h.step_size * (*exp_avg / denom);
            return;
        }
        *max_exp_avg_sq = max(*max_exp_avg_sq, *exp_avg_sq);
        second_moment = *max_exp_avg_sq;
    }
    let denom = second_moment.sqrt() / h.bias_correction2_sqrt + h.eps;
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

/// WGSL's `max`: IEEE maxNum on the platforms we test (a NaN operand yields the other).
fn max(a: f32, b: f32) -> f32 {
    a.max(b)
}
