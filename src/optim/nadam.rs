//! NAdam: `torch.optim.NAdam` and `optax.nadam`.

use super::adam::moment_states;
use super::{row, adam_family, config_struct, ln, non_negative, with_betas, Algorithm};
use crate::error::{Error, Result};
use crate::kernel::math::expm1_nonpositive;
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, L2, MOMENTS};
use crate::setters::setters;

config_struct! {
    /// NAdam (Dozat 2016, "Incorporating Nesterov Momentum into Adam"), exactly as
    /// `torch.optim.NAdam`:
    ///
    /// ```text
    /// g          = maximize ? -g : g
    /// g          = g + weight_decay * p             (decoupled: p = p * (1 - lr * weight_decay))
    /// mu_t       = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))
    /// mu_product = mu_1 * mu_2 * ... * mu_t
    /// exp_avg    = lerp(exp_avg, g, 1 - beta1)
    /// exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
    /// denom      = sqrt(exp_avg_sq / (1 - beta2^t)) + eps
    /// p          = p - lr * (1 - mu_t) / (1 - mu_product) * g / denom
    /// p          = p - lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * exp_avg / denom
    /// ```
    ///
    /// With `optax_form`, `optax.nadam`'s (`scale_by_adam(nesterov=True)`: Adam with a look-ahead
    /// first moment, no momentum schedule): the same update with the coefficients
    /// `lr * (1 - beta1) / (1 - beta1^t)` of `g` and `lr * beta1 / (1 - beta1^(t+1))` of `exp_avg`,
    /// and `denom = sqrt(exp_avg_sq / (1 - beta2^t) + eps_root) + eps`. `momentum_decay` is unused.
    ///
    /// **`mu_product` is derived from the step counter**, not kept as a state: PyTorch keeps it
    /// per parameter (`state['mu_product']`, multiplied by `mu_t` each step), but here every
    /// per-step scalar is computed on the device in the prologue, from the step counter alone, so
    /// that checkpoints, snapshots and populations need nothing more than the step. The product
    /// is computed in closed form in f32: with `q = 0.96^momentum_decay`,
    /// `ln mu_product = t ln(beta1) + sum_i ln(1 - q^i / 2)` and
    /// `sum_{i=1..t} ln(1 - q^i / 2) = -sum_k (1/2)^k / k * q^k (1 - q^(kt)) / (1 - q^k)`, whose
    /// first 24 terms (each from `expm1`, without cancellation) reach f32's precision; then
    /// `1 - mu_product = -expm1(ln mu_product)`. It matches PyTorch's running product (an f32
    /// tensor) to a few ulp of `1 - mu_product` at any step. The closed form assumes `beta1` and
    /// `momentum_decay` constant over the steps taken: after a change (a cycled `beta1`), the
    /// product is the one the new values would have given from the first step. The difference
    /// fades with the product itself: `mu_t <= beta1`, and for the default `momentum_decay`
    /// `mu_t` is about `beta1 / 2` for thousands of steps, so the product is below f32's
    /// resolution of `1 - mu_product` after some 25 steps.
    ///
    /// State: `exp_avg`, `exp_avg_sq` (PyTorch's names; its `mu_product` is the function of
    /// `step` above, and its `step` is the control block's).
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, NAdamConfig, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let nadam = NAdamConfig::default().with_lr(2e-3).with_momentum_decay(4e-3).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct NAdamConfig {
        /// Learning rate (default 2e-3).
        pub lr: f64,
        /// Decay of the first moment (default 0.9).
        pub beta1: f64,
        /// Decay of the second moment (default 0.999).
        pub beta2: f64,
        /// Added to the denominator (default 1e-8).
        pub eps: f64,
        /// Weight decay (default 0): an L2 penalty, or decoupled when `decoupled_weight_decay`.
        pub weight_decay: f64,
        /// The momentum schedule's decay, `psi` in the paper (default 4e-3).
        pub momentum_decay: f64,
        /// Decoupled weight decay, as AdamW (default false; PyTorch's argument of that name).
        pub decoupled_weight_decay: bool,
        /// Maximize the objective (default false).
        pub maximize: bool,
        /// `optax.nadam`'s form (default false): Adam with a look-ahead first moment.
        pub optax_form: bool,
        /// Optax's eps_root, inside the square root of the Optax form (default 0).
        pub eps_root: f64,
    }
}

impl Default for NAdamConfig {
    fn default() -> Self {
        NAdamConfig {
            lr: 2e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
            optax_form: false,
            eps_root: 0.0,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/nadam.wgsl`.
    pub struct NAdamHyper as "Hyper" {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
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
        /// momentum_decay * ln(0.96), computed in f64: `0.96^(t * momentum_decay)` is
        /// `exp(t * ln_mu_base)`.
        ln_mu_base: f32,
        /// Denominator term.
        eps: f32,
        /// Added inside the square root (Optax's eps_root).
        eps_root: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Decoupled decay multiplier, 1 - lr * weight_decay, computed in f64.
        decay: f32,
    }
}

wgsl_struct! {
    /// `Derived` of `shaders/nadam.wgsl`: what the prologue derives each step.
    pub struct NAdamDerived as "Derived" {
        /// The coefficient of g / denom: PyTorch's lr (1 - mu_t) / (1 - mu_product), Optax's
        /// lr (1 - beta1) / (1 - beta1^t).
        grad_coef: f32,
        /// The coefficient of exp_avg / denom: PyTorch's lr mu_{t+1} / (1 - mu_product
        /// mu_{t+1}), Optax's lr beta1 / (1 - beta1^(t+1)).
        exp_avg_coef: f32,
        /// 1 - beta2^t.
        bias_correction2: f32,
    }
}

impl NAdamHyper {
    /// `nadam_ln_mu_product` of `shaders/nadam.wgsl`, operation for operation: ln(mu_1 mu_2
    /// ... mu_t), PyTorch's `mu_product` after `step` steps in closed form (see
    /// [`NAdamConfig`]). The prologue derives the step's coefficients from it; the host, the
    /// `mu_product` it writes to checkpoints.
    pub fn ln_mu_product(&self, step: f32) -> f32 {
        let mut sum = 0.0_f32;
        let mut half_power = 1.0_f32;
        for k in 1..=24u32 {
            half_power *= 0.5;
            let ln_qk = k as f32 * self.ln_mu_base;
            let one_minus_qk = -expm1_nonpositive(ln_qk);
            let one_minus_qkt = -expm1_nonpositive(step * ln_qk);
            let geometric = if one_minus_qk > 0.0 {
                (1.0 - one_minus_qk) * (one_minus_qkt / one_minus_qk)
            } else {
                step
            };
            sum += half_power / k as f32 * geometric;
        }
        step * self.ln_beta1 - sum
    }
}

/// `shaders/nadam.wgsl`: two state slots, the step's coefficients derived each step.
const KERNEL: Kernel = Kernel {
    name: "nadam",
    file: shader_file!("nadam.wgsl"),
    family: &[L2, MOMENTS],
    state_slots: 2,
    record: GroupRecord::of::<NAdamHyper>().with_derived::<NAdamDerived>(),
    trust_ratio: false,
    modes: None,
};

with_betas!(NAdamConfig);

/// The structural options of the NAdam kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NAdamOptions {
    /// Gradient ascent.
    pub maximize: bool,
    /// AdamW's decoupled weight decay.
    pub decoupled_weight_decay: bool,
    /// `optax.nadam`'s coefficients.
    pub optax_form: bool,
}

setters! {
    NAdamConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the weight decay.
    with_weight_decay(weight_decay: f64);
    /// Sets the momentum schedule's decay.
    with_momentum_decay(momentum_decay: f64);
    /// Decouples the weight decay from the gradient (AdamW's form).
    with_decoupled_weight_decay(decoupled_weight_decay: bool);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
    /// Takes `optax.nadam`'s form.
    with_optax_form(optax_form: bool);
    /// Sets Optax's eps_root (with `optax_form`).
    with_eps_root(eps_root: f64);
}

impl NAdamConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> NAdamHyper {
        NAdamHyper {
            lr: self.lr as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            ln_beta1: ln(self.beta1),
            ln_beta2: ln(self.beta2),
            ln_mu_base: (self.momentum_decay * 0.96_f64.ln()) as f32,
            eps: self.eps as f32,
            eps_root: self.eps_root as f32,
            weight_decay: self.weight_decay as f32,
            decay: (1.0 - self.lr * self.weight_decay) as f32,
        }
    }

    /// PyTorch's `state['mu_product']` after `step` steps (1 before the first), as the
    /// kernel derives it; `None` in the Optax form, which has none.
    pub fn mu_product(&self, step: u32) -> Option<f32> {
        if self.optax_form {
            return None;
        }
        let ln_product = self.hyper().ln_mu_product(step as f32);
        Some(1.0 + expm1_nonpositive(ln_product))
    }

    /// The kernel's structural options.
    pub fn options(&self) -> NAdamOptions {
        NAdamOptions {
            maximize: self.maximize,
            decoupled_weight_decay: self.decoupled_weight_decay,
            optax_form: self.optax_form,
        }
    }

}

impl Algorithm for NAdamConfig {
    row!(name: "NAdam", kernel: &KERNEL, momentum: beta1);

    /// PyTorch's `state['mu_product']`, a function of the step here.
    fn checkpoint_scalars(&self, step: u32) -> Vec<(&'static str, f32)> {
        self.mu_product(step)
            .map(|mu_product| ("mu_product", mu_product))
            .into_iter()
            .collect()
    }

    fn lower(&self) -> Result<KernelSpec> {
        adam_family!(self).check()?;
        non_negative("momentum_decay", self.momentum_decay)?;
        non_negative("eps_root", self.eps_root)?;
        if self.eps_root != 0.0 && !self.optax_form {
            return Err(Error::InvalidOptions(
                "eps_root applies to Optax's NAdam form only (optax_form)",
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
