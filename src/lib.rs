//! # wgpu-optim
//!
//! Fused deep-learning optimizer steps as WGSL compute kernels on [`wgpu`]: SGD (momentum,
//! Nesterov), Adagrad, RMSprop, Adam, AMSGrad, AdamW, AdaBelief (rectified or not), Lion,
//! Adamax, NAdam, RAdam, Adadelta, ADOPT, Schedule-Free AdamW and Schedule-Free SGD, with
//! PyTorch's semantics and defaults, and LAMB and LARS (per-tensor trust ratios) as Optax's.
//!
//! A step reads every parameter, gradient and state element once and writes each output once,
//! in one dispatch per tensor chunk, recorded into the caller's [`wgpu::CommandEncoder`]: no
//! submit, no poll, no readback. The step counter lives on the device.
//!
//! [`GradConfig`] adds PyTorch's AMP and clipping stages to the same step, on the device:
//! loss-scale unscaling, inf/NaN skip, `clip_grad_value_`, `clip_grad_norm_` (or Optax's
//! `clip_by_global_norm`) over a deterministic global-norm reduction, and `GradScaler`'s
//! dynamic loss scale. [`ControlReader`] logs the gradient norm without stalling the queue.
//!
//! ```no_run
//! use wgpu_optim::{AdamWConfig, Context, Param};
//!
//! let ctx = Context::new_blocking()?;
//! let weights = ctx.upload_f32("weights", &[0.5; 1000]);
//! let grads = ctx.upload_f32("grads", &[0.1; 1000]);
//! let adamw = AdamWConfig::default().with_lr(1e-3).build(&ctx, &[Param::whole(&weights, &grads)])?;
//!
//! let mut encoder = ctx.device().create_command_encoder(&Default::default());
//! // ... record the forward and backward passes that fill `grads` ...
//! adamw.step(&mut encoder);
//! ctx.queue().submit([encoder.finish()]);
//! # Ok::<(), wgpu_optim::Error>(())
//! ```
//!
//! Every kernel has a mirror in [`reference`](mod@reference), the CPU oracle the tests compare against.

mod arena;
mod checkpoint;
mod clip;
mod context;
mod device_schedule;
#[cfg(feature = "mpi")]
mod distributed;
pub mod dtype;
mod early_stopping;
mod error;
mod layout;
mod monitor;
mod optim;
mod plan;
mod plateau;
mod readback;
pub mod reference;
mod schedule;
pub mod search;
mod setters;
pub mod shaders;
mod snapshot;
mod tensor;

pub use arena::Arena;
pub use clip::{
    ClipMode, ClipValue, GradConfig, GradHyper, GradScalerConfig, NormStats, Partial, CLIP_NONE,
    CLIP_OPTAX, CLIP_PYTORCH,
};
pub use context::{Context, ContextOptions, Tuning};
pub use device_schedule::{DeviceSchedule, ScheduleCounter, ScheduleShape};
#[cfg(feature = "mpi")]
pub use distributed::{CommTimings, Distributed, DistributedConfig, Sharding};
pub use dtype::Dtype;
pub use early_stopping::{EarlyStopping, EarlyStoppingCheck, EarlyStoppingConfig, StopReason};
pub use error::{Error, Result};
pub use layout::{Control, WgslLayout};
pub use monitor::{GradNormMonitor, GradNormStats, MonitorConfig, NormEvent};
pub use optim::*;
pub use plan::{Fold, ReduceWork, Segment};
pub use plateau::{LrChange, MetricMode, MinLr, PlateauConfig, ReduceLrOnPlateau, ThresholdMode};
pub use readback::ControlReader;
pub use schedule::{
    Anneal, CosineDecay, Cyclic, CyclicMode, ExponentialDecay, LrSchedule, OneCycle,
    PolynomialSchedule, ScheduleFn, Seasonal, WarmupCosineDecay,
};
pub use shaders::{Rounding, Storage};
pub use snapshot::Snapshot;
pub use tensor::{BufferRange, Param};

// The README's examples compile as doctests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
