//! Adam and AMSGrad: `torch.optim.Adam`; the group record of the Adam family.

use super::{adam_family, config_struct, ln, non_negative, row, with_betas, zero_states, Algorithm};
use crate::error::{Error, Result};
use crate::kernel::{
    shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, StateSpec, ADAM_GROUP, L2, MOMENTS,
};
use crate::setters::setters;

config_struct! {
    /// Adam (Kingma & Ba 2015) with AMSGrad (Reddi, Kale & Kumar 2018), exactly as
    /// `torch.optim.Adam` (with `decoupled_weight_decay=True` it is [`AdamWConfig`](super::AdamWConfig)):
    ///
    /// ```text
    /// g          = maximize ? -g : g
    /// g          = g + weight_decay * p                  (decoupled: p = p * (1 - lr * weight_decay))
    /// exp_avg    = lerp(exp_avg, g, 1 - beta1)
    /// exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
    /// amsgrad:     max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq), used below instead of exp_avg_sq
    /// p          = p - lr / (1 - beta1^t) * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^t) + eps)
    /// ```
    ///
    /// `t` is the step counter on the device. The bias corrections are computed there each step
    /// as `-expm1(t * ln(beta))` with `ln(beta)` from f64, accurate to a few ulp.
    ///
    /// Optax's denominator, `optax.adam(eps_root=...)`: a non-zero `eps_root` (without AMSGrad)
    /// adds it to the bias-corrected second moment inside the square root,
    /// `p = p - lr / (1 - beta1^t) * exp_avg / (sqrt(exp_avg_sq / (1 - beta2^t) + eps_root) + eps)`;
    /// with AMSGrad, the same form needs `amsgrad_bias_corrected` (optax.amsgrad). The default
    /// `eps_root = 0` keeps PyTorch's form, bit for bit.
    ///
    /// State: `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` with amsgrad.
    ///
    /// ```no_run
    /// # use wgpu_optim::{AdamConfig, Context, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let adam = AdamConfig::default().with_lr(3e-4).with_amsgrad(true).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct AdamConfig {
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
        /// AMSGrad variant (default false).
        pub amsgrad: bool,
        /// Maximize the objective (default false).
        pub maximize: bool,
        /// AdamW's decoupled weight decay (default false; PyTorch 2.6's argument of that name).
        pub decoupled_weight_decay: bool,
        /// optax.amsgrad's form (default false): the running maximum is taken of the
        /// bias-corrected second moment, and the update is `m̂ / (sqrt(max + eps_root) + eps)`.
        /// PyTorch takes the maximum of the raw second moment and corrects it afterwards.
        pub amsgrad_bias_corrected: bool,
        /// Optax's eps_root (default 0: PyTorch's form): added to the bias-corrected second moment
        /// inside the square root, `m̂ / (sqrt(v̂ + eps_root) + eps)`, as `optax.adam(eps_root=...)`;
        /// with AMSGrad, only in its Optax form (`amsgrad_bias_corrected`).
        pub eps_root: f64,
    }
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
            decoupled_weight_decay: false,
            amsgrad_bias_corrected: false,
            eps_root: 0.0,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/common/adam_group.wgsl`, shared by Adam, AdamW, AdaBelief and
    /// Adamax (the last two fields are AdaBelief's rectification).
    pub struct AdamHyper as "Hyper" {
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
        /// Added inside the square root (Optax's eps_root; AdaBelief's eps).
        eps_root: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Decoupled decay multiplier, 1 - lr * weight_decay, computed in f64.
        decay: f32,
        /// AdaBelief's rectify: 2 / (1 - beta2) - 1, computed in f64 (0 otherwise).
        rho_inf: f32,
        /// AdaBelief's rectify: rho_inf / ((rho_inf - 4) (rho_inf - 2)), computed in f64 (0
        /// otherwise, and when rho_inf <= 4).
        rect_inf: f32,
    }
}

wgsl_struct! {
    /// `Derived` of `shaders/common/adam_group.wgsl`: what the Adam family's prologue derives
    /// each step.
    pub struct AdamDerived as "Derived" {
        /// lr / (1 - beta1^t).
        step_size: f32,
        /// sqrt(1 - beta2^t).
        bias_correction2_sqrt: f32,
        /// 1 - beta2^t.
        bias_correction2: f32,
        /// AdaBelief's rectify: lr / (1 - beta1^t) * r_t * sqrt(1 - beta2^t) on rectified
        /// steps, else 0.
        rectified_step_size: f32,
        /// AdaBelief's rectify: 1 when this step is rectified, else 0.
        rectified: f32,
    }
}

/// The Adam family's group record (Adam, AdamW, AdaBelief, Adamax).
pub(crate) const ADAM_RECORD: GroupRecord =
    GroupRecord::of::<AdamHyper>().with_derived::<AdamDerived>();

/// `shaders/adam.wgsl`: Adam, AdamW and AMSGrad; three state slots.
const KERNEL: Kernel = Kernel {
    name: "adam",
    file: shader_file!("adam.wgsl"),
    family: &[ADAM_GROUP, L2, MOMENTS],
    state_slots: 3,
    record: ADAM_RECORD,
    trust_ratio: false,
    modes: None,
};

impl AdamHyper {
    /// The host-written fields; `decay` multiplies the parameters when weight decay is decoupled.
    pub(crate) fn new(
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        eps_root: f64,
        weight_decay: f64,
        decay: f64,
    ) -> Self {
        AdamHyper {
            lr: lr as f32,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            ln_beta1: ln(beta1),
            ln_beta2: ln(beta2),
            eps: eps as f32,
            eps_root: eps_root as f32,
            weight_decay: weight_decay as f32,
            decay: decay as f32,
            rho_inf: 0.0,
            rect_inf: 0.0,
        }
    }
}

/// The structural options of the Adam kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdamOptions {
    /// AMSGrad.
    pub amsgrad: bool,
    /// Gradient ascent.
    pub maximize: bool,
    /// AdamW's decoupled weight decay.
    pub decoupled_weight_decay: bool,
    /// Optax's denominator, `sqrt(exp_avg_sq / (1 - beta2^t) + eps_root) + eps`: from
    /// optax.amsgrad's form (`amsgrad_bias_corrected`, where the running maximum is then taken
    /// of the bias-corrected moment) or a non-zero `eps_root` without AMSGrad (optax.adam).
    pub optax_denominator: bool,
}

with_betas!(AdamConfig);

setters! {
    AdamConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the weight decay.
    with_weight_decay(weight_decay: f64);
    /// Turns AMSGrad on or off.
    with_amsgrad(amsgrad: bool);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
    /// Decouples the weight decay from the gradient (AdamW).
    with_decoupled_weight_decay(decoupled_weight_decay: bool);
    /// Takes optax.amsgrad's form: the max of the bias-corrected second moment.
    with_amsgrad_bias_corrected(amsgrad_bias_corrected: bool);
    /// Sets Optax's eps_root (Optax's denominator; with AMSGrad, `amsgrad_bias_corrected` too).
    with_eps_root(eps_root: f64);
}

impl AdamConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> AdamHyper {
        let decay = 1.0 - self.lr * self.weight_decay;
        AdamHyper::new(
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.eps_root,
            self.weight_decay,
            decay,
        )
    }

    /// The kernel's structural options.
    pub fn options(&self) -> AdamOptions {
        AdamOptions {
            amsgrad: self.amsgrad,
            maximize: self.maximize,
            decoupled_weight_decay: self.decoupled_weight_decay,
            optax_denominator: self.amsgrad_bias_corrected
                || (self.eps_root != 0.0 && !self.amsgrad),
        }
    }

}

impl Algorithm for AdamConfig {
    row!(name: "Adam", kernel: &KERNEL, momentum: beta1);

    fn lower(&self) -> Result<KernelSpec> {
        adam_family!(self).check()?;
        non_negative("eps_root", self.eps_root)?;
        if self.amsgrad_bias_corrected && !self.amsgrad {
            return Err(Error::InvalidOptions(
                "amsgrad_bias_corrected is a form of AMSGrad: it needs amsgrad",
            ));
        }
        if self.eps_root != 0.0 && self.amsgrad && !self.amsgrad_bias_corrected {
            return Err(Error::InvalidOptions(
                "eps_root with AMSGrad applies to Optax's AMSGrad form only \
                 (amsgrad_bias_corrected)",
            ));
        }
        let o = self.options();
        KernelSpec::new(
            &KERNEL,
            vec![
                ("AMSGRAD", o.amsgrad),
                ("MAXIMIZE", o.maximize),
                ("DECOUPLED_WEIGHT_DECAY", o.decoupled_weight_decay),
                ("OPTAX_DENOMINATOR", o.optax_denominator),
            ],
            moment_states(["exp_avg", "exp_avg_sq", "max_exp_avg_sq"], o.amsgrad),
            &self.hyper(),
        )
    }
}

/// The Adam family's states: first moment, second moment and, with amsgrad, its maximum.
pub(crate) fn moment_states(names: [&'static str; 3], amsgrad: bool) -> Vec<StateSpec> {
    let count = if amsgrad { 3 } else { 2 };
    zero_states(&names[..count])
}
