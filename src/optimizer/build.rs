//! Building an optimizer: validation of everything first, then the state buffers, the group
//! records, the plan, the bind groups and the pipelines; and each configuration's `build`.

use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::dispatch::{chunk_dispatches, chunk_storage, BoundBuffers, Pipelines};
use super::{muon, MuonGroup};
use super::{
    quant8, Optimizer, ParamGroup, Precision, QuantState, SpanStates, TensorState, MASTER_PARAM,
};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::pipeline::bind_group;
use crate::gpu::{capture_errors, check_disjoint, BufferRange, Context, Param};
use crate::kernel::plan::{
    ControlMode, DevicePlan, Plan, PlanGroups, PlanLimits, QuantRegions, Span,
};
use crate::kernel::{
    kernel_layouts, Binding, Control, ControlOwners, GradStages, KernelSpec, Rounding, Storage,
    Variant,
};
use crate::optim::OptimizerConfig;
use crate::quant::BLOCK;

/// Each configuration's `build`, generated from the registry.
macro_rules! builders {
    ($($(#[$doc:meta])* $variant:ident($config:ident) in $module:ident;)*) => {
        $(impl crate::optim::$config {
            /// Builds the optimizer for `params`: see [`Optimizer::new`].
            pub fn build(&self, ctx: &Context, params: &[Param]) -> Result<Optimizer> {
                Optimizer::new(ctx, self.clone().into(), params)
            }
        })*
    };
}
crate::optim::optimizers!(builders);

impl OptimizerConfig {
    /// Builds the optimizer for `params` on `ctx`: see [`Optimizer::new`].
    pub fn build(&self, ctx: &Context, params: &[Param]) -> Result<Optimizer> {
        Optimizer::new(ctx, self.clone(), params)
    }
}

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
        quant8: None,
    })
}

/// What an optimizer is built from, validated: its groups' configurations and records, its
/// tensors and their groups, how they are stored and share control blocks.
pub(super) struct Checked {
    configs: Vec<OptimizerConfig>,
    spec: KernelSpec,
    storage: Storage,
    /// Every group's record, in group order.
    records: Vec<u8>,
    pub(super) params: Vec<Param>,
    tensor_groups: Vec<u32>,
    control_mode: ControlMode,
    /// Each tensor's whole length where the tensors are pieces of others (a ZeRO-1 shard):
    /// whether a piece keeps 8-bit states is its tensor's ([`quant8::quantized_tensors`]).
    pub(super) whole_lens: Option<Vec<u64>>,
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
        Self::build(ctx, groups, precision, ControlMode::Shared)
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
    /// summed in another order than alone, so it can differ from the alone run by rounding.
    /// Refused with [`Error::InvalidOptions`] past `max_workgroups_per_dispatch` replicas
    /// (65535 on most adapters).
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
        Self::build(ctx, replicas, precision, ControlMode::PerGroup)
    }

    /// An optimizer over element-wise parameter groups and groups of 2-D parameters stepped by
    /// Muon ([`MuonGroup`], [`MuonConfig`](crate::MuonConfig)): Optax's `partition` of Muon for the hidden
    /// weights and AdamW (or any element-wise optimizer, `groups`) for the rest, as every Muon
    /// user pairs them, in one optimizer. Everything but the update is shared: one control
    /// block (one step counter; one global-norm clip, inf/NaN skip and loss scale over every
    /// parameter, with [`Optimizer::set_grad_processing`]), one [`Optimizer::step`] (the
    /// element-wise update, then Muon's momentum, its batched Newton-Schulz iteration over
    /// every matrix together, and its update), one checkpoint, one snapshot.
    ///
    /// Groups are numbered element-wise first, then Muon's, and tensors likewise, as in the
    /// `param_groups` of one PyTorch optimizer holding both. [`Optimizer::set_lr`] sets every
    /// group's rate, Muon's included (with [`AdjustLr::MatchRmsAdamW`](crate::AdjustLr) both
    /// share AdamW's rate and weight decay); [`Optimizer::set_group_lr`] takes either kind of
    /// group. `groups` may be empty (Muon alone). Muon's momentum is kept in f32 whatever
    /// `precision` says of the element-wise states; Muon's parameters and gradients are f32
    /// ([`Error::UnsupportedDtype`] otherwise). Refused: a population, a device schedule
    /// ([`Optimizer::set_schedule`]) and Muon groups whose iterations differ (coefficients,
    /// steps, eps: [`Error::StructuralChange`]; one batch runs every matrix).
    ///
    /// ```no_run
    /// # use wgpu_optim::{AdamWConfig, AdjustLr, Arena, Context, MuonConfig, MuonGroup};
    /// # use wgpu_optim::{Optimizer, ParamGroup, Precision};
    /// # fn demo(ctx: &Context) -> wgpu_optim::Result<()> {
    /// // A 64 x 128 weight for Muon, its bias for AdamW.
    /// let arena = Arena::new(ctx, &[64 * 128, 64])?;
    /// let params = arena.params();
    /// let adamw = ParamGroup {
    ///     config: AdamWConfig::default().with_lr(1e-3).into(),
    ///     params: vec![params[1].clone()],
    /// };
    /// let muon = MuonGroup {
    ///     config: MuonConfig::default().with_lr(1e-3).with_adjust_lr(AdjustLr::MatchRmsAdamW),
    ///     params: vec![params[0].clone()],
    ///     shapes: vec![vec![64, 128]],
    /// };
    /// let optimizer = Optimizer::with_muon(ctx, vec![adamw], vec![muon], Precision::default())?;
    /// # Ok(()) }
    /// ```
    pub fn with_muon(
        ctx: &Context,
        groups: Vec<ParamGroup>,
        muon: Vec<MuonGroup>,
        precision: Precision,
    ) -> Result<Self> {
        let groups = if groups.is_empty() {
            vec![ParamGroup {
                config: crate::optim::AdamWConfig::default().into(),
                params: Vec::new(),
            }]
        } else {
            groups
        };
        let checked = Self::check_groups(ctx, groups, precision, ControlMode::Shared)?;
        let tensors = muon::check_groups(ctx, &muon, checked.params.len())?;
        let mut all: Vec<&BufferRange> = checked.params.iter().map(|p| &p.param).collect();
        all.extend(tensors.iter().map(|t| &t.0.param));
        check_disjoint(&all)?;
        let mut optimizer = capture_errors(ctx.device(), || Self::create(ctx, checked, None))??;
        if !tensors.is_empty() {
            let configs = muon.into_iter().map(|g| g.config).collect();
            let part = capture_errors(ctx.device(), || {
                muon::MuonPart::new(ctx, configs, tensors, &optimizer.control)
            })??;
            optimizer.muon = Some(part);
        }
        Ok(optimizer)
    }

    fn build(
        ctx: &Context,
        groups: Vec<ParamGroup>,
        precision: Precision,
        control_mode: ControlMode,
    ) -> Result<Self> {
        let checked = Self::check_groups(ctx, groups, precision, control_mode)?;
        capture_errors(ctx.device(), || Self::create(ctx, checked, None))?
    }

    /// [`Optimizer::with_precision`] taking over the state buffers of `donor` wherever a span
    /// keeps the layout it has in `donor` (the same tensors at the same relative offsets): for
    /// an optimizer built anew over the same tensors with some at other ranges, whose state
    /// then moves only for the spans that changed ([`Optimizer::copy_state_from`] copies those
    /// and skips the ranges taken over). `donor` must not step again: its buffers are shared.
    #[cfg(feature = "burn")]
    pub(crate) fn with_precision_reusing(
        ctx: &Context,
        groups: Vec<ParamGroup>,
        precision: Precision,
        donor: &Optimizer,
    ) -> Result<Self> {
        let checked = Self::check_groups(ctx, groups, precision, ControlMode::Shared)?;
        capture_errors(ctx.device(), || Self::create(ctx, checked, Some(donor)))?
    }

    /// Validates every group, tensor and storage type before anything is created.
    pub(super) fn check_groups(
        ctx: &Context,
        groups: Vec<ParamGroup>,
        precision: Precision,
        control_mode: ControlMode,
    ) -> Result<Checked> {
        let first = groups.first().ok_or(Error::InvalidOptions(
            "an optimizer needs at least one parameter group",
        ))?;
        let spec = first.config.lower()?;
        let mut records = Vec::new();
        for group in &groups {
            let group_spec = group.config.lower()?;
            if !group_spec.same_structure(&spec) || !group.config.same_algorithm(&first.config) {
                return Err(Error::StructuralChange(first.config.name()));
            }
            records.extend_from_slice(&group_spec.record());
        }
        let params: Vec<Param> = groups.iter().flat_map(|g| g.params.clone()).collect();
        let tensor_groups: Vec<u32> = groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| std::iter::repeat_n(g as u32, group.params.len()))
            .collect();
        for (index, param) in params.iter().enumerate() {
            param.check(index, ctx.device())?;
        }
        let mut storage = storage_of(&params, precision)?;
        if precision.eight_bit_states {
            storage = quant8::quantized_storage(ctx, storage, &spec, precision)?;
        }
        if storage.states == Dtype::F16 && spec.states.iter().any(|s| s.holds_squares()) {
            return Err(Error::UnsupportedDtype {
                what: "states of squared gradients (exp_avg_sq and the like)",
                dtype: Dtype::F16,
                supported: "f32 or bf16 states (Precision::with_states): f16's largest value, \
                            65504, is the square of a gradient of 256, and an overflowed \
                            moment stays inf",
            });
        }
        check_disjoint(&params.iter().map(|p| &p.param).collect::<Vec<_>>())?;
        Ok(Checked {
            configs: groups.into_iter().map(|g| g.config).collect(),
            spec,
            storage,
            records,
            params,
            tensor_groups,
            control_mode,
            whole_lens: None,
        })
    }

    pub(super) fn create(
        ctx: &Context,
        checked: Checked,
        donor: Option<&Optimizer>,
    ) -> Result<Self> {
        let Checked {
            configs,
            spec,
            storage,
            records,
            params,
            tensor_groups,
            control_mode,
            whole_lens,
        } = checked;
        let device = ctx.device();
        let tensors: Vec<Vec<BufferRange>> = params
            .iter()
            .map(|p| vec![p.param.clone(), p.grad.clone()])
            .collect();
        let quantized = quant8::quantized_tensors(storage, &spec, &params, whole_lens.as_deref());
        let plan_groups = PlanGroups {
            of_tensor: &tensor_groups,
            count: configs.len() as u32,
            quantized: &quantized,
            quant_states: spec.states.len() as u64,
        };
        let limits = PlanLimits::new(ctx, storage);
        let plan = DevicePlan::new(device, &tensors, plan_groups, control_mode, &limits);
        if storage.quant8.is_some() {
            quant8::check_quantized_plan(&plan, &params)?;
        }
        check_state_buffers(device, &spec, storage, &plan.plan)?;
        // The prologue's layout is the same for every storage (`Plan::all_quantized`).
        let storage_of_prologue = chunk_storage(storage, plan.plan.all_quantized());
        let layouts = kernel_layouts(ctx, spec.kernel, storage_of_prologue)?;
        if control_mode == ControlMode::PerGroup && plan.plan.wraps {
            return Err(Error::InvalidOptions(
                "a population's gradient-norm partials must fit one storage binding",
            ));
        }
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let initial = vec![Control::INITIAL; plan.plan.controls as usize];
        let control = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-optim control"),
            contents: bytemuck::cast_slice(&initial),
            usage,
        });
        let groups = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-optim groups"),
            contents: &records,
            usage,
        });
        let prologue = bind_group(
            device,
            "wgpu-optim prologue",
            &layouts.prologue,
            &[
                (Binding::Control.index(), control.as_entire_binding()),
                (Binding::Groups.index(), groups.as_entire_binding()),
            ],
        );
        let (tensor_states, span_states) =
            allocate_states(ctx, &spec, storage, &plan, &params, donor);
        let quant_maps = match storage.quant8 {
            Some(_) => Some(quant8::table_buffer(ctx)?),
            None => None,
        };
        let bound = BoundBuffers {
            control: &control,
            groups: &groups,
            span_states: &span_states,
            quant_maps: quant_maps.as_deref(),
            storage,
        };
        let (dispatches, trust_fold) = chunk_dispatches(ctx, &spec, &plan, &bound)?;
        let tensors = params
            .iter()
            .zip(tensor_states)
            .zip(&tensor_groups)
            .map(|((param, states), &group)| TensorState {
                param: param.clone(),
                group: group as usize,
                states: states.states,
                master: states.master,
                quant: states.quant,
            })
            .collect();
        let variant = Variant {
            stages: GradStages::default(),
            one_group: configs.len() == 1,
            group_control: control_mode == ControlMode::PerGroup,
            regular_tiles: plan.plan.regular,
        };
        let pipelines = Pipelines::new(ctx, &spec, storage, &plan.plan, variant)?;
        let modes = match spec.kernel.modes {
            Some([to_eval, to_train]) => {
                // Without gradient processing: a switch never skips, whatever the last step did;
                // its prologue leaves the step counter alone.
                let mode = |name: &str| {
                    let mut spec = spec.clone();
                    for (override_name, on) in &mut spec.overrides {
                        *on = *override_name == name;
                    }
                    spec.overrides.push(("STEP_PASS", false));
                    Pipelines::new(ctx, &spec, storage, &plan.plan, variant)
                };
                Some([mode(to_eval)?, mode(to_train)?])
            }
            None => None,
        };
        let controls = plan.plan.controls as usize;
        Ok(Optimizer {
            ctx: ctx.clone(),
            configs,
            spec,
            storage,
            pipelines,
            control,
            groups,
            prologue,
            tensors,
            plan,
            dispatches,
            grad: None,
            norm_stats: None,
            control_mode,
            modes,
            control_owners: Arc::new(Mutex::new(vec![ControlOwners::default(); controls])),
            schedule: None,
            trust_fold,
            muon: None,
        })
    }
}

/// The state buffers: one per state and span, laid out as the span's params and padded to
/// whole units (8 elements), in the states' type; with master weights, one f32 buffer of the
/// master copy per span too (zeros until the first step copies the parameters in); a span that
/// `donor` lays out the same way keeps `donor`'s buffers. Returns each tensor's ranges of them
/// (empty ranges for a tensor of length 0) and each span's.
fn allocate_states(
    ctx: &Context,
    spec: &KernelSpec,
    storage: Storage,
    plan: &DevicePlan,
    params: &[Param],
    donor: Option<&Optimizer>,
) -> (Vec<SpanStates>, Vec<SpanStates>) {
    let device = ctx.device();
    let state_buffer = |name: &str, init: f32, dtype: Dtype, len: u64| {
        // The initial value as a store would leave it (Adagrad's may not be representable).
        let init = vec![init; len.next_multiple_of(8).max(8) as usize];
        let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(name),
            contents: &dtype.encode(&init),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        });
        BufferRange::typed(&buffer, 0, len, dtype)
    };
    // 8-bit states: a byte of code per element and a scale per block, all zeros (torchao's
    // `OptimState8bit.zeros`), in one buffer of codes and one of scales for every state of a
    // span: each chunk's in regions of their own (`plan::QuantRegions`), which hold the kept
    // states' parts of the chunk one after another in slot order (`Chunk::state_quant`), so a
    // chunk binds one range of each.
    let rank = |state: usize| {
        let slot = spec.states[state].slot;
        spec.states.iter().filter(|s| s.slot < slot).count() as u64
    };
    let quant_state = |extent: QuantRegions| {
        let zeroed = |label: &str, bytes: u64| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &vec![0; bytes.next_multiple_of(16).max(16) as usize],
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
        };
        let scales = zeroed("wgpu-optim 8-bit scales", 4 * extent.scales);
        QuantState {
            codes: zeroed("wgpu-optim 8-bit codes", extent.codes),
            offset: 0,
            len: extent.codes,
            scales: BufferRange::typed(&scales, 0, extent.scales, Dtype::F32),
        }
    };
    // A span of quantized tensors keeps 8-bit states; the others full precision.
    let span_buffers = |n: usize, len: u64, quantized: bool| SpanStates {
        states: if quantized {
            Vec::new()
        } else {
            spec.states
                .iter()
                .map(|s| state_buffer(s.name, s.init, storage.states, len))
                .collect()
        },
        master: storage
            .master
            .then(|| state_buffer(MASTER_PARAM, 0.0, Dtype::F32, len)),
        quant: if quantized {
            vec![vec![quant_state(plan.plan.quant_extent(n))]; spec.states.len()]
        } else {
            Vec::new()
        },
    };
    // Tensors of length 0 belong to no span: they share empty ranges of tiny buffers.
    let mut tensor_states = vec![span_buffers(0, 0, false); params.len()];
    let span_states = plan
        .plan
        .spans
        .iter()
        .enumerate()
        .map(|(n, span)| {
            let donated = donor
                .filter(|_| storage.quant8.is_none())
                .and_then(|donor| donated_states(donor, span, params));
            let buffers = donated.unwrap_or_else(|| span_buffers(n, span.len(), span.quantized));
            for &i in &span.tensors {
                let param = &params[i].param;
                let offset = span.offset_at(param.offset(), param.dtype());
                let len = params[i].len();
                let slice = |s: &BufferRange| s.slice(offset, len);
                // A tensor's codes and scales are in its chunks' regions, in state `j`'s part
                // of each, element `x` of a chunk's at code `x` and scale `x / BLOCK`.
                let block = BLOCK as u64;
                let quant_parts = |(j, span_state): (usize, &Vec<QuantState>)| {
                    let whole = &span_state[0];
                    let chunks = plan.plan.chunks.iter().filter(|c| c.span == n);
                    chunks
                        .filter(|c| c.offset < offset + len && offset < c.offset + c.len)
                        .map(|c| {
                            let from = offset.max(c.offset);
                            let to = (offset + len).min(c.offset + c.len);
                            let within = from - c.offset;
                            let part = c.state_quant(rank(j));
                            QuantState {
                                codes: whole.codes.clone(),
                                offset: part.codes + within,
                                len: to - from,
                                scales: (whole.scales)
                                    .slice(part.scales + within / block, (to - from) / block),
                            }
                        })
                        .collect()
                };
                tensor_states[i] = SpanStates {
                    states: buffers.states.iter().map(slice).collect(),
                    master: buffers.master.as_ref().map(slice),
                    quant: buffers.quant.iter().enumerate().map(quant_parts).collect(),
                };
            }
            buffers
        })
        .collect();
    (tensor_states, span_states)
}

/// Whether each span's state buffers (`allocate_states`) fit the device's `max_buffer_size`:
/// f32 states or master weights of 16-bit parameters take twice the parameters' bytes, 8-bit
/// states every kept state's codes in one buffer.
fn check_state_buffers(
    device: &wgpu::Device,
    spec: &KernelSpec,
    storage: Storage,
    plan: &Plan,
) -> Result<()> {
    let limit = device.limits().max_buffer_size;
    for (n, span) in plan.spans.iter().enumerate() {
        let padded = span.len().next_multiple_of(8).max(8);
        let kept = spec.states.len() as u64;
        let buffers = [
            (
                "states",
                (!span.quantized && kept > 0).then(|| padded * storage.states.size()),
            ),
            ("master weights", storage.master.then_some(padded * 4)),
            (
                "8-bit codes",
                span.quantized.then(|| plan.quant_extent(n).codes),
            ),
        ];
        for (what, bytes) in buffers {
            if let Some(bytes) = bytes.filter(|&b| b.next_multiple_of(16) > limit) {
                let index = span.tensors[0];
                return Err(Error::StateBufferTooLarge {
                    what,
                    index,
                    bytes,
                    limit,
                });
            }
        }
    }
    Ok(())
}

/// `donor`'s state buffers for `span`, if `donor` holds this span's tensors at the same
/// relative offsets in buffers of exactly the span's size (then no other span of `donor`
/// shares them, and no other span of the new optimizer can match them too).
fn donated_states(donor: &Optimizer, span: &Span, params: &[Param]) -> Option<SpanStates> {
    let first = donor.tensors.get(*span.tensors.first()?)?;
    let whole = |range: &BufferRange| {
        let bytes = range.dtype().size() * span.len().next_multiple_of(8).max(8);
        (range.buffer().size() == bytes)
            .then(|| BufferRange::typed(range.buffer(), 0, span.len(), range.dtype()))
    };
    let buffers = SpanStates {
        states: first.states.iter().map(whole).collect::<Option<_>>()?,
        master: match &first.master {
            Some(master) => Some(whole(master)?),
            None => None,
        },
        quant: Vec::new(),
    };
    let same = |kept: &BufferRange, buffer: &BufferRange, offset: u64, len: u64| {
        let wanted = buffer.slice(offset, len);
        kept.buffer() == wanted.buffer() && kept.offset() == wanted.offset() && kept.len() == len
    };
    let laid_out_alike = span.tensors.iter().all(|&i| {
        let (Some(kept), Some(param)) = (donor.tensors.get(i), params.get(i)) else {
            return false;
        };
        let offset = span.offset_at(param.param.offset(), param.param.dtype());
        let len = param.len();
        kept.states.len() == buffers.states.len()
            && (kept.states.iter().zip(&buffers.states)).all(|(k, b)| same(k, b, offset, len))
            && match (&kept.master, &buffers.master) {
                (Some(k), Some(b)) => same(k, b, offset, len),
                (None, None) => true,
                _ => false,
            }
    });
    laid_out_alike.then_some(buffers)
}
