//! Configurations as checkpoint text, from their declarations: [`config_struct!`] declares a
//! configuration struct and implements [`Fields`](super::Fields) from its field list, so every
//! field is a hyperparameter under its own name (PyTorch's `param_groups` key; betas split in
//! two), as text that parses back to the same value. Users edit configurations with the typed
//! `with_*` builders; text is for files.

/// A hyperparameter's value as checkpoint text: Rust's round-trip formatting, `none` for an
/// unset option.
pub(crate) trait HyperText: Sized {
    fn to_text(&self) -> String;
    fn from_text(text: &str) -> Option<Self>;
}

impl HyperText for f64 {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl HyperText for bool {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl HyperText for Option<f64> {
    fn to_text(&self) -> String {
        self.map_or("none".to_string(), |v| v.to_string())
    }
    fn from_text(text: &str) -> Option<Self> {
        match text {
            "none" | "null" => Some(None),
            _ => text.parse().ok().map(Some),
        }
    }
}

impl HyperText for u32 {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// Coefficients as comma-separated round-trip text: `3.4445,-4.775,2.0315`.
impl HyperText for [f64; 3] {
    fn to_text(&self) -> String {
        self.map(|v| v.to_string()).join(",")
    }
    fn from_text(text: &str) -> Option<Self> {
        let values: Vec<f64> = text
            .split(',')
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        values.try_into().ok()
    }
}

/// Muon's adjustment by PyTorch's name (`original`, `match_rms_adamw`, ...).
impl HyperText for super::AdjustLr {
    fn to_text(&self) -> String {
        self.name().to_string()
    }
    fn from_text(text: &str) -> Option<Self> {
        super::AdjustLr::from_name(text)
    }
}

/// Declares a configuration struct (every field `pub`, `lr` and `weight_decay` among them) and
/// implements [`Fields`](super::Fields) from its field list: the checkpoint codec lists each
/// field once, where it is declared.
macro_rules! config_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty),*
        }

        impl $crate::optim::Fields for $name {
            fn lr(&self) -> f64 {
                self.lr
            }

            fn set_lr(&mut self, lr: f64) {
                self.lr = lr;
            }

            fn weight_decay(&self) -> f64 {
                self.weight_decay
            }

            fn set_weight_decay(&mut self, weight_decay: f64) {
                self.weight_decay = weight_decay;
            }

            fn hyperparameters(&self) -> Vec<(&'static str, String)> {
                use $crate::optim::codec::HyperText;
                vec![$((stringify!($field), HyperText::to_text(&self.$field))),*]
            }

            fn set_hyperparameter(&mut self, name: &str, value: &str) -> bool {
                use $crate::optim::codec::HyperText;
                match name {
                    $(stringify!($field) => HyperText::from_text(value)
                        .map(|v| self.$field = v)
                        .is_some(),)*
                    _ => false,
                }
            }
        }
    };
}
pub(crate) use config_struct;

/// `with_betas(beta1, beta2)` for a configuration that has both.
macro_rules! with_betas {
    ($config:ty) => {
        impl $config {
            /// Sets (beta1, beta2).
            pub fn with_betas(mut self, beta1: f64, beta2: f64) -> Self {
                self.beta1 = beta1;
                self.beta2 = beta2;
                self
            }
        }
    };
}
pub(crate) use with_betas;
