//! Rust mirrors of WGSL structs, with the field table that lets a test check their layout
//! against naga's view of the shader.

/// A `#[repr(C)]` struct that mirrors a WGSL struct field for field.
pub trait WgslLayout: bytemuck::Pod {
    /// The struct's name in WGSL.
    const WGSL_NAME: &'static str;
    /// Each field's name and byte offset, in declaration order.
    const FIELDS: &'static [(&'static str, usize)];
}

/// Declares a `#[repr(C)]`, `Pod` struct and its [`WgslLayout`] field table.
macro_rules! wgsl_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident as $wgsl:literal {
            $($(#[$field_meta:meta])* $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$field_meta])* pub $field: $ty),*
        }

        impl $crate::layout::WgslLayout for $name {
            const WGSL_NAME: &'static str = $wgsl;
            const FIELDS: &'static [(&'static str, usize)] =
                &[$((stringify!($field), core::mem::offset_of!($name, $field))),*];
        }
    };
}
pub(crate) use wgsl_struct;

wgsl_struct! {
    /// The device-side control block of an optimizer (`shaders/common/control.wgsl`).
    ///
    /// Everything a step depends on that is data rather than configuration lives here, on the
    /// device, so that a step can be skipped, unscaled or clipped without a host round trip.
    /// Read it back with [`Optimizer::read_control`](crate::Optimizer::read_control) (blocking)
    /// or a [`ControlReader`](crate::ControlReader) (non-blocking) to log the gradient norm.
    pub struct Control as "Control" {
        /// The loss scale for the next backward pass (PyTorch's `GradScaler.get_scale()`); 1
        /// without a scaler. At offset 0, so a loss kernel can bind these 4 bytes of the
        /// control buffer as `var<storage, read> grad_scale: f32`.
        grad_scale: f32,
        /// Steps taken so far (PyTorch's `state['step']`), advanced on the device.
        step: u32,
        /// Non-zero when the last step's gradients held an inf or NaN: it changed nothing.
        found_inf: u32,
        /// 1 / the loss scale the last step's gradients were computed with.
        inv_grad_scale: f32,
        /// The last step's global-norm clip coefficient (1 when not clipping).
        clip_coef: f32,
        /// `clip_grad_value_`'s bound, `f32::INFINITY` when off.
        clip_value: f32,
        /// The global norm of the last step's unscaled gradients, before clipping by norm
        /// (after clipping by value); inf or NaN when a gradient is.
        grad_norm: f32,
        /// GradScaler's growth tracker: consecutive finite steps since the scale changed.
        growth_tracker: u32,
        /// Steps skipped because a gradient was inf or NaN.
        skipped_steps: u32,
        /// With `error_if_nonfinite`, the step whose gradients were first found non-finite;
        /// 0 when none. While set, steps change nothing.
        nonfinite_step: u32,
    }
}

impl Control {
    /// A fresh optimizer: no step taken, gradients used as they are.
    pub const INITIAL: Control = Control {
        grad_scale: 1.0,
        step: 0,
        found_inf: 0,
        inv_grad_scale: 1.0,
        clip_coef: 1.0,
        clip_value: f32::INFINITY,
        grad_norm: 0.0,
        growth_tracker: 0,
        skipped_steps: 0,
        nonfinite_step: 0,
    };

    /// Whether the last step was skipped because a gradient was inf or NaN.
    pub fn skipped(&self) -> bool {
        self.found_inf != 0
    }

    /// `Ok(self)`, or [`Error::NonFiniteGradients`](crate::Error::NonFiniteGradients) when an
    /// optimizer with `error_if_nonfinite` has halted.
    pub fn checked(self) -> crate::Result<Control> {
        match self.nonfinite_step {
            0 => Ok(self),
            step => Err(crate::Error::NonFiniteGradients {
                step,
                control: self,
            }),
        }
    }

    /// The byte offset of a field, for copying or binding one field of the control buffer.
    pub fn offset_of(field: &str) -> Option<u64> {
        Self::FIELDS
            .iter()
            .find(|(name, _)| *name == field)
            .map(|&(_, offset)| offset as u64)
    }
}
