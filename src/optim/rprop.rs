//! Rprop: `torch.optim.Rprop`.

use super::{config_struct, non_negative, row, zero_states, Algorithm};
use crate::error::{Error, Result};
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, L2};
use crate::setters::setters;

config_struct! {
    /// Rprop (Riedmiller & Braun 1993, "A Direct Adaptive Method for Faster Backpropagation
    /// Learning: The RPROP Algorithm"), exactly as `torch.optim.Rprop` (Rprop without weight
    /// backtracking): each element keeps a step size of its own, which grows by `etaplus`
    /// while its gradient keeps its sign and shrinks by `etaminus` when the sign flips; the
    /// update is the step size against the gradient's sign, whatever its magnitude.
    ///
    /// ```text
    /// g         = maximize ? -g : g
    /// g         = g + weight_decay * p                 (an extension; PyTorch's Rprop has none)
    /// step_size = (step == 1) ? lr : step_size
    /// s         = g * prev
    /// step_size = clamp(step_size * (s > 0 ? etaplus : s < 0 ? etaminus : 1),
    ///                   step_size_min, step_size_max)
    /// g         = (s < 0) ? 0 : g
    /// p         = p - sign(g) * step_size
    /// prev      = g
    /// ```
    ///
    /// As in PyTorch, `lr` is only each element's first step size, taken at the first step
    /// (the group's `lr` then: a learning rate set before the first step is the one used);
    /// learning-rate changes and schedules after it change nothing. A NaN gradient makes its
    /// element's step size NaN, as PyTorch's `sign` and `clamp` propagate it (with gradient
    /// processing on, such a step is skipped instead). `weight_decay` (default 0, PyTorch's
    /// form) adds an L2 term to the gradient as Adagrad's does: Rprop only sees its sign.
    /// Hyperparameters beyond PyTorch's checks: `0 <= step_size_min <= step_size_max`, all
    /// finite in f32.
    ///
    /// Optax's `optax.rprop` is another variant (a step size left unclamped where the
    /// product is 0, and the update of the previous step applied): not offered.
    ///
    /// State: `prev`, `step_size` (PyTorch's names).
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, Param, RpropConfig};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let rprop = RpropConfig::default().with_etas(0.5, 1.2).with_step_sizes(1e-6, 1.0).build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct RpropConfig {
        /// The first step size of every element (default 1e-2).
        pub lr: f64,
        /// The step size's factor after a sign flip (default 0.5): in (0, 1).
        pub etaminus: f64,
        /// The step size's factor while the sign holds (default 1.2): above 1.
        pub etaplus: f64,
        /// The smallest step size (default 1e-6).
        pub step_size_min: f64,
        /// The largest step size (default 50).
        pub step_size_max: f64,
        /// An L2 penalty added to the gradient (default 0; PyTorch's Rprop has none).
        pub weight_decay: f64,
        /// Maximize the objective (default false).
        pub maximize: bool,
    }
}

impl Default for RpropConfig {
    fn default() -> Self {
        RpropConfig {
            lr: 1e-2,
            etaminus: 0.5,
            etaplus: 1.2,
            step_size_min: 1e-6,
            step_size_max: 50.0,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/rprop.wgsl`: one parameter group's values, rounded from f64 once.
    pub struct RpropHyper as "Hyper" {
        /// The first step size.
        lr: f32,
        /// The factor after a sign flip.
        etaminus: f32,
        /// The factor while the sign holds.
        etaplus: f32,
        /// The smallest step size.
        step_size_min: f32,
        /// The largest step size.
        step_size_max: f32,
        /// L2 penalty.
        weight_decay: f32,
    }
}

/// `shaders/rprop.wgsl`: two state slots, no per-step scalars.
const KERNEL: Kernel = Kernel {
    name: "rprop",
    file: shader_file!("rprop.wgsl"),
    family: &[L2],
    state_slots: 2,
    record: GroupRecord::of::<RpropHyper>(),
    trust_ratio: false,
    modes: None,
};

/// The structural options of the Rprop kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpropOptions {
    /// Gradient ascent.
    pub maximize: bool,
}

setters! {
    RpropConfig;
    /// Sets the first step size.
    with_lr(lr: f64);
    /// Sets the L2 penalty (an extension: PyTorch's Rprop has none).
    with_weight_decay(weight_decay: f64);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
}

impl RpropConfig {
    /// Sets (etaminus, etaplus), PyTorch's `etas`.
    pub fn with_etas(mut self, etaminus: f64, etaplus: f64) -> Self {
        self.etaminus = etaminus;
        self.etaplus = etaplus;
        self
    }

    /// Sets (step_size_min, step_size_max), PyTorch's `step_sizes`.
    pub fn with_step_sizes(mut self, min: f64, max: f64) -> Self {
        self.step_size_min = min;
        self.step_size_max = max;
        self
    }

    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> RpropHyper {
        RpropHyper {
            lr: self.lr as f32,
            etaminus: self.etaminus as f32,
            etaplus: self.etaplus as f32,
            step_size_min: self.step_size_min as f32,
            step_size_max: self.step_size_max as f32,
            weight_decay: self.weight_decay as f32,
        }
    }

    /// The kernel's structural options.
    pub fn options(&self) -> RpropOptions {
        RpropOptions {
            maximize: self.maximize,
        }
    }
}

impl Algorithm for RpropConfig {
    row!(name: "Rprop", kernel: &KERNEL, momentum: none);

    fn lower(&self) -> Result<KernelSpec> {
        non_negative("lr", self.lr)?;
        non_negative("weight_decay", self.weight_decay)?;
        // PyTorch: `0.0 < etas[0] < 1.0 < etas[1]`; both compared as the device holds them.
        let (etaminus, etaplus) = (self.etaminus as f32, self.etaplus as f32);
        if !(etaminus > 0.0 && etaminus < 1.0) {
            return Err(Error::InvalidHyperparameter {
                name: "etaminus",
                value: self.etaminus,
                expected: "a value in (0, 1) (as f32)",
            });
        }
        if !(etaplus > 1.0 && etaplus.is_finite()) {
            return Err(Error::InvalidHyperparameter {
                name: "etaplus",
                value: self.etaplus,
                expected: "a value > 1, finite in f32",
            });
        }
        non_negative("step_size_min", self.step_size_min)?;
        non_negative("step_size_max", self.step_size_max)?;
        if self.step_size_min > self.step_size_max {
            return Err(Error::InvalidOptions(
                "Rprop's step_size_min must not exceed its step_size_max",
            ));
        }
        KernelSpec::new(
            &KERNEL,
            vec![("MAXIMIZE", self.maximize)],
            zero_states(&["prev", "step_size"]),
            &self.hyper(),
        )
    }
}
