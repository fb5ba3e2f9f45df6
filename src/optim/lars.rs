//! LARS: `optax.lars`, with per-tensor trust ratios on the device.

use super::{row, config_struct, non_negative, Algorithm};
use crate::error::Result;
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, StateSpec};
use crate::setters::setters;

config_struct! {
    /// LARS (You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional Networks"),
    /// exactly as `optax.lars` (weight decay, Optax's `scale_by_trust_ratio`, the learning rate,
    /// then Optax's `trace` as momentum):
    ///
    /// ```text
    /// u               = g + weight_decay * p
    /// ratio           = trust_coefficient * ||p|| / (||u|| + eps)  per tensor
    ///                   (1 where either norm is 0, or with trust_ratio off)
    /// s               = -lr * (u * ratio)
    /// momentum_buffer = s + momentum * momentum_buffer
    /// p               = p + (nesterov ? s + momentum * momentum_buffer : momentum_buffer)
    /// ```
    ///
    /// The norms are of each whole tensor, however the tensors lie in buffers: a step takes two
    /// passes over the elements with a deterministic per-tensor reduction between them, all on
    /// the device. `momentum_buffer` is Optax's trace: it holds the negated, scaled updates (the
    /// step's sign and learning rate inside), not PyTorch SGD's gradients. Optax's
    /// `weight_decay_mask` is a parameter group without weight decay and its `trust_ratio_mask` a
    /// group with `trust_ratio: false` (biases and batch-norm weights, as the LARS paper
    /// excludes them).
    ///
    /// State: `momentum_buffer`. Defaults are Optax's (trust_coefficient 1e-3, eps 0, momentum
    /// 0.9), with lr 0.1.
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, LarsConfig, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let lars = LarsConfig::default().with_lr(1.0).with_weight_decay(1e-4).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct LarsConfig {
        /// Learning rate (default 0.1).
        pub lr: f64,
        /// Momentum of the trace (default 0.9).
        pub momentum: f64,
        /// Weight decay added to the gradient (default 0).
        pub weight_decay: f64,
        /// The trust ratio's coefficient (default 1e-3).
        pub trust_coefficient: f64,
        /// Added to the update's norm in the trust ratio (default 0).
        pub eps: f64,
        /// Nesterov momentum (default false).
        pub nesterov: bool,
        /// Scale by the trust ratio (default true); false: the ratio is 1.
        pub trust_ratio: bool,
    }
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            trust_coefficient: 1e-3,
            eps: 0.0,
            nesterov: false,
            trust_ratio: true,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/lars.wgsl`.
    pub struct LarsHyper as "Hyper" {
        /// Learning rate.
        lr: f32,
        /// Momentum of the trace.
        momentum: f32,
        /// Weight decay.
        weight_decay: f32,
        /// The trust ratio's coefficient.
        trust_coefficient: f32,
        /// Added to the update's norm in the trust ratio.
        trust_eps: f32,
        /// 1 to scale by the trust ratio, 0 for a ratio of 1.
        trust_on: f32,
    }
}

/// `shaders/lars.wgsl`: one state slot, no per-step scalars, two passes with a per-tensor
/// trust ratio between them.
const KERNEL: Kernel = Kernel {
    name: "lars",
    file: shader_file!("lars.wgsl"),
    family: &[],
    state_slots: 1,
    record: GroupRecord::of::<LarsHyper>(),
    trust_ratio: true,
    modes: None,
};

setters! {
    LarsConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets the momentum.
    with_momentum(momentum: f64);
    /// Sets the weight decay.
    with_weight_decay(weight_decay: f64);
    /// Sets the trust ratio's coefficient.
    with_trust_coefficient(trust_coefficient: f64);
    /// Sets the trust ratio's eps.
    with_eps(eps: f64);
    /// Nesterov momentum.
    with_nesterov(nesterov: bool);
    /// Scales by the trust ratio, or not.
    with_trust_ratio(trust_ratio: bool);
}

impl LarsConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> LarsHyper {
        LarsHyper {
            lr: self.lr as f32,
            momentum: self.momentum as f32,
            weight_decay: self.weight_decay as f32,
            trust_coefficient: self.trust_coefficient as f32,
            trust_eps: self.eps as f32,
            trust_on: f32::from(u8::from(self.trust_ratio)),
        }
    }

}

impl Algorithm for LarsConfig {
    row!(name: "LARS", kernel: &KERNEL, momentum: momentum);

    fn lower(&self) -> Result<KernelSpec> {
        for (name, value) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
            ("trust_coefficient", self.trust_coefficient),
            ("eps", self.eps),
        ] {
            non_negative(name, value)?;
        }
        KernelSpec::new(
            &KERNEL,
            vec![("NESTEROV", self.nesterov)],
            vec![StateSpec {
                name: "momentum_buffer",
                slot: 0,
                init: 0.0,
            }],
            &self.hyper(),
        )
    }
}
