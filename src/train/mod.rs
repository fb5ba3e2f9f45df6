//! What a training loop needs around the step: non-blocking readback of the control block
//! ([`ControlReader`]), gradient-norm monitoring ([`GradNormMonitor`]), `ReduceLROnPlateau`
//! ([`ReduceLrOnPlateau`]), early stopping ([`EarlyStopping`]), device-side snapshots
//! ([`Snapshot`]), and data-parallel training over MPI (`Distributed`, feature `mpi`).

#[cfg(feature = "mpi")]
mod agreement;
#[cfg(feature = "mpi")]
mod distributed;
#[cfg(feature = "mpi")]
mod distributed_config;
mod early_stopping;
mod monitor;
mod plateau;
mod readback;
mod snapshot;

#[cfg(feature = "mpi")]
pub use distributed::{CommTimings, Distributed, DistributedConfig, Sharding};
pub use early_stopping::{EarlyStopping, EarlyStoppingCheck, EarlyStoppingConfig, StopReason};
pub use monitor::{GradNormMonitor, GradNormStats, MonitorConfig, NormEvent};
pub use plateau::{LrChange, MetricMode, MinLr, PlateauConfig, ReduceLrOnPlateau, ThresholdMode};
pub use readback::ControlReader;
pub use snapshot::Snapshot;
