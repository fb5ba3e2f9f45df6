//! The optimizers: one file per optimizer for its configuration and hyperparameter struct;
//! `config.rs` for the enum over them and what it lowers to, `codec.rs` for their checkpoint
//! text, and `optimizer.rs` for the runtime they share ([`Optimizer`]).

mod adabelief;
mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod adamw;
mod adopt;
mod codec;
mod config;
mod lamb;
mod lars;
mod lion;
mod nadam;
mod optimizer;
mod radam;
mod rmsprop;
mod schedule_free;
mod schedule_free_adamw;
mod schedule_free_sgd;
mod sgd;

pub use adabelief::{AdaBeliefConfig, AdaBeliefOptions};
pub use adadelta::{AdadeltaConfig, AdadeltaHyper, AdadeltaOptions};
pub use adagrad::{AdagradConfig, AdagradHyper, AdagradOptions};
pub use adam::{AdamConfig, AdamHyper, AdamOptions};
pub use adamax::{AdamaxConfig, AdamaxOptions};
pub use adamw::AdamWConfig;
pub use adopt::{AdoptConfig, AdoptHyper, AdoptOptions};
pub use config::{OptimizerConfig, StateSpec};
pub use lamb::{LambConfig, LambHyper};
pub use lars::{LarsConfig, LarsHyper};
pub use lion::{LionConfig, LionHyper, LionOptions};
pub use nadam::{NAdamConfig, NAdamHyper, NAdamOptions};
pub use optimizer::{Optimizer, ParamGroup, Precision, MASTER_PARAM};
pub use radam::{RAdamConfig, RAdamHyper, RAdamOptions};
pub use rmsprop::{RmsPropConfig, RmsPropHyper, RmsPropOptions};
pub use schedule_free_adamw::{ScheduleFreeAdamWConfig, ScheduleFreeAdamWHyper};
pub use schedule_free_sgd::{ScheduleFreeSgdConfig, ScheduleFreeSgdHyper};
pub use sgd::{SgdConfig, SgdHyper, SgdOptions};

pub(crate) use crate::setters::setters;
pub(crate) use config::{adam_family, beta, ln, non_negative, KernelSpec};
