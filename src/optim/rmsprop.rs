//! RMSprop: `torch.optim.RMSprop`.

use super::{row, beta, config_struct, ln, non_negative, Algorithm};
use crate::error::Result;
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, StateSpec, L2};
use crate::setters::setters;

config_struct! {
    /// RMSprop (Hinton, Coursera lecture 6e, 2012; centered: Graves 2013), exactly as
    /// `torch.optim.RMSprop`:
    ///
    /// ```text
    /// g          = maximize ? -g : g
    /// g          = g + weight_decay * p
    /// square_avg = alpha * square_avg + (1 - alpha) * g * g
    /// centered:  grad_avg = lerp(grad_avg, g, 1 - alpha);  avg = sqrt(square_avg - grad_avg^2) + eps
    /// else:      avg = sqrt(square_avg) + eps
    /// momentum > 0: buf = momentum * buf + g / avg;  p = p - lr * buf
    /// else:         p = p - lr * g / avg
    /// ```
    ///
    /// PyTorch computes `square_avg - grad_avg^2` as one fused multiply-add
    /// (`addcmul(square_avg, grad_avg, grad_avg, value=-1)`): with gradients near 1e20,
    /// `square_avg` overflows to inf before `grad_avg^2` does, and once both would, the fused form
    /// still gives `inf - (finite exact product) = inf` (an update of 0, the parameter unchanged)
    /// where `inf - inf` would be NaN. The kernel gives that inf explicitly (WGSL's `fma` may round
    /// its product, and lavapipe's does); elsewhere it differs from the fused value by the
    /// product's rounding alone.
    ///
    /// With `bias_correction` (Optax's `rmsprop(..., bias_correction=True)`), both averages are
    /// divided by `1 - alpha^t` before use: `square_avg / (1 - alpha^t)` in place of `square_avg`,
    /// `grad_avg / (1 - alpha^t)` in place of `grad_avg` (the states keep the raw averages, as
    /// Optax's `nu` and `mu`). `t` is the device's step counter; `1 - alpha^t` is computed there
    /// each step from `ln(alpha)` in f64, as the Adam family's corrections.
    ///
    /// State: `square_avg`; `momentum_buffer` when `momentum > 0`; `grad_avg` when centered.
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, Param, RmsPropConfig};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let rmsprop = RmsPropConfig::default().with_centered(true).with_momentum(0.9).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct RmsPropConfig {
        /// Learning rate (default 1e-2).
        pub lr: f64,
        /// Smoothing constant (default 0.99).
        pub alpha: f64,
        /// Added to the denominator (default 1e-8).
        pub eps: f64,
        /// L2 penalty (default 0).
        pub weight_decay: f64,
        /// Momentum factor (default 0: no momentum buffer).
        pub momentum: f64,
        /// Normalize by the estimated variance instead of the second moment (default false).
        pub centered: bool,
        /// Maximize the objective (default false).
        pub maximize: bool,
        /// Optax's form (default false, PyTorch's): eps inside the square root,
        /// `g / sqrt(v + eps)` instead of `g / (sqrt(v) + eps)`.
        pub eps_in_sqrt: bool,
        /// Optax's `bias_correction=True` (default false, as PyTorch, which has none): the
        /// averages divided by `1 - alpha^t`. Needs `alpha < 1`.
        pub bias_correction: bool,
    }
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
            eps_in_sqrt: false,
            bias_correction: false,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/rmsprop.wgsl`.
    pub struct RmsPropHyper as "Hyper" {
        /// Learning rate.
        lr: f32,
        /// Smoothing constant.
        alpha: f32,
        /// 1 - alpha, computed in f64.
        one_minus_alpha: f32,
        /// Denominator term.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// Momentum factor.
        momentum: f32,
        /// ln(alpha), computed in f64.
        ln_alpha: f32,
    }
}

wgsl_struct! {
    /// `Derived` of `shaders/rmsprop.wgsl`: what the prologue derives each step.
    pub struct RmsPropDerived as "Derived" {
        /// 1 - alpha^t (with Optax's bias correction; 0 otherwise).
        bias_correction: f32,
    }
}

/// `shaders/rmsprop.wgsl`: three state slots (`square_avg`, `momentum_buffer`, `grad_avg`).
const KERNEL: Kernel = Kernel {
    name: "rmsprop",
    file: shader_file!("rmsprop.wgsl"),
    family: &[L2],
    state_slots: 3,
    record: GroupRecord::of::<RmsPropHyper>().with_derived::<RmsPropDerived>(),
    trust_ratio: false,
    modes: None,
};

/// The structural options of the RMSprop kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmsPropOptions {
    /// Centered variant.
    pub centered: bool,
    /// `momentum > 0`: a momentum buffer is kept.
    pub momentum: bool,
    /// Gradient ascent.
    pub maximize: bool,
    /// eps inside the square root (Optax).
    pub eps_in_sqrt: bool,
    /// Optax's bias correction of both averages.
    pub bias_correction: bool,
}

setters! {
    RmsPropConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets the smoothing constant.
    with_alpha(alpha: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the L2 penalty.
    with_weight_decay(weight_decay: f64);
    /// Sets the momentum factor.
    with_momentum(momentum: f64);
    /// Turns the centered variant on or off.
    with_centered(centered: bool);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
    /// Sets Optax's eps-inside-the-square-root form.
    with_eps_in_sqrt(eps_in_sqrt: bool);
    /// Turns Optax's bias correction on or off.
    with_bias_correction(bias_correction: bool);
}

impl RmsPropConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> RmsPropHyper {
        RmsPropHyper {
            lr: self.lr as f32,
            alpha: self.alpha as f32,
            one_minus_alpha: (1.0 - self.alpha) as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            momentum: self.momentum as f32,
            ln_alpha: ln(self.alpha),
        }
    }

    /// The kernel's structural options.
    pub fn options(&self) -> RmsPropOptions {
        RmsPropOptions {
            centered: self.centered,
            momentum: self.momentum > 0.0,
            maximize: self.maximize,
            eps_in_sqrt: self.eps_in_sqrt,
            bias_correction: self.bias_correction,
        }
    }

}

impl Algorithm for RmsPropConfig {
    row!(name: "RMSprop", kernel: &KERNEL, momentum: momentum);

    fn lower(&self) -> Result<KernelSpec> {
        non_negative("lr", self.lr)?;
        non_negative("eps", self.eps)?;
        non_negative("momentum", self.momentum)?;
        non_negative("weight_decay", self.weight_decay)?;
        non_negative("alpha", self.alpha)?;
        if self.bias_correction {
            // 1 - alpha^t must stay positive.
            beta("alpha", self.alpha)?;
        }
        let o = self.options();
        let mut states = vec![StateSpec {
            name: "square_avg",
            slot: 0,
            init: 0.0,
        }];
        if o.momentum {
            states.push(StateSpec {
                name: "momentum_buffer",
                slot: 1,
                init: 0.0,
            });
        }
        if o.centered {
            states.push(StateSpec {
                name: "grad_avg",
                slot: 2,
                init: 0.0,
            });
        }
        KernelSpec::new(
            &KERNEL,
            vec![
                ("CENTERED", o.centered),
                ("MOMENTUM", o.momentum),
                ("MAXIMIZE", o.maximize),
                ("EPS_IN_SQRT", o.eps_in_sqrt),
                ("BIAS_CORRECTION", o.bias_correction),
            ],
            states,
            &self.hyper(),
        )
    }
}
