//! NAdam: `torch.optim.NAdam` and `optax.nadam`.

use super::adam::moment_states;
use super::{adam_family, config_struct, ln, non_negative, row, with_betas, Algorithm};
use crate::error::{invalid, Error, Result};
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
    /// **`mu_product` is kept as PyTorch keeps it**, a running product of each step's `mu_t`
    /// computed with that step's `beta1` and `momentum_decay` (a cycled `beta1` under
    /// `OneCycleLR` or `CyclicLR` moves it), but in a form that costs nothing while they stay
    /// constant: the prologue computes the product in closed form from the step counter and
    /// the current values, in f32: with `q = 0.96^momentum_decay`,
    /// `ln mu_product = t ln(beta1) + sum_i ln(1 - q^i / 2)` and
    /// `sum_{i=1..t} ln(1 - q^i / 2) = -sum_k (1/2)^k / k * q^k (1 - q^(kt)) / (1 - q^k)`, whose
    /// first 24 terms (each from `expm1`, without cancellation) reach f32's precision; then
    /// `1 - mu_product = -expm1(ln mu_product)`. It matches PyTorch's running product (an f32
    /// tensor) to a few ulp of `1 - mu_product` at any step. Each group's record carries
    /// [`NAdamRunning`]: the values of the last step and the excess of the true running
    /// logarithm over the closed form, which a change of `beta1` or `momentum_decay` between
    /// steps `t - 1` and `t` moves by the difference of the two closed forms at `t - 1`. With
    /// constant values the excess stays 0 and the step is the closed form's, bit for bit.
    /// Checkpoints write the running product as PyTorch's `state.<i>.mu_product`, and the
    /// running values themselves as `param_groups.<g>.mu_ln_beta1`, `mu_ln_base` and
    /// `mu_ln_excess`, which loading restores.
    ///
    /// State: `exp_avg`, `exp_avg_sq` (PyTorch's names; its `mu_product` is the running value
    /// above, and its `step` is the control block's).
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

wgsl_struct! {
    /// `Running` of `shaders/nadam.wgsl`: what the prologue carries from step to step so that
    /// `mu_product` is PyTorch's running product whatever `beta1` did (see [`NAdamConfig`]).
    /// The host writes it at the build and from a checkpoint only; checkpoints save it as
    /// `param_groups.<g>.mu_ln_beta1`, `mu_ln_base` and `mu_ln_excess`.
    pub struct NAdamRunning as "Running" {
        /// ln(beta1) of the last step taken; 1 (no logarithm of a beta) before the first step.
        mu_ln_beta1: f32,
        /// momentum_decay * ln(0.96) of the last step taken.
        mu_ln_base: f32,
        /// PyTorch's running ln(mu_product) minus the closed form at the last step's values:
        /// 0 while they have not changed, -inf once a zero beta1 has made the product 0.
        mu_ln_excess: f32,
    }
}

impl NAdamRunning {
    /// Before the first step.
    pub const INITIAL: NAdamRunning = NAdamRunning {
        mu_ln_beta1: 1.0,
        mu_ln_base: 0.0,
        mu_ln_excess: 0.0,
    };

    /// Whether a step has been taken (the values are then the last step's).
    pub fn started(&self) -> bool {
        self.mu_ln_beta1 <= 0.0
    }

    /// ln of PyTorch's `state['mu_product']` after `step` steps, the last of which left
    /// these running values, as the prologue derives it.
    fn ln_mu_product(&self, step: u32) -> f32 {
        let step = step as f32;
        step * self.mu_ln_beta1 - schedule_sum(self.mu_ln_base, step) + self.mu_ln_excess
    }

    /// PyTorch's `state['mu_product']` after `step` steps, the last of which left these
    /// running values (1 before the first step). The kernel needs `1 - mu_product` only
    /// (from `expm1`); the product itself comes from `exp` of the same logarithm, in f64,
    /// relative to its own size.
    pub fn mu_product(&self, step: u32) -> f32 {
        if !self.started() {
            return 1.0;
        }
        f64::from(self.ln_mu_product(step)).exp() as f32
    }

    /// Refuses running values no sequence of `step` steps leaves (from a checkpoint's
    /// metadata): a started record at step 0 or a fresh one after, a last `beta1` outside
    /// [0, 1), a last `momentum_decay` negative or not finite, an excess NaN or +inf, a product
    /// outside [0, 1].
    pub fn check(&self, step: u32) -> Result<()> {
        let fail = |name, value: f32, expected| invalid(name, f64::from(value), expected);
        if !self.started() || step == 0 {
            return match (*self == Self::INITIAL, step == 0) {
                (true, true) => Ok(()),
                _ => fail(
                    "mu_ln_beta1",
                    self.mu_ln_beta1,
                    "1 before the first step and ln(beta1) <= 0 after it",
                ),
            };
        }
        // ln(beta1) of a beta1 in [0, 1): below 0 (f32 holds ln(1 - 2^-53)), or -inf.
        if self.mu_ln_beta1 == 0.0 {
            return fail(
                "mu_ln_beta1",
                self.mu_ln_beta1,
                "ln(beta1) < 0: beta1 below 1",
            );
        }
        if !(self.mu_ln_base <= 0.0 && self.mu_ln_base.is_finite()) {
            return fail(
                "mu_ln_base",
                self.mu_ln_base,
                "momentum_decay * ln(0.96): finite, <= 0",
            );
        }
        if self.mu_ln_excess.is_nan() || self.mu_ln_excess == f32::INFINITY {
            return fail("mu_ln_excess", self.mu_ln_excess, "a finite value or -inf");
        }
        let ln_product = self.ln_mu_product(step);
        if ln_product.is_nan() || ln_product > 0.0 {
            return fail(
                "mu_ln_excess",
                self.mu_ln_excess,
                "a running mu_product in [0, 1]",
            );
        }
        Ok(())
    }
}

/// `nadam_schedule_sum` of `shaders/nadam.wgsl`, operation for operation:
/// `sum_{i=1..t} -ln(1 - q^i / 2)` with `ln q = ln_mu_base`, in closed form (see
/// [`NAdamConfig`]).
pub(crate) fn schedule_sum(ln_mu_base: f32, step: f32) -> f32 {
    let mut sum = 0.0_f32;
    let mut half_power = 1.0_f32;
    for k in 1..=24u32 {
        half_power *= 0.5;
        let ln_qk = k as f32 * ln_mu_base;
        let one_minus_qk = -expm1_nonpositive(ln_qk);
        let one_minus_qkt = -expm1_nonpositive(step * ln_qk);
        let geometric = if one_minus_qk > 0.0 {
            (1.0 - one_minus_qk) * (one_minus_qkt / one_minus_qk)
        } else {
            step
        };
        sum += half_power / k as f32 * geometric;
    }
    sum
}

impl NAdamHyper {
    /// `nadam_ln_mu_product` of `shaders/nadam.wgsl`, operation for operation: ln(mu_1 mu_2
    /// ... mu_t), PyTorch's `mu_product` after `step` steps in closed form for constant
    /// `beta1` and `momentum_decay` (see [`NAdamConfig`]).
    pub fn ln_mu_product(&self, step: f32) -> f32 {
        step * self.ln_beta1 - schedule_sum(self.ln_mu_base, step)
    }
}

/// `shaders/nadam.wgsl`: two state slots, the step's coefficients derived each step.
const KERNEL: Kernel = Kernel {
    name: "nadam",
    file: shader_file!("nadam.wgsl"),
    family: &[L2, MOMENTS],
    state_slots: 2,
    record: GroupRecord::of::<NAdamHyper>()
        .with_derived::<NAdamDerived>()
        .with_running::<NAdamRunning>(),
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

    /// PyTorch's `state['mu_product']`, from the running values (none in the Optax form).
    fn checkpoint_scalars(&self, step: u32, running: &[f32]) -> Vec<(&'static str, f32)> {
        if self.optax_form {
            return Vec::new();
        }
        let running: NAdamRunning = bytemuck::pod_read_unaligned(bytemuck::cast_slice(running));
        vec![("mu_product", running.mu_product(step))]
    }

    /// The Optax form never moves its running values from [`NAdamRunning::INITIAL`].
    fn check_running(&self, step: u32, running: &[f32]) -> Result<()> {
        let running: NAdamRunning = bytemuck::pod_read_unaligned(bytemuck::cast_slice(running));
        running.check(if self.optax_form { 0 } else { step })
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
        .map(|spec| spec.with_running(&NAdamRunning::INITIAL))
    }
}
