//! Muon: momentum orthogonalized by Newton-Schulz iterations (`torch.optim.Muon`).
//!
//! Muon is not an element-wise optimizer: each 2-D parameter's update is a function of the whole
//! matrix, so it stands outside the `optimizers!` registry of element-wise kernels. This file is
//! its configuration: PyTorch's semantics and defaults, checked as PyTorch checks them, and the
//! learning-rate adjustment by shape. The CPU mirror is [`crate::reference::Muon`].

use crate::error::{Error, Result};
use crate::matrix::{check_iteration, NormFloor, NsOptions};
use crate::setters::setters;

use super::algorithm::non_negative;
use super::codec::config_struct;

/// How Muon scales the learning rate of an `A x B` parameter (`torch.optim.Muon`'s
/// `adjust_lr_fn`, `shape[0]` = A the fan-out, `shape[1]` = B the fan-in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdjustLr {
    /// `lr * sqrt(max(1, A / B))`: Keller Jordan's original (PyTorch's `None` and
    /// `"original"`; the default).
    #[default]
    Original,
    /// `lr * 0.2 * sqrt(max(A, B))`: Moonshot's, so that Muon reuses AdamW's learning rate and
    /// weight decay (`"match_rms_adamw"`).
    MatchRmsAdamW,
    /// `lr * sqrt(A / B)`: Bernstein's spectral condition without the clamp
    /// (`"spectral_unclamped"`).
    SpectralUnclamped,
    /// `lr * sqrt(max(1, B / A))`: `optax.contrib.muon`'s width scaling (its default,
    /// `consistent_rms=None`), for JAX's `[fan_in, fan_out]` weights (`"width_transfer"`).
    /// Optax's `consistent_rms=0.2` is [`AdjustLr::MatchRmsAdamW`].
    WidthTransfer,
}

impl AdjustLr {
    /// PyTorch's name of the adjustment (`None` is `"original"`).
    pub fn name(self) -> &'static str {
        match self {
            AdjustLr::Original => "original",
            AdjustLr::MatchRmsAdamW => "match_rms_adamw",
            AdjustLr::SpectralUnclamped => "spectral_unclamped",
            AdjustLr::WidthTransfer => "width_transfer",
        }
    }

    /// The adjustment of PyTorch's name, `None` for a name PyTorch refuses.
    pub fn from_name(name: &str) -> Option<AdjustLr> {
        [
            AdjustLr::Original,
            AdjustLr::MatchRmsAdamW,
            AdjustLr::SpectralUnclamped,
            AdjustLr::WidthTransfer,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    /// The ratio the learning rate of an `rows x cols` parameter is multiplied by, in f64 as
    /// PyTorch computes it in Python.
    pub fn ratio(self, rows: usize, cols: usize) -> f64 {
        let (a, b) = (rows as f64, cols as f64);
        match self {
            AdjustLr::Original => (a / b).max(1.0).sqrt(),
            AdjustLr::MatchRmsAdamW => 0.2 * a.max(b).sqrt(),
            AdjustLr::SpectralUnclamped => (a / b).sqrt(),
            AdjustLr::WidthTransfer => (b / a).max(1.0).sqrt(),
        }
    }
}

config_struct! {
    /// Muon (`torch.optim.Muon`, PyTorch 2.9 and later): for each 2-D parameter `p` with gradient
    /// `g`, momentum buffer `B` (zeros at first) and momentum `mu`,
    ///
    /// ```text
    /// B <- B + (1 - mu) (g - B)                     (torch: buf.lerp_(grad, 1 - momentum))
    /// U <- g + mu (B - g) if nesterov, else B       (torch: grad.lerp(buf, momentum))
    /// O <- NS_k(U)                                  (k Newton-Schulz iterations, below)
    /// p <- p (1 - lr weight_decay) - lr ratio(A, B) O
    /// ```
    ///
    /// where `NS_k` transposes a matrix taller than wide, divides it by `max(||X||_F, eps)`, then
    /// `k` times: `G = X X^T; X <- a X + (b G + c G G) X`, and transposes back; `ratio` is
    /// [`AdjustLr`]. The coefficients `(a, b, c) = (3.4445, -4.7750, 2.0315)` maximize the slope at
    /// zero (Keller Jordan, "Muon: An optimizer for hidden layers in neural networks", 2024). Note
    /// PyTorch's momentum is the EMA form (`lerp`), not its documentation's `mu B + g`.
    ///
    /// State: `momentum_buffer`, shaped like the parameter. PyTorch runs the iterations in
    /// bfloat16; this crate in f32 (tests/muon_golden.rs compares with PyTorch's code run in f64,
    /// and its bfloat16 run is about 1e-3 away from both).
    ///
    /// Only 2-D parameters ([`MuonConfig::check_shape`]): pair Muon with AdamW for biases,
    /// embeddings and heads, as every Muon user does.
    #[derive(Clone, Debug, PartialEq)]
    pub struct MuonConfig {
        /// Learning rate (default 1e-3).
        pub lr: f64,
        /// Decoupled weight decay, multiplied by `lr` (default 0.1).
        pub weight_decay: f64,
        /// Momentum factor (default 0.95).
        pub momentum: f64,
        /// Orthogonalize the Nesterov look-ahead instead of the buffer (default true).
        pub nesterov: bool,
        /// Newton-Schulz coefficients `(a, b, c)` (default (3.4445, -4.7750, 2.0315)).
        pub ns_coefficients: [f64; 3],
        /// Floor of the Frobenius norm the matrix is divided by (default 1e-7).
        pub eps: f64,
        /// Newton-Schulz iterations, 1 to 99 (default 5).
        pub ns_steps: u32,
        /// The learning-rate adjustment by shape (default [`AdjustLr::Original`]).
        pub adjust_lr: AdjustLr,
        /// `optax.contrib.muon`'s form (default false): see [`MuonConfig::with_optax_form`].
        pub optax_form: bool,
        /// Store the Newton-Schulz iterate in f16, the math in f32 (default false): see
        /// [`NsOptions::f16_iterate`](crate::matrix::NsOptions::f16_iterate).
        pub f16_iterate: bool,
    }
}

impl Default for MuonConfig {
    fn default() -> Self {
        MuonConfig {
            lr: 1e-3,
            weight_decay: 0.1,
            momentum: 0.95,
            nesterov: true,
            ns_coefficients: [3.4445, -4.7750, 2.0315],
            eps: 1e-7,
            ns_steps: 5,
            adjust_lr: AdjustLr::Original,
            optax_form: false,
            f16_iterate: false,
        }
    }
}

setters! { MuonConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets the decoupled weight decay.
    with_weight_decay(weight_decay: f64);
    /// Sets the momentum factor.
    with_momentum(momentum: f64);
    /// Turns Nesterov momentum on or off.
    with_nesterov(nesterov: bool);
    /// Sets the Newton-Schulz coefficients.
    with_ns_coefficients(ns_coefficients: [f64; 3]);
    /// Sets the norm floor.
    with_eps(eps: f64);
    /// Sets the number of Newton-Schulz iterations.
    with_ns_steps(ns_steps: u32);
    /// Sets the learning-rate adjustment.
    with_adjust_lr(adjust_lr: AdjustLr);
    /// `optax.contrib.muon`'s form (optax 0.2.8, Frobenius preconditioning, not adaptive)
    /// instead of PyTorch's, where they differ: the momentum `mu <- (1 - mu_f) g + mu_f mu`
    /// bias-corrected (`mu_hat = mu / (1 - mu_f^t)`; with Nesterov `mu_f mu / (1 - mu_f^(t+1))
    /// + (1 - mu_f) g / (1 - mu_f^t)`, `t` the step), the matrix divided by `||X||_F + eps`,
    /// and the update `p <- p - lr (ratio O + weight_decay p)`. Optax's defaults differ too:
    /// set `eps` 1e-8, `weight_decay` 0 and [`AdjustLr::WidthTransfer`] (or
    /// [`AdjustLr::MatchRmsAdamW`] for its `consistent_rms=0.2`) to have them. Needs a
    /// momentum below 1 (the bias correction divides by `1 - mu_f^t`).
    with_optax_form(optax_form: bool);
    /// Stores the Newton-Schulz iterate in f16 (half its bytes; the math stays f32).
    with_f16_iterate(f16_iterate: bool);
}

impl MuonConfig {
    /// Refuses what PyTorch refuses (a negative learning rate, momentum or weight decay; 100
    /// or more iterations), and what this crate's f32 math cannot hold or PyTorch would run
    /// without effect: values not finite in f32, a norm floor that is not positive, 0
    /// iterations (the update would be the raw momentum divided by its norm, not
    /// orthogonalized).
    pub fn validate(&self) -> Result<()> {
        non_negative("lr", self.lr)?;
        non_negative("weight_decay", self.weight_decay)?;
        non_negative("momentum", self.momentum)?;
        if self.optax_form && self.momentum >= 1.0 {
            return Err(Error::InvalidHyperparameter {
                name: "momentum",
                value: self.momentum,
                expected: "a value in [0, 1) in Optax's form (its bias correction divides by \
                           1 - momentum^t)",
            });
        }
        check_iteration(self.ns_coefficients, self.ns_steps, self.eps)
    }

    /// The `(rows, cols)` of a parameter of this `shape`, which must have two dimensions.
    pub fn check_shape(shape: &[usize]) -> Result<(usize, usize)> {
        match *shape {
            [rows, cols] => Ok((rows, cols)),
            _ => Err(Error::NotAMatrix {
                optimizer: "Muon",
                shape: shape.to_vec(),
            }),
        }
    }

    /// What one Newton-Schulz batch must share: the coefficients, steps, eps and options.
    pub(crate) fn iteration(&self) -> ([f64; 3], u32, f64, NsOptions) {
        (
            self.ns_coefficients,
            self.ns_steps,
            self.eps,
            self.ns_options(),
        )
    }

    /// How the iteration runs: the form's norm floor, the iterate's storage.
    pub(crate) fn ns_options(&self) -> NsOptions {
        NsOptions {
            norm_floor: self.norm_floor(),
            f16_iterate: self.f16_iterate,
        }
    }

    /// How the iteration floors the norm.
    pub(crate) fn norm_floor(&self) -> NormFloor {
        if self.optax_form {
            NormFloor::Add
        } else {
            NormFloor::Max
        }
    }

    /// The learning rate of an `rows x cols` parameter (`lr` times [`AdjustLr::ratio`]).
    pub fn adjusted_lr(&self, rows: usize, cols: usize) -> f64 {
        self.lr * self.adjust_lr.ratio(rows, cols)
    }
}
