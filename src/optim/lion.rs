//! Lion: lion-pytorch and `optax.lion`.

use super::{row, config_struct, non_negative, with_betas, Algorithm};
use crate::error::{Error, Result};
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, StateSpec};
use crate::setters::setters;

config_struct! {
    /// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as lion-pytorch
    /// and `optax.lion`:
    ///
    /// ```text
    /// p       = p * (1 - lr * weight_decay)
    /// p       = p - lr * sign(beta1 * exp_avg + (1 - beta1) * g)
    /// exp_avg = beta2 * exp_avg + (1 - beta2) * g
    /// ```
    ///
    /// State: `exp_avg`. Defaults are lion-pytorch's (lr 1e-4, betas (0.9, 0.99), no weight decay).
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, LionConfig, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let lion = LionConfig::default().with_lr(3e-5).with_weight_decay(1.0).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct LionConfig {
        /// Learning rate (default 1e-4).
        pub lr: f64,
        /// Interpolation of the update direction (default 0.9).
        pub beta1: f64,
        /// Decay of the momentum (default 0.99).
        pub beta2: f64,
        /// Decoupled weight decay (default 0).
        pub weight_decay: f64,
        /// Maximize the objective (default false).
        pub maximize: bool,
    }
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/lion.wgsl`.
    pub struct LionHyper as "Hyper" {
        /// Learning rate.
        lr: f32,
        /// Update interpolation.
        beta1: f32,
        /// Momentum decay.
        beta2: f32,
        /// 1 - beta1, computed in f64.
        one_minus_beta1: f32,
        /// 1 - beta2, computed in f64.
        one_minus_beta2: f32,
        /// Weight decay.
        weight_decay: f32,
        /// 1 - lr * weight_decay, computed in f64.
        decay: f32,
    }
}

/// `shaders/lion.wgsl`: one state slot, no per-step scalars.
const KERNEL: Kernel = Kernel {
    name: "lion",
    file: shader_file!("lion.wgsl"),
    family: &[],
    state_slots: 1,
    record: GroupRecord::of::<LionHyper>(),
    trust_ratio: false,
    modes: None,
};

with_betas!(LionConfig);

/// The structural options of the Lion kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LionOptions {
    /// Gradient ascent.
    pub maximize: bool,
}

setters! {
    LionConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets the decoupled weight decay.
    with_weight_decay(weight_decay: f64);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
}

impl LionConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> LionHyper {
        LionHyper {
            lr: self.lr as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            weight_decay: self.weight_decay as f32,
            decay: (1.0 - self.lr * self.weight_decay) as f32,
        }
    }

    /// The kernel's structural options.
    pub fn options(&self) -> LionOptions {
        LionOptions {
            maximize: self.maximize,
        }
    }

}

impl Algorithm for LionConfig {
    row!(name: "Lion", kernel: &KERNEL, momentum: beta1);

    fn lower(&self) -> Result<KernelSpec> {
        non_negative("lr", self.lr)?;
        non_negative("weight_decay", self.weight_decay)?;
        // lion-pytorch accepts betas in [0, 1].
        for (name, value) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::InvalidHyperparameter {
                    name,
                    value,
                    expected: "a value in [0, 1]",
                });
            }
        }
        KernelSpec::new(
            &KERNEL,
            vec![("MAXIMIZE", self.maximize)],
            vec![StateSpec {
                name: "exp_avg",
                slot: 0,
                init: 0.0,
            }],
            &self.hyper(),
        )
    }
}
