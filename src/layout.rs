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
    /// device, so that a step can be skipped or its gradients rescaled without a host round trip.
    pub struct Control as "Control" {
        /// Steps taken so far (PyTorch's `state['step']`), advanced on the device.
        step: u32,
        /// Non-zero when this step's gradients hold an inf or NaN: the step changes nothing.
        found_inf: u32,
        /// Multiplies each gradient as it is loaded: the global-norm clip coefficient.
        clip_coef: f32,
        /// Multiplies each gradient as it is loaded: 1 / loss scale.
        inv_grad_scale: f32,
    }
}

impl Control {
    /// A fresh optimizer: no step taken, gradients used as they are.
    pub const INITIAL: Control = Control {
        step: 0,
        found_inf: 0,
        clip_coef: 1.0,
        inv_grad_scale: 1.0,
    };
}
