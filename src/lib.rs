//! # wgpu-optim
//!
//! Fused deep-learning optimizer steps as WGSL compute kernels on [`wgpu`]: SGD (momentum,
//! Nesterov), Adagrad, RMSprop, Adam, AMSGrad, AdamW, AdaBelief (rectified or not), Lion,
//! Adamax, NAdam, RAdam, Adadelta, ADOPT, Rprop, Schedule-Free AdamW and Schedule-Free SGD,
//! with PyTorch's semantics and defaults, and LAMB and LARS (per-tensor trust ratios) as
//! Optax's.
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
//! Every kernel has a mirror in [`reference`](mod@reference), the CPU oracle the tests compare
//! against.
//!
//! The crate reads from the ground up, each layer using only those below it: `gpu` (the
//! device, pipelines, transfers, tensors, arena) → `kernel` (WGSL assembly, storage types, the
//! dispatch plan, the control block) → `optim` (what an optimizer is: one file each, one
//! registry) and `grad` (gradient processing) → `schedule` → `optimizer` (the built optimizer)
//! → `train` (readback, monitor, plateau, early stopping, snapshots, MPI). [`reference`](mod@reference) and
//! [`search`] sit beside them. CONTRIBUTING.md has the map.

#[cfg(feature = "burn")]
pub mod burn;
pub mod dtype;
mod error;
mod gpu;
mod grad;
mod kernel;
pub mod matrix;
mod optim;
mod optimizer;
pub mod quant;
pub mod reference;
mod schedule;
pub mod search;
mod setters;
pub mod shaders;
mod train;

pub use dtype::Dtype;
pub use error::{Error, Result};
pub use gpu::{
    Arena, BufferRange, Context, ContextOptions, Param, Tuning, MAX_VEC4S_PER_INVOCATION,
};
pub use grad::{
    ClipMode, ClipValue, GradConfig, GradHyper, GradScalerConfig, NormStats, Partial, CLIP_NONE,
    CLIP_OPTAX, CLIP_PYTORCH,
};
pub use kernel::{
    Control, Fold, GroupRecord, Kernel, Quant8, ReduceWork, Rounding, Segment, StateSpec, Storage,
    StructLayout, WgslLayout, MASTER_PARAM, SQUARED_STATES,
};
pub use optim::*;
pub use optimizer::{MuonGroup, Optimizer, ParamGroup, Precision};
pub use schedule::{
    Anneal, CosineDecay, Cyclic, CyclicMode, DeviceSchedule, ExponentialDecay, LrSchedule,
    OneCycle, PolynomialSchedule, ScheduleCounter, ScheduleFn, ScheduleShape, Seasonal,
    WarmupCosineDecay,
};
#[cfg(feature = "mpi")]
pub use train::{CommTimings, Distributed, DistributedConfig, Sharding};
pub use train::{
    ControlReader, EarlyStopping, EarlyStoppingCheck, EarlyStoppingConfig, GradNormMonitor,
    GradNormStats, LrChange, MetricMode, MinLr, MonitorConfig, NormEvent, PlateauConfig,
    ReduceLrOnPlateau, Snapshot, StopReason, ThresholdMode,
};

// The README's and the guide's examples compile as doctests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Every chapter of `docs/` with Rust snippets.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../docs/usage.md")]
    struct Usage;
    #[doc = include_str!("../docs/gradient-processing.md")]
    struct GradientProcessing;
    #[doc = include_str!("../docs/distributed.md")]
    struct Distributed;
    #[doc = include_str!("../docs/mixed-precision.md")]
    struct MixedPrecision;
    #[doc = include_str!("../docs/schedules.md")]
    struct Schedules;
    #[doc = include_str!("../docs/training.md")]
    struct Training;
    #[doc = include_str!("../docs/muon.md")]
    struct Muon;
    #[doc = include_str!("../docs/8bit.md")]
    struct EightBit;
    #[cfg(feature = "burn")]
    #[doc = include_str!("../docs/burn.md")]
    struct Burn;
}
