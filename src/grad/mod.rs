//! Gradient processing on the device, before each step and inside the same encoder: unscale by
//! the loss scale, detect inf and NaN, clip by value, clip by global norm, update the loss
//! scale. Nothing is read back; see `shaders/clip.wgsl` for the kernels.
//!
//! Attach it to an optimizer with [`Optimizer::set_grad_processing`](crate::Optimizer::set_grad_processing);
//! [`ClipValue`] clips gradients in place on its own.

mod clip_value;
mod config;
mod processing;

pub use clip_value::{clip_value_files, clip_value_source, ClipValue, CLIP_VALUE};
pub use config::{
    ClipMode, GradConfig, GradHyper, GradScalerConfig, NormStats, Partial, CLIP_NONE, CLIP_OPTAX,
    CLIP_PYTORCH,
};
pub(crate) use processing::GradProcessing;
pub use processing::{
    grad_files, grad_source, CLIP, GRAD_16BIT, GRAD_F32, REDUCE_SUBGROUP, REDUCE_WORKGROUP,
};
