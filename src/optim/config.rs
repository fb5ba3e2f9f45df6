//! [`OptimizerConfig`]: any optimizer's configuration, and what it lowers to for the device
//! ([`KernelSpec`]: kernel, structural options, state buffers, hyperparameter bytes).

use super::*;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::layout::WgslLayout;
use crate::shaders::Kernel;
use crate::tensor::Param;

/// Calls `$body` with `$c` bound to the config inside any [`OptimizerConfig`].
macro_rules! each_config {
    ($config:expr, $c:ident => $body:expr) => {
        match $config {
            OptimizerConfig::Sgd($c) => $body,
            OptimizerConfig::Adagrad($c) => $body,
            OptimizerConfig::RmsProp($c) => $body,
            OptimizerConfig::Adam($c) => $body,
            OptimizerConfig::AdamW($c) => $body,
            OptimizerConfig::AdaBelief($c) => $body,
            OptimizerConfig::Lion($c) => $body,
            OptimizerConfig::Adamax($c) => $body,
            OptimizerConfig::NAdam($c) => $body,
            OptimizerConfig::RAdam($c) => $body,
            OptimizerConfig::Adadelta($c) => $body,
            OptimizerConfig::Adopt($c) => $body,
            OptimizerConfig::ScheduleFreeAdamW($c) => $body,
            OptimizerConfig::ScheduleFreeSgd($c) => $body,
            OptimizerConfig::Lamb($c) => $body,
            OptimizerConfig::Lars($c) => $body,
        }
    };
}

pub(crate) use each_config;

/// Any optimizer's configuration: the input of [`Optimizer`] and of
/// [`reference::Optimizer`](crate::reference::Optimizer).
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`
    Sgd(SgdConfig),
    /// `torch.optim.Adagrad`
    Adagrad(AdagradConfig),
    /// `torch.optim.RMSprop`
    RmsProp(RmsPropConfig),
    /// `torch.optim.Adam`
    Adam(AdamConfig),
    /// `torch.optim.AdamW`
    AdamW(AdamWConfig),
    /// adabelief-pytorch's `AdaBelief` (`rectify` an option)
    AdaBelief(AdaBeliefConfig),
    /// Lion (lion-pytorch, `optax.lion`)
    Lion(LionConfig),
    /// `torch.optim.Adamax` (`optax.adamax`)
    Adamax(AdamaxConfig),
    /// `torch.optim.NAdam` (`optax.nadam` with `optax_form`)
    NAdam(NAdamConfig),
    /// `torch.optim.RAdam` (`optax.radam` with `optax_form`)
    RAdam(RAdamConfig),
    /// `torch.optim.Adadelta` (`optax.adadelta`)
    Adadelta(AdadeltaConfig),
    /// ADOPT, the authors' PyTorch form (`optax.contrib.adopt` with `optax_form`)
    Adopt(AdoptConfig),
    /// The `schedulefree` package's `AdamWScheduleFree`
    ScheduleFreeAdamW(ScheduleFreeAdamWConfig),
    /// The `schedulefree` package's `SGDScheduleFree`
    ScheduleFreeSgd(ScheduleFreeSgdConfig),
    /// LAMB (`optax.lamb`)
    Lamb(LambConfig),
    /// LARS (`optax.lars`)
    Lars(LarsConfig),
}

/// `OptimizerConfig::from(AdamWConfig::default())`, `config.into()`: each optimizer's
/// configuration is an [`OptimizerConfig`], and builds an optimizer as one.
macro_rules! config_from {
    ($($variant:ident($config:ty)),* $(,)?) => {
        $(impl From<$config> for OptimizerConfig {
            fn from(config: $config) -> Self {
                OptimizerConfig::$variant(config)
            }
        }

        impl $config {
            /// Builds the optimizer for `params`: see [`Optimizer::new`].
            pub fn build(&self, ctx: &Context, params: &[Param]) -> Result<Optimizer> {
                OptimizerConfig::$variant(self.clone()).build(ctx, params)
            }
        })*
    };
}

/// `with_betas(beta1, beta2)` for the configurations that have both.
macro_rules! with_betas {
    ($($config:ty),* $(,)?) => {
        $(impl $config {
            /// Sets (beta1, beta2).
            pub fn with_betas(mut self, beta1: f64, beta2: f64) -> Self {
                self.beta1 = beta1;
                self.beta2 = beta2;
                self
            }
        })*
    };
}

with_betas!(
    AdamConfig,
    AdamWConfig,
    AdaBeliefConfig,
    LionConfig,
    AdamaxConfig,
    NAdamConfig,
    RAdamConfig,
    AdoptConfig,
    ScheduleFreeAdamWConfig,
    LambConfig,
);

config_from!(
    Sgd(SgdConfig),
    Adagrad(AdagradConfig),
    RmsProp(RmsPropConfig),
    Adam(AdamConfig),
    AdamW(AdamWConfig),
    AdaBelief(AdaBeliefConfig),
    Lion(LionConfig),
    Adamax(AdamaxConfig),
    NAdam(NAdamConfig),
    RAdam(RAdamConfig),
    Adadelta(AdadeltaConfig),
    Adopt(AdoptConfig),
    ScheduleFreeAdamW(ScheduleFreeAdamWConfig),
    ScheduleFreeSgd(ScheduleFreeSgdConfig),
    Lamb(LambConfig),
    Lars(LarsConfig),
);

/// A state buffer an optimizer keeps per tensor, named as in PyTorch's `state_dict`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateSpec {
    /// PyTorch's name: `exp_avg`, `momentum_buffer`, ...
    pub name: &'static str,
    /// The WGSL binding it fills: `state0`, `state1` or `state2`.
    pub slot: usize,
    /// Its value before the first step.
    pub init: f32,
}

/// What the device needs to run one configuration: kernel, structural options, state buffers
/// and the bytes of its hyperparameter struct.
#[derive(Clone, Debug)]
pub(crate) struct KernelSpec {
    pub kernel: Kernel,
    pub overrides: Vec<(&'static str, bool)>,
    pub states: Vec<StateSpec>,
    pub hyper: Vec<u8>,
    /// The names of the f32 fields at the end of `hyper` that the prologue keeps as running
    /// values (Schedule-Free's `lr_max`, `weight_sum`): the host writes them at the build and
    /// from a checkpoint only, never with a new configuration.
    pub running: &'static [&'static str],
}

impl KernelSpec {
    /// The same kernel, structural options and states: only hyperparameter values may differ.
    pub fn same_structure(&self, other: &KernelSpec) -> bool {
        self.kernel == other.kernel
            && self.overrides == other.overrides
            && self.states == other.states
    }

    /// The spec of `kernel` with `hyper` as the device will read it. Every field of `hyper`
    /// must be finite as f32, as the kernels compute in f32: a value that only f64 holds (an lr
    /// of 1e39) or a derived one that overflows f32 (AdamW's `1 - lr * weight_decay` for huge
    /// values) is refused here rather than turned into inf on the device. `ln_*` fields are
    /// exempt: `ln(0) = -inf` is how a beta of 0 reaches the bias correction, which handles it.
    pub fn new<H: WgslLayout>(
        kernel: Kernel,
        overrides: Vec<(&'static str, bool)>,
        states: Vec<StateSpec>,
        hyper: &H,
    ) -> Result<Self> {
        let bytes = bytemuck::bytes_of(hyper);
        for &(name, offset) in H::FIELDS {
            let value: f32 = bytemuck::pod_read_unaligned(&bytes[offset..offset + 4]);
            if !value.is_finite() && !name.starts_with("ln_") {
                return Err(Error::InvalidHyperparameter {
                    name,
                    value: f64::from(value),
                    expected: "hyperparameters whose values, and the values derived from them, \
                               are finite in f32",
                });
            }
        }
        Ok(KernelSpec {
            kernel,
            overrides,
            states,
            hyper: bytes.to_vec(),
            running: &[],
        })
    }

    /// The same spec whose hyperparameter struct ends with the running values `names`.
    pub fn with_running(mut self, names: &'static [&'static str]) -> Self {
        self.running = names;
        self
    }

    /// The bytes of `hyper` the host writes with a new configuration: all but the running
    /// values.
    pub fn config_bytes(&self) -> &[u8] {
        &self.hyper[..self.hyper.len() - 4 * self.running.len()]
    }
}

impl OptimizerConfig {
    /// The optimizer's name, as PyTorch's class name.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "SGD",
            OptimizerConfig::Adagrad(_) => "Adagrad",
            OptimizerConfig::RmsProp(_) => "RMSprop",
            OptimizerConfig::Adam(_) => "Adam",
            OptimizerConfig::AdamW(_) => "AdamW",
            OptimizerConfig::AdaBelief(_) => "AdaBelief",
            OptimizerConfig::Lion(_) => "Lion",
            OptimizerConfig::Adamax(_) => "Adamax",
            OptimizerConfig::NAdam(_) => "NAdam",
            OptimizerConfig::RAdam(_) => "RAdam",
            OptimizerConfig::Adadelta(_) => "Adadelta",
            OptimizerConfig::Adopt(_) => "ADOPT",
            OptimizerConfig::ScheduleFreeAdamW(_) => "AdamWScheduleFree",
            OptimizerConfig::ScheduleFreeSgd(_) => "SGDScheduleFree",
            OptimizerConfig::Lamb(_) => "LAMB",
            OptimizerConfig::Lars(_) => "LARS",
        }
    }

    /// Whether `other` is the same optimizer (PyTorch's class), whatever its values.
    pub fn same_algorithm(&self, other: &OptimizerConfig) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// Refuses hyperparameters PyTorch refuses, and non-finite ones.
    pub fn validate(&self) -> Result<()> {
        self.spec().map(|_| ())
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        each_config!(self, c => c.lr)
    }

    /// The same configuration with another learning rate.
    pub fn with_lr(&self, lr: f64) -> Self {
        let mut config = self.clone();
        each_config!(&mut config, c => c.lr = lr);
        config
    }

    /// The weight decay (every optimizer has one: L2 or decoupled, as its config says).
    pub fn weight_decay(&self) -> f64 {
        each_config!(self, c => c.weight_decay)
    }

    /// The same configuration with another weight decay: a typed edit of any optimizer's
    /// configuration, say a parameter group of biases without decay.
    ///
    /// ```
    /// # use wgpu_optim::{AdamWConfig, OptimizerConfig};
    /// let decay: OptimizerConfig = AdamWConfig::default().with_weight_decay(0.1).into();
    /// let no_decay = decay.with_weight_decay(0.0);
    /// assert_eq!((decay.weight_decay(), no_decay.weight_decay()), (0.1, 0.0));
    /// assert_eq!(no_decay.lr(), decay.lr());
    /// ```
    pub fn with_weight_decay(&self, weight_decay: f64) -> Self {
        let mut config = self.clone();
        each_config!(&mut config, c => c.weight_decay = weight_decay);
        config
    }

    /// The same configuration with its momentum set to `momentum`: SGD's, Schedule-Free SGD's
    /// and RMSprop's `momentum`, the Adam family's (Adamax, NAdam, RAdam, ADOPT and Schedule-Free AdamW
    /// included) and Lion's `beta1`, as PyTorch's `OneCycleLR` and `CyclicLR` cycle them (see
    /// [`OneCycle::momentum`](crate::OneCycle::momentum) and
    /// [`Cyclic::momentum`](crate::Cyclic::momentum)). Adagrad and Adadelta have none:
    /// [`Error::InvalidOptions`], as PyTorch raises. NAdam derives its
    /// `mu_product` from the current `beta1` (see [`NAdamConfig`]).
    pub fn with_cycled_momentum(&self, momentum: f64) -> Result<Self> {
        let mut config = self.clone();
        match &mut config {
            OptimizerConfig::Sgd(c) => c.momentum = momentum,
            OptimizerConfig::RmsProp(c) => c.momentum = momentum,
            OptimizerConfig::Adam(c) => c.beta1 = momentum,
            OptimizerConfig::AdamW(c) => c.beta1 = momentum,
            OptimizerConfig::AdaBelief(c) => c.beta1 = momentum,
            OptimizerConfig::Lion(c) => c.beta1 = momentum,
            OptimizerConfig::Adamax(c) => c.beta1 = momentum,
            OptimizerConfig::NAdam(c) => c.beta1 = momentum,
            OptimizerConfig::RAdam(c) => c.beta1 = momentum,
            OptimizerConfig::Adopt(c) => c.beta1 = momentum,
            OptimizerConfig::ScheduleFreeAdamW(c) => c.beta1 = momentum,
            OptimizerConfig::ScheduleFreeSgd(c) => c.momentum = momentum,
            OptimizerConfig::Lamb(c) => c.beta1 = momentum,
            OptimizerConfig::Lars(c) => c.momentum = momentum,
            OptimizerConfig::Adagrad(_) => {
                return Err(Error::InvalidOptions(
                    "Adagrad has no momentum or beta1 to cycle",
                ))
            }
            OptimizerConfig::Adadelta(_) => {
                return Err(Error::InvalidOptions(
                    "Adadelta has no momentum or beta1 to cycle",
                ))
            }
        }
        Ok(config)
    }

    /// The state buffers kept per tensor, in slot order.
    pub fn states(&self) -> Result<Vec<StateSpec>> {
        Ok(self.spec()?.states)
    }

    /// Validates and lowers the configuration to what the kernel needs.
    pub(crate) fn spec(&self) -> Result<KernelSpec> {
        match self {
            OptimizerConfig::Sgd(c) => c.spec(),
            OptimizerConfig::Adagrad(c) => c.spec(),
            OptimizerConfig::RmsProp(c) => c.spec(),
            OptimizerConfig::Adam(c) => c.spec(),
            OptimizerConfig::AdamW(c) => c.to_adam().spec(),
            OptimizerConfig::AdaBelief(c) => c.spec(),
            OptimizerConfig::Lion(c) => c.spec(),
            OptimizerConfig::Adamax(c) => c.spec(),
            OptimizerConfig::NAdam(c) => c.spec(),
            OptimizerConfig::RAdam(c) => c.spec(),
            OptimizerConfig::Adadelta(c) => c.spec(),
            OptimizerConfig::Adopt(c) => c.spec(),
            OptimizerConfig::ScheduleFreeAdamW(c) => c.spec(),
            OptimizerConfig::ScheduleFreeSgd(c) => c.spec(),
            OptimizerConfig::Lamb(c) => c.spec(),
            OptimizerConfig::Lars(c) => c.spec(),
        }
    }

    /// Builds the optimizer for `params` on `ctx`: see [`Optimizer::new`].
    pub fn build(&self, ctx: &Context, params: &[Param]) -> Result<Optimizer> {
        Optimizer::new(ctx, self.clone(), params)
    }
}

/// `value` must be at least 0 (PyTorch: `if not 0.0 <= value: raise ValueError`) and finite
/// in f32, as the device holds it.
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<()> {
    if (value as f32).is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            expected: "a value >= 0, finite in f32",
        })
    }
}

/// `value` must lie in [0, 1), as PyTorch requires of Adam's betas.
pub(crate) fn beta(name: &'static str, value: f64) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            expected: "a value in [0, 1)",
        })
    }
}

/// The Adam family's common rules, as PyTorch's: `lr`, `eps` and `weight_decay` >= 0, betas in
/// [0, 1).
pub(crate) fn adam_family(
    lr: f64,
    eps: f64,
    beta1: f64,
    beta2: f64,
    weight_decay: f64,
) -> Result<()> {
    non_negative("lr", lr)?;
    non_negative("eps", eps)?;
    beta("beta1", beta1)?;
    beta("beta2", beta2)?;
    non_negative("weight_decay", weight_decay)
}

/// ln(beta) for the device's bias correction, computed in f64 and rounded once.
pub(crate) fn ln(beta: f64) -> f32 {
    beta.ln() as f32
}
