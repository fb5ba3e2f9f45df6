//! The `with_<field>` builders every configuration struct declares.

/// Declares `with_<field>` builders, each setting one field of a config and returning it.
macro_rules! setters {
    ($config:ty; $($(#[$doc:meta])* $name:ident($field:ident: $ty:ty);)*) => {
        impl $config {
            $(
                $(#[$doc])*
                pub fn $name(mut self, $field: $ty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}
pub(crate) use setters;
