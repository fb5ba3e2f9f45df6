//! Gradient processing on the device, before each step and inside the same encoder: unscale by
//! the loss scale, detect inf and NaN, clip by value, clip by global norm, update the loss
//! scale. Nothing is read back; see `shaders/clip.wgsl` for the kernels.
//!
//! Attach it to an optimizer with [`Optimizer::set_grad_processing`](crate::Optimizer::set_grad_processing);
//! [`ClipValue`] clips gradients in place on its own.

use std::sync::Arc;

use crate::context::{
    bind_group, bind_group_layout, compute_pipeline, create_module, Context, PipelineKey,
};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::layout::wgsl_struct;
use crate::plan::Plan;
use crate::setters::setters;
use crate::shaders;
use crate::tensor::{storage_alignment, BufferRange};

/// How the global-norm clip coefficient is computed from the norm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClipMode {
    /// `torch.nn.utils.clip_grad_norm_`: `clip_coef = min(1, max_norm / (norm + 1e-6))`, so
    /// gradients shrink slightly even at `norm == max_norm`.
    #[default]
    PyTorch,
    /// `optax.clip_by_global_norm`: gradients are unchanged while `norm < max_norm`, else
    /// scaled by `max_norm / norm`, without the 1e-6. Optax computes `g / norm * max_norm` per
    /// element; here the factor `max_norm / norm` is formed once and multiplies each gradient,
    /// which can differ from Optax's rounding by one ulp.
    Optax,
}

/// Dynamic loss scaling with `torch.amp.GradScaler`'s semantics and defaults. The scale and
/// its growth tracker live on the device, in the optimizer's [`Control`](crate::Control) block.
///
/// After each step: a step whose unscaled gradients hold an inf or NaN is skipped and the scale
/// multiplied by `backoff_factor`; after `growth_interval` consecutive finite steps it is
/// multiplied by `growth_factor` (unless that overflows f32). The factors are used as f32;
/// PyTorch multiplies in f64 and rounds to f32, which is the same whenever the factors are f32
/// values (2.0 and 0.5 are). The inverse scale is `1 / scale` in WGSL: exact for powers of two
/// (every scale the defaults produce), within WGSL's division accuracy otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct GradScalerConfig {
    /// The first scale (default 2^16).
    pub init_scale: f64,
    /// Multiplies the scale after `growth_interval` finite steps (default 2.0).
    pub growth_factor: f64,
    /// Multiplies the scale after a non-finite step (default 0.5).
    pub backoff_factor: f64,
    /// Consecutive finite steps before the scale grows (default 2000).
    pub growth_interval: u32,
}

impl Default for GradScalerConfig {
    fn default() -> Self {
        GradScalerConfig {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

setters! { GradScalerConfig;
    /// Sets the first scale.
    with_init_scale(init_scale: f64);
    /// Sets the growth factor.
    with_growth_factor(growth_factor: f64);
    /// Sets the backoff factor.
    with_backoff_factor(backoff_factor: f64);
    /// Sets the growth interval.
    with_growth_interval(growth_interval: u32);
}

/// What an optimizer does to its gradients before each step, on the device. Gradients are
/// never written: each stage is applied as the step loads them.
///
/// In PyTorch's AMP order:
///
/// ```text
/// u = g / grad_scale                              scaler.unscale_(optimizer)
/// skip the step if any u is inf or NaN            scaler.step(optimizer)
/// c = clamp(u, -clip_value, clip_value)           clip_grad_value_(params, clip_value)
/// norm = ||c||_p or max |c| over every tensor     clip_grad_norm_(params, max_norm, norm_type)
/// step with c * clip_coef
/// update grad_scale                               scaler.update()
/// ```
///
/// `GradConfig::default()` clips nothing and only skips steps whose gradients hold an inf or
/// NaN, leaving params, state and the step counter bit-identical. Every configuration adds one
/// read of the gradients (4 bytes per element) and no write.
///
/// Unlike `clip_grad_norm_` alone, which would multiply every gradient by a NaN or zero
/// coefficient and let the optimizer apply them, a non-finite gradient always skips the step
/// (GradScaler's behaviour). Finite gradients whose sum of squares overflows f32 (entries near
/// 1e20) give `norm = inf` and `clip_coef = 0`, exactly as PyTorch's f32 norm does: that step
/// applies zero gradients.
///
/// ```no_run
/// # use wgpu_optim::{AdamWConfig, Context, GradConfig, GradScalerConfig, Param};
/// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
/// let mut adamw = AdamWConfig::default().build(ctx, params)?;
/// adamw.set_grad_processing(Some(
///     GradConfig::default()
///         .with_max_norm(1.0)
///         .with_grad_scaler(GradScalerConfig::default()),
/// ))?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct GradConfig {
    /// Clip by global norm to this value (default none).
    pub max_norm: Option<f64>,
    /// The norm's `p` (default 2): any finite value > 0 (1 included), or `f64::INFINITY`, as
    /// `clip_grad_norm_` accepts. The 2-norm squares and takes a square root; the 1-norm sums
    /// `|c|`; any other finite `p` sums `|c|^p` per workgroup and takes the `p`-th root, both
    /// with WGSL's `pow` (a few ulp of f32 for moderate `|p log2 |c||`, so the norm lands within
    /// about 1e-6 relative of the exact one for `p` up to a few). PyTorch takes each tensor's
    /// norm, then the norm of those; here one sum runs over every tensor, which is the same
    /// value up to f32 rounding. As in PyTorch's f32 norm, a sum of `|c|^p` that overflows
    /// gives `norm = inf`.
    pub norm_type: f64,
    /// How the clip coefficient is computed (default PyTorch's).
    pub clip_mode: ClipMode,
    /// Clip each unscaled gradient to `[-clip_value, clip_value]` (default none).
    pub clip_value: Option<f64>,
    /// Dynamic loss scaling (default none: gradients are used as they are).
    pub grad_scaler: Option<GradScalerConfig>,
    /// Instead of skipping a non-finite step and going on, halt on a non-finite gradient or
    /// total norm (finite gradients can overflow the 2-norm, as in PyTorch): that step and
    /// every later one change nothing, and the next readback ([`Optimizer::read_control`](crate::Optimizer::read_control)
    /// or a [`ControlReader`](crate::ControlReader)) returns
    /// [`Error::NonFiniteGradients`] (PyTorch's `error_if_nonfinite=True`, default false).
    pub error_if_nonfinite: bool,
}

impl Default for GradConfig {
    fn default() -> Self {
        GradConfig {
            max_norm: None,
            norm_type: 2.0,
            clip_mode: ClipMode::PyTorch,
            clip_value: None,
            grad_scaler: None,
            error_if_nonfinite: false,
        }
    }
}

setters! { GradConfig;
    /// Sets the norm: any finite value > 0, or `f64::INFINITY`.
    with_norm_type(norm_type: f64);
    /// Sets how the clip coefficient is computed.
    with_clip_mode(clip_mode: ClipMode);
    /// Halts instead of skipping on non-finite gradients.
    with_error_if_nonfinite(error_if_nonfinite: bool);
}

impl GradConfig {
    /// Clips by global norm to `max_norm`.
    pub fn with_max_norm(mut self, max_norm: f64) -> Self {
        self.max_norm = Some(max_norm);
        self
    }

    /// Clips each gradient to `[-clip_value, clip_value]`.
    pub fn with_clip_value(mut self, clip_value: f64) -> Self {
        self.clip_value = Some(clip_value);
        self
    }

    /// Turns on dynamic loss scaling.
    pub fn with_grad_scaler(mut self, scaler: GradScalerConfig) -> Self {
        self.grad_scaler = Some(scaler);
        self
    }

    /// Refuses what PyTorch refuses, and non-finite values.
    pub fn validate(&self) -> Result<()> {
        self.hyper().map(|_| ())
    }

    /// The clip-by-value bound as the device holds it (inf when off).
    pub(crate) fn clip_value_f32(&self) -> f32 {
        self.clip_value.map_or(f32::INFINITY, |v| v as f32)
    }

    /// Whether applying this configuration after `previous` (re)starts the loss scale: always
    /// without a scaler (the scale must be 1), and when a scaler starts or its `init_scale`
    /// changes.
    pub(crate) fn resets_scale(&self, previous: Option<&GradConfig>) -> bool {
        let init_scale = |c: &GradConfig| c.grad_scaler.as_ref().map(|s| s.init_scale);
        match init_scale(self) {
            None => true,
            Some(init) => previous.and_then(init_scale) != Some(init),
        }
    }

    /// The initial loss scale as the device holds it (1 without a scaler).
    pub(crate) fn init_scale_f32(&self) -> f32 {
        self.grad_scaler
            .as_ref()
            .map_or(1.0, |s| s.init_scale as f32)
    }

    /// Validates and lowers the configuration to the kernel's struct.
    pub fn hyper(&self) -> Result<GradHyper> {
        let invalid = |name, value, expected| {
            Err(Error::InvalidHyperparameter {
                name,
                value,
                expected,
            })
        };
        let p = self.norm_type as f32;
        if !(self.norm_type == f64::INFINITY || (p.is_finite() && p >= f32::MIN_POSITIVE)) {
            return invalid(
                "norm_type",
                self.norm_type,
                "a value > 0 (a normal, finite f32) or inf",
            );
        }
        if let Some(max_norm) = self.max_norm {
            positive_f32("max_norm", max_norm)?;
        }
        if let Some(clip_value) = self.clip_value {
            positive_f32("clip_value", clip_value)?;
        }
        let mut hyper = GradHyper {
            max_norm: self.max_norm.unwrap_or(0.0) as f32,
            clip_mode: match (self.max_norm, self.clip_mode) {
                (None, _) => CLIP_NONE,
                (Some(_), ClipMode::PyTorch) => CLIP_PYTORCH,
                (Some(_), ClipMode::Optax) => CLIP_OPTAX,
            },
            inf_norm: u32::from(self.norm_type == f64::INFINITY),
            norm_type: p,
            inv_norm_type: (1.0 / self.norm_type) as f32,
            error_if_nonfinite: u32::from(self.error_if_nonfinite),
            ..GradHyper::default()
        };
        if let Some(s) = &self.grad_scaler {
            positive_f32("init_scale", s.init_scale)?;
            // Checked as the device holds them: rounded to f32.
            let (growth, backoff) = (s.growth_factor as f32, s.backoff_factor as f32);
            if !(growth > 1.0 && growth.is_finite()) {
                return invalid(
                    "growth_factor",
                    s.growth_factor,
                    "a finite value > 1 (as f32)",
                );
            }
            if !((f32::MIN_POSITIVE..1.0).contains(&backoff)) {
                return invalid(
                    "backoff_factor",
                    s.backoff_factor,
                    "a value in (0, 1) (as a normal f32)",
                );
            }
            if s.growth_interval == 0 {
                return invalid("growth_interval", 0.0, "an integer > 0");
            }
            hyper.scaler = 1;
            hyper.growth_factor = s.growth_factor as f32;
            hyper.backoff_factor = s.backoff_factor as f32;
            hyper.growth_interval = s.growth_interval;
        }
        Ok(hyper)
    }
}

/// `value` must be finite and > 0, and a normal f32 once rounded (GPUs may flush subnormals
/// to zero).
fn positive_f32(name: &'static str, value: f64) -> Result<()> {
    let rounded = value as f32;
    if rounded.is_finite() && rounded >= f32::MIN_POSITIVE {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            expected: "a finite value > 0 (as a normal f32)",
        })
    }
}

/// `GradHyper::clip_mode`: no clip by norm.
pub const CLIP_NONE: u32 = 0;
/// `GradHyper::clip_mode`: [`ClipMode::PyTorch`].
pub const CLIP_PYTORCH: u32 = 1;
/// `GradHyper::clip_mode`: [`ClipMode::Optax`].
pub const CLIP_OPTAX: u32 = 2;

wgsl_struct! {
    /// A [`GradConfig`] as `shaders/clip.wgsl` reads it.
    pub struct GradHyper as "GradHyper" {
        /// Clip by norm to this.
        max_norm: f32,
        /// `CLIP_NONE`, `CLIP_PYTORCH` or `CLIP_OPTAX`.
        clip_mode: u32,
        /// Non-zero for the inf-norm.
        inf_norm: u32,
        /// Non-zero with dynamic loss scaling.
        scaler: u32,
        /// GradScaler's growth factor.
        growth_factor: f32,
        /// GradScaler's backoff factor.
        backoff_factor: f32,
        /// GradScaler's growth interval.
        growth_interval: u32,
        /// Non-zero to halt on non-finite gradients.
        error_if_nonfinite: u32,
        /// The norm's p (finite p: the sum is of |c|^p).
        norm_type: f32,
        /// 1 / p, computed in f64: the finalize's root.
        inv_norm_type: f32,
    }
}

wgsl_struct! {
    /// What one workgroup of the norm reduction saw.
    pub struct Partial as "Partial" {
        /// The sum of `|c|^p` of its gradients (squares for the 2-norm).
        sum_of_powers: f32,
        /// The largest `|c|` as bits, or `|u|` of a non-finite gradient (NaN above inf).
        max_abs_bits: u32,
    }
}

wgsl_struct! {
    /// One device's contribution to the global gradient norm: the 8 bytes a data-parallel
    /// caller all-reduces across devices between
    /// [`Optimizer::record_grad_stats`](crate::Optimizer::record_grad_stats) and
    /// [`Optimizer::record_update`](crate::Optimizer::record_update).
    ///
    /// All-reduce both fields with SUM for any finite `norm_type` (2, 1, 3...: the sums of
    /// `|c|^p` add up), MAX for the inf-norm; the finalize then takes the `p`-th root.
    pub struct NormStats as "NormStats" {
        /// The sum of `|c|^p` of this device's gradients (finite `norm_type`: squares for the
        /// 2-norm) or their max |c| (inf-norm); inf or NaN when a gradient is.
        value: f32,
        /// 1 when one of this device's gradients is inf or NaN, else 0: any non-zero sum
        /// skips the step on every device.
        nonfinite: f32,
    }
}

/// The gradient-processing stages a step's kernels compile in. A stage that is off is the
/// identity exactly (without a scaler the inverse scale is 1, without a bound the clamp is
/// none, without a max_norm the coefficient is 1), so leaving it out changes no bit and spares
/// the hot loops its instructions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct GradStages {
    /// Gradient processing is on: a step with non-finite gradients is skipped.
    pub on: bool,
    /// Divide by the loss scale (a GradScaler is on).
    pub unscale: bool,
    /// Clip by value.
    pub clip_value: bool,
    /// Multiply by the global-norm clip coefficient.
    pub clip_norm: bool,
    /// A finite norm other than the 2-norm: the reduction raises `|c|` to `p`.
    pub power_norm: bool,
}

impl GradStages {
    /// The stages of `config` (none without gradient processing).
    pub fn of(config: Option<&GradConfig>) -> Self {
        config.map_or_else(Self::default, |c| GradStages {
            on: true,
            unscale: c.grad_scaler.is_some(),
            clip_value: c.clip_value.is_some(),
            clip_norm: c.max_norm.is_some(),
            power_norm: c.norm_type.is_finite() && c.norm_type != 2.0,
        })
    }

    /// The stages any of `configs` needs (the control blocks of the others hold the identity
    /// for those stages).
    pub fn union(configs: &[GradConfig]) -> Self {
        configs.iter().fold(Self::default(), |a, c| {
            let b = Self::of(Some(c));
            GradStages {
                on: a.on || b.on,
                unscale: a.unscale || b.unscale,
                clip_value: a.clip_value || b.clip_value,
                clip_norm: a.clip_norm || b.clip_norm,
                power_norm: a.power_norm || b.power_norm,
            }
        })
    }
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
    fn get(ctx: &Context, stages: GradStages, grad: Dtype) -> Result<Arc<Self>> {
        let subgroups = ctx.uses_subgroups();
        let key = PipelineKey::Grad {
            subgroups,
            grad,
            stages,
        };
        ctx.cached(key, |device| {
            let source = shaders::grad_source(subgroups, grad.is_16bit());
            let module = create_module(device, "clip", &source);
            // 0: control, 1: grad_hyper, 2: grad, 3: partials, 4: stats, 5: control (read),
            // 6: grad as vec4s, 7: segments, 8: reduction work, 9: folds.
            let partials_layout = bind_group_layout(
                device,
                "grad_partials",
                &[
                    (1, true),
                    (2, true),
                    (3, false),
                    (5, true),
                    (6, true),
                    (7, true),
                    (8, true),
                ],
            );
            let local_layout = bind_group_layout(
                device,
                "grad_local",
                &[(1, true), (3, false), (4, false), (9, true)],
            );
            let finalize_layout = bind_group_layout(
                device,
                "grad_finalize",
                &[(0, false), (1, true), (4, false)],
            );
            let flag = |on: bool| if on { 1.0 } else { 0.0 };
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
    chunks: Vec<(wgpu::BindGroup, (u32, u32))>,
    local: wgpu::BindGroup,
    finalize: wgpu::BindGroup,
    controls: u32,
}

impl GradProcessing {
    /// Buffers and bind groups for `configs` (one per control block of `plan`, valid) over the
    /// gradients of the optimizer's `plan` (role 1 of its spans), feeding `control` through the
    /// [`NormStats`] in `stats`.
    pub fn new(
        ctx: &Context,
        configs: Vec<GradConfig>,
        plan: &Plan,
        control: &wgpu::Buffer,
        stats: &BufferRange,
    ) -> Result<Self> {
        use wgpu::util::DeviceExt;
        debug_assert_eq!(configs.len(), plan.controls as usize);
        // One type for every gradient of an optimizer (checked at its build).
        let grad = plan
            .spans
            .first()
            .map_or(Dtype::F32, |span| span.ranges[1].dtype());
        let hyper = configs
            .iter()
            .map(GradConfig::hyper)
            .collect::<Result<Vec<GradHyper>>>()?;
        let pipelines = GradPipelines::get(ctx, GradStages::union(&configs), grad)?;
        let max_x = ctx.max_workgroups();
        crate::context::capture_errors(ctx.device(), || {
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
                    let grad = plan.range(chunk, 1, chunk.len);
                    let body = plan.range(chunk, 1, chunk.len / 4 * 4);
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
                            (1, hyper_buffer.as_entire_binding()),
                            (2, grad.binding()),
                            (3, partials.as_entire_binding()),
                            (5, control.as_entire_binding()),
                            (6, grad4),
                            (7, chunk.all.binding(plan.table())),
                            (8, chunk.reduce.binding(plan.table())),
                        ],
                    );
                    (group, crate::plan::grid(chunk.reduce.count, max_x))
                })
                .collect();
            let local = bind_group(
                device,
                "grad_local",
                &pipelines.local_layout,
                &[
                    (1, hyper_buffer.as_entire_binding()),
                    (3, partials.as_entire_binding()),
                    (4, stats.binding()),
                    (9, plan.folds.binding(plan.table())),
                ],
            );
            let finalize = bind_group(
                device,
                "grad_finalize",
                &pipelines.finalize_layout,
                &[
                    (0, control.as_entire_binding()),
                    (1, hyper_buffer.as_entire_binding()),
                    (4, stats.binding()),
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

    /// Records the reduction of every gradient into the [`NormStats`] buffer.
    pub fn record_stats(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipelines.partials);
        for (group, (x, y)) in &self.chunks {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*x, *y, 1);
        }
        pass.set_pipeline(&self.pipelines.local);
        pass.set_bind_group(0, &self.local, &[]);
        pass.dispatch_workgroups(self.controls, 1, 1);
    }

    /// Records the finalize: norm, clip coefficient, found_inf and loss scale into the control
    /// block, from the [`NormStats`] buffer.
    pub fn record_finalize(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipelines.finalize);
        pass.set_bind_group(0, &self.finalize, &[]);
        pass.dispatch_workgroups(self.controls.div_ceil(64), 1, 1);
    }
}

struct ClipValuePipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// `clip_grad_value_` on its own: clamps gradient buffers in place to
/// `[-clip_value, clip_value]`, for code that needs the clipped gradients themselves. Inside an
/// optimizer step prefer [`GradConfig::with_clip_value`], which clamps as the step loads each
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
    _plan: Plan,
    chunks: Vec<(wgpu::BindGroup, u32)>,
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
        crate::plan::check_disjoint(&grads.iter().collect::<Vec<_>>())?;
        let workgroup_size = ctx.tuning().workgroup_size;
        let pipeline = ctx.cached(PipelineKey::ClipValue { workgroup_size }, |device| {
            let module = create_module(
                device,
                "clip_value",
                &shaders::concatenate(&shaders::CLIP_VALUE_FILES),
            );
            let layout =
                bind_group_layout(device, "clip_value", &[(0, false), (1, true), (2, true)]);
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
        crate::context::capture_errors(device, || {
            let bound = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-optim clip_value"),
                contents: bytemuck::bytes_of(&(clip_value as f32)),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            });
            let tensors: Vec<Vec<BufferRange>> = grads.iter().map(|g| vec![g.clone()]).collect();
            let plan = Plan::new(
                device,
                &tensors,
                (&vec![0; grads.len()], 1),
                crate::plan::Control::Shared,
                &ctx.plan_limits(shaders::Storage::F32),
            );
            let chunks = plan
                .chunks
                .iter()
                .map(|chunk| {
                    let values = plan.range(chunk, 0, chunk.len);
                    let group = bind_group(
                        device,
                        "clip_value",
                        &pipeline.layout,
                        &[
                            (0, values.binding()),
                            (1, bound.as_entire_binding()),
                            (2, chunk.all.binding(plan.table())),
                        ],
                    );
                    let workgroups = chunk.all.count.clamp(1, ctx.max_workgroups());
                    (group, workgroups as u32)
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
        for (group, workgroups) in &self.chunks {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*workgroups, 1, 1);
        }
    }
}
