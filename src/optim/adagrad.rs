//! Adagrad: `torch.optim.Adagrad`.

use super::{row, config_struct, non_negative, Algorithm};
use crate::error::Result;
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, StateSpec, L2};
use crate::setters::setters;

config_struct! {
    /// Adagrad (Duchi, Hazan & Singer 2011, "Adaptive Subgradient Methods"), exactly as
    /// `torch.optim.Adagrad`:
    ///
    /// ```text
    /// g   = maximize ? -g : g
    /// g   = g + weight_decay * p
    /// clr = lr / (1 + (step - 1) * lr_decay)
    /// sum = sum + g * g
    /// p   = p - clr * g / (sqrt(sum) + eps)
    /// ```
    ///
    /// State: `sum`, starting at `initial_accumulator_value`.
    ///
    /// ```no_run
    /// # use wgpu_optim::{AdagradConfig, Context, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let adagrad = AdagradConfig::default().with_lr(0.05).with_initial_accumulator_value(0.1).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct AdagradConfig {
        /// Learning rate (default 1e-2).
        pub lr: f64,
        /// Learning-rate decay per step (default 0).
        pub lr_decay: f64,
        /// L2 penalty (default 0).
        pub weight_decay: f64,
        /// Starting value of `sum` (default 0).
        pub initial_accumulator_value: f64,
        /// Added to the denominator (default 1e-10).
        pub eps: f64,
        /// Maximize the objective (default false).
        pub maximize: bool,
        /// Optax's form (default false, PyTorch's): eps inside the square root,
        /// `g / sqrt(v + eps)` instead of `g / (sqrt(v) + eps)`.
        pub eps_in_sqrt: bool,
    }
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
            eps_in_sqrt: false,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/adagrad.wgsl`.
    pub struct AdagradHyper as "Hyper" {
        /// Learning rate.
        lr: f32,
        /// Learning-rate decay.
        lr_decay: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// Denominator term.
        eps: f32,
    }
}

wgsl_struct! {
    /// `Derived` of `shaders/adagrad.wgsl`: what the prologue derives each step.
    pub struct AdagradDerived as "Derived" {
        /// lr / (1 + (step - 1) * lr_decay).
        clr: f32,
    }
}

/// `shaders/adagrad.wgsl`: one state slot, the decayed learning rate derived each step.
const KERNEL: Kernel = Kernel {
    name: "adagrad",
    file: shader_file!("adagrad.wgsl"),
    family: &[L2],
    state_slots: 1,
    record: GroupRecord::of::<AdagradHyper>().with_derived::<AdagradDerived>(),
    trust_ratio: false,
    modes: None,
};

/// The structural options of the Adagrad kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdagradOptions {
    /// Gradient ascent.
    pub maximize: bool,
    /// eps inside the square root (Optax).
    pub eps_in_sqrt: bool,
}

setters! {
    AdagradConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets the learning-rate decay.
    with_lr_decay(lr_decay: f64);
    /// Sets the L2 penalty.
    with_weight_decay(weight_decay: f64);
    /// Sets the starting value of `sum`.
    with_initial_accumulator_value(initial_accumulator_value: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
    /// Sets Optax's eps-inside-the-square-root form.
    with_eps_in_sqrt(eps_in_sqrt: bool);
}

impl AdagradConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> AdagradHyper {
        AdagradHyper {
            lr: self.lr as f32,
            lr_decay: self.lr_decay as f32,
            weight_decay: self.weight_decay as f32,
            eps: self.eps as f32,
        }
    }

    /// The kernel's structural options.
    pub fn options(&self) -> AdagradOptions {
        AdagradOptions {
            maximize: self.maximize,
            eps_in_sqrt: self.eps_in_sqrt,
        }
    }

}

impl Algorithm for AdagradConfig {
    row!(name: "Adagrad", kernel: &KERNEL, momentum: none);

    fn lower(&self) -> Result<KernelSpec> {
        non_negative("lr", self.lr)?;
        non_negative("lr_decay", self.lr_decay)?;
        non_negative("weight_decay", self.weight_decay)?;
        non_negative("initial_accumulator_value", self.initial_accumulator_value)?;
        non_negative("eps", self.eps)?;
        KernelSpec::new(
            &KERNEL,
            vec![
                ("MAXIMIZE", self.maximize),
                ("EPS_IN_SQRT", self.eps_in_sqrt),
            ],
            vec![StateSpec {
                name: "sum",
                slot: 0,
                init: self.initial_accumulator_value as f32,
            }],
            &self.hyper(),
        )
    }
}
