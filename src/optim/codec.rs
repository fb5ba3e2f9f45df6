//! The checkpoint text codec of configurations: every hyperparameter as `(name, value)` text
//! that parses back to the same value, under PyTorch's `param_groups` keys. Users edit configs
//! with the typed `with_*` builders; text is for files.

use super::config::each_config;
use super::*;

/// Lists a config's fields as hyperparameters: their names (PyTorch's `param_groups` keys, betas
/// split in two) and values as text that parses back to the same value (Rust's shortest
/// round-trip formatting), for checkpoints.
macro_rules! hyperparameters {
    ($($config:ty { $($field:ident),* $(,)? })*) => {
        $(impl $config {
            /// Every field, as `(name, value)` text that parses back exactly.
            pub(crate) fn hyperparameters(&self) -> Vec<(&'static str, String)> {
                vec![$((stringify!($field), HyperText::to_text(&self.$field))),*]
            }

            /// Sets the field `name` from its text; false for an unknown name or bad text.
            pub(crate) fn set_hyperparameter(&mut self, name: &str, value: &str) -> bool {
                match name {
                    $(stringify!($field) => HyperText::from_text(value)
                        .map(|v| self.$field = v)
                        .is_some(),)*
                    _ => false,
                }
            }
        })*
    };
}

/// A hyperparameter's value as checkpoint text: Rust's round-trip formatting, `none` for an
/// unset option.
trait HyperText: Sized {
    fn to_text(&self) -> String;
    fn from_text(text: &str) -> Option<Self>;
}

impl HyperText for f64 {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl HyperText for bool {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl HyperText for Option<f64> {
    fn to_text(&self) -> String {
        self.map_or("none".to_string(), |v| v.to_string())
    }
    fn from_text(text: &str) -> Option<Self> {
        match text {
            "none" | "null" => Some(None),
            _ => text.parse().ok().map(Some),
        }
    }
}

hyperparameters! {
    SgdConfig { lr, momentum, dampening, weight_decay, nesterov, maximize }
    AdagradConfig { lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize, eps_in_sqrt }
    RmsPropConfig {
        lr, alpha, eps, weight_decay, momentum, centered, maximize, eps_in_sqrt, bias_correction,
    }
    AdamConfig {
        lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay,
        amsgrad_bias_corrected, eps_root,
    }
    AdamWConfig { lr, beta1, beta2, eps, weight_decay, amsgrad, maximize }
    AdaBeliefConfig {
        lr, beta1, beta2, eps, weight_decay, amsgrad, weight_decouple, fixed_decay, eps_root,
        rectify, degenerated_to_sgd,
    }
    LionConfig { lr, beta1, beta2, weight_decay, maximize }
    AdamaxConfig { lr, beta1, beta2, eps, weight_decay, maximize }
    NAdamConfig {
        lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize,
        optax_form, eps_root,
    }
    RAdamConfig {
        lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize, optax_form,
        threshold, eps_root,
    }
    AdadeltaConfig { lr, rho, eps, weight_decay, maximize }
    AdoptConfig {
        lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, use_clipping, nesterov,
        maximize, optax_form,
    }
    ScheduleFreeAdamWConfig {
        lr, beta1, beta2, eps, weight_decay, warmup_steps, r, weight_lr_power,
    }
    ScheduleFreeSgdConfig { lr, momentum, weight_decay, warmup_steps, r, weight_lr_power }
    LambConfig { lr, beta1, beta2, eps, eps_root, weight_decay, trust_ratio }
    LarsConfig { lr, momentum, weight_decay, trust_coefficient, eps, nesterov, trust_ratio }
}

impl OptimizerConfig {
    /// Every hyperparameter as `(name, value)` text, as a checkpoint stores them.
    pub fn hyperparameters(&self) -> Vec<(&'static str, String)> {
        each_config!(self, c => c.hyperparameters())
    }

    /// Sets the hyperparameter `name` from text written by
    /// [`OptimizerConfig::hyperparameters`]; false for an unknown name or unparsable text.
    pub fn set_hyperparameter(&mut self, name: &str, value: &str) -> bool {
        each_config!(self, c => c.set_hyperparameter(name, value))
    }
}
