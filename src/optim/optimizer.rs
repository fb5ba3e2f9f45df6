//! The runtime [`Optimizer`]: state buffers, bind groups over the dispatch plan
//! (`src/plan.rs`), and the recording of a step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{KernelSpec, OptimizerConfig, StateSpec};
use crate::clip::{GradConfig, GradProcessing, GradStages, NormStats};
use crate::context::{bind_group, capture_errors, Context, Entry, KernelLayouts, Variant};
use crate::device_schedule::{DeviceSchedule, ScheduleTable, ScheduleTarget};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::layout::Control;
use crate::plan::{self, check_disjoint, grid, Plan, TableSlice, TAIL_WORKGROUP};
use crate::shaders::{ElementLayout, Rounding, Storage, MASTER_BINDING, TRUST_BINDING};
use crate::tensor::{storage_alignment, BufferRange, Param};

/// The dispatches of one binding-size chunk: the update over its main segments and, in the
/// vec4 layout, the tail dispatch over its partial vec4s; each a bind group and its grid (more
/// than one only past the device's grid, `max_workgroups` squared).
struct ChunkDispatch {
    layout: ElementLayout,
    main: Vec<(wgpu::BindGroup, (u32, u32))>,
    tail: Vec<(wgpu::BindGroup, (u32, u32))>,
}

/// The pipelines a step records with, for the variant in force: those the plan's chunks need.
struct Pipelines {
    prologue: Arc<wgpu::ComputePipeline>,
    update: UpdatePipelines,
    // A trust-ratio kernel's first pass and fold (LAMB, LARS); `update` is then its second.
    trust: Option<(UpdatePipelines, Arc<wgpu::ComputePipeline>)>,
}

/// The pipelines of one pass over every chunk: per layout, and the tails.
struct UpdatePipelines {
    vec4: Option<Arc<wgpu::ComputePipeline>>,
    tail: Option<Arc<wgpu::ComputePipeline>>,
    scalar: Option<Arc<wgpu::ComputePipeline>>,
}

/// A trust-ratio kernel's fold over every tensor: its bind group (chunk 0's with the plan's
/// tensor folds as segments) and grid; with the buffer of per-slot sums and ratios.
struct TrustFold {
    group: wgpu::BindGroup,
    grid: (u32, u32),
    sums: wgpu::Buffer,
}

struct TensorState {
    param: Param,
    group: usize,
    // One range per entry of `KernelSpec::states`, in the span's state buffers.
    states: Vec<BufferRange>,
    // The f32 master copy of 16-bit parameters, with master weights.
    master: Option<BufferRange>,
}

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
    /// parameters ([`Error::InvalidOptions`] otherwise).
    pub master_weights: bool,
    /// Round stores of bf16 parameters stochastically with this seed instead of to nearest
    /// even (torchao's `bf16_stochastic_round`): updates far below half a bf16 ulp still move
    /// the parameters on average. Reproducible: the random bits are a hash of (seed, step,
    /// tensor, element index), the same for any layout, mirrored by
    /// [`reference::Optimizer`](crate::reference::Optimizer). Needs bf16 parameters without
    /// master weights (f16 keeps 3 more bits and has master weights for this; f32 needs
    /// neither).
    pub stochastic_rounding: Option<u64>,
}

impl Precision {
    /// States stored as `dtype`.
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
    hyper: wgpu::Buffer,
    prologue: wgpu::BindGroup,
    tensors: Vec<TensorState>,
    // Spans, chunks and the segment table; the update and the gradient reduction walk it.
    plan: Plan,
    dispatches: Vec<ChunkDispatch>,
    grad: Option<GradProcessing>,
    // A caller's buffer for the norm stats (data parallel); an internal one when `None`.
    norm_stats: Option<BufferRange>,
    // One control block for every group, or one per group (a population).
    control_mode: plan::Control,
    // Schedule-Free's update pipelines that move the parameters to x (eval) and back to y
    // (train); `None` for other optimizers.
    modes: Option<[Pipelines; 2]>,
    // Whether the parameters are Schedule-Free's x (eval mode) rather than y.
    eval_mode: Arc<AtomicBool>,
    // The schedule the device follows on its own, if any (`set_schedule`).
    schedule: Option<ScheduleTable>,
    // LAMB's and LARS's fold of per-tensor norms into trust ratios; `None` for other kernels
    // and when no tensor has an element.
    trust_fold: Option<TrustFold>,
}

/// The name of the f32 master copy of 16-bit parameters, as a state.
pub const MASTER_PARAM: &str = "master_param";

/// The storage types of an optimizer over `params`: one per role, checked.
fn storage_of(params: &[Param], precision: Precision) -> Result<Storage> {
    let first = params.first();
    let param = first.map_or(Dtype::F32, |p| p.param.dtype());
    let grad = first.map_or(Dtype::F32, |p| p.grad.dtype());
    for (index, p) in params.iter().enumerate() {
        for (role, expected, found) in [
            ("param", param, p.param.dtype()),
            ("grad", grad, p.grad.dtype()),
        ] {
            if found != expected {
                return Err(Error::MixedDtypes {
                    index,
                    role,
                    expected,
                    found,
                });
            }
        }
    }
    if precision.master_weights && !param.is_16bit() {
        return Err(Error::InvalidOptions(
            "master weights keep an f32 copy of 16-bit parameters: these are f32",
        ));
    }
    let rounding =
        match precision.stochastic_rounding {
            None => Rounding::NearestEven,
            Some(_) if precision.master_weights => return Err(Error::InvalidOptions(
                "stochastic rounding is for bf16 parameters without master weights (with them, \
                 the f32 copy keeps every update)",
            )),
            Some(seed) if param == Dtype::BF16 => Rounding::Stochastic { seed },
            Some(_) => {
                return Err(Error::UnsupportedDtype {
                    what: "stochastic rounding",
                    dtype: param,
                    supported: "bf16 parameters",
                })
            }
        };
    Ok(Storage {
        param,
        grad,
        states: precision.states.unwrap_or(param),
        master: precision.master_weights,
        rounding,
    })
}

impl Optimizer {
    /// Validates everything (hyperparameters, lengths, usages, alignment, overlap), then
    /// allocates the state buffers, builds or reuses the pipelines and prepares the bind
    /// groups and segment tables of every dispatch.
    ///
    /// Tensors sharing a param buffer and a grad buffer at the same relative offsets (an
    /// [`Arena`](crate::Arena)'s) are updated together, one dispatch per binding-size chunk
    /// (plus a small one for the chunk's tensors that end inside a vec4, if any); a tensor in
    /// buffers of its own gets its own. Tensors longer than one storage binding
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
        Self::with_precision(ctx, groups, Precision::default())
    }

    /// An optimizer over parameter groups whose states are stored as `precision` says. Every
    /// parameter must have one storage type and every gradient one ([`Error::MixedDtypes`]);
    /// the two may differ (bf16 parameters with f32 gradients, say).
    pub fn with_precision(
        ctx: &Context,
        groups: Vec<ParamGroup>,
        precision: Precision,
    ) -> Result<Self> {
        Self::build(ctx, groups, precision, plan::Control::Shared)
    }

    /// A population: `replicas` (parameter groups of one algorithm and structure, the states'
    /// initial values included, as Adagrad's `initial_accumulator_value`) that share
    /// the dispatches of every step and nothing else. Each replica has a control block of its
    /// own (its step counter, gradient norm, clip coefficient, skip flag and loss scale: see
    /// [`Optimizer::read_controls`]), so it is clipped by its own global norm, skips a step
    /// whose gradients hold an inf or NaN alone, and can have gradient processing of its own
    /// ([`Optimizer::set_grad_processing_per_group`]); its hyperparameters are its group's
    /// ([`Optimizer::set_group_config`], [`Optimizer::set_group_lr`]). This is Optax's
    /// `vmap` over hyperparameters, fused: K trials of a search, or K random restarts, updated
    /// together in one dispatch per binding chunk (an [`Arena`](crate::Arena) holding every
    /// replica's tensors: one dispatch up to `max_storage_buffer_binding_size`).
    ///
    /// Every replica's trajectory is the one it has alone, bit for bit, when the replicas are
    /// laid out replica after replica in one arena (`Arena::new(&model.repeat(K))`, as below)
    /// and each fits one storage binding: the update reads the replica's own control block and
    /// hyperparameters, its gradient norm is reduced from its own segments in the order it
    /// has alone (chunks are cut between replicas where the binding limit and every role's
    /// alignment allow), and stochastic rounding names tensors by their index within the
    /// replica. In other layouts (tensor-major, a replica across two arenas or chunks) each
    /// replica still has its own control block, norm, clip and skip, but its norm may be
    /// summed in another order than alone, so it can differ from the alone run by rounding. Refused with [`Error::InvalidOptions`] past `max_workgroups_per_dispatch`
    /// replicas (65535 on most adapters).
    ///
    /// ```no_run
    /// # use wgpu_optim::{AdamWConfig, Arena, Context, Optimizer, ParamGroup, Precision};
    /// # fn demo(ctx: &Context) -> wgpu_optim::Result<()> {
    /// // Eight replicas of a two-tensor model, each with its own learning rate.
    /// let lens = [256 * 128, 128];
    /// let arena = Arena::new(ctx, &lens.repeat(8))?;
    /// let params = arena.params();
    /// let replicas = params
    ///     .chunks(lens.len())
    ///     .enumerate()
    ///     .map(|(r, params)| ParamGroup {
    ///         config: AdamWConfig::default().with_lr(1e-4 * 2f64.powi(r as i32)).into(),
    ///         params: params.to_vec(),
    ///     })
    ///     .collect();
    /// let population = Optimizer::population(ctx, replicas, Precision::default())?;
    /// # Ok(()) }
    /// ```
    pub fn population(
        ctx: &Context,
        replicas: Vec<ParamGroup>,
        precision: Precision,
    ) -> Result<Self> {
        if replicas.len() as u64 > ctx.max_workgroups() {
            return Err(Error::InvalidOptions(
                "a population has at most max_workgroups_per_dispatch replicas",
            ));
        }
        Self::build(ctx, replicas, precision, plan::Control::PerGroup)
    }

    fn build(
        ctx: &Context,
        groups: Vec<ParamGroup>,
        precision: Precision,
        control: plan::Control,
    ) -> Result<Self> {
        let first = groups.first().ok_or(Error::InvalidOptions(
            "an optimizer needs at least one parameter group",
        ))?;
        let spec = first.config.spec()?;
        let mut hyper = Vec::new();
        for group in &groups {
            let group_spec = group.config.spec()?;
            if !group_spec.same_structure(&spec) || !group.config.same_algorithm(&first.config) {
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
        let storage = storage_of(&params, precision)?;
        check_disjoint(&params.iter().map(|p| &p.param).collect::<Vec<_>>())?;
        let layouts = ctx.kernel_layouts(spec.kernel, storage.master)?;
        let configs = groups.into_iter().map(|g| g.config).collect();
        capture_errors(device, || {
            Self::create(
                ctx,
                configs,
                (spec, storage),
                &hyper,
                &layouts,
                &params,
                (&tensor_groups, control),
            )
        })?
    }

    fn create(
        ctx: &Context,
        configs: Vec<OptimizerConfig>,
        (spec, storage): (KernelSpec, Storage),
        hyper: &[u8],
        layouts: &KernelLayouts,
        params: &[Param],
        (tensor_groups, control_mode): (&[u32], plan::Control),
    ) -> Result<Self> {
        use wgpu::util::DeviceExt;
        let device = ctx.device();
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let tensors: Vec<Vec<BufferRange>> = params
            .iter()
            .map(|p| vec![p.param.clone(), p.grad.clone()])
            .collect();
        let plan = Plan::new(
            device,
            &tensors,
            (tensor_groups, configs.len() as u32),
            control_mode,
            &ctx.plan_limits(storage),
        );
        if control_mode == plan::Control::PerGroup && plan.wraps {
            return Err(Error::InvalidOptions(
                "a population's gradient-norm partials must fit one storage binding",
            ));
        }
        let initial = vec![Control::INITIAL; plan.controls as usize];
        let control = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-optim control"),
            contents: bytemuck::cast_slice(&initial),
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
            &layouts.prologue,
            &[
                (0, control.as_entire_binding()),
                (1, hyper.as_entire_binding()),
            ],
        );

        // State buffers: one per state and span, laid out as the span's params and padded to
        // whole units (8 elements), in the states' type; with master weights, one f32 buffer
        // of the master copy per span too (zeros until the first step copies the parameters
        // in). A tensor of length 0 gets empty ranges.
        let state_buffer = |name: &str, init: f32, dtype: Dtype, len: u64| {
            // The initial value as a store would leave it (Adagrad's may not be representable).
            let init = vec![init; len.next_multiple_of(8).max(8) as usize];
            let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(name),
                contents: &dtype.encode(&init),
                usage,
            });
            BufferRange::typed(&buffer, 0, len, dtype)
        };
        let span_buffers = |len: u64| {
            let states: Vec<BufferRange> = spec
                .states
                .iter()
                .map(|s| state_buffer(s.name, s.init, storage.states, len))
                .collect();
            let master = storage
                .master
                .then(|| state_buffer(MASTER_PARAM, 0.0, Dtype::F32, len));
            (states, master)
        };
        // Tensors of length 0 belong to no span: they share empty ranges of tiny buffers.
        let mut tensor_states = vec![span_buffers(0); params.len()];
        let span_states: Vec<(Vec<BufferRange>, Option<BufferRange>)> = plan
            .spans
            .iter()
            .map(|span| {
                let (states, master) = span_buffers(span.len());
                for &i in &span.tensors {
                    let offset = span.offset_of(&params[i].param);
                    let slice = |s: &BufferRange| s.slice(offset, params[i].len());
                    tensor_states[i] = (
                        states.iter().map(slice).collect(),
                        master.as_ref().map(slice),
                    );
                }
                (states, master)
            })
            .collect();

        // LAMB's and LARS's per-slot sums (p^2, u^2), then ratios: 8 bytes a segment. Each
        // slot starts as a ratio of 1, what `read_trust_ratios` reports before the first fold.
        let trust = spec.kernel.has_trust_ratio().then(|| {
            let initial = vec![[1.0_f32, 0.0]; plan.slots.max(1) as usize];
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-optim trust"),
                contents: bytemuck::cast_slice(&initial),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
        });
        let max_x = ctx.max_workgroups();
        let mut fold_group = None;
        let dispatches: Vec<ChunkDispatch> = plan
            .chunks
            .iter()
            .map(|chunk| {
                let len = chunk.bound_len();
                let (param, grad) = (plan.range(chunk, 0, len), plan.range(chunk, 1, len));
                let mut entries = vec![
                    (0, control.as_entire_binding()),
                    (1, hyper.as_entire_binding()),
                    (2, param.binding()),
                    (3, grad.binding()),
                ];
                let (span_states, master) = &span_states[chunk.span];
                let states: Vec<BufferRange> = span_states
                    .iter()
                    .map(|s| s.slice(chunk.offset, len))
                    .collect();
                let master = master.as_ref().map(|m| m.slice(chunk.offset, len));
                if let Some(master) = &master {
                    entries.push((MASTER_BINDING, master.binding()));
                }
                if let Some(trust) = &trust {
                    entries.push((TRUST_BINDING, trust.as_entire_binding()));
                }
                for slot in 0..spec.kernel.state_slots() {
                    let resource = match spec.states.iter().position(|s| s.slot == slot) {
                        Some(i) => states[i].binding(),
                        None => ctx.placeholder(slot).as_entire_binding(),
                    };
                    entries.push((4 + slot as u32, resource));
                }
                let group = |table: wgpu::BindingResource<'_>| {
                    let mut entries = entries.clone();
                    entries.push((7, table));
                    bind_group(device, "wgpu-optim update", &layouts.update, &entries)
                };
                // Each dispatch's grid, and its table: its slice, or a regular plan's ends.
                let dispatches = |slices: &[TableSlice], tables: &[TableSlice], per_workgroup| {
                    slices
                        .iter()
                        .zip(tables)
                        .map(|(slice, table)| {
                            let workgroups = grid(slice.count.div_ceil(per_workgroup), max_x);
                            (group(table.binding(plan.table())), workgroups)
                        })
                        .collect()
                };
                if trust.is_some() && fold_group.is_none() {
                    fold_group = Some(group(plan.tensor_folds.binding(plan.table())));
                }
                ChunkDispatch {
                    layout: chunk.layout,
                    main: if plan.regular {
                        dispatches(&chunk.main, &chunk.regular, 1)
                    } else {
                        dispatches(&chunk.main, &chunk.main, 1)
                    },
                    tail: dispatches(&chunk.tails, &chunk.tails, TAIL_WORKGROUP),
                }
            })
            .collect();
        let trust_fold = trust.zip(fold_group).map(|(sums, group)| TrustFold {
            group,
            grid: grid(plan.tensor_folds.count, max_x),
            sums,
        });
        let tensors = params
            .iter()
            .zip(tensor_states)
            .zip(tensor_groups)
            .map(|((param, (states, master)), &group)| TensorState {
                param: param.clone(),
                group: group as usize,
                states,
                master,
            })
            .collect();
        let variant = Variant {
            stages: GradStages::default(),
            one_group: configs.len() == 1,
            group_control: control_mode == plan::Control::PerGroup,
            regular_tiles: plan.regular,
        };
        let pipelines = Self::pipelines_for(ctx, (&spec, storage), &plan, variant)?;
        let modes = if spec.kernel.is_schedule_free() {
            // Without gradient processing: a switch never skips, whatever the last step did.
            let variant = Variant {
                stages: GradStages::default(),
                ..variant
            };
            let mode = |name: &str| {
                let mut spec = spec.clone();
                for (override_name, on) in &mut spec.overrides {
                    *on = *override_name == name;
                }
                Self::pipelines_for(ctx, (&spec, storage), &plan, variant)
            };
            Some([mode("TO_EVAL")?, mode("TO_TRAIN")?])
        } else {
            None
        };
        Ok(Optimizer {
            ctx: ctx.clone(),
            configs,
            spec,
            storage,
            pipelines,
            control,
            hyper,
            prologue,
            tensors,
            plan,
            dispatches,
            grad: None,
            norm_stats: None,
            control_mode,
            modes,
            eval_mode: Arc::new(AtomicBool::new(false)),
            schedule: None,
            trust_fold,
        })
    }

    /// The pipelines of `variant` that the chunks of `plan` need, built on first use.
    fn pipelines_for(
        ctx: &Context,
        (spec, storage): (&KernelSpec, Storage),
        plan: &Plan,
        variant: Variant,
    ) -> Result<Pipelines> {
        let with_overrides = |overrides: &[(&'static str, bool)], layout, entry| {
            let module = (layout, storage);
            ctx.kernel_pipeline(spec.kernel, overrides, module, variant, entry)
        };
        let pipeline = |layout, entry| with_overrides(&spec.overrides, layout, entry);
        let needs = |layout| plan.chunks.iter().any(|c| c.layout == layout);
        let tails = plan.chunks.iter().any(|c| !c.tails.is_empty());
        // One pass over every chunk with these entry points.
        let pass = |main: Entry, tail: Entry, overrides: &[(&'static str, bool)]| {
            let build = |layout, entry| with_overrides(overrides, layout, entry);
            Ok::<_, Error>(UpdatePipelines {
                vec4: needs(ElementLayout::Vec4)
                    .then(|| build(ElementLayout::Vec4, main))
                    .transpose()?,
                tail: tails
                    .then(|| build(ElementLayout::Vec4, tail))
                    .transpose()?,
                scalar: needs(ElementLayout::Scalar)
                    .then(|| build(ElementLayout::Scalar, main))
                    .transpose()?,
            })
        };
        let trust = if spec.kernel.has_trust_ratio() {
            let mut first = spec.overrides.clone();
            first.push(("TRUST_APPLY", false));
            let norms = pass(Entry::UpdateNorms, Entry::UpdateTailNorms, &first)?;
            Some((norms, pipeline(ElementLayout::Vec4, Entry::TrustFold)?))
        } else {
            None
        };
        Ok(Pipelines {
            prologue: pipeline(ElementLayout::Vec4, Entry::Prologue)?,
            update: pass(Entry::Update, Entry::UpdateTail, &spec.overrides)?,
            trust,
        })
    }

    /// Turns gradient processing on with `config` (replacing any before), or off with `None`.
    /// Its buffers are allocated here, never in a step. It applies to the steps recorded after
    /// this call; its buffer writes (bound, loss scale) land at the next submit, so submit the
    /// steps recorded before the call first. In a [population](Optimizer::population), every
    /// replica gets `config`, each applying it to its own gradients.
    ///
    /// Without gradient processing, steps use gradients as they are and never skip: the
    /// gradient fields of the control block are not read (and a halt of `error_if_nonfinite`
    /// is cleared). The loss scale is set to `init_scale` when a scaler is turned on or its
    /// `init_scale` changes, and to 1 without a scaler; otherwise the scale and growth tracker
    /// carry on. A refused configuration leaves the one in force unchanged.
    pub fn set_grad_processing(&mut self, config: Option<GradConfig>) -> Result<()> {
        let configs = config.map(|c| vec![c; self.plan.controls as usize]);
        self.set_grad_configs(configs)
    }

    /// Gradient processing of a [population](Optimizer::population), one configuration per
    /// replica (its own clip, loss scaler, `error_if_nonfinite`), as
    /// [`Optimizer::set_grad_processing`]; `None` turns it off for all. The kernels compile in
    /// every stage some replica uses; a replica without it runs it as the identity (a bound of
    /// inf, a clip coefficient of 1, a loss scale of 1), which changes no bit.
    /// [`Error::InvalidOptions`] for an optimizer whose groups share one control block,
    /// [`Error::WrongLength`] unless there is one configuration per replica.
    pub fn set_grad_processing_per_group(
        &mut self,
        configs: Option<Vec<GradConfig>>,
    ) -> Result<()> {
        if self.control_mode != plan::Control::PerGroup {
            return Err(Error::InvalidOptions(
                "gradient processing per group needs a population (Optimizer::population)",
            ));
        }
        if let Some(configs) = &configs {
            if configs.len() != self.configs.len() {
                return Err(Error::WrongLength {
                    what: "gradient-processing configurations (one per replica)",
                    expected: self.configs.len(),
                    actual: configs.len(),
                });
            }
        }
        self.set_grad_configs(configs)
    }

    fn set_grad_configs(&mut self, configs: Option<Vec<GradConfig>>) -> Result<()> {
        let Some(configs) = configs else {
            self.pipelines = self.pipelines_with(GradStages::default())?;
            self.grad = None;
            for k in 0..self.plan.controls as usize {
                self.write_control(k, "nonfinite_step", &0_u32);
            }
            return Ok(());
        };
        for config in &configs {
            config.validate()?;
        }
        let stats = match &self.norm_stats {
            Some(range) => range.clone(),
            None => {
                let buffer = self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgpu-optim norm stats"),
                    size: self.norm_stats_len() * 4,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                BufferRange::whole(&buffer)
            }
        };
        let pipelines = self.pipelines_with(GradStages::union(&configs))?;
        let processing =
            GradProcessing::new(&self.ctx, configs, &self.plan, &self.control, &stats)?;
        self.pipelines = pipelines;
        let previous = self.grad.as_ref().map(|g| &g.configs);
        for (k, config) in processing.configs.iter().enumerate() {
            if config.resets_scale(previous.and_then(|p| p.get(k))) {
                self.write_control(k, "grad_scale", &config.init_scale_f32());
                self.write_control(k, "growth_tracker", &0_u32);
            }
            self.write_control(k, "clip_value", &config.clip_value_f32());
        }
        self.grad = Some(processing);
        Ok(())
    }

    /// The f32 words of the norm stats: one [`NormStats`] per control block.
    fn norm_stats_len(&self) -> u64 {
        u64::from(self.plan.controls) * (std::mem::size_of::<NormStats>() / 4) as u64
    }

    /// The pipelines this optimizer steps with under gradient-processing `stages`.
    fn pipelines_with(&self, stages: GradStages) -> Result<Pipelines> {
        let variant = Variant {
            // The update kernels see only the clip coefficient, whatever the norm.
            stages: GradStages {
                power_norm: false,
                ..stages
            },
            one_group: self.configs.len() == 1,
            group_control: self.control_mode == plan::Control::PerGroup,
            regular_tiles: self.plan.regular,
        };
        Self::pipelines_for(&self.ctx, (&self.spec, self.storage), &self.plan, variant)
    }

    /// The gradient processing in force, if any (of replica 0 in a population).
    pub fn grad_processing(&self) -> Option<&GradConfig> {
        self.group_grad_processing(0)
    }

    /// The gradient processing of control block `k` (a population's replica `k`; 0 for any
    /// other optimizer), if any.
    pub fn group_grad_processing(&self, k: usize) -> Option<&GradConfig> {
        self.grad.as_ref().and_then(|g| g.configs.get(k))
    }

    /// Makes [`Optimizer::record_grad_stats`] write this device's [`NormStats`] into `range`
    /// (2 f32, or 2 per replica in a population; `STORAGE` usage, at an aligned offset,
    /// overlapping no param, grad, state or the control block: [`Error::NormStatsOverlap`])
    /// and [`Optimizer::record_update`] read them from there: the buffer a data-parallel caller
    /// all-reduces between the two.
    pub fn set_norm_stats_buffer(&mut self, range: BufferRange) -> Result<()> {
        let expected = self.norm_stats_len() as usize;
        if range.len() != expected as u64 {
            return Err(Error::WrongLength {
                what: "norm stats buffer",
                expected,
                actual: range.len() as usize,
            });
        }
        let alignment = storage_alignment(self.ctx.device());
        range.check(0, "norm stats", alignment, wgpu::BufferUsages::STORAGE)?;
        self.check_no_overlap(&range)?;
        let previous = self.norm_stats.replace(range);
        if let Some(configs) = self.grad.as_ref().map(|g| g.configs.clone()) {
            if let Err(e) = self.set_grad_configs(Some(configs)) {
                self.norm_stats = previous;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Refuses a norm stats range that overlaps any range the optimizer binds: a tensor's
    /// param, grad or state, or the control block.
    fn check_no_overlap(&self, range: &BufferRange) -> Result<()> {
        let overlap = |with, tensor| Err(Error::NormStatsOverlap { with, tensor });
        for (index, tensor) in self.tensors.iter().enumerate() {
            if range.overlaps(&tensor.param.param) {
                return overlap("param", Some(index));
            }
            if range.overlaps(&tensor.param.grad) {
                return overlap("grad", Some(index));
            }
            for (state, spec) in tensor.states.iter().zip(&self.spec.states) {
                if range.overlaps(state) {
                    return overlap(spec.name, Some(index));
                }
            }
        }
        if range.buffer() == &self.control {
            return overlap("control block", None);
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
    // per-step scalars) and the update dispatches of each chunk.
    fn record_update_into(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Some(grad) = &self.grad {
            grad.record_finalize(pass);
        }
        if let Some(schedule) = &self.schedule {
            schedule.record(pass);
        }
        let pipelines = &self.pipelines;
        pass.set_pipeline(&pipelines.prologue);
        pass.set_bind_group(0, &self.prologue, &[]);
        pass.dispatch_workgroups(self.plan.controls.div_ceil(64), 1, 1);
        if let (Some((norms, fold)), Some(trust)) = (&pipelines.trust, &self.trust_fold) {
            // LAMB, LARS: the first pass (states, each segment's sums), each tensor's ratio.
            self.record_dispatches(pass, norms);
            pass.set_pipeline(fold);
            pass.set_bind_group(0, &trust.group, &[]);
            pass.dispatch_workgroups(trust.grid.0, trust.grid.1, 1);
        }
        self.record_dispatches(pass, &pipelines.update);
    }

    // The dispatches of one pass over each chunk with `pipelines`, then the tails.
    fn record_dispatches(&self, pass: &mut wgpu::ComputePass<'_>, pipelines: &UpdatePipelines) {
        // One pipeline switch per change of layout, not per chunk.
        let mut layout = None;
        for dispatch in &self.dispatches {
            if layout != Some(dispatch.layout) {
                let update = match dispatch.layout {
                    ElementLayout::Vec4 => &pipelines.vec4,
                    ElementLayout::Scalar => &pipelines.scalar,
                };
                pass.set_pipeline(
                    update
                        .as_deref()
                        .expect("built for every layout the plan uses"),
                );
                layout = Some(dispatch.layout);
            }
            for (group, (x, y)) in &dispatch.main {
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(*x, *y, 1);
            }
        }
        // The tails touch no element of any main segment: they go after every chunk's update,
        // with one pipeline switch.
        if let Some(tail) = &pipelines.tail {
            pass.set_pipeline(tail);
            for (group, (x, y)) in self.dispatches.iter().flat_map(|d| &d.tail) {
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(*x, *y, 1);
            }
        }
    }

    /// Schedule-Free's `optimizer.eval()`: records the dispatches that move every parameter
    /// from `y`, where gradients are taken, to the averaged iterate `x`, where the model is
    /// evaluated, `p = lerp(p, z, 1 - 1 / beta1)` (Schedule-Free SGD's `momentum` in the place
    /// of `beta1`; see [`ScheduleFreeAdamWConfig`](crate::ScheduleFreeAdamWConfig) and
    /// [`ScheduleFreeSgdConfig`](crate::ScheduleFreeSgdConfig)). Nothing is recorded when
    /// the optimizer is in eval mode already; nothing moves before the first step (z does not
    /// exist yet). Call [`Optimizer::schedule_free_train`] before the next step: a step in eval
    /// mode would take its gradients at x, which the package refuses. Other optimizers:
    /// [`Error::NotScheduleFree`].
    pub fn schedule_free_eval(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        self.switch_mode(encoder, true)
    }

    /// Schedule-Free's `optimizer.train()`: records the dispatches that move every parameter
    /// from `x` back to `y`, `p = lerp(p, z, 1 - beta1)` (or `1 - momentum`); nothing when the optimizer is in
    /// train mode already (as it starts). Other optimizers: [`Error::NotScheduleFree`].
    pub fn schedule_free_train(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        self.switch_mode(encoder, false)
    }

    /// Whether a Schedule-Free optimizer's parameters are `x` (eval mode); false for others.
    pub fn is_schedule_free_eval(&self) -> bool {
        self.eval_mode.load(Ordering::Relaxed)
    }

    fn switch_mode(&self, encoder: &mut wgpu::CommandEncoder, eval: bool) -> Result<()> {
        let modes = self
            .modes
            .as_ref()
            .ok_or(Error::NotScheduleFree(self.config().name()))?;
        if self.eval_mode.swap(eval, Ordering::Relaxed) == eval {
            return Ok(());
        }
        let pipelines = &modes[usize::from(!eval)];
        self.record_dispatches(&mut Self::begin(encoder), &pipelines.update);
        Ok(())
    }

    /// The eval/train flag, shared with a [`Snapshot`](crate::Snapshot) of this optimizer
    /// (its parameters are `x` in eval mode, `y` in train mode, and a restore brings back the
    /// mode they were saved in), or `None` for optimizers without the switch.
    pub(crate) fn eval_flag(&self) -> Option<Arc<AtomicBool>> {
        self.modes.as_ref().map(|_| self.eval_mode.clone())
    }

    /// Sets the eval/train flag without moving anything: the parameters a checkpoint was saved
    /// with are in the mode it records.
    pub(crate) fn set_eval_flag(&self, eval: bool) {
        self.eval_mode.store(eval, Ordering::Relaxed);
    }

    /// Each group's running values (Schedule-Free's `lr_max` and `weight_sum`) as ranges of
    /// the hyperparameter buffer, for snapshots; empty for optimizers without any.
    pub(crate) fn running_ranges(&self) -> Vec<BufferRange> {
        let count = self.spec.running.len() as u64;
        let size = self.spec.hyper.len() as u64;
        if count == 0 {
            return Vec::new();
        }
        (0..self.configs.len() as u64)
            .map(|group| BufferRange::new(&self.hyper, group * size + size - 4 * count, count))
            .collect()
    }

    /// Each parameter group's running values (Schedule-Free's `lr_max`, `weight_sum`), read
    /// back from the device: `(group, name, value)`; empty for optimizers without any.
    pub(crate) fn read_running(&self) -> Result<Vec<(usize, &'static str, f32)>> {
        let names = self.spec.running;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = self.ctx.read_bytes(&self.hyper, 0, self.hyper.size())?;
        let size = self.spec.hyper.len();
        let first = size - 4 * names.len();
        let mut values = Vec::new();
        for group in 0..self.configs.len() {
            for (i, &name) in names.iter().enumerate() {
                let at = group * size + first + 4 * i;
                values.push((
                    group,
                    name,
                    bytemuck::pod_read_unaligned(&bytes[at..at + 4]),
                ));
            }
        }
        Ok(values)
    }

    /// The names of the running values (see [`Optimizer::read_running`]).
    pub(crate) fn running_names(&self) -> &'static [&'static str] {
        self.spec.running
    }

    /// Writes group `group`'s running values, in the order of [`Optimizer::running_names`].
    pub(crate) fn write_running(&self, group: usize, values: &[f32]) {
        let size = self.spec.hyper.len();
        let offset = group * size + size - 4 * values.len();
        self.ctx
            .queue()
            .write_buffer(&self.hyper, offset as u64, bytemuck::cast_slice(values));
    }

    /// Each tensor's trust ratio at the last step taken, read back from the device (blocking;
    /// for logging and tests): LAMB's `||p|| / ||u||`, LARS's `trust_coefficient * ||p|| /
    /// (||u|| + eps)`, 1 where a norm is 0 or the group has the ratio off, and 1 for a tensor
    /// of length 0 and before this optimizer's first step (checkpoints do not carry ratios).
    /// Other optimizers: [`Error::InvalidOptions`].
    pub fn read_trust_ratios(&self) -> Result<Vec<f32>> {
        if !self.spec.kernel.has_trust_ratio() {
            return Err(Error::InvalidOptions(
                "trust ratios are LAMB's and LARS's (per-tensor norms)",
            ));
        }
        let Some(trust) = &self.trust_fold else {
            return Ok(vec![1.0; self.tensors.len()]);
        };
        let bytes = self.ctx.read_bytes(&trust.sums, 0, trust.sums.size())?;
        let slots: &[[f32; 2]] = bytemuck::cast_slice(&bytes);
        Ok(self
            .plan
            .tensor_slots
            .iter()
            .map(|&[first, end]| {
                if first == end {
                    1.0
                } else {
                    slots[first as usize][0]
                }
            })
            .collect())
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
    /// sharing buffers (an [`Arena`](crate::Arena) of any size under one binding limit: 1),
    /// more only where a chunk has more segments than one dispatch's grid holds
    /// (`max_workgroups_per_dispatch` squared). Chunks of the vec4 layout whose tensors end
    /// inside a vec4 add small dispatches for those last partial vec4s
    /// ([`Optimizer::tail_dispatches`]).
    pub fn update_dispatches(&self) -> usize {
        self.dispatches.iter().map(|d| d.main.len()).sum()
    }

    /// How many of the update dispatches derive each workgroup's segment from two table
    /// entries instead of loading it: all of them when every dispatch covers one tensor's
    /// tiles in a row (a tensor in buffers of its own), none otherwise (an
    /// [`Arena`](crate::Arena) of several tensors). Same results either way; on lavapipe,
    /// whose per-workgroup table loads loop over the lanes, the derived segments are 5-6%
    /// faster (BENCHMARKS.md).
    pub fn regular_dispatches(&self) -> usize {
        if self.plan.regular {
            self.update_dispatches()
        } else {
            0
        }
    }

    /// Tail dispatches one step records: one per vec4-layout chunk in which some tensor's
    /// length is not a multiple of 4. Each stores those tensors' last 1 to 3 elements lane by
    /// lane, one invocation per tensor, so the update's loop stores only whole vec4s.
    pub fn tail_dispatches(&self) -> usize {
        self.dispatches.iter().map(|d| d.tail.len()).sum()
    }

    /// How many of the update dispatches load and store whole vec4s
    /// ([`ElementLayout::Vec4`](crate::shaders::ElementLayout::Vec4)); the others use scalar loads, because a tensor's buffer ends
    /// inside the chunk's last vec4 (a buffer of `len * 4` bytes with `len % 4 != 0`) or a
    /// tensor starts inside a vec4. An [`Arena`](crate::Arena) is all vec4.
    pub fn vec4_dispatches(&self) -> usize {
        self.dispatches
            .iter()
            .filter(|d| d.layout == ElementLayout::Vec4)
            .map(|d| d.main.len())
            .sum()
    }

    /// The parameters, in the order given.
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.tensors.iter().map(|t| &t.param)
    }

    /// Bytes a step must move per element at the least: read and write the parameter and
    /// each state, read the gradient, and read the gradient once more with gradient
    /// processing on, each in its storage type (Adam: 28 in f32, 20 with bf16 states, 14 in
    /// bf16, 28 with bf16 parameters and gradients, f32 states and master weights; 32 in f32
    /// with gradient processing). LAMB and LARS take two passes over the elements (see
    /// [`LambConfig`](crate::LambConfig)), each reading what one update reads: counted as
    /// twice the figure (an upper bound: each pass writes only what it changes). Benchmarks
    /// divide by this.
    pub fn bytes_per_element(&self) -> u64 {
        let grad_reads = if self.grad.is_some() { 2 } else { 1 };
        let Storage {
            param,
            grad,
            states,
            master,
            ..
        } = self.storage;
        // With master weights, the f32 copy is read and written and the parameters only
        // written (the kernel reads them too, for the first step's copy).
        let (param_bytes, master) = if master {
            (param.size(), 2 * 4)
        } else {
            (2 * param.size(), 0)
        };
        let pass = param_bytes
            + grad_reads * grad.size()
            + 2 * states.size() * self.spec.states.len() as u64
            + master;
        if self.spec.kernel.has_trust_ratio() {
            2 * pass
        } else {
            pass
        }
    }

    /// The storage types of the parameters, gradients and states.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The state buffers kept per tensor, in slot order.
    pub fn state_specs(&self) -> &[StateSpec] {
        &self.spec.states
    }

    /// Replaces the hyperparameters (learning rate, betas, weight decay...) of every
    /// parameter group for the steps submitted after this call: a buffer write through the
    /// queue, never a rebuild. Options that change the kernel or its state (amsgrad,
    /// nesterov, centered, momentum on or off...) are refused with
    /// [`Error::StructuralChange`]. With a [device schedule](Optimizer::set_schedule), the
    /// configuration is the base the schedule moves.
    pub fn set_config(&mut self, config: OptimizerConfig) -> Result<()> {
        let changes = (0..self.configs.len())
            .map(|g| (g, config.clone()))
            .collect();
        self.set_group_configs(changes)
    }

    /// Replaces parameter group `group`'s hyperparameters, as [`Optimizer::set_config`].
    pub fn set_group_config(&mut self, group: usize, config: OptimizerConfig) -> Result<()> {
        self.set_group_configs(vec![(group, config)])
    }

    /// Replaces the configurations of the groups listed, all or none: each is validated, and
    /// a device schedule's table is rebuilt for the new bases, before anything is written.
    pub(crate) fn set_group_configs(
        &mut self,
        changes: Vec<(usize, OptimizerConfig)>,
    ) -> Result<()> {
        let mut configs = self.configs.clone();
        let mut specs = Vec::with_capacity(changes.len());
        for (group, config) in changes {
            if group >= self.configs.len() {
                return Err(Error::NoSuchGroup {
                    group,
                    count: self.configs.len(),
                });
            }
            specs.push((group, self.check_structure(&config)?));
            configs[group] = config;
        }
        let schedule = match &self.schedule {
            Some(table) => Some(self.schedule_table(table.schedule.clone(), &configs)?),
            None => None,
        };
        for (group, spec) in specs {
            // The running values at the struct's end (Schedule-Free's) carry on.
            let offset = (group * spec.hyper.len()) as u64;
            self.ctx
                .queue()
                .write_buffer(&self.hyper, offset, spec.config_bytes());
        }
        self.configs = configs;
        if schedule.is_some() {
            self.schedule = schedule;
        }
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

    /// Makes the device compute each step's learning rate from its own step counter
    /// (replacing any schedule before), or stops with `None`: a training loop then writes
    /// nothing per step, and a step skipped on the device cannot put the host's count out of
    /// step with it (PyTorch users ask for a tensor learning rate for this,
    /// pytorch/pytorch#106802). Each parameter group's configured learning rate is the
    /// schedule's `base_lr` (a population's replicas each follow the schedule from their own
    /// rate, by their own counters); [`Optimizer::set_lr`] and the other setters change that
    /// base. A step recorded from now on begins with one small dispatch, after the gradient
    /// finalize and before the prologue, that copies the step's hyperparameter words from a
    /// table built here (see [`DeviceSchedule`]): the run is bit for bit the one a loop gets
    /// calling `set_config(schedule.config_at(base, step))` before each step.
    ///
    /// Which counter: [`ScheduleCounter::Steps`](crate::ScheduleCounter::Steps) (the default,
    /// steps taken, Optax's `apply_if_finite`) or
    /// [`ScheduleCounter::Iterations`](crate::ScheduleCounter::Iterations) (skipped steps
    /// count too, PyTorch's `scheduler.step()` every iteration). The counter lives in the
    /// control block, so checkpoints and snapshots carry the schedule's position; the
    /// schedule itself is configuration, not saved (as PyTorch saves a scheduler apart), and
    /// stays in force across a load. `None` writes each group's configuration back, so the
    /// learning rate returns to the base.
    ///
    /// Refused, with nothing changed: a schedule [`LrSchedule::validate`](crate::LrSchedule::validate)
    /// refuses, a step whose configuration the optimizer refuses
    /// ([`Error::InvalidScheduleStep`]), 0 steps or a table past one storage binding
    /// ([`Error::InvalidOptions`]). The table holds 4 bytes per step, group and moved word
    /// (AdamW: the learning rate and `1 - lr * weight_decay`, 8 bytes a step), and building
    /// it evaluates the schedule for every step on the host.
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, DeviceSchedule, LrSchedule, Optimizer};
    /// # fn demo(ctx: &Context, adamw: &mut Optimizer) -> wgpu_optim::Result<()> {
    /// let cosine = LrSchedule::CosineAnnealing { t_max: 10_000, eta_min: 1e-5 };
    /// adamw.set_schedule(Some(DeviceSchedule::new(cosine, 10_000)))?;
    /// for _ in 0..10_000 {
    ///     let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ///     // ... forward and backward ...
    ///     adamw.step(&mut encoder);
    ///     ctx.queue().submit([encoder.finish()]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn set_schedule(&mut self, schedule: Option<DeviceSchedule>) -> Result<()> {
        let Some(schedule) = schedule else {
            if self.schedule.take().is_some() {
                self.set_group_configs(self.configs.clone().into_iter().enumerate().collect())?;
            }
            return Ok(());
        };
        self.schedule = Some(self.schedule_table(schedule, &self.configs)?);
        Ok(())
    }

    /// The device schedule in force, if any.
    pub fn schedule(&self) -> Option<&DeviceSchedule> {
        self.schedule.as_ref().map(|table| &table.schedule)
    }

    fn schedule_table(
        &self,
        schedule: DeviceSchedule,
        configs: &[OptimizerConfig],
    ) -> Result<ScheduleTable> {
        let target = ScheduleTarget {
            control: &self.control,
            hyper: &self.hyper,
            hyper_size: self.spec.hyper.len(),
            group_control: self.control_mode == plan::Control::PerGroup,
        };
        ScheduleTable::new(&self.ctx, schedule, configs, &target)
    }

    /// Validates `config` and checks it keeps this optimizer's algorithm, kernel, options and
    /// states (an Adam config with decoupled weight decay runs AdamW's kernel, but is another
    /// optimizer to PyTorch and to checkpoints).
    pub(crate) fn check_structure(&self, config: &OptimizerConfig) -> Result<KernelSpec> {
        let spec = config.spec()?;
        if !spec.same_structure(&self.spec) || !config.same_algorithm(self.config()) {
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
        let changes = self.configs.iter().map(|c| c.with_lr(lr)).enumerate();
        self.set_group_configs(changes.collect())
    }

    /// The device buffer holding the [`Control`] block (step counter, skip flag, gradient
    /// norm, loss scale). A loss kernel multiplies by the loss scale by binding its first 4
    /// bytes (`grad_scale`) as `var<storage, read> grad_scale: f32`.
    pub fn control_buffer(&self) -> &wgpu::Buffer {
        &self.control
    }

    /// Writes `field` of control block `k`.
    fn write_control<T: bytemuck::Pod>(&self, k: usize, field: &str, value: &T) {
        let offset = Control::offset_of(field).expect("a field of Control");
        let block = (k * std::mem::size_of::<Control>()) as u64;
        self.ctx
            .queue()
            .write_buffer(&self.control, block + offset, bytemuck::bytes_of(value));
    }

    /// Control blocks: one per replica of a [population](Optimizer::population), else 1.
    pub fn control_blocks(&self) -> usize {
        self.plan.controls as usize
    }

    /// Whether this is a [population](Optimizer::population): a control block per group.
    pub fn is_population(&self) -> bool {
        self.control_mode == plan::Control::PerGroup
    }

    /// Where the state `name` (PyTorch's name, or `master_param` for the f32 master copy of
    /// 16-bit parameters) of tensor `index` lives: a range of a state buffer the optimizer
    /// shares among the tensors of one span.
    pub fn state_range(&self, index: usize, name: &str) -> Result<&BufferRange> {
        let tensor = self.tensors.get(index).ok_or(Error::NoSuchTensor {
            owner: "optimizer",
            index,
            count: self.tensors.len(),
        })?;
        if let (MASTER_PARAM, Some(master)) = (name, &tensor.master) {
            return Ok(master);
        }
        let position = self
            .spec
            .states
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| Error::NoSuchState {
                optimizer: self.config().name(),
                name: name.to_string(),
                available: self.state_names(),
            })?;
        Ok(&tensor.states[position])
    }

    /// The names of the states kept per tensor: [`Optimizer::state_specs`]'s, then
    /// `master_param` with master weights.
    pub fn state_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.spec.states.iter().map(|s| s.name).collect();
        if self.storage.master {
            names.push(MASTER_PARAM);
        }
        names
    }

    /// Reads the state `name` of tensor `index` back to the host, widened to f32 from its
    /// storage type (blocking; not for the training loop).
    pub fn read_state(&self, index: usize, name: &str) -> Result<Vec<f32>> {
        let range = self.state_range(index, name)?;
        self.ctx.read_f32(range)
    }

    /// Reads the control block back (blocking; for tests and tools: a training loop logs
    /// with a [`ControlReader`](crate::ControlReader) instead); replica 0's in a population
    /// (see [`Optimizer::read_controls`] for every replica's). With `error_if_nonfinite`, a
    /// halted optimizer (replica 0) gives [`Error::NonFiniteGradients`].
    pub fn read_control(&self) -> Result<Control> {
        self.read_control_unchecked()?.checked()
    }

    /// The control block as it is, halted or not (blocking); replica 0's in a population.
    pub fn read_control_unchecked(&self) -> Result<Control> {
        Ok(self.read_controls()?[0])
    }

    /// Every control block as it is, halted or not (blocking): one per replica of a
    /// [population](Optimizer::population), in group order, else one. Check a replica's with
    /// [`Control::checked`].
    pub fn read_controls(&self) -> Result<Vec<Control>> {
        let bytes = self.ctx.read_bytes(&self.control, 0, self.control.size())?;
        Ok(bytes
            .chunks_exact(std::mem::size_of::<Control>())
            .map(bytemuck::pod_read_unaligned)
            .collect())
    }

    /// The number of steps taken, read back from the device (blocking); replica 0's in a
    /// population.
    pub fn read_step(&self) -> Result<u32> {
        Ok(self.read_control_unchecked()?.step)
    }

    /// Resumes an optimizer halted by `error_if_nonfinite` (every halted replica of a
    /// population), from the next submitted step.
    pub fn clear_nonfinite_error(&self) {
        for k in 0..self.control_blocks() {
            self.write_control(k, "nonfinite_step", &0_u32);
            self.write_control(k, "found_inf", &0_u32);
        }
    }
}
