//! What gradient processing does: its configuration ([`GradConfig`], PyTorch's AMP and
//! clipping stages, Optax's `clip_by_global_norm`), the struct the kernels read it from, and
//! the norm statistics a data-parallel step all-reduces.

use crate::error::{Error, Result};
use crate::kernel::{wgsl_struct, GradStages};
use crate::setters::setters;

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
pub(crate) fn positive_f32(name: &'static str, value: f64) -> Result<()> {
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

impl GradConfig {
    /// The stages the kernels compile in for this configuration.
    pub(crate) fn stages(&self) -> GradStages {
        GradStages {
            on: true,
            unscale: self.grad_scaler.is_some(),
            clip_value: self.clip_value.is_some(),
            clip_norm: self.max_norm.is_some(),
            power_norm: self.norm_type.is_finite() && self.norm_type != 2.0,
        }
    }

    /// The stages any of `configs` needs (the control blocks of the others hold the identity
    /// for those stages).
    pub(crate) fn union_of_stages(configs: &[GradConfig]) -> GradStages {
        configs
            .iter()
            .fold(GradStages::default(), |stages, c| stages.union(c.stages()))
    }
}
