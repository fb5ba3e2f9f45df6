//! A seasonal factor on top of any schedule.

use std::f64::consts::TAU;

use super::finite;
use crate::error::invalid;
use crate::error::Result;

/// A seasonal learning-rate adjustment: a periodic multiplier of any schedule,
///
/// `factor(step) = 1 + amplitude · sin(2π · (step / period) + phase)`
///
/// computed as `1 + amplitude · sin(τ · (step / period) + phase)` in f64, with
/// `0 ≤ amplitude < 1` so that the factor stays in `(0, 2)` and the rate positive, a finite
/// `period > 0` in steps (fractional periods allowed) and a finite `phase` in radians.
/// Neither PyTorch nor Optax has it; apply it with [`LrSchedule::with_seasonal`](crate::LrSchedule::with_seasonal), or multiply
/// any rate by [`Seasonal::factor`].
///
/// ```
/// # use wgpu_optim::{LrSchedule, Seasonal};
/// // ±20% over a 7-step week, on a cosine annealing.
/// let week = Seasonal { amplitude: 0.2, period: 7.0, phase: 0.0 };
/// let cosine = LrSchedule::CosineAnnealing { t_max: 1000, eta_min: 0.0 };
/// let schedule = cosine.clone().with_seasonal(week.clone());
/// schedule.validate()?;
/// assert_eq!(schedule.lr(0.1, 0), cosine.lr(0.1, 0));
/// assert_eq!(schedule.lr(0.1, 30), cosine.lr(0.1, 30) * week.factor(30));
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Seasonal {
    /// The relative swing, in [0, 1).
    pub amplitude: f64,
    /// Steps per season (finite, > 0).
    pub period: f64,
    /// Offset of the sine at step 0, in radians (finite).
    pub phase: f64,
}

impl Seasonal {
    /// The multiplier at `step`; NaN when the parameters are invalid.
    pub fn factor(&self, step: u64) -> f64 {
        if self.validate().is_err() {
            return f64::NAN;
        }
        1.0 + self.amplitude * (TAU * (step as f64 / self.period) + self.phase).sin()
    }

    /// Refuses an amplitude outside [0, 1), a period that is not finite and > 0, and a phase
    /// that is not finite.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.amplitude) {
            return invalid("amplitude", self.amplitude, "a value in [0, 1)");
        }
        if !(self.period.is_finite() && self.period > 0.0) {
            return invalid("period", self.period, "a finite value > 0");
        }
        finite("phase", self.phase)
    }
}
