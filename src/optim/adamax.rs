//! Adamax: `torch.optim.Adamax` and `optax.adamax`.

use super::adam::ADAM_RECORD;
use super::{adam_family, config_struct, row, with_betas, zero_states, AdamHyper, Algorithm};
use crate::error::Result;
use crate::kernel::{shader_file, Kernel, KernelSpec, ADAM_GROUP, L2};
use crate::setters::setters;

config_struct! {
    /// Adamax (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", section 7.1: Adam
    /// with the infinity norm), exactly as `torch.optim.Adamax`:
    ///
    /// ```text
    /// g       = maximize ? -g : g
    /// g       = g + weight_decay * p
    /// exp_avg = lerp(exp_avg, g, 1 - beta1)
    /// exp_inf = max(beta2 * exp_inf, |g| + eps)
    /// p       = p - lr / (1 - beta1^t) * exp_avg / exp_inf
    /// ```
    ///
    /// `eps` is added to `|g|` inside the maximum, as PyTorch 2.x does. `optax.adamax` (0.2.8:
    /// `scale_by_adamax` with `update_infinity_moment`) is the same algorithm: its infinity norm
    /// is `max(|g| + eps, b2 * nu)` too and it divides the bias-corrected first moment by it, so
    /// no Optax option is needed (Optax has no weight decay of its own: `weight_decay` 0). The bias
    /// correction is computed on the device each step, as for Adam ([`AdamConfig`](super::AdamConfig)).
    ///
    /// State: `exp_avg`, `exp_inf` (PyTorch's names).
    ///
    /// ```no_run
    /// # use wgpu_optim::{AdamaxConfig, Context, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let adamax = AdamaxConfig::default().with_lr(2e-3).with_betas(0.9, 0.999).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct AdamaxConfig {
        /// Learning rate (default 2e-3).
        pub lr: f64,
        /// Decay of the first moment (default 0.9).
        pub beta1: f64,
        /// Decay of the infinity norm (default 0.999).
        pub beta2: f64,
        /// Added to `|g|` inside the maximum (default 1e-8).
        pub eps: f64,
        /// L2 penalty added to the gradient (default 0).
        pub weight_decay: f64,
        /// Maximize the objective (default false).
        pub maximize: bool,
    }
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        AdamaxConfig {
            lr: 2e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// The structural options of the Adamax kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdamaxOptions {
    /// Gradient ascent.
    pub maximize: bool,
}

setters! {
    AdamaxConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the weight decay (an L2 penalty).
    with_weight_decay(weight_decay: f64);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
}

/// `shaders/adamax.wgsl`: the Adam family's record, two state slots.
const KERNEL: Kernel = Kernel {
    name: "adamax",
    file: shader_file!("adamax.wgsl"),
    family: &[ADAM_GROUP, L2],
    state_slots: 2,
    record: ADAM_RECORD,
    trust_ratio: false,
    modes: None,
};

with_betas!(AdamaxConfig);

impl AdamaxConfig {
    /// The kernel's hyperparameter struct: the Adam family's, of which Adamax reads `lr`,
    /// `beta2`, `one_minus_beta1`, `eps` and `weight_decay` (and the prologue derives its
    /// `step_size`).
    pub fn hyper(&self) -> AdamHyper {
        // No decoupled decay: its multiplier stays 1.
        AdamHyper::new(
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            0.0,
            self.weight_decay,
            1.0,
        )
    }

    /// The kernel's structural options.
    pub fn options(&self) -> AdamaxOptions {
        AdamaxOptions {
            maximize: self.maximize,
        }
    }

}

impl Algorithm for AdamaxConfig {
    row!(name: "Adamax", kernel: &KERNEL, momentum: beta1);

    fn lower(&self) -> Result<KernelSpec> {
        adam_family!(self).check()?;
        KernelSpec::new(
            &KERNEL,
            vec![("MAXIMIZE", self.maximize)],
            zero_states(&["exp_avg", "exp_inf"]),
            &self.hyper(),
        )
    }
}
