//! The built optimizer, [`Optimizer`]: its state buffers on the device and the pipelines and
//! bind groups that update them, split by concern: `build.rs` (validation, allocation, bind
//! groups), `dispatch.rs` (the pipelines of a step and their dispatches), `step.rs` (recording
//! a step, Schedule-Free's switch), `grad.rs` (gradient processing), `groups.rs`
//! (configurations and device schedules), `inspect.rs` (readbacks and counts),
//! `checkpoint.rs` (safetensors files), `muon.rs` (Muon groups' passes around a Newton-Schulz
//! batch), `muon_groups.rs` (their configurations, rates and state).

mod build;
mod checkpoint;
mod dispatch;
mod grad;
mod groups;
mod inspect;
mod muon;
mod muon_groups;
mod quant8;
mod step;

use std::sync::{Arc, Mutex};

use crate::dtype::Dtype;
use crate::gpu::{BufferRange, Context, Param};
use crate::grad::GradProcessing;
use crate::kernel::plan::{ControlMode, DevicePlan};
pub use crate::kernel::MASTER_PARAM;
use crate::kernel::{ControlOwners, KernelSpec, Storage};
use crate::optim::OptimizerConfig;
use crate::schedule::ScheduleTable;
use dispatch::{ChunkDispatch, Pipelines, TrustFold};
pub use muon::{muon_files, muon_source, MuonGroup, MuonMatrix, MuonTile, MUON};

/// How an optimizer stores what it keeps. The parameters' and gradients' types are those of
/// their ranges ([`BufferRange::typed`]); the math is f32 whatever the types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Precision {
    /// The states' storage type (`exp_avg`, `momentum_buffer`, ...). `None`, the default: the
    /// parameters' type, as PyTorch's `torch.zeros_like(param)`. `Some(Dtype::BF16)` with f32
    /// parameters halves the states' bytes (PyTorch's fused AdamW with bf16 moments, Optax's
    /// `mu_dtype`); `Some(Dtype::F32)` with 16-bit parameters keeps them in full precision.
    pub states: Option<Dtype>,
    /// Keep an f32 master copy of 16-bit parameters (Apex's O2, mixed-precision ZeRO): the
    /// step updates the copy (state `master_param`) and writes the parameters from it,
    /// rounded, in the same fused kernel. The copy starts as the parameters at the first step
    /// taken (so parameters written after the build are the ones it copies). Needs 16-bit
    /// parameters ([`Error::InvalidOptions`](crate::Error::InvalidOptions) otherwise).
    pub master_weights: bool,
    /// Round stores of bf16 parameters stochastically with this seed instead of to nearest
    /// even (torchao's `bf16_stochastic_round`): updates far below half a bf16 ulp still move
    /// the parameters on average. Reproducible: the random bits are a hash of (seed, step,
    /// tensor, element index), the same for any layout, mirrored by
    /// [`reference::Optimizer`](crate::reference::Optimizer). Needs bf16 parameters without
    /// master weights (f16 keeps 3 more bits and has master weights for this; f32 needs
    /// neither).
    pub stochastic_rounding: Option<u64>,
    /// Keep the states as 8-bit block-quantized codes (torchao's `Adam8bit`/`AdamW8bit`,
    /// bitsandbytes' `SGD8bit` and `Lion8bit`): a byte per element and an f32 scale per block
    /// of 256, about 1.02 bytes per state instead of 4 (docs/8bit.md). Adam, AdamW (AMSGrad
    /// included), SGD with momentum and Lion ([`Error::Quantized`](crate::Error::Quantized)
    /// for the others), for the tensors torchao quantizes (at least 4096 elements in whole
    /// blocks: [`quantizes`](crate::quant::quantizes)); the others keep f32 states, in the same
    /// optimizer and step. Any parameter type, master weights and stochastic rounding as with
    /// other states; not with [`Precision::states`].
    pub eight_bit_states: bool,
}

impl Precision {
    /// With 8-bit block-quantized states.
    pub fn with_8bit_states(mut self) -> Self {
        self.eight_bit_states = true;
        self
    }

    /// States stored as `dtype`. f16 is refused
    /// ([`Error::UnsupportedDtype`](crate::Error::UnsupportedDtype)) for an
    /// optimizer that keeps squared gradients ([`SQUARED_STATES`](crate::SQUARED_STATES):
    /// Adam's `exp_avg_sq` and the like): f16's largest value, 65504, is the square of a
    /// gradient of 256, and a moment that overflows stays inf (the parameter never moves
    /// again). bf16 has f32's range; Optax's `mu_dtype` likewise narrows the first moment only.
    pub fn with_states(mut self, dtype: Dtype) -> Self {
        self.states = Some(dtype);
        self
    }

    /// With an f32 master copy of the 16-bit parameters.
    pub fn with_master_weights(mut self) -> Self {
        self.master_weights = true;
        self
    }

    /// With stochastic rounding of bf16 parameters, seeded with `seed`.
    pub fn with_stochastic_rounding(mut self, seed: u64) -> Self {
        self.stochastic_rounding = Some(seed);
        self
    }
}

/// A parameter group (PyTorch's `param_groups` entry): tensors sharing hyperparameters.
/// [`MuonGroup`] is the entry of a group stepped by Muon.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// Their configuration. Every group of one optimizer has the same algorithm and
    /// structural options; the values may differ.
    pub config: OptimizerConfig,
    /// Their tensors.
    pub params: Vec<Param>,
}

/// The state buffers of one span (or a tensor's ranges of them): one per state, and the
/// master copy's. With 8-bit states, `states` is empty and `quant` holds them.
#[derive(Clone)]
struct SpanStates {
    states: Vec<BufferRange>,
    master: Option<BufferRange>,
    // One per state: its parts, one per chunk the tensor lies in (a span's: its buffers whole).
    quant: Vec<Vec<QuantState>>,
}

/// A part of one 8-bit state (of a span: all of it): its codes (bytes `[offset, offset + len)`
/// of `codes`, a byte per element) and its block scales (one f32 per block). A span's two
/// buffers hold every state's: each chunk's codes and scales in regions of their own
/// (`plan::QuantRegions`), each region the kept states' one after another (see
/// `allocate_states`), element `x` of a chunk at byte `x` of a state's codes, its block at
/// entry `x / 256` of its scales. A tensor longer than a chunk has a part in each of its
/// chunks, cut at a block's edge.
#[derive(Clone)]
struct QuantState {
    codes: wgpu::Buffer,
    offset: u64,
    len: u64,
    scales: BufferRange,
}

/// What the optimizer keeps of one tensor.
struct TensorState {
    param: Param,
    group: usize,
    // One range per entry of `KernelSpec::states`, in the span's state buffers.
    states: Vec<BufferRange>,
    // The f32 master copy of 16-bit parameters, with master weights.
    master: Option<BufferRange>,
    // With 8-bit states, one per entry of `KernelSpec::states` (and `states` is empty): the
    // state's parts, one per chunk the tensor lies in, in order.
    quant: Vec<Vec<QuantState>>,
}

/// A built optimizer: its state buffers on the device and the pipelines and bind groups that
/// update them. [`Optimizer::step`] records a step into the caller's command encoder.
///
/// Build one from any configuration, e.g. [`AdamWConfig::build`](crate::AdamWConfig::build).
/// The step counter lives on the device, as PyTorch's `capturable=True`: bias corrections are
/// derived from it there, so a step skipped on the device can never make them drift.
///
/// Gradient processing (loss-scale unscaling, inf/NaN skip, clipping by value and by global
/// norm, dynamic loss scaling) is off until [`Optimizer::set_grad_processing`].
pub struct Optimizer {
    ctx: Context,
    // One configuration per parameter group; `spec` is group 0's (all share its structure).
    configs: Vec<OptimizerConfig>,
    spec: KernelSpec,
    storage: Storage,
    pipelines: Pipelines,
    control: wgpu::Buffer,
    // One record per parameter group: `hyper`, `derived`, `running` (see `GroupRecord`).
    groups: wgpu::Buffer,
    prologue: wgpu::BindGroup,
    tensors: Vec<TensorState>,
    // Spans, chunks and the segment table; the update and the gradient reduction walk it.
    plan: DevicePlan,
    dispatches: Vec<ChunkDispatch>,
    grad: Option<GradProcessing>,
    // A caller's buffer for the norm stats (data parallel); an internal one when `None`.
    norm_stats: Option<BufferRange>,
    // One control block for every group, or one per group (a population).
    control_mode: ControlMode,
    // Schedule-Free's update pipelines that move the parameters to x (eval) and back to y
    // (train); `None` for other optimizers.
    modes: Option<[Pipelines; 2]>,
    // Which control-block words each block's gradient processing owns as state, shared with
    // snapshots so that a restore leaves the words of the configuration in force alone.
    control_owners: Arc<Mutex<Vec<ControlOwners>>>,
    // The schedule the device follows on its own, if any (`set_schedule`).
    schedule: Option<ScheduleTable>,
    // LAMB's and LARS's fold of per-tensor norms into trust ratios; `None` for other kernels
    // and when no tensor has an element.
    trust_fold: Option<TrustFold>,
    // The Muon groups (`Optimizer::with_muon`), numbered after the element-wise groups and
    // their tensors after the element-wise tensors; `None` without any.
    muon: Option<muon::MuonPart>,
}

impl Optimizer {
    /// The context the optimizer was built on.
    pub fn context(&self) -> &Context {
        &self.ctx
    }
}
