//! Adadelta: `torch.optim.Adadelta` and `optax.adadelta`.

use super::adam::moment_states;
use super::{row, config_struct, non_negative, Algorithm};
use crate::error::{Error, Result};
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, L2};
use crate::setters::setters;

config_struct! {
    /// Adadelta (Zeiler 2012, "ADADELTA: An Adaptive Learning Rate Method"), exactly as
    /// `torch.optim.Adadelta`:
    ///
    /// ```text
    /// g          = maximize ? -g : g
    /// g          = g + weight_decay * p
    /// square_avg = rho * square_avg + (1 - rho) * g * g
    /// delta      = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
    /// acc_delta  = rho * acc_delta + (1 - rho) * delta * delta
    /// p          = p - lr * delta
    /// ```
    ///
    /// `optax.adadelta` (0.2.8: `add_decayed_weights`, `scale_by_adadelta`,
    /// `scale_by_learning_rate`) is the same algorithm, its `e_g` and `e_x` PyTorch's `square_avg`
    /// and `acc_delta`, so no Optax option is needed. One trap: Optax's `learning_rate` defaults to
    /// `None`, which scales by nothing, not by -1: its updates are then added, an ascent, the same
    /// as `maximize` with lr 1 when `weight_decay` is 0.
    ///
    /// State: `square_avg`, `acc_delta` (PyTorch's names).
    ///
    /// ```no_run
    /// # use wgpu_optim::{AdadeltaConfig, Context, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let adadelta = AdadeltaConfig::default().with_rho(0.95).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct AdadeltaConfig {
        /// Learning rate, a multiplier of delta (default 1).
        pub lr: f64,
        /// Decay of both running averages (default 0.9), in [0, 1].
        pub rho: f64,
        /// Added inside both square roots (default 1e-6).
        pub eps: f64,
        /// L2 penalty added to the gradient (default 0).
        pub weight_decay: f64,
        /// Maximize the objective (default false).
        pub maximize: bool,
    }
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        AdadeltaConfig {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/adadelta.wgsl`.
    pub struct AdadeltaHyper as "Hyper" {
        /// Learning rate.
        lr: f32,
        /// Decay of the running averages.
        rho: f32,
        /// 1 - rho, computed in f64.
        one_minus_rho: f32,
        /// Added inside the square roots.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
    }
}

/// `shaders/adadelta.wgsl`: two state slots, no per-step scalars.
const KERNEL: Kernel = Kernel {
    name: "adadelta",
    file: shader_file!("adadelta.wgsl"),
    family: &[L2],
    state_slots: 2,
    record: GroupRecord::of::<AdadeltaHyper>(),
    trust_ratio: false,
    modes: None,
};

/// The structural options of the Adadelta kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdadeltaOptions {
    /// Gradient ascent.
    pub maximize: bool,
}

setters! {
    AdadeltaConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets rho.
    with_rho(rho: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the weight decay (an L2 penalty).
    with_weight_decay(weight_decay: f64);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
}

impl AdadeltaConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> AdadeltaHyper {
        AdadeltaHyper {
            lr: self.lr as f32,
            rho: self.rho as f32,
            one_minus_rho: (1.0 - self.rho) as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
        }
    }

    /// The kernel's structural options.
    pub fn options(&self) -> AdadeltaOptions {
        AdadeltaOptions {
            maximize: self.maximize,
        }
    }

}

impl Algorithm for AdadeltaConfig {
    row!(name: "Adadelta", kernel: &KERNEL, momentum: none);

    fn lower(&self) -> Result<KernelSpec> {
        non_negative("lr", self.lr)?;
        non_negative("eps", self.eps)?;
        non_negative("weight_decay", self.weight_decay)?;
        // PyTorch: `if not 0.0 <= rho <= 1.0`; 1 is allowed (the averages then never move).
        if !(0.0..=1.0).contains(&self.rho) {
            return Err(Error::InvalidHyperparameter {
                name: "rho",
                value: self.rho,
                expected: "a value in [0, 1]",
            });
        }
        KernelSpec::new(
            &KERNEL,
            vec![("MAXIMIZE", self.maximize)],
            moment_states(["square_avg", "acc_delta", ""], false),
            &self.hyper(),
        )
    }
}
