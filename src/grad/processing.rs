//! Gradient processing attached to one optimizer: the reduction of every gradient into
//! [`NormStats`](crate::NormStats) and the finalize that turns them into the control block's norm, clip
//! coefficient, skip flag and loss scale (`shaders/clip.wgsl`).

use std::sync::Arc;

use super::config::{GradConfig, GradHyper, Partial};
use crate::dtype::Dtype;
use crate::error::Result;
use crate::gpu::pipeline::{
    bind_group, bind_group_layout, compute_pipeline, create_module, flag, BufferEntry,
};
use crate::gpu::{capture_errors, BufferRange, Context};
use crate::kernel::plan::{grid, DevicePlan, Role};
use crate::kernel::{
    concatenate, prelude, shader_file, Dispatch, ShaderFile, Slots, CONTROL, SEGMENT,
};

/// The bindings of the gradient-processing module (`shaders/clip.wgsl`), shared by its three
/// entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GradBinding {
    /// The control blocks, written by the finalize.
    Control,
    /// One [`GradHyper`] per control block.
    GradHyper,
    /// The chunk's gradients, element by element.
    Grad,
    /// Every workgroup's [`Partial`].
    Partials,
    /// One [`NormStats`](crate::NormStats) per control block.
    Stats,
    /// The control blocks, read-only (the partials' loss scale and bound).
    ControlIn,
    /// The chunk's gradients as vec4s.
    Grad4,
    /// The chunk's segments.
    Segments,
    /// The chunk's reduction work.
    Work,
    /// One fold per control block.
    Folds,
}

impl Slots for GradBinding {
    const ALL: &'static [Self] = &[
        GradBinding::Control,
        GradBinding::GradHyper,
        GradBinding::Grad,
        GradBinding::Partials,
        GradBinding::Stats,
        GradBinding::ControlIn,
        GradBinding::Grad4,
        GradBinding::Segments,
        GradBinding::Work,
        GradBinding::Folds,
    ];

    fn index(self) -> u32 {
        GradBinding::ALL
            .iter()
            .position(|&b| b == self)
            .expect("listed") as u32
    }

    fn constant(self) -> &'static str {
        match self {
            GradBinding::Control => "CONTROL_BINDING",
            GradBinding::GradHyper => "GRAD_HYPER_BINDING",
            GradBinding::Grad => "GRAD_BINDING",
            GradBinding::Partials => "PARTIALS_BINDING",
            GradBinding::Stats => "STATS_BINDING",
            GradBinding::ControlIn => "CONTROL_IN_BINDING",
            GradBinding::Grad4 => "GRAD4_BINDING",
            GradBinding::Segments => "SEGMENTS_BINDING",
            GradBinding::Work => "WORK_BINDING",
            GradBinding::Folds => "FOLDS_BINDING",
        }
    }
}

impl GradBinding {
    fn read(self) -> BufferEntry {
        BufferEntry::read(self.index())
    }

    fn read_write(self) -> BufferEntry {
        BufferEntry::read_write(self.index())
    }

    fn bind(self, resource: wgpu::BindingResource<'_>) -> (u32, wgpu::BindingResource<'_>) {
        (self.index(), resource)
    }
}

/// The reduction over f32 gradients.
pub const GRAD_F32: ShaderFile = shader_file!("common/grad_f32.wgsl");
/// The reduction over 16-bit gradients.
pub const GRAD_16BIT: ShaderFile = shader_file!("common/grad_16bit.wgsl");
/// The workgroup reduction in workgroup memory.
pub const REDUCE_WORKGROUP: ShaderFile = shader_file!("common/reduce_workgroup.wgsl");
/// The workgroup reduction with subgroup operations.
pub const REDUCE_SUBGROUP: ShaderFile = shader_file!("common/reduce_subgroup.wgsl");
/// The gradient-processing entry points.
pub const CLIP: ShaderFile = shader_file!("clip.wgsl");

/// The files of the gradient-processing module for gradients stored 16-bit (`sixteen_bit`)
/// or f32: its workgroup reduction uses subgroup operations when `subgroups` is true (the
/// device then needs `Features::SUBGROUP`; naga 30 takes subgroup built-ins without WGSL's
/// `enable subgroups;`, and refuses it).
pub fn grad_files(subgroups: bool, sixteen_bit: bool) -> Vec<ShaderFile> {
    let reduce = if subgroups {
        REDUCE_SUBGROUP
    } else {
        REDUCE_WORKGROUP
    };
    let grad = if sixteen_bit { GRAD_16BIT } else { GRAD_F32 };
    vec![CONTROL, SEGMENT, crate::kernel::DTYPE, grad, reduce, CLIP]
}

/// The gradient-processing module's WGSL source: its bindings' prelude and
/// [`grad_files`].
pub fn grad_source(subgroups: bool, sixteen_bit: bool) -> String {
    concatenate(
        &prelude::<GradBinding>(),
        &grad_files(subgroups, sixteen_bit),
    )
}

/// Cache key of the gradient-processing pipelines: the module with or without subgroup
/// operations, for gradients of one type, its reduction with these stages.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct GradKey {
    subgroups: bool,
    grad: Dtype,
    stages: crate::kernel::GradStages,
}

/// The gradient-processing pipelines, built once per context, subgroup choice and stages.
pub(crate) struct GradPipelines {
    partials: wgpu::ComputePipeline,
    local: wgpu::ComputePipeline,
    finalize: wgpu::ComputePipeline,
    partials_layout: wgpu::BindGroupLayout,
    local_layout: wgpu::BindGroupLayout,
    finalize_layout: wgpu::BindGroupLayout,
}

impl GradPipelines {
    fn get(ctx: &Context, stages: crate::kernel::GradStages, grad: Dtype) -> Result<Arc<Self>> {
        let subgroups = ctx.uses_subgroups();
        let key = GradKey {
            subgroups,
            grad,
            stages,
        };
        ctx.cached(key, |device| {
            let source = grad_source(subgroups, grad.is_16bit());
            let module = create_module(device, "clip", &source);
            use GradBinding as B;
            let partials_layout = bind_group_layout(
                device,
                "grad_partials",
                &[
                    B::GradHyper.read(),
                    B::Grad.read(),
                    B::Partials.read_write(),
                    B::ControlIn.read(),
                    B::Grad4.read(),
                    B::Segments.read(),
                    B::Work.read(),
                ],
            );
            let local_layout = bind_group_layout(
                device,
                "grad_local",
                &[
                    B::GradHyper.read(),
                    B::Partials.read_write(),
                    B::Stats.read_write(),
                    B::Folds.read(),
                ],
            );
            let finalize_layout = bind_group_layout(
                device,
                "grad_finalize",
                &[
                    B::Control.read_write(),
                    B::GradHyper.read(),
                    B::Stats.read_write(),
                ],
            );
            let mut constants = vec![
                ("UNSCALE", flag(stages.unscale)),
                ("CLIP_VALUE", flag(stages.clip_value)),
                ("POWER_NORM", flag(stages.power_norm)),
            ];
            if grad.is_16bit() {
                constants.push(("GRAD_BF16", flag(grad == Dtype::BF16)));
            }
            GradPipelines {
                partials: compute_pipeline(
                    device,
                    &module,
                    "grad_partials",
                    &partials_layout,
                    &constants,
                ),
                local: compute_pipeline(device, &module, "grad_local", &local_layout, &[]),
                finalize: compute_pipeline(device, &module, "grad_finalize", &finalize_layout, &[]),
                partials_layout,
                local_layout,
                finalize_layout,
            }
        })
    }
}
/// Gradient processing attached to one optimizer: its buffers and bind groups.
pub(crate) struct GradProcessing {
    /// One configuration per control block.
    pub configs: Vec<GradConfig>,
    pipelines: Arc<GradPipelines>,
    // Kept alive for the bind groups.
    _hyper: wgpu::Buffer,
    _partials: wgpu::Buffer,
    chunks: Vec<Dispatch>,
    local: wgpu::BindGroup,
    finalize: wgpu::BindGroup,
    controls: u32,
}

impl GradProcessing {
    /// Buffers and bind groups for `configs` (one per control block of `plan`, valid) over the
    /// gradients of the optimizer's `plan` (role 1 of its spans), feeding `control` through the
    /// [`NormStats`](crate::NormStats) in `stats`.
    pub fn new(
        ctx: &Context,
        configs: Vec<GradConfig>,
        device_plan: &DevicePlan,
        control: &wgpu::Buffer,
        stats: &BufferRange,
    ) -> Result<Self> {
        use wgpu::util::DeviceExt;
        let plan = &device_plan.plan;
        debug_assert_eq!(configs.len(), plan.controls as usize);
        // One type for every gradient of an optimizer (checked at its build).
        let grad = plan
            .spans
            .first()
            .map_or(Dtype::F32, |span| span.ranges[Role::Grad as usize].dtype);
        let hyper = configs
            .iter()
            .map(GradConfig::hyper)
            .collect::<Result<Vec<GradHyper>>>()?;
        let pipelines = GradPipelines::get(ctx, GradConfig::union_of_stages(&configs), grad)?;
        let max_x = ctx.max_workgroups();
        use GradBinding as B;
        capture_errors(ctx.device(), || {
            let device = ctx.device();
            // Every chunk's partials in one binding (see `Plan::partials`).
            let partials = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-optim partials"),
                size: plan.partials.max(1) * std::mem::size_of::<Partial>() as u64,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let hyper_buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-optim grad hyper"),
                contents: bytemuck::cast_slice(&hyper),
                usage: wgpu::BufferUsages::STORAGE,
            });
            let chunks = plan
                .chunks
                .iter()
                .map(|chunk| {
                    let grad = device_plan.range(chunk, Role::Grad as usize, chunk.len);
                    let body = device_plan.range(chunk, Role::Grad as usize, chunk.len / 4 * 4);
                    let grad4 = if body.is_empty() {
                        ctx.placeholder(0).as_entire_binding()
                    } else {
                        body.binding()
                    };
                    let group = bind_group(
                        device,
                        "grad_partials",
                        &pipelines.partials_layout,
                        &[
                            B::GradHyper.bind(hyper_buffer.as_entire_binding()),
                            B::Grad.bind(grad.binding()),
                            B::Partials.bind(partials.as_entire_binding()),
                            B::ControlIn.bind(control.as_entire_binding()),
                            B::Grad4.bind(grad4),
                            B::Segments.bind(device_plan.binding(chunk.all)),
                            B::Work.bind(device_plan.binding(chunk.reduce)),
                        ],
                    );
                    Dispatch {
                        group,
                        grid: grid(chunk.reduce.count, max_x),
                    }
                })
                .collect();
            let local = bind_group(
                device,
                "grad_local",
                &pipelines.local_layout,
                &[
                    B::GradHyper.bind(hyper_buffer.as_entire_binding()),
                    B::Partials.bind(partials.as_entire_binding()),
                    B::Stats.bind(stats.binding()),
                    B::Folds.bind(device_plan.binding(plan.folds)),
                ],
            );
            let finalize = bind_group(
                device,
                "grad_finalize",
                &pipelines.finalize_layout,
                &[
                    B::Control.bind(control.as_entire_binding()),
                    B::GradHyper.bind(hyper_buffer.as_entire_binding()),
                    B::Stats.bind(stats.binding()),
                ],
            );
            GradProcessing {
                configs,
                pipelines: pipelines.clone(),
                _hyper: hyper_buffer,
                _partials: partials,
                chunks,
                local,
                finalize,
                controls: plan.controls,
            }
        })
    }

    /// Records the reduction of every gradient into the [`NormStats`](crate::NormStats) buffer.
    pub fn record_stats(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipelines.partials);
        for dispatch in &self.chunks {
            dispatch.record(pass);
        }
        pass.set_pipeline(&self.pipelines.local);
        pass.set_bind_group(0, &self.local, &[]);
        pass.dispatch_workgroups(self.controls, 1, 1);
    }

    /// Records the finalize: norm, clip coefficient, found_inf and loss scale into the control
    /// block, from the [`NormStats`](crate::NormStats) buffer.
    pub fn record_finalize(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipelines.finalize);
        pass.set_bind_group(0, &self.finalize, &[]);
        pass.dispatch_workgroups(self.controls.div_ceil(64), 1, 1);
    }
}
