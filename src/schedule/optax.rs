//! Optax's schedules, as `optax.warmup_cosine_decay_schedule`, `optax.exponential_decay`,
//! `optax.polynomial_schedule` and `optax.cosine_decay_schedule` compute them.

use std::f64::consts::PI;

use super::{finite, positive_steps};
use crate::error::invalid;
use crate::error::{Error, Result};

/// `optax.warmup_cosine_decay_schedule`: linear from `init_value` to `peak_value` over
/// `warmup_steps`, then cosine decay to `end_value` at `decay_steps` (which counts the
/// warm-up), the cosine raised to `exponent`; `end_value` after.
#[derive(Clone, Debug, PartialEq)]
pub struct WarmupCosineDecay {
    /// The first value.
    pub init_value: f64,
    /// The value at the end of the warm-up (not 0).
    pub peak_value: f64,
    /// Steps of the warm-up.
    pub warmup_steps: u64,
    /// Steps of warm-up and decay together (≥ warmup_steps).
    pub decay_steps: u64,
    /// The last value (Optax default 0).
    pub end_value: f64,
    /// Exponent of the cosine (Optax default 1).
    pub exponent: f64,
}

impl WarmupCosineDecay {
    /// The value after `step` steps; NaN when the schedule is invalid (see
    /// [`LrSchedule::lr`](crate::LrSchedule::lr)).
    pub fn lr(&self, step: u64) -> f64 {
        if self.validate().is_err() {
            return f64::NAN;
        }
        if step < self.warmup_steps {
            // optax.linear_schedule over the warm-up.
            return polynomial(
                self.init_value,
                self.peak_value,
                1.0,
                step,
                self.warmup_steps,
            );
        }
        // optax.cosine_decay_schedule from the warm-up's end.
        let steps = self.decay_steps - self.warmup_steps;
        let count = (step - self.warmup_steps).min(steps);
        let alpha = self.end_value / self.peak_value;
        cosine_decay(self.peak_value, count, steps, alpha, self.exponent)
    }

    pub(super) fn validate(&self) -> Result<()> {
        finite("init_value", self.init_value)?;
        finite("end_value", self.end_value)?;
        finite("exponent", self.exponent)?;
        if !(self.peak_value.is_finite() && self.peak_value != 0.0) {
            return invalid("peak_value", self.peak_value, "a finite value other than 0");
        }
        if self.decay_steps < self.warmup_steps {
            return Err(Error::InvalidOptions(
                "warmup_cosine_decay_schedule: decay_steps counts the warm-up",
            ));
        }
        Ok(())
    }
}

/// `optax.exponential_decay`: `init_value` until `transition_begin`, then
///
/// `init_value · decay_rate^p`, `p = (step − transition_begin) / transition_steps`
///
/// with `p` rounded down when `staircase`; `end_value`, when given, is a floor when
/// `decay_rate < 1` and a ceiling otherwise (`decay_rate = 1` included), as
/// `max(value, end_value)` or `min(value, end_value)`. As Optax 0.2.8,
/// `transition_steps = 0` or `decay_rate = 0` give `init_value` at every step, `end_value`
/// ignored. Absolute values: `base_lr` is ignored.
///
/// ```
/// # use wgpu_optim::{ExponentialDecay, LrSchedule};
/// // optax.exponential_decay(0.1, transition_steps=5, decay_rate=0.5, end_value=0.02)
/// let schedule = LrSchedule::ExponentialDecay(ExponentialDecay {
///     end_value: Some(0.02),
///     ..ExponentialDecay::new(0.1, 5, 0.5)
/// });
/// assert_eq!(schedule.lr(0.0, 5), 0.05);
/// assert_eq!(schedule.lr(0.0, 50), 0.02);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialDecay {
    /// The first value.
    pub init_value: f64,
    /// Steps over which the value is multiplied by `decay_rate` (0: no decay).
    pub transition_steps: u64,
    /// The decay factor per `transition_steps` (finite, ≥ 0; 0 gives `init_value` throughout,
    /// as Optax). Optax takes a negative rate too, to NaN or alternating signs: refused here.
    pub decay_rate: f64,
    /// Steps at `init_value` before the decay starts (Optax default 0).
    pub transition_begin: u64,
    /// Whether the decay moves in whole transitions (Optax default false).
    pub staircase: bool,
    /// The bound at which the decay stops (Optax default none).
    pub end_value: Option<f64>,
}

impl ExponentialDecay {
    /// Optax's defaults around the three required arguments: no delay, continuous, no bound.
    pub fn new(init_value: f64, transition_steps: u64, decay_rate: f64) -> Self {
        ExponentialDecay {
            init_value,
            transition_steps,
            decay_rate,
            transition_begin: 0,
            staircase: false,
            end_value: None,
        }
    }

    /// The value after `step` steps; NaN when the schedule is invalid (see
    /// [`LrSchedule::lr`](crate::LrSchedule::lr)).
    pub fn lr(&self, step: u64) -> f64 {
        if self.validate().is_err() {
            return f64::NAN;
        }
        if self.transition_steps == 0 || self.decay_rate == 0.0 {
            return self.init_value;
        }
        let decayed = if step <= self.transition_begin {
            self.init_value
        } else {
            let p = (step - self.transition_begin) as f64 / self.transition_steps as f64;
            let p = if self.staircase { p.floor() } else { p };
            self.init_value * self.decay_rate.powf(p)
        };
        match self.end_value {
            None => decayed,
            Some(end_value) if self.decay_rate < 1.0 => decayed.max(end_value),
            Some(end_value) => decayed.min(end_value),
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
        finite("init_value", self.init_value)?;
        if !(self.decay_rate.is_finite() && self.decay_rate >= 0.0) {
            return invalid("decay_rate", self.decay_rate, "a finite value ≥ 0");
        }
        self.end_value
            .map_or(Ok(()), |end_value| finite("end_value", end_value))
    }
}

/// `optax.polynomial_schedule`: `init_value` until `transition_begin`, then
///
/// `(init_value − end_value) · (1 − count / transition_steps)^power + end_value`,
/// `count = min(step − transition_begin, transition_steps)`
///
/// so `end_value` from `transition_begin + transition_steps` on. `optax.linear_schedule` is
/// its power 1 ([`PolynomialSchedule::linear`]). As Optax, `transition_steps = 0` gives
/// `init_value` at every step. Absolute values: `base_lr` is ignored.
///
/// ```
/// # use wgpu_optim::{LrSchedule, PolynomialSchedule};
/// // optax.linear_schedule(0.0, 0.1, transition_steps=10): a warm-up.
/// let warmup = LrSchedule::PolynomialSchedule(PolynomialSchedule::linear(0.0, 0.1, 10, 0));
/// assert_eq!(warmup.lr(0.0, 5), 0.05);
/// assert_eq!(warmup.lr(0.0, 20), 0.1);
/// // optax.polynomial_schedule(0.1, 0.0, power=2, transition_steps=10)
/// let decay = PolynomialSchedule {
///     power: 2.0,
///     ..PolynomialSchedule::linear(0.1, 0.0, 10, 0)
/// };
/// assert!((decay.lr(5) - 0.025).abs() < 1e-17);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PolynomialSchedule {
    /// The first value.
    pub init_value: f64,
    /// The last value.
    pub end_value: f64,
    /// The exponent (finite, ≥ 0).
    pub power: f64,
    /// Steps of the transition (0: `init_value` throughout).
    pub transition_steps: u64,
    /// Steps at `init_value` before the transition (Optax default 0).
    pub transition_begin: u64,
}

impl PolynomialSchedule {
    /// `optax.linear_schedule`: from `init_value` to `end_value` in a straight line over
    /// `transition_steps`, after `transition_begin` steps at `init_value`.
    pub fn linear(
        init_value: f64,
        end_value: f64,
        transition_steps: u64,
        transition_begin: u64,
    ) -> Self {
        PolynomialSchedule {
            init_value,
            end_value,
            power: 1.0,
            transition_steps,
            transition_begin,
        }
    }

    /// The value after `step` steps; NaN when the schedule is invalid (see
    /// [`LrSchedule::lr`](crate::LrSchedule::lr)).
    pub fn lr(&self, step: u64) -> f64 {
        if self.validate().is_err() {
            return f64::NAN;
        }
        if self.transition_steps == 0 {
            return self.init_value;
        }
        let count = step
            .saturating_sub(self.transition_begin)
            .min(self.transition_steps);
        polynomial(
            self.init_value,
            self.end_value,
            self.power,
            count,
            self.transition_steps,
        )
    }

    pub(super) fn validate(&self) -> Result<()> {
        finite("init_value", self.init_value)?;
        finite("end_value", self.end_value)?;
        // A negative power is infinite at the end of the transition.
        if !(self.power.is_finite() && self.power >= 0.0) {
            return invalid("power", self.power, "a finite value ≥ 0");
        }
        Ok(())
    }
}

/// `optax.cosine_decay_schedule` (Loshchilov & Hutter 2017, "SGDR"):
///
/// ```text
/// c  = (1 + cos(π · min(step, decay_steps) / decay_steps)) / 2
/// lr = init_value · ((1 − alpha) · c^exponent + alpha)
/// ```
///
/// so `init_value · alpha` from `decay_steps` on. Absolute values: `base_lr` is ignored.
///
/// ```
/// # use wgpu_optim::{CosineDecay, LrSchedule};
/// // optax.cosine_decay_schedule(0.1, decay_steps=100, alpha=0.1)
/// let schedule = LrSchedule::CosineDecay(CosineDecay {
///     alpha: 0.1,
///     ..CosineDecay::new(0.1, 100)
/// });
/// assert_eq!(schedule.lr(0.0, 0), 0.1);
/// assert!((schedule.lr(0.0, 50) - 0.055).abs() < 1e-15);
/// assert!((schedule.lr(0.0, 500) - 0.01).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CosineDecay {
    /// The first value.
    pub init_value: f64,
    /// Steps of the decay (> 0).
    pub decay_steps: u64,
    /// The last value as a fraction of `init_value` (Optax default 0).
    pub alpha: f64,
    /// Exponent of the cosine (finite, ≥ 0; Optax default 1).
    pub exponent: f64,
}

impl CosineDecay {
    /// Optax's defaults around `init_value` and `decay_steps`: decay to 0, exponent 1.
    pub fn new(init_value: f64, decay_steps: u64) -> Self {
        CosineDecay {
            init_value,
            decay_steps,
            alpha: 0.0,
            exponent: 1.0,
        }
    }

    /// The value after `step` steps; NaN when the schedule is invalid (see
    /// [`LrSchedule::lr`](crate::LrSchedule::lr)).
    pub fn lr(&self, step: u64) -> f64 {
        if self.validate().is_err() {
            return f64::NAN;
        }
        cosine_decay(
            self.init_value,
            step.min(self.decay_steps),
            self.decay_steps,
            self.alpha,
            self.exponent,
        )
    }

    pub(super) fn validate(&self) -> Result<()> {
        positive_steps("decay_steps", self.decay_steps)?;
        finite("init_value", self.init_value)?;
        finite("alpha", self.alpha)?;
        // A negative exponent is infinite at the end of the decay.
        if !(self.exponent.is_finite() && self.exponent >= 0.0) {
            return invalid("exponent", self.exponent, "a finite value ≥ 0");
        }
        Ok(())
    }
}

/// Optax's polynomial transition after `count` of `steps` (> 0):
/// `(init − end) · (1 − count / steps)^power + end`.
fn polynomial(init_value: f64, end_value: f64, power: f64, count: u64, steps: u64) -> f64 {
    let frac = 1.0 - count as f64 / steps as f64;
    (init_value - end_value) * frac.powf(power) + end_value
}

/// Optax's cosine decay after `count` (≤ `steps`) of `steps`:
/// `init · ((1 − alpha) · ((1 + cos(π · count / steps)) / 2)^exponent + alpha)`, the cosine
/// term 1 when `steps` is 0 (a warm-up that ends where the decay does).
fn cosine_decay(init_value: f64, count: u64, steps: u64, alpha: f64, exponent: f64) -> f64 {
    let cos = if steps == 0 {
        1.0
    } else {
        0.5 * (1.0 + (PI * count as f64 / steps as f64).cos())
    };
    init_value * ((1.0 - alpha) * cos.powf(exponent) + alpha)
}
