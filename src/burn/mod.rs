//! Burn models trained with this crate's fused optimizers (feature `burn`, Burn 0.22.1 on its
//! wgpu backend).
//!
//! Burn and this crate share one `wgpu::Device` and `Queue` ([`SharedDevice`]). A
//! [`FusedOptimizer`] has the call shape of Burn's `ModuleOptimizer`: a training loop changes
//! the line that builds its optimizer and nothing else.
//!
//! ```no_run
//! # use burn::{module::Module, optim::GradientsParams, tensor::Tensor};
//! use wgpu_optim::burn::{FusedOptimizer, SharedDevice};
//! use wgpu_optim::{AdamWConfig, GradConfig};
//!
//! # fn model_on<M>(_: &burn::tensor::Device) -> M { unimplemented!() }
//! # fn loss<M>(_: &M) -> Tensor<1> { unimplemented!() }
//! # fn demo<M: Module + 'static>() -> Result<(), Box<dyn std::error::Error>> {
//! let shared = SharedDevice::new_blocking()?;       // Burn's device and our Context, one wgpu device
//! let mut model: M = model_on(&shared.device().clone().autodiff());
//! let mut optim = FusedOptimizer::new(&shared, AdamWConfig::default().with_weight_decay(1e-2))
//!     .with_group(|p| p.rank() == 1, AdamWConfig::default().with_weight_decay(0.0)) // biases, norms
//!     .with_grad(GradConfig::default().with_max_norm(1.0)); // global clip; inf/NaN skip
//! for step in 0..1000 {
//!     let grads = GradientsParams::from_grads(loss(&model).backward(), &model);
//!     model = optim.step(1e-3, model, grads)?;         // was: burn's optim.step(lr, model, grads)
//! }
//! # Ok(()) }
//! ```
//!
//! # What a step does
//!
//! Every float parameter that had a gradient at the first step is one tensor of an
//! [`Arena`](crate::Arena) the optimizer builds then, in the module's order (grouped), so that
//! the whole model is updated in one dispatch per binding-size chunk, whatever the number of
//! tensors. Burn keeps each tensor in a buffer range of its own pool, and its gradients are new
//! allocations every step, so a step:
//!
//! 1. walks the module, takes each parameter's gradient out of the `GradientsParams`, and
//!    resolves it through Burn's fusion stream to the `(wgpu::Buffer, offset)` CubeCL keeps it
//!    in (this runs and submits Burn's pending work on it: the backward pass);
//! 2. records, in one command encoder: a copy of each gradient into the arena, the fused
//!    update (gradient processing included), and a copy of each updated parameter back into
//!    Burn's buffer; and submits it on the shared queue, before any later Burn work.
//!
//! No value comes back to the host. Per step that is two buffer copies a tensor (the gradient
//! in, the parameter out: 8 bytes an f32 element on top of the update's own traffic), where
//! binding Burn's buffers directly would cost one dispatch a tensor (BENCHMARKS.md measures
//! both sides). The parameter is copied *in* only when its Burn tensor is not the one the
//! optimizer wrote last: between steps the optimizer holds a handle of each parameter, so that
//! Burn can neither write it in place nor free or move its memory, and any new value (a loaded
//! record, an edit) is a new tensor, which the next step copies in (and, with f32 master
//! weights, widens into the master copy on the device).
//!
//! # Burn's memory pool
//!
//! CubeCL may move live allocations to other pages (`Device::memory_cleanup`, memory
//! pressure). Parameters cannot move while the optimizer holds them (CubeCL pins a resource it
//! has handed out); gradients are resolved afresh every step. A tensor whose buffer range moved
//! is therefore always read and written where it is now (`tests/burn.rs` tests both).
//!
//! # Ordering on the shared queue
//!
//! Burn's work on a tensor is submitted when the step resolves it; the step's command buffer is
//! submitted before `step` returns; Burn's later work (the next forward pass) is submitted after
//! it on the same queue. Work of your own on the shared queue between Burn's and the step needs
//! `device.flush()` first, as Burn's wgpu module says.
//!
//! # What is refused
//!
//! A parameter on another device or backend, a gradient missing for a parameter that had one at
//! the first step (Burn would leave that parameter and its state alone; a fused step cannot, so
//! the whole step is refused and nothing changes), a gradient for a parameter that had none at
//! the first step, a shape that changed, a dtype this crate does not store (f64, quantized), a
//! non-contiguous tensor: each is a [`BurnError`] inside [`Error::Burn`](crate::Error::Burn),
//! returned before anything is recorded, with the module handed back ([`StepError`]). Rank-0
//! parameters are one-element tensors; integer and boolean parameters are left alone, as
//! Burn's optimizers leave them.

mod optimizer;
mod record;
mod tensors;

use ::burn::module::ParamId;
use ::burn::tensor::wgpu::{MemoryConfiguration, WgpuSetup};
use ::burn::tensor::{DType, Device};

pub use crate::error::BurnError;
pub use optimizer::{FusedOptimizer, StepError, StepStats, DIRECT_MIN_ELEMENTS};

use crate::error::Result;
use crate::gpu::{Context, ContextOptions};

/// What a group predicate of [`FusedOptimizer::with_group`] sees of a parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// Burn's id of the parameter (what its records are keyed by).
    pub id: ParamId,
    /// Its path in the module, field names joined by `.` (`layers.0.bias`), as Burn's
    /// `ModuleOptimizer` and `ParamGroup` name it.
    pub path: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its Burn dtype.
    pub dtype: DType,
}

impl ParamInfo {
    /// The number of dimensions (1 for a bias or a norm's weight, 2 for a linear layer's).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a parameter without elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A Burn device and a [`Context`] on one `wgpu::Device` and `Queue`: Burn's tensors and this
/// crate's optimizers on the same device, sharing one queue.
///
/// Create it with [`SharedDevice::request`] (this crate picks the adapter, as
/// [`Context::request`] does, and registers the device with Burn), from a context of
/// [`Context::request`] with [`SharedDevice::from_context`], or from the device Burn created with
/// `Device::wgpu_options().init_with_setup()` with [`SharedDevice::from_setup`]. Burn cannot
/// give out the wgpu handles of a device it created otherwise, or already uses.
#[derive(Clone)]
pub struct SharedDevice {
    device: Device,
    context: Context,
}

impl SharedDevice {
    /// Picks an adapter as [`Context::request`] does (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, ...),
    /// creates a device with every feature the adapter has (as Burn's runtime does for its
    /// own), and registers it with Burn, with Burn's default memory pool.
    pub async fn request(options: &ContextOptions) -> Result<Self> {
        let options = ContextOptions {
            all_features: true,
            ..options.clone()
        };
        Self::from_context(&Context::request(&options).await?)
    }

    /// [`SharedDevice::request`] with the default options, blocking.
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::request(&ContextOptions::default()))
    }

    /// Registers the device of `context` (of [`Context::request`] with `all_features`) with
    /// Burn, with Burn's default memory pool.
    pub fn from_context(context: &Context) -> Result<Self> {
        Self::register(context, None)
    }

    /// [`SharedDevice::from_context`] with a memory pool of Burn's choice
    /// (`MemoryConfiguration::ExclusivePages`: one buffer an allocation).
    pub fn from_context_with_memory(
        context: &Context,
        memory: MemoryConfiguration,
    ) -> Result<Self> {
        Self::register(context, Some(memory))
    }

    fn register(context: &Context, memory: Option<MemoryConfiguration>) -> Result<Self> {
        let (instance, adapter) = context.instance_and_adapter().ok_or(BurnError::NoAdapter)?;
        let wanted = adapter.features() - wgpu::Features::MAPPABLE_PRIMARY_BUFFERS;
        let missing = wanted - context.device().features();
        if !missing.is_empty() {
            return Err(BurnError::MissingFeatures { missing }.into());
        }
        let setup = WgpuSetup {
            instance: instance.clone(),
            adapter: adapter.clone(),
            device: context.device().clone(),
            queue: context.queue().clone(),
            backend: adapter.get_info().backend,
        };
        let mut options = Device::wgpu_options().setup(setup);
        if let Some(memory) = memory {
            options = options.memory_config(memory);
        }
        let device = options.init().map_err(|e| BurnError::Init(e.to_string()))?;
        Ok(SharedDevice {
            device,
            context: context.clone(),
        })
    }

    /// Shares the device Burn created: `(device, setup)` as
    /// `Device::wgpu_options().init_with_setup()` returns them.
    pub fn from_setup(device: Device, setup: &WgpuSetup) -> Self {
        let context = Context::from_parts(
            setup.instance.clone(),
            setup.adapter.clone(),
            setup.device.clone(),
            setup.queue.clone(),
        );
        SharedDevice { device, context }
    }

    /// Burn's device (without autodiff: `device().clone().autodiff()` for a model to train).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// This crate's context of the same wgpu device.
    pub fn context(&self) -> &Context {
        &self.context
    }
}
