//! The optimizers: one file per optimizer for its configuration and hyperparameter struct,
//! and here the runtime they share ([`Optimizer`]): state buffers, chunked bind groups and the
//! recording of a step.

mod adabelief;
mod adagrad;
mod adam;
mod adamw;
mod lion;
mod rmsprop;
mod sgd;

pub use adabelief::{AdaBeliefConfig, AdaBeliefOptions};
pub use adagrad::{AdagradConfig, AdagradHyper, AdagradOptions};
pub use adam::{AdamConfig, AdamHyper, AdamOptions};
pub use adamw::AdamWConfig;
pub use lion::{LionConfig, LionHyper, LionOptions};
pub use rmsprop::{RmsPropConfig, RmsPropHyper, RmsPropOptions};
pub use sgd::{SgdConfig, SgdHyper, SgdOptions};

use crate::arena::{self, Segment};
use crate::clip::{GradConfig, GradProcessing, NormStats};
use crate::context::{bind_group, capture_errors, Context, KernelPipelines};
use crate::error::{Error, Result};
use crate::layout::Control;
use crate::shaders::{ElementLayout, Kernel};
use crate::tensor::{BufferRange, Param};
use std::sync::Arc;

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
    RmsPropConfig { lr, alpha, eps, weight_decay, momentum, centered, maximize, eps_in_sqrt }
    AdamConfig {
        lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay,
        amsgrad_bias_corrected, eps_root,
    }
    AdamWConfig { lr, beta1, beta2, eps, weight_decay, amsgrad, maximize }
    AdaBeliefConfig {
        lr, beta1, beta2, eps, weight_decay, amsgrad, weight_decouple, fixed_decay, eps_root,
    }
    LionConfig { lr, beta1, beta2, weight_decay, maximize }
}

/// Calls `$body` with `$c` bound to the config inside any [`OptimizerConfig`].
macro_rules! each_config {
    ($config:expr, $c:ident => $body:expr) => {
        match $config {
            OptimizerConfig::Sgd($c) => $body,
            OptimizerConfig::Adagrad($c) => $body,
            OptimizerConfig::RmsProp($c) => $body,
            OptimizerConfig::Adam($c) => $body,
            OptimizerConfig::AdamW($c) => $body,
            OptimizerConfig::AdaBelief($c) => $body,
            OptimizerConfig::Lion($c) => $body,
        }
    };
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

/// Any optimizer's configuration: the input of [`Optimizer`] and of
/// [`reference::Optimizer`](crate::reference::Optimizer).
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`
    Sgd(SgdConfig),
    /// `torch.optim.Adagrad`
    Adagrad(AdagradConfig),
    /// `torch.optim.RMSprop`
    RmsProp(RmsPropConfig),
    /// `torch.optim.Adam`
    Adam(AdamConfig),
    /// `torch.optim.AdamW`
    AdamW(AdamWConfig),
    /// adabelief-pytorch's `AdaBelief` with `rectify=False`
    AdaBelief(AdaBeliefConfig),
    /// Lion (lion-pytorch, `optax.lion`)
    Lion(LionConfig),
}

/// A state buffer an optimizer keeps per tensor, named as in PyTorch's `state_dict`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateSpec {
    /// PyTorch's name: `exp_avg`, `momentum_buffer`, ...
    pub name: &'static str,
    /// The WGSL binding it fills: `state0`, `state1` or `state2`.
    pub slot: usize,
    /// Its value before the first step.
    pub init: f32,
}

/// What the device needs to run one configuration: kernel, structural options, state buffers
/// and the bytes of its hyperparameter struct.
#[derive(Clone, Debug)]
pub(crate) struct KernelSpec {
    pub kernel: Kernel,
    pub overrides: Vec<(&'static str, bool)>,
    pub states: Vec<StateSpec>,
    pub hyper: Vec<u8>,
}

impl KernelSpec {
    /// The same kernel, structural options and states: only hyperparameter values may differ.
    pub fn same_structure(&self, other: &KernelSpec) -> bool {
        self.kernel == other.kernel
            && self.overrides == other.overrides
            && self.states == other.states
    }

    pub fn new<H: bytemuck::Pod>(
        kernel: Kernel,
        overrides: Vec<(&'static str, bool)>,
        states: Vec<StateSpec>,
        hyper: &H,
    ) -> Self {
        KernelSpec {
            kernel,
            overrides,
            states,
            hyper: bytemuck::bytes_of(hyper).to_vec(),
        }
    }
}

impl OptimizerConfig {
    /// The optimizer's name, as PyTorch's class name.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "SGD",
            OptimizerConfig::Adagrad(_) => "Adagrad",
            OptimizerConfig::RmsProp(_) => "RMSprop",
            OptimizerConfig::Adam(_) => "Adam",
            OptimizerConfig::AdamW(_) => "AdamW",
            OptimizerConfig::AdaBelief(_) => "AdaBelief",
            OptimizerConfig::Lion(_) => "Lion",
        }
    }

    /// Refuses hyperparameters PyTorch refuses, and non-finite ones.
    pub fn validate(&self) -> Result<()> {
        self.spec().map(|_| ())
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        each_config!(self, c => c.lr)
    }

    /// The same configuration with another learning rate.
    pub fn with_lr(&self, lr: f64) -> Self {
        let mut config = self.clone();
        each_config!(&mut config, c => c.lr = lr);
        config
    }

    /// The same configuration with its momentum set to `momentum`: SGD's and RMSprop's
    /// `momentum`, the Adam family's and Lion's `beta1`, as PyTorch's `OneCycleLR` cycles
    /// them (see [`OneCycle::momentum`](crate::OneCycle::momentum)). Adagrad has none:
    /// [`Error::InvalidOptions`], as PyTorch raises.
    pub fn with_cycled_momentum(&self, momentum: f64) -> Result<Self> {
        let mut config = self.clone();
        match &mut config {
            OptimizerConfig::Sgd(c) => c.momentum = momentum,
            OptimizerConfig::RmsProp(c) => c.momentum = momentum,
            OptimizerConfig::Adam(c) => c.beta1 = momentum,
            OptimizerConfig::AdamW(c) => c.beta1 = momentum,
            OptimizerConfig::AdaBelief(c) => c.beta1 = momentum,
            OptimizerConfig::Lion(c) => c.beta1 = momentum,
            OptimizerConfig::Adagrad(_) => {
                return Err(Error::InvalidOptions(
                    "Adagrad has no momentum or beta1 to cycle",
                ))
            }
        }
        Ok(config)
    }

    /// The state buffers kept per tensor, in slot order.
    pub fn states(&self) -> Result<Vec<StateSpec>> {
        Ok(self.spec()?.states)
    }

    /// Validates and lowers the configuration to what the kernel needs.
    pub(crate) fn spec(&self) -> Result<KernelSpec> {
        match self {
            OptimizerConfig::Sgd(c) => c.spec(),
            OptimizerConfig::Adagrad(c) => c.spec(),
            OptimizerConfig::RmsProp(c) => c.spec(),
            OptimizerConfig::Adam(c) => c.spec(),
            OptimizerConfig::AdamW(c) => c.to_adam().spec(),
            OptimizerConfig::AdaBelief(c) => c.spec(),
            OptimizerConfig::Lion(c) => c.spec(),
        }
    }

    /// Builds the optimizer for `params` on `ctx`: see [`Optimizer::new`].
    pub fn build(&self, ctx: &Context, params: &[Param]) -> Result<Optimizer> {
        Optimizer::new(ctx, self.clone(), params)
    }
}

/// Declares `with_<field>` builders, each setting one field of a config and returning it.
macro_rules! setters {
    ($config:ty; $($(#[$doc:meta])* $name:ident($field:ident: $ty:ty);)*) => {
        impl $config {
            $(
                $(#[$doc])*
                pub fn $name(mut self, $field: $ty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}
pub(crate) use setters;

/// `value` must be finite and at least 0 (PyTorch: `if not 0.0 <= value: raise ValueError`).
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            expected: "a finite value >= 0",
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

/// ln(beta) for the device's bias correction, computed in f64 and rounded once.
pub(crate) fn ln(beta: f64) -> f32 {
    beta.ln() as f32
}

/// One update dispatch: a binding-size chunk of a span and its segment table.
struct Chunk {
    bind_group: wgpu::BindGroup,
    workgroups: (u32, u32),
    layout: ElementLayout,
}

struct TensorState {
    param: Param,
    group: usize,
    // One range per entry of `KernelSpec::states`, in the span's state buffers.
    states: Vec<BufferRange>,
}

/// A parameter group (PyTorch's `param_groups` entry): tensors sharing hyperparameters.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// Their configuration. Every group of one optimizer has the same algorithm and
    /// structural options; the values may differ.
    pub config: OptimizerConfig,
    /// Their tensors.
    pub params: Vec<Param>,
}

/// A built optimizer: its state buffers on the device and the pipelines and bind groups that
/// update them. [`Optimizer::step`] records a step into the caller's command encoder.
///
/// Build one from any configuration, e.g. [`AdamWConfig::build`]. The step counter lives on
/// the device, as PyTorch's `capturable=True`: bias corrections are derived from it there, so
/// a step skipped on the device can never make them drift.
///
/// Gradient processing (loss-scale unscaling, inf/NaN skip, clipping by value and by global
/// norm, dynamic loss scaling) is off until [`Optimizer::set_grad_processing`].
pub struct Optimizer {
    ctx: Context,
    // One configuration per parameter group; `spec` is group 0's (all share its structure).
    configs: Vec<OptimizerConfig>,
    spec: KernelSpec,
    // The vec4 layout's pipelines (and the prologue); the scalar layout's only where a chunk
    // needs them.
    pipelines: Arc<KernelPipelines>,
    scalar_pipelines: Option<Arc<KernelPipelines>>,
    control: wgpu::Buffer,
    hyper: wgpu::Buffer,
    prologue: wgpu::BindGroup,
    tensors: Vec<TensorState>,
    chunks: Vec<Chunk>,
    // Kept alive for the bind groups.
    _segments: Option<wgpu::Buffer>,
    grad: Option<GradProcessing>,
    // A caller's buffer for the norm stats (data parallel); an internal one when `None`.
    norm_stats: Option<BufferRange>,
}

impl Optimizer {
    /// Validates everything (hyperparameters, lengths, usages, alignment, overlap), then
    /// allocates the state buffers, builds or reuses the pipelines and prepares the bind
    /// groups and segment tables of every dispatch.
    ///
    /// Tensors sharing a param buffer and a grad buffer at the same relative offsets (an
    /// [`Arena`](crate::Arena)'s) are updated together, one dispatch per binding-size chunk;
    /// a tensor in buffers of its own gets its own. Tensors longer than one storage binding
    /// (`max_storage_buffer_binding_size`) are split into chunks bound at aligned offsets. A
    /// tensor of length 0 is kept and never dispatched.
    pub fn new(ctx: &Context, config: OptimizerConfig, params: &[Param]) -> Result<Self> {
        Self::with_groups(
            ctx,
            vec![ParamGroup {
                config,
                params: params.to_vec(),
            }],
        )
    }

    /// An optimizer over parameter groups with their own hyperparameters, as PyTorch's
    /// `param_groups` (say, no weight decay for biases and norm weights). Tensors are numbered
    /// across groups in order, as in PyTorch's `state_dict`. The groups must share the
    /// algorithm and structural options ([`Error::StructuralChange`] otherwise).
    pub fn with_groups(ctx: &Context, groups: Vec<ParamGroup>) -> Result<Self> {
        let first = groups.first().ok_or(Error::InvalidOptions(
            "an optimizer needs at least one parameter group",
        ))?;
        let spec = first.config.spec()?;
        let mut hyper = Vec::new();
        for group in &groups {
            let group_spec = group.config.spec()?;
            if !group_spec.same_structure(&spec)
                || std::mem::discriminant(&group.config) != std::mem::discriminant(&first.config)
            {
                return Err(Error::StructuralChange(first.config.name()));
            }
            hyper.extend_from_slice(&group_spec.hyper);
        }
        let params: Vec<Param> = groups.iter().flat_map(|g| g.params.clone()).collect();
        let tensor_groups: Vec<u32> = groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| std::iter::repeat_n(g as u32, group.params.len()))
            .collect();
        let device = ctx.device();
        for (index, param) in params.iter().enumerate() {
            param.check(index, device)?;
        }
        arena::check_disjoint(&params)?;
        let pipelines = ctx.pipelines(spec.kernel, &spec.overrides, ElementLayout::Vec4)?;
        let configs = groups.into_iter().map(|g| g.config).collect();
        capture_errors(device, || {
            Self::create(
                ctx,
                configs,
                spec,
                &hyper,
                pipelines,
                &params,
                &tensor_groups,
            )
        })?
    }

    fn create(
        ctx: &Context,
        configs: Vec<OptimizerConfig>,
        spec: KernelSpec,
        hyper: &[u8],
        pipelines: Arc<KernelPipelines>,
        params: &[Param],
        tensor_groups: &[u32],
    ) -> Result<Self> {
        use wgpu::util::DeviceExt;
        let device = ctx.device();
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let control = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-optim control"),
            contents: bytemuck::bytes_of(&Control::INITIAL),
            usage,
        });
        let hyper = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-optim hyper"),
            contents: hyper,
            usage,
        });
        let prologue = bind_group(
            device,
            "wgpu-optim prologue",
            &pipelines.prologue_layout,
            &[
                (0, control.as_entire_binding()),
                (1, hyper.as_entire_binding()),
            ],
        );

        // State buffers: one per state and span, laid out as the span's params and padded to
        // whole vec4s. A tensor of length 0 gets empty ranges.
        let state_buffer = |state: &StateSpec, len: u64| {
            let init = vec![state.init; len.next_multiple_of(4).max(1) as usize];
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(state.name),
                contents: bytemuck::cast_slice(&init),
                usage,
            })
        };
        let spans = arena::spans(params);
        // Tensors of length 0 belong to no span: they share empty ranges of one tiny buffer.
        let empty: Vec<BufferRange> = spec
            .states
            .iter()
            .map(|s| BufferRange::new(&state_buffer(s, 0), 0, 0))
            .collect();
        let mut tensor_states: Vec<Vec<BufferRange>> = vec![empty; params.len()];
        let span_states: Vec<Vec<BufferRange>> = spans
            .iter()
            .map(|span| {
                let states: Vec<BufferRange> = spec
                    .states
                    .iter()
                    .map(|s| {
                        BufferRange::new(&state_buffer(s, span.param.len()), 0, span.param.len())
                    })
                    .collect();
                for &i in &span.tensors {
                    let offset = span.offset_of(&params[i]);
                    tensor_states[i] = states
                        .iter()
                        .map(|s| s.slice(offset, params[i].len()))
                        .collect();
                }
                states
            })
            .collect();

        // Every chunk's segments go into one table, each chunk's slice at an aligned offset.
        let tile = ctx.update_tile();
        let chunk_len = ctx.max_chunk_len();
        let plans: Vec<(usize, arena::ChunkPlan)> = spans
            .iter()
            .enumerate()
            .flat_map(|(n, span)| {
                arena::chunk_plans(span, params, tensor_groups, chunk_len, tile)
                    .into_iter()
                    .map(move |plan| (n, plan))
            })
            .filter(|(_, plan)| !plan.segments.is_empty())
            .collect();
        let align = u64::from(device.limits().min_storage_buffer_offset_alignment);
        let segment_size = std::mem::size_of::<Segment>() as u64;
        let mut table: Vec<u8> = Vec::new();
        let mut slices = Vec::new();
        for (_, plan) in &plans {
            let offset = table.len() as u64;
            table.extend_from_slice(bytemuck::cast_slice(&plan.segments));
            slices.push((offset, plan.segments.len() as u64 * segment_size));
            table.resize(table.len().div_ceil(align as usize) * align as usize, 0);
        }
        let segments = (!table.is_empty()).then(|| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-optim segments"),
                contents: &table,
                usage: wgpu::BufferUsages::STORAGE,
            })
        });
        let max_x = ctx.max_workgroups();
        let max_binding = device.limits().max_storage_buffer_binding_size;
        let mut scalar_pipelines = None;
        let mut chunks = Vec::with_capacity(plans.len());
        for ((n, plan), &(offset, size)) in plans.iter().zip(&slices) {
            let span = &spans[*n];
            // The vec4 layout binds whole vec4s: every segment must start on one, and each
            // binding must extend to the chunk's last whole vec4 (state buffers are padded).
            let padded = plan.len.next_multiple_of(4);
            let vec4 = plan.segments.iter().all(|s| s.start % 4 == 0)
                && plan.offset % 4 == 0
                && padded * 4 <= max_binding
                && [&span.param, &span.grad].iter().all(|r| {
                    let range = r.slice(plan.offset, padded);
                    range.offset() % 16 == 0 && range.end() <= range.buffer().size()
                });
            let (layout, len, chunk_pipelines) = if vec4 {
                (ElementLayout::Vec4, padded, &pipelines)
            } else {
                let scalar = match &mut scalar_pipelines {
                    Some(scalar) => scalar,
                    None => scalar_pipelines.insert(ctx.pipelines(
                        spec.kernel,
                        &spec.overrides,
                        ElementLayout::Scalar,
                    )?),
                };
                (ElementLayout::Scalar, plan.len, &*scalar)
            };
            let param = span.param.slice(plan.offset, len);
            let grad = span.grad.slice(plan.offset, len);
            let mut entries = vec![
                (0, control.as_entire_binding()),
                (1, hyper.as_entire_binding()),
                (2, param.binding()),
                (3, grad.binding()),
                (
                    7,
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: segments.as_ref().expect("a table for every chunk"),
                        offset,
                        size: std::num::NonZeroU64::new(size),
                    }),
                ),
            ];
            let states: Vec<BufferRange> = span_states[*n]
                .iter()
                .map(|s| s.slice(plan.offset, len))
                .collect();
            for slot in 0..spec.kernel.state_slots() {
                let resource = match spec.states.iter().position(|s| s.slot == slot) {
                    Some(i) => states[i].binding(),
                    None => ctx.placeholder(slot).as_entire_binding(),
                };
                entries.push((4 + slot as u32, resource));
            }
            let count = plan.segments.len() as u64;
            let x = count.min(max_x);
            chunks.push(Chunk {
                bind_group: bind_group(
                    device,
                    "wgpu-optim update",
                    &chunk_pipelines.update_layout,
                    &entries,
                ),
                workgroups: (x as u32, count.div_ceil(x) as u32),
                layout,
            });
        }
        let tensors = params
            .iter()
            .zip(tensor_states)
            .zip(tensor_groups)
            .map(|((param, states), &group)| TensorState {
                param: param.clone(),
                group: group as usize,
                states,
            })
            .collect();
        Ok(Optimizer {
            ctx: ctx.clone(),
            configs,
            spec,
            pipelines,
            scalar_pipelines,
            control,
            hyper,
            prologue,
            tensors,
            chunks,
            _segments: segments,
            grad: None,
            norm_stats: None,
        })
    }

    /// Turns gradient processing on with `config` (replacing any before), or off with `None`.
    /// Its buffers are allocated here, never in a step. It applies to the steps recorded after
    /// this call; its buffer writes (bound, loss scale) land at the next submit, so submit the
    /// steps recorded before the call first.
    ///
    /// Without gradient processing, steps use gradients as they are and never skip: the
    /// gradient fields of the control block are not read (and a halt of `error_if_nonfinite`
    /// is cleared). The loss scale is set to `init_scale` when a scaler is turned on or its
    /// `init_scale` changes, and to 1 without a scaler; otherwise the scale and growth tracker
    /// carry on. A refused configuration leaves the one in force unchanged.
    pub fn set_grad_processing(&mut self, config: Option<GradConfig>) -> Result<()> {
        let Some(config) = config else {
            self.grad = None;
            self.write_control("nonfinite_step", &0_u32);
            return Ok(());
        };
        config.validate()?;
        let stats = match &self.norm_stats {
            Some(range) => range.clone(),
            None => {
                let buffer = self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgpu-optim norm stats"),
                    size: std::mem::size_of::<NormStats>() as u64,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                BufferRange::whole(&buffer)
            }
        };
        let params: Vec<Param> = self.params().cloned().collect();
        let processing = GradProcessing::new(&self.ctx, config, &params, &self.control, &stats)?;
        let config = &processing.config;
        if config.resets_scale(self.grad_processing()) {
            self.write_control("grad_scale", &config.init_scale_f32());
            self.write_control("growth_tracker", &0_u32);
        }
        self.write_control("clip_value", &config.clip_value_f32());
        self.grad = Some(processing);
        Ok(())
    }

    /// The gradient processing in force, if any.
    pub fn grad_processing(&self) -> Option<&GradConfig> {
        self.grad.as_ref().map(|g| &g.config)
    }

    /// Makes [`Optimizer::record_grad_stats`] write this device's [`NormStats`] into `range`
    /// (2 f32, `STORAGE` usage, at an aligned offset) and [`Optimizer::record_update`] read
    /// them from there: the buffer a data-parallel caller all-reduces between the two.
    pub fn set_norm_stats_buffer(&mut self, range: BufferRange) -> Result<()> {
        let expected = std::mem::size_of::<NormStats>() / 4;
        if range.len() != expected as u64 {
            return Err(Error::WrongLength {
                what: "norm stats buffer",
                expected,
                actual: range.len() as usize,
            });
        }
        let alignment = self
            .ctx
            .device()
            .limits()
            .min_storage_buffer_offset_alignment;
        range.check(0, "norm stats", alignment, wgpu::BufferUsages::STORAGE)?;
        let previous = self.norm_stats.replace(range);
        if let Some(config) = self.grad_processing().cloned() {
            if let Err(e) = self.set_grad_processing(Some(config)) {
                self.norm_stats = previous;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Records, in one compute pass, the whole step: gradient processing when it is on (the
    /// norm reduction and its finalize), then the prologue and the update. Nothing is
    /// submitted, polled or read back.
    pub fn step(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = Self::begin(encoder);
        if let Some(grad) = &self.grad {
            grad.record_stats(&mut pass);
        }
        self.record_update_into(&mut pass);
    }

    /// The first half of a data-parallel step: reduces this device's gradients into its
    /// [`NormStats`] buffer (see [`Optimizer::set_norm_stats_buffer`]), for the caller to
    /// all-reduce across devices before [`Optimizer::record_update`].
    pub fn record_grad_stats(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        let grad = self.grad.as_ref().ok_or(Error::NoGradProcessing)?;
        grad.record_stats(&mut Self::begin(encoder));
        Ok(())
    }

    /// The second half of a data-parallel step: derives the global norm, clip coefficient,
    /// skip flag and loss scale from the (all-reduced) [`NormStats`] buffer, then records the
    /// prologue and the update. Without gradient processing it is the whole step.
    pub fn record_update(&self, encoder: &mut wgpu::CommandEncoder) {
        self.record_update_into(&mut Self::begin(encoder));
    }

    fn begin(encoder: &mut wgpu::CommandEncoder) -> wgpu::ComputePass<'_> {
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-optim step"),
            timestamp_writes: None,
        })
    }

    // The finalize (with gradient processing), the prologue (advance the step counter, derive
    // per-step scalars) and one update dispatch per chunk of each tensor.
    fn record_update_into(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Some(grad) = &self.grad {
            grad.record_finalize(pass);
        }
        let variant = usize::from(self.grad.is_some());
        pass.set_pipeline(&self.pipelines.prologue[variant]);
        pass.set_bind_group(0, &self.prologue, &[]);
        pass.dispatch_workgroups(1, 1, 1);
        let mut layout = None;
        for chunk in &self.chunks {
            if layout != Some(chunk.layout) {
                let pipelines = match chunk.layout {
                    ElementLayout::Vec4 => &self.pipelines,
                    ElementLayout::Scalar => self
                        .scalar_pipelines
                        .as_ref()
                        .expect("built with a scalar chunk"),
                };
                pass.set_pipeline(&pipelines.update[variant]);
                layout = Some(chunk.layout);
            }
            pass.set_bind_group(0, &chunk.bind_group, &[]);
            pass.dispatch_workgroups(chunk.workgroups.0, chunk.workgroups.1, 1);
        }
    }

    /// The configuration in force (of parameter group 0).
    pub fn config(&self) -> &OptimizerConfig {
        &self.configs[0]
    }

    /// Each parameter group's configuration.
    pub fn group_configs(&self) -> &[OptimizerConfig] {
        &self.configs
    }

    /// The parameter group of tensor `index`.
    pub fn group_of(&self, index: usize) -> Option<usize> {
        self.tensors.get(index).map(|t| t.group)
    }

    /// Update dispatches one step records: one per binding-size chunk of each span of tensors
    /// sharing buffers (an [`Arena`](crate::Arena) of any size under one binding limit: 1).
    pub fn update_dispatches(&self) -> usize {
        self.chunks.len()
    }

    /// How many of the update dispatches load and store whole vec4s
    /// ([`ElementLayout::Vec4`](crate::shaders::ElementLayout::Vec4)); the others use scalar loads, because a tensor's buffer ends
    /// inside the chunk's last vec4 (a buffer of `len * 4` bytes with `len % 4 != 0`) or a
    /// tensor starts inside a vec4. An [`Arena`](crate::Arena) is all vec4.
    pub fn vec4_dispatches(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| c.layout == ElementLayout::Vec4)
            .count()
    }

    /// The parameters, in the order given.
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.tensors.iter().map(|t| &t.param)
    }

    /// Bytes a step must move per element at the least: read and write the parameter and
    /// each state, read the gradient (28 for Adam in f32), and read the gradient once more
    /// with gradient processing on (32). Benchmarks divide by this.
    pub fn bytes_per_element(&self) -> u64 {
        let grad_reads = if self.grad.is_some() { 2 } else { 1 };
        4 * (2 + grad_reads + 2 * self.spec.states.len() as u64)
    }

    /// The state buffers kept per tensor, in slot order.
    pub fn state_specs(&self) -> &[StateSpec] {
        &self.spec.states
    }

    /// Replaces the hyperparameters (learning rate, betas, weight decay...) of every
    /// parameter group for the steps submitted after this call: a buffer write through the
    /// queue, never a rebuild. Options that change the kernel or its state (amsgrad,
    /// nesterov, centered, momentum on or off...) are refused with
    /// [`Error::StructuralChange`].
    pub fn set_config(&mut self, config: OptimizerConfig) -> Result<()> {
        self.check_structure(&config)?;
        for group in 0..self.configs.len() {
            self.set_group_config(group, config.clone())?;
        }
        Ok(())
    }

    /// Replaces parameter group `group`'s hyperparameters, as [`Optimizer::set_config`].
    pub fn set_group_config(&mut self, group: usize, config: OptimizerConfig) -> Result<()> {
        if group >= self.configs.len() {
            return Err(Error::NoSuchGroup {
                group,
                count: self.configs.len(),
            });
        }
        let spec = self.check_structure(&config)?;
        let offset = (group * spec.hyper.len()) as u64;
        self.ctx
            .queue()
            .write_buffer(&self.hyper, offset, &spec.hyper);
        self.configs[group] = config;
        Ok(())
    }

    /// Sets parameter group `group`'s learning rate for the steps submitted after this call.
    pub fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        let config = self
            .configs
            .get(group)
            .ok_or(Error::NoSuchGroup {
                group,
                count: self.configs.len(),
            })?
            .with_lr(lr);
        self.set_group_config(group, config)
    }

    /// Validates `config` and checks it keeps this optimizer's kernel, options and states.
    pub(crate) fn check_structure(&self, config: &OptimizerConfig) -> Result<KernelSpec> {
        let spec = config.spec()?;
        if !spec.same_structure(&self.spec) {
            return Err(Error::StructuralChange(self.config().name()));
        }
        Ok(spec)
    }

    /// The context the optimizer was built on.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Sets every parameter group's learning rate for the steps submitted after this call.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        let configs: Vec<OptimizerConfig> = self.configs.iter().map(|c| c.with_lr(lr)).collect();
        for config in &configs {
            config.validate()?;
        }
        for (group, config) in configs.into_iter().enumerate() {
            self.set_group_config(group, config)?;
        }
        Ok(())
    }

    /// The device buffer holding the [`Control`] block (step counter, skip flag, gradient
    /// norm, loss scale). A loss kernel multiplies by the loss scale by binding its first 4
    /// bytes (`grad_scale`) as `var<storage, read> grad_scale: f32`.
    pub fn control_buffer(&self) -> &wgpu::Buffer {
        &self.control
    }

    fn write_control<T: bytemuck::Pod>(&self, field: &str, value: &T) {
        let offset = Control::offset_of(field).expect("a field of Control");
        self.ctx
            .queue()
            .write_buffer(&self.control, offset, bytemuck::bytes_of(value));
    }

    /// Where the state `name` (PyTorch's name) of tensor `index` lives: a range of a state
    /// buffer the optimizer shares among the tensors of one span.
    pub fn state_range(&self, index: usize, name: &str) -> Result<&BufferRange> {
        let tensor = self.tensors.get(index).ok_or(Error::NoSuchTensor {
            index,
            count: self.tensors.len(),
        })?;
        let position = self
            .spec
            .states
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| Error::NoSuchState {
                optimizer: self.config().name(),
                name: name.to_string(),
                available: self.spec.states.iter().map(|s| s.name).collect(),
            })?;
        Ok(&tensor.states[position])
    }

    /// Reads the state `name` of tensor `index` back to the host (blocking; not for the
    /// training loop).
    pub fn read_state(&self, index: usize, name: &str) -> Result<Vec<f32>> {
        let range = self.state_range(index, name)?;
        let bytes = self
            .ctx
            .read_bytes(range.buffer(), range.offset(), range.len() * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads the control block back (blocking; for tests and tools: a training loop logs
    /// with a [`ControlReader`](crate::ControlReader) instead). With `error_if_nonfinite`, a
    /// halted optimizer gives [`Error::NonFiniteGradients`].
    pub fn read_control(&self) -> Result<Control> {
        self.read_control_unchecked()?.checked()
    }

    /// The control block as it is, halted or not (blocking).
    pub fn read_control_unchecked(&self) -> Result<Control> {
        let bytes = self
            .ctx
            .read_bytes(&self.control, 0, std::mem::size_of::<Control>() as u64)?;
        Ok(bytemuck::pod_read_unaligned(&bytes))
    }

    /// The number of steps taken, read back from the device (blocking).
    pub fn read_step(&self) -> Result<u32> {
        Ok(self.read_control_unchecked()?.step)
    }

    /// Resumes an optimizer halted by `error_if_nonfinite`, from the next submitted step.
    pub fn clear_nonfinite_error(&self) {
        self.write_control("nonfinite_step", &0_u32);
        self.write_control("found_inf", &0_u32);
    }
}
