//! Stochastic gradient descent with momentum: `torch.optim.SGD`.

use super::{row, config_struct, non_negative, Algorithm};
use crate::error::{Error, Result};
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, StateSpec, L2};
use crate::setters::setters;

config_struct! {
    /// SGD with momentum, dampening, Nesterov momentum and L2 weight decay, exactly as
    /// `torch.optim.SGD` (Sutskever et al. 2013 for the momentum form):
    ///
    /// ```text
    /// d_p = maximize ? -g : g
    /// d_p = d_p + weight_decay * p
    /// buf = (step == 1) ? d_p : momentum * buf + (1 - dampening) * d_p     (momentum != 0)
    /// d_p = nesterov ? d_p + momentum * buf : buf                         (momentum != 0)
    /// p   = p - lr * d_p
    /// ```
    ///
    /// State: `momentum_buffer` (only when `momentum != 0`).
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, Param, SgdConfig};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let sgd = SgdConfig::default().with_lr(0.1).with_momentum(0.9).with_nesterov(true).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct SgdConfig {
        /// Learning rate (PyTorch default 1e-3).
        pub lr: f64,
        /// Momentum factor (default 0: no momentum buffer).
        pub momentum: f64,
        /// Dampening of the momentum (default 0).
        pub dampening: f64,
        /// L2 penalty added to the gradient (default 0).
        pub weight_decay: f64,
        /// Nesterov momentum (default false); needs `momentum > 0` and `dampening == 0`.
        pub nesterov: bool,
        /// Maximize the objective instead of minimizing it (default false).
        pub maximize: bool,
    }
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/sgd.wgsl`: one parameter group's values, rounded from f64 once.
    pub struct SgdHyper as "Hyper" {
        /// Learning rate.
        lr: f32,
        /// Momentum factor.
        momentum: f32,
        /// 1 - dampening, computed in f64.
        one_minus_dampening: f32,
        /// L2 penalty.
        weight_decay: f32,
    }
}

/// `shaders/sgd.wgsl`: one state slot, no per-step scalars.
const KERNEL: Kernel = Kernel {
    name: "sgd",
    file: shader_file!("sgd.wgsl"),
    family: &[L2],
    state_slots: 1,
    record: GroupRecord::of::<SgdHyper>(),
    trust_ratio: false,
    modes: None,
};

/// The structural options of the SGD kernel (WGSL `override` constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgdOptions {
    /// `momentum != 0`: a momentum buffer is kept.
    pub momentum: bool,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Gradient ascent.
    pub maximize: bool,
}

setters! {
    SgdConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets the momentum factor.
    with_momentum(momentum: f64);
    /// Sets the dampening.
    with_dampening(dampening: f64);
    /// Sets the L2 penalty.
    with_weight_decay(weight_decay: f64);
    /// Turns Nesterov momentum on or off.
    with_nesterov(nesterov: bool);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
}

impl SgdConfig {
    /// The kernel's hyperparameter struct for this configuration.
    pub fn hyper(&self) -> SgdHyper {
        SgdHyper {
            lr: self.lr as f32,
            momentum: self.momentum as f32,
            one_minus_dampening: (1.0 - self.dampening) as f32,
            weight_decay: self.weight_decay as f32,
        }
    }

    /// The kernel's structural options for this configuration.
    pub fn options(&self) -> SgdOptions {
        SgdOptions {
            momentum: self.momentum != 0.0,
            nesterov: self.nesterov,
            maximize: self.maximize,
        }
    }

}

impl Algorithm for SgdConfig {
    row!(name: "SGD", kernel: &KERNEL, momentum: momentum);

    fn lower(&self) -> Result<KernelSpec> {
        non_negative("lr", self.lr)?;
        non_negative("momentum", self.momentum)?;
        if !(self.dampening as f32).is_finite() {
            return Err(Error::InvalidHyperparameter {
                name: "dampening",
                value: self.dampening,
                expected: "a value finite in f32",
            });
        }
        non_negative("weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::InvalidOptions(
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        let o = self.options();
        let states = if o.momentum {
            vec![StateSpec {
                name: "momentum_buffer",
                slot: 0,
                init: 0.0,
            }]
        } else {
            Vec::new()
        };
        KernelSpec::new(
            &KERNEL,
            vec![
                ("MOMENTUM", o.momentum),
                ("NESTEROV", o.nesterov),
                ("MAXIMIZE", o.maximize),
            ],
            states,
            &self.hyper(),
        )
    }
}
