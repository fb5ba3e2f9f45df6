//! AdaBelief, as the authors' adabelief-pytorch, its rectified form (`rectify=True`) included.

use super::adam::{moment_states, ADAM_RECORD};
use super::radam::rectification_limits;
use super::{row, adam_family, config_struct, non_negative, with_betas, AdamHyper, Algorithm};
use crate::error::{Error, Result};
use crate::kernel::{shader_file, Kernel, KernelSpec, ADAM_GROUP, RECTIFY};
use crate::setters::setters;

config_struct! {
    /// AdaBelief (Zhuang et al. 2020, "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
    /// Observed Gradients"), exactly as the authors' `adabelief_pytorch.AdaBelief` (0.2):
    ///
    /// ```text
    /// weight_decouple: p = p * (1 - lr * weight_decay)    (fixed_decay: p * (1 - weight_decay))
    /// otherwise:       g = g + weight_decay * p
    /// exp_avg     = beta1 * exp_avg + (1 - beta1) * g
    /// exp_avg_var = beta2 * exp_avg_var + (1 - beta2) * (g - exp_avg)^2 + eps     (eps in place)
    /// amsgrad:      max_exp_avg_var = max(max_exp_avg_var, exp_avg_var), used below instead
    /// p = p - lr / (1 - beta1^t) * exp_avg / (sqrt(exp_avg_var) / sqrt(1 - beta2^t) + eps)
    /// ```
    ///
    /// With `rectify` (adabelief-pytorch's `rectify=True`), the last line is RAdam's rectified
    /// step (Liu et al. 2020; see [`RAdamConfig`](super::RAdamConfig)), as adabelief-pytorch forks it:
    ///
    /// ```text
    /// rho_inf = 2 / (1 - beta2) - 1
    /// rho_t   = rho_inf - 2 t beta2^t / (1 - beta2^t)
    /// rho_t >= 5: r = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
    ///             p = p - lr / (1 - beta1^t) * r * sqrt(1 - beta2^t) * exp_avg / (sqrt(exp_avg_var) + eps)
    /// otherwise:  p = p - lr / (1 - beta1^t) * exp_avg      (degenerated_to_sgd; else p unchanged)
    /// ```
    ///
    /// The rectified step divides by `exp_avg_var` even with amsgrad (whose maximum is then kept
    /// but unused), and the threshold is `>= 5` (PyTorch's RAdam: `> 5`), both as adabelief-pytorch.
    /// `rho_t` and `r` are computed on the device from the step counter, as RAdam's.
    ///
    /// State: `exp_avg`, `exp_avg_var`, and `max_exp_avg_var` with amsgrad. The defaults are
    /// adabelief-pytorch's (eps 1e-16, weight_decouple on, degenerated_to_sgd on) except
    /// `rectify`, off here (adabelief-pytorch's default is on).
    ///
    /// ```no_run
    /// # use wgpu_optim::{AdaBeliefConfig, Context, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let adabelief = AdaBeliefConfig::default().with_weight_decay(1e-4).build(ctx, params)?;
    /// // adabelief-pytorch's defaults, rectification included.
    /// let rectified = AdaBeliefConfig::default().with_rectify(true).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct AdaBeliefConfig {
        /// Learning rate (default 1e-3).
        pub lr: f64,
        /// Decay of the first moment (default 0.9).
        pub beta1: f64,
        /// Decay of the gradient-residual variance (default 0.999).
        pub beta2: f64,
        /// Added to the variance in place and to the denominator (default 1e-16).
        pub eps: f64,
        /// Weight decay (default 0).
        pub weight_decay: f64,
        /// AMSGrad-style maximum of the variance (default false).
        pub amsgrad: bool,
        /// Decoupled weight decay, as AdamW (default true).
        pub weight_decouple: bool,
        /// With `weight_decouple`, decay by `weight_decay` alone, not `lr * weight_decay` (default false).
        pub fixed_decay: bool,
        /// Added to `exp_avg_var` inside the square root (Optax's `eps_root`); `None` (default)
        /// uses `eps`, as adabelief-pytorch does.
        pub eps_root: Option<f64>,
        /// RAdam's rectification, as adabelief-pytorch's `rectify=True` (default false here).
        pub rectify: bool,
        /// With `rectify`, an SGD step with momentum while `rho_t < 5` (default true); without it
        /// those steps leave the parameters as they are.
        pub degenerated_to_sgd: bool,
    }
}

impl Default for AdaBeliefConfig {
    fn default() -> Self {
        AdaBeliefConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-16,
            weight_decay: 0.0,
            amsgrad: false,
            weight_decouple: true,
            fixed_decay: false,
            eps_root: None,
            rectify: false,
            degenerated_to_sgd: true,
        }
    }
}

/// The structural options of the AdaBelief kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaBeliefOptions {
    /// AMSGrad-style maximum.
    pub amsgrad: bool,
    /// Decoupled weight decay.
    pub weight_decouple: bool,
    /// RAdam's rectification.
    pub rectify: bool,
    /// With `rectify`, SGD steps while the variance is intractable.
    pub degenerated_to_sgd: bool,
}

setters! {
    AdaBeliefConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the weight decay.
    with_weight_decay(weight_decay: f64);
    /// Turns the AMSGrad-style maximum on or off.
    with_amsgrad(amsgrad: bool);
    /// Decoupled (true) or L2 (false) weight decay.
    with_weight_decouple(weight_decouple: bool);
    /// Fixed (learning-rate independent) decoupled decay.
    with_fixed_decay(fixed_decay: bool);
    /// Turns RAdam's rectification on or off (adabelief-pytorch's `rectify`).
    with_rectify(rectify: bool);
    /// With rectify, SGD steps (true) or none (false) while `rho_t < 5`.
    with_degenerated_to_sgd(degenerated_to_sgd: bool);
}

/// `shaders/adabelief.wgsl`: the Adam family's record, three state slots.
const KERNEL: Kernel = Kernel {
    name: "adabelief",
    file: shader_file!("adabelief.wgsl"),
    family: &[ADAM_GROUP, RECTIFY],
    state_slots: 3,
    record: ADAM_RECORD,
    trust_ratio: false,
    modes: None,
};

with_betas!(AdaBeliefConfig);

impl AdaBeliefConfig {
    /// Sets Optax's eps_root, added inside the square root in place of eps.
    pub fn with_eps_root(mut self, eps_root: f64) -> Self {
        self.eps_root = Some(eps_root);
        self
    }

    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> AdamHyper {
        let decay = if self.fixed_decay {
            1.0 - self.weight_decay
        } else {
            1.0 - self.lr * self.weight_decay
        };
        let mut hyper = AdamHyper::new(
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.eps_root.unwrap_or(self.eps),
            self.weight_decay,
            decay,
        );
        if self.rectify {
            let (rho_inf, rect_inf) = rectification_limits(self.beta2);
            hyper.rho_inf = rho_inf as f32;
            hyper.rect_inf = rect_inf as f32;
        }
        hyper
    }

    /// The kernel's structural options.
    pub fn options(&self) -> AdaBeliefOptions {
        AdaBeliefOptions {
            amsgrad: self.amsgrad,
            weight_decouple: self.weight_decouple,
            rectify: self.rectify,
            degenerated_to_sgd: self.degenerated_to_sgd,
        }
    }

}

impl Algorithm for AdaBeliefConfig {
    row!(name: "AdaBelief", kernel: &KERNEL, momentum: beta1);

    fn lower(&self) -> Result<KernelSpec> {
        adam_family!(self).check()?;
        if let Some(eps_root) = self.eps_root {
            non_negative("eps_root", eps_root)?;
            if self.rectify {
                return Err(Error::InvalidOptions(
                    "eps_root is Optax's AdaBelief form, which has no rectify (adabelief-pytorch's)",
                ));
            }
        }
        let o = self.options();
        KernelSpec::new(
            &KERNEL,
            vec![
                ("AMSGRAD", o.amsgrad),
                ("WEIGHT_DECOUPLE", o.weight_decouple),
                ("RECTIFY", o.rectify),
                ("DEGENERATED_TO_SGD", o.degenerated_to_sgd),
            ],
            moment_states(["exp_avg", "exp_avg_var", "max_exp_avg_var"], o.amsgrad),
            &self.hyper(),
        )
    }
}
