//! What every configuration answers, through its registry row: its name, validation and
//! lowering, typed edits of the fields they all have, and checkpoint text.

use super::OptimizerConfig;
use crate::error::Result;
use crate::kernel::{Kernel, KernelSpec, StateSpec};

impl OptimizerConfig {
    /// The optimizer's name, as PyTorch's class name (`SGD`, `AdamW`, `RMSprop`) or its
    /// package's (`AdamWScheduleFree`, `LAMB`).
    pub fn name(&self) -> &'static str {
        self.algorithm().name()
    }

    /// Every optimizer's name, in the registry's order: what [`OptimizerConfig::from_name`]
    /// takes.
    pub fn names() -> Vec<&'static str> {
        Self::defaults().iter().map(OptimizerConfig::name).collect()
    }

    /// The optimizer named `name` ([`OptimizerConfig::name`]), with its defaults; `None` for
    /// a name no optimizer has.
    ///
    /// ```
    /// # use wgpu_optim::OptimizerConfig;
    /// let adamw = OptimizerConfig::from_name("AdamW").unwrap();
    /// assert_eq!((adamw.lr(), adamw.weight_decay()), (1e-3, 1e-2));
    /// assert!(OptimizerConfig::from_name("Adamm").is_none());
    /// ```
    pub fn from_name(name: &str) -> Option<OptimizerConfig> {
        Self::defaults().into_iter().find(|c| c.name() == name)
    }

    /// Every kernel the registered optimizers run, each once, in the registry's order.
    pub fn kernels() -> Vec<&'static Kernel> {
        let mut kernels: Vec<&'static Kernel> = Vec::new();
        for config in Self::defaults() {
            let kernel = config.algorithm().kernel();
            if !kernels.contains(&kernel) {
                kernels.push(kernel);
            }
        }
        kernels
    }

    /// Whether `other` is the same optimizer (PyTorch's class), whatever its values.
    pub fn same_algorithm(&self, other: &OptimizerConfig) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// Refuses hyperparameters PyTorch refuses, and non-finite ones.
    pub fn validate(&self) -> Result<()> {
        self.lower().map(|_| ())
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.algorithm().lr()
    }

    /// The same configuration with another learning rate.
    pub fn with_lr(&self, lr: f64) -> Self {
        let mut config = self.clone();
        config.algorithm_mut().set_lr(lr);
        config
    }

    /// The weight decay (every optimizer has one: L2 or decoupled, as its config says).
    pub fn weight_decay(&self) -> f64 {
        self.algorithm().weight_decay()
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
        config.algorithm_mut().set_weight_decay(weight_decay);
        config
    }

    /// The same configuration with its momentum set to `momentum`: SGD's, Schedule-Free SGD's,
    /// LARS's and RMSprop's `momentum`, the Adam family's (Adamax, NAdam, RAdam, ADOPT, LAMB and
    /// Schedule-Free AdamW included) and Lion's `beta1`, as PyTorch's `OneCycleLR` and
    /// `CyclicLR` cycle them (see [`OneCycle::momentum`](crate::OneCycle::momentum) and
    /// [`Cyclic::momentum`](crate::Cyclic::momentum)). Adagrad and Adadelta have none:
    /// [`Error::InvalidOptions`](crate::Error::InvalidOptions), as PyTorch raises. NAdam's
    /// running `mu_product` takes each step's own `beta1`, as PyTorch's (see
    /// [`NAdamConfig`](crate::NAdamConfig)).
    pub fn with_cycled_momentum(&self, momentum: f64) -> Result<Self> {
        let mut config = self.clone();
        config.algorithm_mut().cycle_momentum(momentum)?;
        Ok(config)
    }

    /// The state buffers kept per tensor, in slot order.
    pub fn states(&self) -> Result<Vec<StateSpec>> {
        Ok(self.lower()?.states)
    }

    /// Validates and lowers the configuration to what the kernel needs.
    pub(crate) fn lower(&self) -> Result<KernelSpec> {
        self.algorithm().lower()
    }

    /// Per-tensor scalars of PyTorch's `state_dict` that are functions of the step and the
    /// group's running values here (NAdam's `mu_product` after `step` steps), for
    /// checkpoints.
    pub(crate) fn checkpoint_scalars(
        &self,
        step: u32,
        running: &[f32],
    ) -> Vec<(&'static str, f32)> {
        self.algorithm().checkpoint_scalars(step, running)
    }

    /// Refuses running values (as f32 words) that no sequence of `step` steps leaves.
    pub(crate) fn check_running(&self, step: u32, running: &[f32]) -> Result<()> {
        self.algorithm().check_running(step, running)
    }

    /// Every hyperparameter as `(name, value)` text, as a checkpoint stores them.
    pub fn hyperparameters(&self) -> Vec<(&'static str, String)> {
        self.algorithm().hyperparameters()
    }

    /// Sets the hyperparameter `name` from text written by
    /// [`OptimizerConfig::hyperparameters`]; false for an unknown name or unparsable text.
    pub fn set_hyperparameter(&mut self, name: &str, value: &str) -> bool {
        self.algorithm_mut().set_hyperparameter(name, value)
    }
}
