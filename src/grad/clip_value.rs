//! `clip_grad_value_` on its own: [`ClipValue`] clamps gradient buffers in place
//! (`shaders/clip_value.wgsl`).

use std::sync::Arc;

use super::config::positive_f32;
use crate::error::{Error, Result};
use crate::gpu::pipeline::{
    bind_group, bind_group_layout, compute_pipeline, create_module, BufferEntry,
};
use crate::gpu::{capture_errors, check_disjoint, storage_alignment, BufferRange, Context};
use crate::kernel::plan::{ControlMode, DevicePlan, PlanGroups, PlanLimits};
use crate::kernel::{
    concatenate, prelude, shader_file, Dispatch, ShaderFile, Slots, Storage, CONTROL, SEGMENT,
};

/// The clamp's entry point.
pub const CLIP_VALUE: ShaderFile = shader_file!("clip_value.wgsl");

/// The bindings of the clip-by-value module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClipValueBinding {
    /// The chunk's values, clamped in place.
    Values,
    /// The bound.
    Bound,
    /// The chunk's segments.
    Segments,
}

impl Slots for ClipValueBinding {
    const ALL: &'static [Self] = &[
        ClipValueBinding::Values,
        ClipValueBinding::Bound,
        ClipValueBinding::Segments,
    ];

    fn index(self) -> u32 {
        match self {
            ClipValueBinding::Values => 0,
            ClipValueBinding::Bound => 1,
            ClipValueBinding::Segments => 2,
        }
    }

    fn constant(self) -> &'static str {
        match self {
            ClipValueBinding::Values => "VALUES_BINDING",
            ClipValueBinding::Bound => "BOUND_BINDING",
            ClipValueBinding::Segments => "SEGMENTS_BINDING",
        }
    }
}

/// The files of the clip-by-value module.
pub fn clip_value_files() -> Vec<ShaderFile> {
    vec![CONTROL, SEGMENT, CLIP_VALUE]
}

/// The clip-by-value module's WGSL source: its bindings' prelude and files.
pub fn clip_value_source() -> String {
    concatenate(&prelude::<ClipValueBinding>(), &clip_value_files())
}

/// Cache key of the clamp's pipeline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ClipValueKey {
    workgroup_size: u32,
}

struct ClipValuePipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// `clip_grad_value_` on its own: clamps gradient buffers in place to
/// `[-clip_value, clip_value]`, for code that needs the clipped gradients themselves. Inside an
/// optimizer step prefer [`GradConfig::with_clip_value`](crate::GradConfig::with_clip_value), which clamps as the step loads each
/// gradient and writes nothing.
///
/// ```no_run
/// # use wgpu_optim::{BufferRange, ClipValue, Context};
/// # fn demo(ctx: &Context, grads: &[BufferRange]) -> wgpu_optim::Result<()> {
/// let clip = ClipValue::new(ctx, grads, 0.5)?;
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// clip.record(&mut encoder);
/// ctx.queue().submit([encoder.finish()]);
/// # Ok(()) }
/// ```
pub struct ClipValue {
    ctx: Context,
    pipeline: Arc<ClipValuePipeline>,
    bound: wgpu::Buffer,
    // Kept alive for the bind groups.
    _plan: DevicePlan,
    chunks: Vec<Dispatch>,
}

impl ClipValue {
    /// Prepares the clamp of `grads` (each with `STORAGE` usage at an aligned offset, none
    /// overlapping another). Ranges of one buffer are clamped together, one dispatch per
    /// binding-size chunk, as an optimizer updates an [`Arena`](crate::Arena): the bytes
    /// between them are never written.
    pub fn new(ctx: &Context, grads: &[BufferRange], clip_value: f64) -> Result<Self> {
        use wgpu::util::DeviceExt;
        positive_f32("clip_value", clip_value)?;
        let device = ctx.device();
        let alignment = storage_alignment(device);
        for (index, grad) in grads.iter().enumerate() {
            grad.check(index, "grad", alignment, wgpu::BufferUsages::STORAGE)?;
            if grad.dtype().is_16bit() {
                return Err(Error::UnsupportedDtype {
                    what: "ClipValue",
                    dtype: grad.dtype(),
                    supported: "f32 buffers",
                });
            }
        }
        check_disjoint(&grads.iter().collect::<Vec<_>>())?;
        let workgroup_size = ctx.tuning().workgroup_size;
        use ClipValueBinding as B;
        let pipeline = ctx.cached(ClipValueKey { workgroup_size }, |device| {
            let module = create_module(device, "clip_value", &clip_value_source());
            let layout = bind_group_layout(
                device,
                "clip_value",
                &[
                    BufferEntry::read_write(B::Values.index()),
                    BufferEntry::read(B::Bound.index()),
                    BufferEntry::read(B::Segments.index()),
                ],
            );
            let constants = [("WORKGROUP_SIZE", f64::from(workgroup_size))];
            ClipValuePipeline {
                pipeline: compute_pipeline(
                    device,
                    &module,
                    "clip_value_in_place",
                    &layout,
                    &constants,
                ),
                layout,
            }
        })?;
        capture_errors(device, || {
            let bound = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-optim clip_value"),
                contents: bytemuck::bytes_of(&(clip_value as f32)),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            });
            let tensors: Vec<Vec<BufferRange>> = grads.iter().map(|g| vec![g.clone()]).collect();
            let groups = PlanGroups {
                of_tensor: &vec![0; grads.len()],
                count: 1,
                quantized: &[],
                quant_states: 0,
            };
            let limits = PlanLimits::new(ctx, Storage::F32);
            let plan = DevicePlan::new(device, &tensors, groups, ControlMode::Shared, &limits);
            // Each tensor is planned as its values alone.
            const VALUES: usize = 0;
            let chunks = plan
                .plan
                .chunks
                .iter()
                .map(|chunk| {
                    let values = plan.range(chunk, VALUES, chunk.len);
                    let group = bind_group(
                        device,
                        "clip_value",
                        &pipeline.layout,
                        &[
                            (B::Values.index(), values.binding()),
                            (B::Bound.index(), bound.as_entire_binding()),
                            (B::Segments.index(), plan.binding(chunk.all)),
                        ],
                    );
                    // A 1-D grid: each workgroup loops over segments (grid-stride).
                    let workgroups = chunk.all.count.clamp(1, ctx.max_workgroups());
                    Dispatch {
                        group,
                        grid: (workgroups as u32, 1),
                    }
                })
                .collect();
            ClipValue {
                ctx: ctx.clone(),
                pipeline,
                bound,
                _plan: plan,
                chunks,
            }
        })
    }

    /// Changes the bound for the work submitted after this call.
    pub fn set_clip_value(&mut self, clip_value: f64) -> Result<()> {
        positive_f32("clip_value", clip_value)?;
        self.ctx
            .queue()
            .write_buffer(&self.bound, 0, bytemuck::bytes_of(&(clip_value as f32)));
        Ok(())
    }

    /// Records the clamp of every gradient into `encoder`.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-optim clip_value"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline.pipeline);
        for dispatch in &self.chunks {
            dispatch.record(&mut pass);
        }
    }
}
