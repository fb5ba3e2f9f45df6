//! What an optimizer is: one file per optimizer, and the registry that lists them once.
//!
//! An optimizer's file (`src/optim/<name>.rs`) holds its configuration with PyTorch's
//! defaults and `with_*` builders, the structs of its kernel's group record (`Hyper`, what the
//! host writes; `Derived`, what the prologue derives each step; `Running`, what it carries
//! across steps), its [`Kernel`](crate::kernel::Kernel) descriptor, and its
//! [`Algorithm`] implementation: its name, validation and lowering, and how a cyclic
//! schedule moves its momentum. The registry, [`optimizers!`], lists every optimizer once;
//! [`OptimizerConfig`], the conversions, the defaults by name, the kernel list, the builders
//! (`src/optimizer/build.rs`) and the CPU mirrors (`src/reference/`) are generated from it.
//! CONTRIBUTING.md walks through adding one.

mod algorithm;
pub(crate) mod codec;
mod config;
mod muon;
mod schedule_free;

pub(crate) use algorithm::{
    adam_family, beta, ln, non_negative, row, zero_states, AdamFamily, Algorithm, Fields,
};
pub(crate) use codec::{config_struct, with_betas};
pub use muon::{AdjustLr, MuonConfig};
pub use schedule_free::ScheduleFreeRunning;

/// The registry: every optimizer, once, as `Variant(Config) in module;` with the doc line of
/// its [`OptimizerConfig`] variant. Calls `$callback!` with the list, so that each place that
/// needs every optimizer (the configuration enum here, the builders in `src/optimizer/`, the
/// mirrors in `src/reference/`) is generated from this one list.
macro_rules! optimizers {
    ($callback:ident) => {
        $callback! {
            /// `torch.optim.SGD`
            Sgd(SgdConfig) in sgd;
            /// `torch.optim.Adagrad`
            Adagrad(AdagradConfig) in adagrad;
            /// `torch.optim.RMSprop`
            RmsProp(RmsPropConfig) in rmsprop;
            /// `torch.optim.Adam`
            Adam(AdamConfig) in adam;
            /// `torch.optim.AdamW`
            AdamW(AdamWConfig) in adamw;
            /// adabelief-pytorch's `AdaBelief` (`rectify` an option)
            AdaBelief(AdaBeliefConfig) in adabelief;
            /// Lion (lion-pytorch, `optax.lion`)
            Lion(LionConfig) in lion;
            /// `torch.optim.Adamax` (`optax.adamax`)
            Adamax(AdamaxConfig) in adamax;
            /// `torch.optim.NAdam` (`optax.nadam` with `optax_form`)
            NAdam(NAdamConfig) in nadam;
            /// `torch.optim.RAdam` (`optax.radam` with `optax_form`)
            RAdam(RAdamConfig) in radam;
            /// `torch.optim.Adadelta` (`optax.adadelta`)
            Adadelta(AdadeltaConfig) in adadelta;
            /// ADOPT, the authors' PyTorch form (`optax.contrib.adopt` with `optax_form`)
            Adopt(AdoptConfig) in adopt;
            /// The `schedulefree` package's `AdamWScheduleFree`
            ScheduleFreeAdamW(ScheduleFreeAdamWConfig) in schedule_free_adamw;
            /// The `schedulefree` package's `SGDScheduleFree`
            ScheduleFreeSgd(ScheduleFreeSgdConfig) in schedule_free_sgd;
            /// LAMB (`optax.lamb`)
            Lamb(LambConfig) in lamb;
            /// LARS (`optax.lars`)
            Lars(LarsConfig) in lars;
            /// `torch.optim.Rprop`
            Rprop(RpropConfig) in rprop;
        }
    };
}
pub(crate) use optimizers;

/// Generates, from the registry: each optimizer's module and exports, [`OptimizerConfig`]
/// with a variant each, the conversions into it, and its dispatch to the rows.
macro_rules! registry {
    ($($(#[$doc:meta])* $variant:ident($config:ident) in $module:ident;)*) => {
        $(mod $module;
        pub use $module::*;)*

        /// Any optimizer's configuration: the input of [`Optimizer`](crate::Optimizer) and of
        /// [`reference::Optimizer`](crate::reference::Optimizer). Each optimizer's own
        /// configuration converts into it (`AdamWConfig::default().into()`).
        #[derive(Clone, Debug, PartialEq)]
        pub enum OptimizerConfig {
            $($(#[$doc])* $variant($config),)*
        }

        $(impl From<$config> for OptimizerConfig {
            fn from(config: $config) -> Self {
                OptimizerConfig::$variant(config)
            }
        })*

        impl OptimizerConfig {
            /// Every optimizer with its defaults (PyTorch's, or its authors'), in the
            /// registry's order.
            pub fn defaults() -> Vec<OptimizerConfig> {
                vec![$(OptimizerConfig::$variant($config::default()),)*]
            }

            /// This configuration's registry row.
            pub(crate) fn algorithm(&self) -> &dyn Algorithm {
                match self {
                    $(OptimizerConfig::$variant(config) => config,)*
                }
            }

            /// This configuration's registry row, to edit.
            pub(crate) fn algorithm_mut(&mut self) -> &mut dyn Algorithm {
                match self {
                    $(OptimizerConfig::$variant(config) => config,)*
                }
            }
        }
    };
}

optimizers!(registry);
