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

        impl $crate::kernel::WgslLayout for $name {
            const WGSL_NAME: &'static str = $wgsl;
            const FIELDS: &'static [(&'static str, usize)] =
                &[$((stringify!($field), core::mem::offset_of!($name, $field))),*];
        }
    };
}
pub(crate) use wgsl_struct;

/// A WGSL struct's layout as data: its name, size and fields, for descriptors that list the
/// structs of a kernel (see [`GroupRecord`](crate::kernel::GroupRecord)) and for the tests
/// that check them against naga's view of the shader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructLayout {
    /// The struct's name in WGSL.
    pub name: &'static str,
    /// Its size in bytes.
    pub size: usize,
    /// Each field's name and byte offset, in declaration order.
    pub fields: &'static [(&'static str, usize)],
}

impl StructLayout {
    /// The layout of `T`.
    pub const fn of<T: WgslLayout>() -> Self {
        StructLayout {
            name: T::WGSL_NAME,
            size: std::mem::size_of::<T>(),
            fields: T::FIELDS,
        }
    }
}
