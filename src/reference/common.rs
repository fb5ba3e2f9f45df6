//! Mirrors of the family files of `shaders/common/`, which several kernels share: the L2
//! term and the Adam family's moments (`l2.wgsl`, `moments.wgsl`), its group's prologue
//! (`adam_group.wgsl`), RAdam's rectification (`rectify.wgsl`), the trust ratio
//! (`trust.wgsl`) and Schedule-Free's schedule and switch (`schedule_free.wgsl`).

// Constants carry the same decimal digits as the WGSL source, so both round to the same f32.
#![allow(clippy::excessive_precision)]

use super::math::{bias_correction, lerp};
use crate::optim::{AdamDerived, AdamHyper, ScheduleFreeRunning};

/// `prepare_adam` of `shaders/common/adam_group.wgsl`: the Adam family's step size and bias
/// corrections (`prepare_group` of `shaders/adam.wgsl` and `shaders/adamax.wgsl`).
pub fn prepare_adam(h: &AdamHyper, step: f32) -> AdamDerived {
    let bias_correction2 = bias_correction(h.ln_beta2, step);
    AdamDerived {
        step_size: h.lr / bias_correction(h.ln_beta1, step),
        bias_correction2,
        bias_correction2_sqrt: bias_correction2.sqrt(),
        ..AdamDerived::default()
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

/// The moments' hyperparameters and options of a kernel that has them, as its WGSL file
/// builds `Moments` from its `Hyper`: `moments_of!(AdamHyper, AdamOptions)` in its mirror.
macro_rules! moments_of {
    ($hyper:ty, $options:ty) => {
        impl $hyper {
            /// The moments' hyperparameters.
            pub fn moments(&self) -> $crate::reference::Moments {
                $crate::reference::Moments {
                    weight_decay: self.weight_decay,
                    decay: self.decay,
                    one_minus_beta1: self.one_minus_beta1,
                    beta2: self.beta2,
                    one_minus_beta2: self.one_minus_beta2,
                }
            }
        }

        impl From<$options> for $crate::reference::MomentOptions {
            fn from(o: $options) -> Self {
                $crate::reference::MomentOptions {
                    maximize: o.maximize,
                    decoupled_weight_decay: o.decoupled_weight_decay,
                }
            }
        }
    };
}
pub(super) use moments_of;

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
pub(super) fn max(a: f32, b: f32) -> f32 {
    a.max(b)
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

/// `trust_ratio_of` of `shaders/common/trust.wgsl`: Optax's `scale_by_trust_ratio`.
pub fn trust_ratio(param_norm: f32, update_norm: f32, coefficient: f32, eps: f32, on: bool) -> f32 {
    let ratio = coefficient * param_norm / (update_norm + eps);
    if param_norm == 0.0 || update_norm == 0.0 || !on {
        1.0
    } else {
        ratio
    }
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
/// `weight_lr_power` and the `running` values before it.
pub fn schedule_free_schedule(
    lr: f32,
    beta: f32,
    warmup_steps: f32,
    r: f32,
    weight_lr_power: f32,
    running: ScheduleFreeRunning,
    step: f32,
) -> ScheduleFreeStep {
    let scheduled = if step <= warmup_steps {
        lr * (step / warmup_steps)
    } else {
        lr
    };
    let lr_max = max(scheduled, running.lr_max);
    let weight = schedule_free_power(step, r) * schedule_free_power(lr_max, weight_lr_power);
    let weight_sum = running.weight_sum + weight;
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

/// `schedule_free_mode` of `shaders/common/schedule_free.wgsl`: `(moves, train_mode)` of a
/// dispatch at `step` (the counter: advanced for a step, not for a switch) from the mode
/// before it. `switch`: `Some(eval)` for `eval()` (true) or `train()`, `None` for a step.
pub fn schedule_free_mode(train_mode: f32, step: f32, switch: Option<bool>) -> (f32, f32) {
    let moves = |m: bool| if m { 1.0 } else { 0.0 };
    match switch {
        Some(eval) => {
            let target = if eval { 0.0 } else { 1.0 };
            (moves(train_mode != target && step > 0.0), target)
        }
        None => (moves(train_mode == 0.0 && step > 1.0), 1.0),
    }
}

/// The step's part of `schedule_free_begin` in `shaders/common/schedule_free.wgsl`: the
/// parameters moved from x back to y first where the prologue says so (a step in eval mode),
/// then z started as them at the first step.
pub fn schedule_free_begin(
    y: &mut f32,
    z: &mut f32,
    moves: f32,
    train_weight: f32,
    first_step: bool,
) {
    if moves != 0.0 {
        *y = lerp(*y, *z, train_weight);
    }
    if first_step {
        *z = *y;
    }
}

/// Schedule-Free's `eval()` and `train()` weights of z (`1 - 1 / beta`, `1 - beta`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SwitchWeights {
    /// `eval()`'s: y to x.
    pub eval_weight: f32,
    /// `train()`'s: x back to y.
    pub train_weight: f32,
}

/// The eval/train switch of `schedule_free_begin` in `shaders/common/schedule_free.wgsl`: y
/// to x (`eval`, weight `eval_weight`) or x to y (`train_weight`), nothing before the first
/// step (the caller moves only where [`schedule_free_mode`] says so).
pub fn schedule_free_switch(p: &mut f32, z: f32, eval: bool, step: u32, weights: SwitchWeights) {
    let SwitchWeights {
        eval_weight,
        train_weight,
    } = weights;
    let weight = if eval { eval_weight } else { train_weight };
    if step != 0 {
        *p = lerp(*p, z, weight);
    }
}
