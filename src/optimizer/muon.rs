//! The Muon groups of an optimizer ([`MuonGroup`]): 2-D parameters stepped by Muon beside the
//! element-wise groups, under the optimizer's one control block (one step counter, one
//! global-norm clip over every parameter, one inf/NaN skip, one loss scale) and in its one
//! `step`: Optax's `partition` of Muon and AdamW, fused.
//!
//! A step records, after the element-wise update: the momentum pass (`shaders/muon.wgsl`,
//! writing each matrix's update into the Newton-Schulz batch's input), the batched iteration
//! ([`NewtonSchulz`]: every matrix together) and the apply pass (decay and the adjusted step
//! from its output). With gradient processing, the Muon gradients' norm stats are reduced by
//! the same kernels as the others' (a [`GradProcessing`] over their own plan) and added to
//! them before the finalize.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::pipeline::{bind_group, bind_group_layout, compute_pipeline, create_module};
use crate::gpu::pipeline::{flag, BufferEntry};
use crate::gpu::{BufferRange, Context, Param};
use crate::grad::{GradConfig, GradProcessing};
use crate::kernel::plan::{grid, ControlMode, DevicePlan, PlanGroups, PlanLimits};
use crate::kernel::{
    concatenate, prelude, shader_file, wgsl_struct, Dispatch, GradStages, ShaderFile, Slots,
    Storage, CONTROL, MATH, PROCESS,
};
use crate::matrix::NewtonSchulz;
use crate::optim::MuonConfig;

/// Muon's passes (`shaders/muon.wgsl`).
pub const MUON: ShaderFile = shader_file!("muon.wgsl");

/// A group of 2-D parameters stepped by Muon ([`MuonConfig`]) in an optimizer built with
/// [`Optimizer::with_muon`](crate::Optimizer::with_muon): PyTorch's `param_groups` entry of a
/// `torch.optim.Muon`, shapes included (Muon's update depends on them).
#[derive(Clone, Debug)]
pub struct MuonGroup {
    /// Their configuration.
    pub config: MuonConfig,
    /// Their tensors: f32 parameters and gradients, each `rows x cols` row-major.
    pub params: Vec<Param>,
    /// Each tensor's shape, `[rows, cols]` as PyTorch's `param.shape` (anything else is
    /// [`Error::NotAMatrix`]).
    pub shapes: Vec<Vec<usize>>,
}

/// The files of Muon's passes.
pub fn muon_files() -> Vec<ShaderFile> {
    vec![CONTROL, MATH, PROCESS, MUON]
}

/// The WGSL source of Muon's passes: its bindings' prelude and its files.
pub fn muon_source() -> String {
    concatenate(&prelude::<MuonBinding>(), &muon_files())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MuonBinding {
    Control,
    Matrices,
    Tiles,
    Param,
    Grad,
    Momentum,
    NsIn,
    NsOut,
    Stats,
    MuonStats,
}

impl Slots for MuonBinding {
    const ALL: &'static [Self] = &[
        MuonBinding::Control,
        MuonBinding::Matrices,
        MuonBinding::Tiles,
        MuonBinding::Param,
        MuonBinding::Grad,
        MuonBinding::Momentum,
        MuonBinding::NsIn,
        MuonBinding::NsOut,
        MuonBinding::Stats,
        MuonBinding::MuonStats,
    ];

    fn index(self) -> u32 {
        self as u32
    }

    fn constant(self) -> &'static str {
        match self {
            MuonBinding::Control => "CONTROL_BINDING",
            MuonBinding::Matrices => "MATRICES_BINDING",
            MuonBinding::Tiles => "TILES_BINDING",
            MuonBinding::Param => "PARAM_BINDING",
            MuonBinding::Grad => "GRAD_BINDING",
            MuonBinding::Momentum => "MOMENTUM_BINDING",
            MuonBinding::NsIn => "NS_IN_BINDING",
            MuonBinding::NsOut => "NS_OUT_BINDING",
            MuonBinding::Stats => "STATS_BINDING",
            MuonBinding::MuonStats => "MUON_STATS_BINDING",
        }
    }
}

/// Elements a workgroup of the passes takes (`MUON_TILE` in the shader).
const TILE: u64 = 1024;

wgsl_struct! {
    /// One Muon matrix's record (`MuonMatrix` in `shaders/muon.wgsl`), written by the host.
    pub struct MuonMatrix as "MuonMatrix" {
        /// First element in its span's `param` binding.
        param: u32,
        /// First element in its span's `grad` binding.
        grad: u32,
        /// First element in the momentum buffer.
        state: u32,
        /// First element in the Newton-Schulz batch's input and output.
        io: u32,
        /// Elements.
        len: u32,
        /// Non-zero for Nesterov's look-ahead.
        nesterov: u32,
        /// The momentum factor.
        momentum: f32,
        /// 1 - momentum, computed in f64.
        one_minus_momentum: f32,
        /// 1 - lr * weight_decay, computed in f64.
        decay: f32,
        /// -(lr * ratio(rows, cols)), computed in f64.
        step: f32,
        /// Non-zero for Optax's form.
        optax: u32,
        /// ln(momentum), for Optax's bias corrections.
        ln_momentum: f32,
        /// ratio(rows, cols).
        scale: f32,
        /// The weight decay.
        weight_decay: f32,
        /// -lr.
        neg_lr: f32,
        /// Padding.
        pad: u32,
    }
}

wgsl_struct! {
    /// A workgroup's share of a span (`MuonTile` in `shaders/muon.wgsl`): `MUON_TILE` elements
    /// of one matrix.
    pub struct MuonTile as "MuonTile" {
        /// The matrix's record.
        matrix: u32,
        /// Its first element.
        start: u32,
    }
}

/// One layout for the passes, one for the combine: shared by every variant's pipelines.
struct MuonLayouts {
    step: wgpu::BindGroupLayout,
    combine: wgpu::BindGroupLayout,
    module: wgpu::ShaderModule,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct LayoutKey;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PipelineKey(GradStages);

/// The pipelines of one gradient-processing variant.
struct MuonPipelines {
    momentum: wgpu::ComputePipeline,
    apply: wgpu::ComputePipeline,
    // Sums, then maxima (the inf-norm).
    combine: [wgpu::ComputePipeline; 2],
}

fn build_layouts(device: &wgpu::Device) -> MuonLayouts {
    use MuonBinding as B;
    let read = |b: MuonBinding| BufferEntry::read(b.index());
    let write = |b: MuonBinding| BufferEntry::read_write(b.index());
    let step = [
        read(B::Control),
        read(B::Matrices),
        read(B::Tiles),
        write(B::Param),
        read(B::Grad),
        write(B::Momentum),
        write(B::NsIn),
        read(B::NsOut),
    ];
    MuonLayouts {
        step: bind_group_layout(device, "muon", &step),
        combine: bind_group_layout(
            device,
            "muon combine",
            &[write(B::Stats), read(B::MuonStats)],
        ),
        module: create_module(device, "muon", &muon_source()),
    }
}

fn build_pipelines(device: &wgpu::Device, l: &MuonLayouts, s: GradStages) -> MuonPipelines {
    let constants = [
        ("GRAD_PROCESSING", flag(s.on)),
        ("UNSCALE", flag(s.unscale)),
        ("CLIP_VALUE", flag(s.clip_value)),
        ("CLIP_NORM", flag(s.clip_norm)),
    ];
    let pass = |entry| compute_pipeline(device, &l.module, entry, &l.step, &constants);
    let combine = |inf: bool| {
        compute_pipeline(
            device,
            &l.module,
            "muon_combine",
            &l.combine,
            &[("INF_NORM", flag(inf))],
        )
    };
    MuonPipelines {
        momentum: pass("muon_momentum"),
        apply: pass("muon_apply"),
        combine: [combine(false), combine(true)],
    }
}

/// A Muon tensor: its ranges, group, shape and momentum buffer.
pub(super) struct MuonTensor {
    pub param: Param,
    pub group: usize,
    pub rows: usize,
    pub cols: usize,
    pub momentum: BufferRange,
}

/// The Muon gradients' share of gradient processing: their norm stats, added to the
/// optimizer's by the combine.
struct MuonGrad {
    processing: GradProcessing,
    combine: wgpu::BindGroup,
    inf_norm: bool,
    _stats: wgpu::Buffer,
}

/// The Muon share of gradient processing, built but not yet in force.
pub(super) struct MuonGradSetup {
    pipelines: Arc<MuonPipelines>,
    grad: Option<MuonGrad>,
}

/// The Muon groups of an optimizer: their state, records, batch and dispatches.
pub(super) struct MuonPart {
    pub configs: Vec<MuonConfig>,
    pub tensors: Vec<MuonTensor>,
    momentum: wgpu::Buffer,
    matrices: wgpu::Buffer,
    records: Vec<MuonMatrix>,
    ns: NewtonSchulz,
    // One bind group and grid per run of tensors sharing their buffers.
    spans: Vec<Dispatch>,
    layouts: Arc<MuonLayouts>,
    pipelines: Arc<MuonPipelines>,
    plan: DevicePlan,
    grad: Option<MuonGrad>,
}

/// The Muon groups' tensors, validated: shapes, lengths, usages, types, one iteration.
pub(super) fn check_groups(
    ctx: &Context,
    groups: &[MuonGroup],
    first_index: usize,
) -> Result<Vec<(Param, usize, usize, usize)>> {
    let mut tensors = Vec::new();
    let Some(first) = groups.first() else {
        return Ok(tensors);
    };
    for (g, group) in groups.iter().enumerate() {
        group.config.validate()?;
        let c = &group.config;
        let f = &first.config;
        if c.iteration() != f.iteration() {
            // One batch runs every matrix's iteration with one set of constants.
            return Err(Error::StructuralChange("Muon"));
        }
        if group.shapes.len() != group.params.len() {
            return Err(Error::WrongLength {
                what: "Muon group shapes (one per parameter)",
                expected: group.params.len(),
                actual: group.shapes.len(),
            });
        }
        for (param, shape) in group.params.iter().zip(&group.shapes) {
            let index = first_index + tensors.len();
            let (rows, cols) = MuonConfig::check_shape(shape)?;
            param.check(index, ctx.device())?;
            if (rows * cols) as u64 != param.len() || rows == 0 || cols == 0 {
                return Err(Error::WrongLength {
                    what: "Muon parameter (rows x cols elements, at least one)",
                    expected: rows * cols,
                    actual: param.len() as usize,
                });
            }
            for range in [&param.param, &param.grad] {
                if range.dtype() != Dtype::F32 {
                    return Err(Error::UnsupportedDtype {
                        what: "Muon parameters and gradients",
                        dtype: range.dtype(),
                        supported: "f32",
                    });
                }
            }
            tensors.push((param.clone(), g, rows, cols));
        }
    }
    Ok(tensors)
}

impl MuonPart {
    /// Muon's state, batch and dispatches for `tensors` (checked by [`check_groups`]), reading
    /// the optimizer's `control` buffer.
    pub fn new(
        ctx: &Context,
        configs: Vec<MuonConfig>,
        tensors: Vec<(Param, usize, usize, usize)>,
        control: &wgpu::Buffer,
    ) -> Result<MuonPart> {
        let device = ctx.device();
        let first = &configs[0];
        let shapes: Vec<(usize, usize)> = tensors.iter().map(|t| (t.2, t.3)).collect();
        let ns = NewtonSchulz::with_options(
            ctx,
            &shapes,
            first.ns_coefficients,
            first.ns_steps,
            first.eps,
            first.ns_options(),
        )?;
        let total: u64 = tensors.iter().map(|t| t.0.len()).sum();
        let limits = device.limits();
        if total * 4 > limits.max_storage_buffer_binding_size {
            return Err(Error::InvalidOptions(
                "Muon's momentum buffers past one storage binding (max_storage_buffer_binding_size)",
            ));
        }
        let layouts = ctx.cached(LayoutKey, build_layouts)?;
        let pipelines = Self::pipelines(ctx, &layouts, GradStages::default())?;
        let momentum = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-optim muon momentum"),
            size: (total.max(1) * 4).next_multiple_of(16),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut state = 0;
        let tensors: Vec<MuonTensor> = tensors
            .into_iter()
            .map(|(param, group, rows, cols)| {
                let range = BufferRange::new(&momentum, state * 4, param.len());
                state += param.len();
                MuonTensor {
                    param,
                    group,
                    rows,
                    cols,
                    momentum: range,
                }
            })
            .collect();
        let plan_tensors: Vec<Vec<BufferRange>> = tensors
            .iter()
            .map(|t| vec![t.param.param.clone(), t.param.grad.clone()])
            .collect();
        let of_tensor = vec![0u32; tensors.len()];
        let plan = DevicePlan::new(
            device,
            &plan_tensors,
            PlanGroups {
                of_tensor: &of_tensor,
                count: 1,
                quantized: &[],
                quant_states: 0,
            },
            ControlMode::Shared,
            &PlanLimits::new(ctx, Storage::F32),
        );
        let mut part = MuonPart {
            records: Vec::new(),
            matrices: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-optim muon matrices"),
                size: (tensors.len() * std::mem::size_of::<MuonMatrix>()) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            configs,
            tensors,
            momentum,
            ns,
            spans: Vec::new(),
            layouts,
            pipelines,
            plan,
            grad: None,
        };
        part.records = part.records_of(&part.configs);
        part.spans = part.dispatches(ctx, control)?;
        ctx.queue()
            .write_buffer(&part.matrices, 0, bytemuck::cast_slice(&part.records));
        Ok(part)
    }

    fn pipelines(
        ctx: &Context,
        layouts: &Arc<MuonLayouts>,
        stages: GradStages,
    ) -> Result<Arc<MuonPipelines>> {
        let stages = GradStages {
            power_norm: false,
            ..stages
        };
        ctx.cached(PipelineKey(stages), |device| {
            build_pipelines(device, layouts, stages)
        })
    }

    /// Each matrix's record under `configs` (offsets relative to its span's bindings, set by
    /// `dispatches`; kept from the current records).
    fn records_of(&self, configs: &[MuonConfig]) -> Vec<MuonMatrix> {
        let mut io = 0u32;
        self.tensors
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let c = &configs[t.group];
                let previous = self.records.get(i);
                let len = t.param.len() as u32;
                let record = MuonMatrix {
                    param: previous.map_or(0, |r| r.param),
                    grad: previous.map_or(0, |r| r.grad),
                    state: (t.momentum.offset() / 4) as u32,
                    io,
                    len,
                    nesterov: u32::from(c.nesterov),
                    momentum: c.momentum as f32,
                    one_minus_momentum: (1.0 - c.momentum) as f32,
                    decay: (1.0 - c.lr * c.weight_decay) as f32,
                    step: -(c.adjusted_lr(t.rows, t.cols)) as f32,
                    optax: u32::from(c.optax_form),
                    ln_momentum: c.momentum.ln() as f32,
                    scale: c.adjust_lr.ratio(t.rows, t.cols) as f32,
                    weight_decay: c.weight_decay as f32,
                    neg_lr: -c.lr as f32,
                    pad: 0,
                };
                io += len;
                record
            })
            .collect()
    }

    /// One dispatch per run of consecutive tensors sharing their param and grad buffers whose
    /// ranges fit one storage binding: each binds those ranges' cover.
    fn dispatches(&mut self, ctx: &Context, control: &wgpu::Buffer) -> Result<Vec<Dispatch>> {
        let device = ctx.device();
        let max_binding = device.limits().max_storage_buffer_binding_size;
        let mut runs: Vec<Vec<usize>> = Vec::new();
        for (i, t) in self.tensors.iter().enumerate() {
            let joins = runs.last().is_some_and(|run| {
                let first = &self.tensors[run[0]].param;
                let same = first.param.buffer() == t.param.param.buffer()
                    && first.grad.buffer() == t.param.grad.buffer();
                let cover = |role: fn(&Param) -> &BufferRange| {
                    let start = run.iter().map(|&j| role(&self.tensors[j].param).offset());
                    let start = start.chain([role(&t.param).offset()]).min().unwrap_or(0);
                    let end = run.iter().map(|&j| role(&self.tensors[j].param).end());
                    let end = end.chain([role(&t.param).end()]).max().unwrap_or(0);
                    end - start <= max_binding
                };
                same && cover(|p| &p.param) && cover(|p| &p.grad)
            });
            match runs.last_mut() {
                Some(run) if joins => run.push(i),
                _ => runs.push(vec![i]),
            }
        }
        let mut dispatches = Vec::new();
        for run in runs {
            let cover = |role: fn(&Param) -> &BufferRange| {
                let ranges: Vec<&BufferRange> =
                    run.iter().map(|&j| role(&self.tensors[j].param)).collect();
                let start = ranges.iter().map(|r| r.offset()).min().unwrap_or(0);
                let end = ranges.iter().map(|r| r.end()).max().unwrap_or(0);
                BufferRange::new(ranges[0].buffer(), start, (end - start).div_ceil(4))
            };
            let (param, grad) = (cover(|p| &p.param), cover(|p| &p.grad));
            let mut tiles = Vec::new();
            for &j in &run {
                let t = &self.tensors[j].param;
                self.records[j].param = ((t.param.offset() - param.offset()) / 4) as u32;
                self.records[j].grad = ((t.grad.offset() - grad.offset()) / 4) as u32;
                let starts = (0..t.len()).step_by(TILE as usize);
                tiles.extend(starts.map(|start| MuonTile {
                    matrix: j as u32,
                    start: start as u32,
                }));
            }
            let table = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-optim muon tiles"),
                contents: bytemuck::cast_slice(&tiles),
                usage: wgpu::BufferUsages::STORAGE,
            });
            use MuonBinding as B;
            let io_in = BufferRange::whole(self.ns.input_buffer());
            let io_out = BufferRange::whole(self.ns.output_buffer());
            let group = bind_group(
                device,
                "wgpu-optim muon",
                &self.layouts.step,
                &[
                    (B::Control.index(), control.as_entire_binding()),
                    (B::Matrices.index(), self.matrices.as_entire_binding()),
                    (B::Tiles.index(), table.as_entire_binding()),
                    (B::Param.index(), param.binding()),
                    (B::Grad.index(), grad.binding()),
                    (B::Momentum.index(), self.momentum.as_entire_binding()),
                    (B::NsIn.index(), io_in.binding()),
                    (B::NsOut.index(), io_out.binding()),
                ],
            );
            dispatches.push(Dispatch {
                group,
                grid: grid(tiles.len() as u64, ctx.max_workgroups()),
            });
        }
        Ok(dispatches)
    }

    /// Rewrites the matrices' records for `configs` (validated, one per group, the
    /// iteration's constants unchanged): the steps submitted after this call use them.
    pub fn set_configs(&mut self, ctx: &Context, configs: Vec<MuonConfig>) -> Result<()> {
        let first = &self.configs[0];
        for c in &configs {
            c.validate()?;
            if c.iteration() != first.iteration() {
                return Err(Error::StructuralChange("Muon"));
            }
        }
        self.records = self.records_of(&configs);
        self.configs = configs;
        ctx.queue()
            .write_buffer(&self.matrices, 0, bytemuck::cast_slice(&self.records));
        Ok(())
    }

    /// Builds the Muon gradients' share of gradient processing (`configs`: the optimizer's,
    /// one control block) or its absence, to put in force with
    /// [`MuonPart::commit_grad_processing`]: their stats go to a buffer of their own and are
    /// added to the optimizer's `stats` before its finalize. Changes nothing.
    pub fn prepare_grad_processing(
        &self,
        ctx: &Context,
        configs: Option<&[GradConfig]>,
        control: &wgpu::Buffer,
        stats: Option<&BufferRange>,
    ) -> Result<MuonGradSetup> {
        let (Some(configs), Some(stats)) = (configs, stats) else {
            return Ok(MuonGradSetup {
                pipelines: Self::pipelines(ctx, &self.layouts, GradStages::default())?,
                grad: None,
            });
        };
        let device = ctx.device();
        let muon_stats = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-optim muon norm stats"),
            size: std::mem::size_of::<crate::grad::NormStats>() as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let range = BufferRange::whole(&muon_stats);
        let processing = GradProcessing::new(ctx, configs.to_vec(), &self.plan, control, &range)?;
        use MuonBinding as B;
        let combine = bind_group(
            device,
            "wgpu-optim muon combine",
            &self.layouts.combine,
            &[
                (B::Stats.index(), stats.binding()),
                (B::MuonStats.index(), muon_stats.as_entire_binding()),
            ],
        );
        Ok(MuonGradSetup {
            pipelines: Self::pipelines(ctx, &self.layouts, GradConfig::union_of_stages(configs))?,
            grad: Some(MuonGrad {
                processing,
                combine,
                inf_norm: configs[0].norm_type.is_infinite(),
                _stats: muon_stats,
            }),
        })
    }

    /// Puts in force what [`MuonPart::prepare_grad_processing`] built.
    pub fn commit_grad_processing(&mut self, setup: MuonGradSetup) {
        self.pipelines = setup.pipelines;
        self.grad = setup.grad;
    }

    /// Records the Muon gradients' norm stats and adds them to the optimizer's (after its own
    /// `record_stats`).
    pub fn record_stats(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Some(grad) = &self.grad {
            grad.processing.record_stats(pass);
            pass.set_pipeline(&self.pipelines.combine[usize::from(grad.inf_norm)]);
            pass.set_bind_group(0, &grad.combine, &[]);
            pass.dispatch_workgroups(1, 1, 1);
        }
    }

    /// Records Muon's step (after the optimizer's finalize and prologue): momentum, the
    /// batched iteration, the update.
    pub fn record_step(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipelines.momentum);
        for dispatch in &self.spans {
            dispatch.record(pass);
        }
        self.ns.record_into(pass);
        pass.set_pipeline(&self.pipelines.apply);
        for dispatch in &self.spans {
            dispatch.record(pass);
        }
    }
}
