//! LAMB: `optax.lamb`, with per-tensor trust ratios on the device.

use super::adam::moment_states;
use super::{row, adam_family, config_struct, ln, non_negative, with_betas, Algorithm};
use crate::error::Result;
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec};
use crate::setters::setters;

config_struct! {
    /// LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
    /// minutes"), exactly as `optax.lamb` (Adam's direction, decoupled weight decay, Optax's
    /// `scale_by_trust_ratio`, the learning rate):
    ///
    /// ```text
    /// exp_avg    = (1 - beta1) * g + beta1 * exp_avg
    /// exp_avg_sq = (1 - beta2) * g * g + beta2 * exp_avg_sq
    /// u          = (exp_avg / (1 - beta1^t)) / (sqrt(exp_avg_sq / (1 - beta2^t) + eps_root) + eps)
    ///              + weight_decay * p
    /// ratio      = ||p|| / ||u||  per tensor (1 where either norm is 0, or with trust_ratio off)
    /// p          = p - lr * (u * ratio)
    /// ```
    ///
    /// The norms are of each whole tensor, however the tensors lie in buffers: a step takes two
    /// passes over the elements with a deterministic per-tensor reduction between them, all on
    /// the device (see [`Optimizer`](crate::Optimizer)). Optax's `mask` for the weight decay is a
    /// parameter group without it; `trust_ratio: false` leaves a group out of the adaptation (the
    /// biases and norm weights of some BERT recipes, TensorFlow's `exclude_from_layer_adaptation`).
    /// Apex's FusedLAMB differs: it clips the gradients by their global norm first (here
    /// [`GradConfig`](crate::GradConfig)) and its defaults differ.
    ///
    /// State: `exp_avg`, `exp_avg_sq`. Defaults are Optax's (eps 1e-6), with lr 1e-3.
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, LambConfig, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let lamb = LambConfig::default().with_lr(2e-3).with_weight_decay(0.01).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct LambConfig {
        /// Learning rate (default 1e-3).
        pub lr: f64,
        /// Decay of the first moment (default 0.9).
        pub beta1: f64,
        /// Decay of the second moment (default 0.999).
        pub beta2: f64,
        /// Added to the denominator (default 1e-6, Optax's).
        pub eps: f64,
        /// Added to the bias-corrected second moment inside the square root (default 0).
        pub eps_root: f64,
        /// Decoupled weight decay, added to the direction before the trust ratio (default 0).
        pub weight_decay: f64,
        /// Scale by the trust ratio (default true); false: the ratio is 1.
        pub trust_ratio: bool,
    }
}

impl Default for LambConfig {
    fn default() -> Self {
        LambConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-6,
            eps_root: 0.0,
            weight_decay: 0.0,
            trust_ratio: true,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/lamb.wgsl`.
    pub struct LambHyper as "Hyper" {
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
        /// Denominator term.
        eps: f32,
        /// Added inside the square root.
        eps_root: f32,
        /// Weight decay.
        weight_decay: f32,
        /// The trust ratio's coefficient (1: Optax's lamb).
        trust_coefficient: f32,
        /// Added to the update's norm in the trust ratio (0: Optax's lamb).
        trust_eps: f32,
        /// 1 to scale by the trust ratio, 0 for a ratio of 1.
        trust_on: f32,
    }
}

wgsl_struct! {
    /// `Derived` of `shaders/lamb.wgsl`: what the prologue derives each step.
    pub struct LambDerived as "Derived" {
        /// 1 - beta1^t.
        bias_correction1: f32,
        /// 1 - beta2^t.
        bias_correction2: f32,
    }
}

/// `shaders/lamb.wgsl`: two state slots, the bias corrections derived each step, two passes
/// with a per-tensor trust ratio between them.
const KERNEL: Kernel = Kernel {
    name: "lamb",
    file: shader_file!("lamb.wgsl"),
    family: &[],
    state_slots: 2,
    record: GroupRecord::of::<LambHyper>().with_derived::<LambDerived>(),
    trust_ratio: true,
    modes: None,
};

with_betas!(LambConfig);

setters! {
    LambConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets eps_root.
    with_eps_root(eps_root: f64);
    /// Sets the decoupled weight decay.
    with_weight_decay(weight_decay: f64);
    /// Scales by the trust ratio, or not.
    with_trust_ratio(trust_ratio: bool);
}

impl LambConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> LambHyper {
        LambHyper {
            lr: self.lr as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            ln_beta1: ln(self.beta1),
            ln_beta2: ln(self.beta2),
            eps: self.eps as f32,
            eps_root: self.eps_root as f32,
            weight_decay: self.weight_decay as f32,
            trust_coefficient: 1.0,
            trust_eps: 0.0,
            trust_on: f32::from(u8::from(self.trust_ratio)),
        }
    }

}

impl Algorithm for LambConfig {
    row!(name: "LAMB", kernel: &KERNEL, momentum: beta1);

    fn lower(&self) -> Result<KernelSpec> {
        adam_family!(self).check()?;
        non_negative("eps_root", self.eps_root)?;
        KernelSpec::new(
            &KERNEL,
            vec![],
            moment_states(["exp_avg", "exp_avg_sq", ""], false),
            &self.hyper(),
        )
    }
}
