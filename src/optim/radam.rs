//! RAdam: `torch.optim.RAdam` and `optax.radam`.

use super::adam::moment_states;
use super::{row, adam_family, config_struct, ln, non_negative, with_betas, Algorithm};
use crate::error::{Error, Result};
use crate::kernel::{
    shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, L2, MOMENTS, RECTIFY,
};
use crate::setters::setters;

config_struct! {
    /// RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond"),
    /// exactly as `torch.optim.RAdam`:
    ///
    /// ```text
    /// g          = maximize ? -g : g
    /// g          = g + weight_decay * p             (decoupled: p = p * (1 - lr * weight_decay))
    /// exp_avg    = lerp(exp_avg, g, 1 - beta1)
    /// exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
    /// rho_inf    = 2 / (1 - beta2) - 1
    /// rho_t      = rho_inf - 2 t beta2^t / (1 - beta2^t)
    /// rect       = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
    /// rho_t > 5:   p = p - lr / (1 - beta1^t) * rect * sqrt(1 - beta2^t) * exp_avg / (sqrt(exp_avg_sq) + eps)
    /// otherwise:   p = p - lr / (1 - beta1^t) * exp_avg
    /// ```
    ///
    /// With `optax_form`, `optax.radam`'s: the rectified step is taken when `rho_t >= threshold`,
    /// and eps is added to the square root of the bias-corrected second moment,
    /// `p = p - lr / (1 - beta1^t) * rect * exp_avg / (sqrt(exp_avg_sq / (1 - beta2^t) + eps_root) + eps)`.
    /// `threshold` is Optax's argument of that name; PyTorch's is 5, and it applies to both forms.
    ///
    /// Every per-step scalar (bias corrections, `rho_t`, `rect`, which branch) is computed on the
    /// device from its step counter, in the prologue. `rho_t` is a difference of two terms near
    /// `2 / (1 - beta2)` that cancel to about `t` for small `t * (1 - beta2)` (1999 - 1998 = 1 at
    /// the first step with beta2 = 0.999): there the kernel sums the series of
    /// `x / (1 - e^-x)` instead, so `rho_t` is within a few ulp of PyTorch's f64 value at every
    /// step, and the branch is PyTorch's.
    ///
    /// State: `exp_avg`, `exp_avg_sq`.
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, Param, RAdamConfig};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let radam = RAdamConfig::default()
    ///     .with_lr(1e-3)
    ///     .with_weight_decay(0.01)
    ///     .with_decoupled_weight_decay(true)
    ///     .build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct RAdamConfig {
        /// Learning rate (default 1e-3).
        pub lr: f64,
        /// Decay of the first moment (default 0.9).
        pub beta1: f64,
        /// Decay of the second moment (default 0.999).
        pub beta2: f64,
        /// Added to the denominator (default 1e-8).
        pub eps: f64,
        /// Weight decay (default 0): an L2 penalty, or decoupled when `decoupled_weight_decay`.
        pub weight_decay: f64,
        /// Decoupled weight decay, as AdamW (default false; PyTorch's argument of that name).
        pub decoupled_weight_decay: bool,
        /// Maximize the objective (default false).
        pub maximize: bool,
        /// `optax.radam`'s form (default false): the rectified step when `rho_t >= threshold`,
        /// eps added to `sqrt(bias-corrected second moment + eps_root)`.
        pub optax_form: bool,
        /// The `rho_t` past which the rectified step is taken (default 5, PyTorch's constant;
        /// Optax's `threshold`). At least 4, where the rectification term is defined.
        pub threshold: f64,
        /// Optax's eps_root, inside the square root of the Optax form (default 0).
        pub eps_root: f64,
    }
}

impl Default for RAdamConfig {
    fn default() -> Self {
        RAdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
            optax_form: false,
            threshold: 5.0,
            eps_root: 0.0,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/radam.wgsl`.
    pub struct RAdamHyper as "Hyper" {
        /// Learning rate.
        lr: f32,
        /// Second-moment decay.
        beta2: f32,
        /// 1 - beta1, computed in f64.
        one_minus_beta1: f32,
        /// 1 - beta2, computed in f64.
        one_minus_beta2: f32,
        /// ln(beta1), computed in f64.
        ln_beta1: f32,
        /// ln(beta2), computed in f64.
        ln_beta2: f32,
        /// Denominator term.
        eps: f32,
        /// Added inside the square root (Optax's eps_root).
        eps_root: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Decoupled decay multiplier, 1 - lr * weight_decay, computed in f64.
        decay: f32,
        /// 2 / (1 - beta2) - 1, computed in f64.
        rho_inf: f32,
        /// rho_inf / ((rho_inf - 4) (rho_inf - 2)), computed in f64 (0 when rho_inf <= 4: the
        /// rectified step is then never taken).
        rect_inf: f32,
        /// The rho_t past which the rectified step is taken.
        threshold: f32,
    }
}

wgsl_struct! {
    /// `Derived` of `shaders/radam.wgsl`: what the prologue derives each step.
    pub struct RAdamDerived as "Derived" {
        /// lr / (1 - beta1^t).
        step_size: f32,
        /// The rectified step's multiplier of exp_avg / denom: PyTorch's
        /// lr / (1 - beta1^t) * rect * sqrt(1 - beta2^t), Optax's lr / (1 - beta1^t) * rect.
        rectified_step_size: f32,
        /// What the denominator divides exp_avg_sq by: 1 - beta2^t in the Optax form, 1 in
        /// PyTorch's.
        bias_correction2: f32,
        /// 1 when this step is rectified, else 0.
        rectified: f32,
    }
}

/// `shaders/radam.wgsl`: two state slots, the rectification derived each step.
const KERNEL: Kernel = Kernel {
    name: "radam",
    file: shader_file!("radam.wgsl"),
    family: &[L2, MOMENTS, RECTIFY],
    state_slots: 2,
    record: GroupRecord::of::<RAdamHyper>().with_derived::<RAdamDerived>(),
    trust_ratio: false,
    modes: None,
};

with_betas!(RAdamConfig);

/// The structural options of the RAdam kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RAdamOptions {
    /// Gradient ascent.
    pub maximize: bool,
    /// AdamW's decoupled weight decay.
    pub decoupled_weight_decay: bool,
    /// `optax.radam`'s threshold test and eps.
    pub optax_form: bool,
}

setters! {
    RAdamConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the weight decay.
    with_weight_decay(weight_decay: f64);
    /// Decouples the weight decay from the gradient (AdamW's form).
    with_decoupled_weight_decay(decoupled_weight_decay: bool);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
    /// Takes `optax.radam`'s form.
    with_optax_form(optax_form: bool);
    /// Sets the threshold of `rho_t` for the rectified step.
    with_threshold(threshold: f64);
    /// Sets Optax's eps_root (with `optax_form`).
    with_eps_root(eps_root: f64);
}

impl RAdamConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> RAdamHyper {
        let (rho_inf, rect_inf) = rectification_limits(self.beta2);
        RAdamHyper {
            lr: self.lr as f32,
            beta2: self.beta2 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            ln_beta1: ln(self.beta1),
            ln_beta2: ln(self.beta2),
            eps: self.eps as f32,
            eps_root: self.eps_root as f32,
            weight_decay: self.weight_decay as f32,
            decay: (1.0 - self.lr * self.weight_decay) as f32,
            rho_inf: rho_inf as f32,
            rect_inf: rect_inf as f32,
            threshold: self.threshold as f32,
        }
    }

    /// The kernel's structural options.
    pub fn options(&self) -> RAdamOptions {
        RAdamOptions {
            maximize: self.maximize,
            decoupled_weight_decay: self.decoupled_weight_decay,
            optax_form: self.optax_form,
        }
    }

}

impl Algorithm for RAdamConfig {
    row!(name: "RAdam", kernel: &KERNEL, momentum: beta1);

    fn lower(&self) -> Result<KernelSpec> {
        adam_family!(self).check()?;
        non_negative("eps_root", self.eps_root)?;
        if !(self.threshold >= 4.0 && (self.threshold as f32).is_finite()) {
            return Err(Error::InvalidHyperparameter {
                name: "threshold",
                value: self.threshold,
                expected: "a value >= 4 (where sqrt((rho_t - 4) (rho_t - 2)) is real), \
                           finite in f32",
            });
        }
        if self.eps_root != 0.0 && !self.optax_form {
            return Err(Error::InvalidOptions(
                "eps_root applies to Optax's RAdam form only (optax_form)",
            ));
        }
        let o = self.options();
        KernelSpec::new(
            &KERNEL,
            vec![
                ("MAXIMIZE", o.maximize),
                ("DECOUPLED_WEIGHT_DECAY", o.decoupled_weight_decay),
                ("OPTAX_FORM", o.optax_form),
            ],
            moment_states(["exp_avg", "exp_avg_sq", ""], false),
            &self.hyper(),
        )
    }
}

/// `(rho_inf, rect_inf)` of the rectification, in f64: `rho_inf = 2 / (1 - beta2) - 1`, the
/// maximum length of the approximated SMA, and `rect_inf = rho_inf / ((rho_inf - 4) (rho_inf -
/// 2))`, 0 when `rho_inf <= 4` (the rectified step is then never taken). RAdam's, and
/// AdaBelief's with rectify.
pub(crate) fn rectification_limits(beta2: f64) -> (f64, f64) {
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let rect_inf = if rho_inf > 4.0 {
        rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0))
    } else {
        0.0
    };
    (rho_inf, rect_inf)
}
