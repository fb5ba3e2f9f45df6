//! AdamW: `torch.optim.AdamW`.

use super::{config_struct, with_betas, AdamConfig, Algorithm};
use crate::error::Result;
use crate::kernel::{Kernel, KernelSpec};
use crate::setters::setters;

config_struct! {
    /// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), exactly as
    /// `torch.optim.AdamW`: Adam whose weight decay multiplies the parameters before the update
    /// instead of entering the gradient:
    ///
    /// ```text
    /// p = p * (1 - lr * weight_decay)
    /// then the Adam update of AdamConfig, without the L2 term
    /// ```
    ///
    /// Same state as Adam: `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` with amsgrad.
    ///
    /// ```no_run
    /// # use wgpu_optim::{AdamWConfig, Context, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let adamw = AdamWConfig::default().with_lr(1e-3).with_weight_decay(0.01).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct AdamWConfig {
        /// Learning rate (default 1e-3).
        pub lr: f64,
        /// Decay of the first moment (default 0.9).
        pub beta1: f64,
        /// Decay of the second moment (default 0.999).
        pub beta2: f64,
        /// Added to the denominator (default 1e-8).
        pub eps: f64,
        /// Decoupled weight decay (default 1e-2).
        pub weight_decay: f64,
        /// AMSGrad variant (default false).
        pub amsgrad: bool,
        /// Maximize the objective (default false).
        pub maximize: bool,
    }
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
        }
    }
}

with_betas!(AdamWConfig);

setters! {
    AdamWConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the decoupled weight decay.
    with_weight_decay(weight_decay: f64);
    /// Turns AMSGrad on or off.
    with_amsgrad(amsgrad: bool);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
}

impl AdamWConfig {
    /// The equivalent Adam configuration (`decoupled_weight_decay = true`), which runs it.
    pub fn to_adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            amsgrad: self.amsgrad,
            maximize: self.maximize,
            decoupled_weight_decay: true,
            amsgrad_bias_corrected: false,
            eps_root: 0.0,
        }
    }
}

/// AdamW runs Adam's kernel with decoupled weight decay; to PyTorch and to checkpoints it is
/// an optimizer of its own.
impl Algorithm for AdamWConfig {
    fn name(&self) -> &'static str {
        "AdamW"
    }

    fn kernel(&self) -> &'static Kernel {
        self.to_adam().kernel()
    }

    fn cycle_momentum(&mut self, momentum: f64) -> Result<()> {
        self.beta1 = momentum;
        Ok(())
    }

    fn lower(&self) -> Result<KernelSpec> {
        self.to_adam().lower()
    }
}
