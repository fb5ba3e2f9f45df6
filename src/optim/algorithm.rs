//! What the rest of the crate needs of one optimizer's configuration ([`Algorithm`], its
//! registry row, implemented in its file), and the validation rules configurations share.

use std::fmt;

use crate::error::{Error, Result};
use crate::kernel::{Kernel, KernelSpec, StateSpec};

/// The fields every configuration has, and their checkpoint text: implemented by
/// [`config_struct!`](super::codec::config_struct) from the struct's declaration.
pub(crate) trait Fields {
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate.
    fn set_lr(&mut self, lr: f64);
    /// The weight decay (L2 or decoupled, as the configuration says).
    fn weight_decay(&self) -> f64;
    /// Sets the weight decay.
    fn set_weight_decay(&mut self, weight_decay: f64);
    /// Every field as `(name, value)` text that parses back exactly.
    fn hyperparameters(&self) -> Vec<(&'static str, String)>;
    /// Sets the field `name` from its text; false for an unknown name or bad text.
    fn set_hyperparameter(&mut self, name: &str, value: &str) -> bool;
}

/// One optimizer's row in the registry (`optimizers!` in src/optim/mod.rs): what the host
/// needs of its configuration. Each optimizer's file implements it for its configuration.
pub(crate) trait Algorithm: Fields + fmt::Debug + Send + Sync {
    /// PyTorch's class name (or the package's): `SGD`, `AdamW`, `AdamWScheduleFree`.
    fn name(&self) -> &'static str;

    /// The kernel that runs it.
    fn kernel(&self) -> &'static Kernel;

    /// Validates the configuration (PyTorch's rules, and finite values in f32) and lowers it
    /// to what the kernel needs.
    fn lower(&self) -> Result<KernelSpec>;

    /// Sets the momentum a cyclic schedule moves (SGD's `momentum`, Adam's `beta1`, ...), or
    /// refuses an optimizer without one, as PyTorch's `OneCycleLR` and `CyclicLR` raise.
    fn cycle_momentum(&mut self, momentum: f64) -> Result<()>;

    /// Per-tensor scalars a PyTorch `state_dict` holds that are functions of the step and the
    /// group's running values here (NAdam's `mu_product`): written to checkpoints for
    /// PyTorch's sake, never read back (the running values are).
    fn checkpoint_scalars(&self, _step: u32, _running: &[f32]) -> Vec<(&'static str, f32)> {
        Vec::new()
    }

    /// Refuses running values (the kernel's `Running`, as f32 words) that no sequence of
    /// `step` steps leaves: a checkpoint's are checked as strictly as hyperparameters.
    fn check_running(&self, _step: u32, _running: &[f32]) -> Result<()> {
        Ok(())
    }
}

/// The parts of an [`Algorithm`] row that are facts rather than code, in an `impl Algorithm`:
/// its name, its kernel, and the field a cyclic schedule moves (`none`: PyTorch refuses to
/// cycle its momentum, and so does [`Algorithm::cycle_momentum`]).
macro_rules! row {
    (name: $name:literal, kernel: $kernel:expr, momentum: none) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn kernel(&self) -> &'static $crate::kernel::Kernel {
            $kernel
        }

        fn cycle_momentum(&mut self, _momentum: f64) -> $crate::error::Result<()> {
            Err($crate::error::Error::InvalidOptions(concat!(
                $name,
                " has no momentum or beta1 to cycle"
            )))
        }
    };
    (name: $name:literal, kernel: $kernel:expr, momentum: $field:ident) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn kernel(&self) -> &'static $crate::kernel::Kernel {
            $kernel
        }

        fn cycle_momentum(&mut self, momentum: f64) -> $crate::error::Result<()> {
            self.$field = momentum;
            Ok(())
        }
    };
}
pub(crate) use row;

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

/// The Adam family's hyperparameters that every member checks alike.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamFamily {
    pub lr: f64,
    pub eps: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
}

/// The [`AdamFamily`] fields of a configuration that has them by these names.
macro_rules! adam_family {
    ($config:expr) => {
        $crate::optim::AdamFamily {
            lr: $config.lr,
            eps: $config.eps,
            beta1: $config.beta1,
            beta2: $config.beta2,
            weight_decay: $config.weight_decay,
        }
    };
}
pub(crate) use adam_family;

impl AdamFamily {
    /// PyTorch's rules: `lr`, `eps` and `weight_decay` >= 0, betas in [0, 1).
    pub fn check(self) -> Result<()> {
        non_negative("lr", self.lr)?;
        non_negative("eps", self.eps)?;
        beta("beta1", self.beta1)?;
        beta("beta2", self.beta2)?;
        non_negative("weight_decay", self.weight_decay)
    }
}

/// States named `names`, in consecutive slots from 0, each starting at 0.
pub(crate) fn zero_states(names: &[&'static str]) -> Vec<StateSpec> {
    names
        .iter()
        .enumerate()
        .map(|(slot, &name)| StateSpec {
            name,
            slot,
            init: 0.0,
        })
        .collect()
}

/// ln(beta) for the device's bias correction, computed in f64 and rounded once.
pub(crate) fn ln(beta: f64) -> f32 {
    beta.ln() as f32
}
