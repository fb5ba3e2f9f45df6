//! Learning-rate schedules on the host (see [`LrSchedule`]).

use std::f64::consts::PI;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Learning-rate schedules on the host: pure functions of the step count, giving the values of
/// PyTorch's `torch.optim.lr_scheduler` classes and of Optax's schedules.
///
/// A schedule maps `(base_lr, step)` to a learning rate, where `step` is the number of
/// optimizer steps taken so far (PyTorch's `last_epoch` after that many `scheduler.step()`
/// calls; Optax's `count`): the value is the learning rate of the next step. Feed it to the
/// device with [`Optimizer::set_lr`](crate::Optimizer::set_lr), a buffer write:
///
/// ```no_run
/// # use wgpu_optim::{Context, LrSchedule, Optimizer};
/// # fn demo(ctx: &Context, adamw: &mut Optimizer) -> wgpu_optim::Result<()> {
/// let schedule = LrSchedule::CosineAnnealing { t_max: 1000, eta_min: 1e-5 };
/// schedule.validate()?;
/// let base_lr = 1e-3;
/// for step in 0..1000 {
///     adamw.set_lr(schedule.lr(base_lr, step))?;
///     let mut encoder = ctx.device().create_command_encoder(&Default::default());
///     // ... forward and backward ...
///     adamw.step(&mut encoder);
///     ctx.queue().submit([encoder.finish()]);
/// }
/// # Ok(()) }
/// ```
///
/// PyTorch's schedulers are mostly written in a recursive ("chainable") form; these are their
/// closed forms, in f64, which agree with the recursive values to about 1e-14 relative over
/// hundreds of steps (`tests/schedules.rs` replays values recorded from PyTorch and Optax,
/// held to 1e-12).
#[derive(Clone, Debug)]
pub enum LrSchedule {
    /// The base learning rate at every step (PyTorch without a scheduler).
    Constant,
    /// `StepLR`: `base_lr · gamma^⌊step / step_size⌋`.
    Step {
        /// Steps between decays (> 0).
        step_size: u64,
        /// Decay factor (PyTorch default 0.1).
        gamma: f64,
    },
    /// `MultiStepLR`: `base_lr · gamma^(milestones ≤ step)`, a milestone listed twice counting
    /// twice.
    MultiStep {
        /// Steps at which the rate decays.
        milestones: Vec<u64>,
        /// Decay factor (PyTorch default 0.1).
        gamma: f64,
    },
    /// `ExponentialLR`: `base_lr · gamma^step`.
    Exponential {
        /// Decay factor per step.
        gamma: f64,
    },
    /// `PolynomialLR`: `base_lr · (1 − min(step, total_iters) / total_iters)^power`.
    Polynomial {
        /// Steps to reach 0 (PyTorch default 5).
        total_iters: u64,
        /// Exponent (PyTorch default 1).
        power: f64,
    },
    /// `CosineAnnealingLR`: `eta_min + (base_lr − eta_min) · (1 + cos(π · step / t_max)) / 2`.
    CosineAnnealing {
        /// Half period, in steps (> 0).
        t_max: u64,
        /// The floor (PyTorch default 0).
        eta_min: f64,
    },
    /// `CosineAnnealingWarmRestarts` (SGDR): cosine annealing over cycles of `t_0`,
    /// `t_0 · t_mult`, `t_0 · t_mult²`... steps, restarting at `base_lr` each cycle.
    CosineAnnealingWarmRestarts {
        /// Steps in the first cycle (> 0).
        t_0: u64,
        /// Growth of each cycle (≥ 1; PyTorch default 1).
        t_mult: u64,
        /// The floor (PyTorch default 0).
        eta_min: f64,
    },
    /// `LinearLR` (warm-up): the factor moves linearly from `start_factor` to `end_factor`
    /// over `total_iters` steps, then stays: `base_lr · (start + (end − start) ·
    /// min(step, total_iters) / total_iters)`.
    Linear {
        /// First factor, in (0, 1] (PyTorch default 1/3).
        start_factor: f64,
        /// Last factor, in [0, 1] (PyTorch default 1).
        end_factor: f64,
        /// Steps of the ramp (PyTorch default 5).
        total_iters: u64,
    },
    /// `SequentialLR`: `schedules[i]` from `milestones[i − 1]` on, counting its steps from its
    /// milestone (PyTorch restarts each scheduler there with `step(0)`).
    Sequential {
        /// The schedules in order.
        schedules: Vec<LrSchedule>,
        /// Where each schedule after the first takes over: one fewer than `schedules`,
        /// increasing.
        milestones: Vec<u64>,
    },
    /// `OneCycleLR`, whose momentum (or Adam's beta1) cycles too: see
    /// [`OneCycle::momentum`] and
    /// [`OptimizerConfig::with_cycled_momentum`](crate::OptimizerConfig::with_cycled_momentum).
    /// `base_lr` is ignored: the cycle is set by `max_lr`.
    OneCycle(OneCycle),
    /// `optax.warmup_cosine_decay_schedule`. Absolute values: `base_lr` is ignored.
    WarmupCosineDecay(WarmupCosineDecay),
    /// `optax.piecewise_constant_schedule`: `init_value` times each scale whose boundary the
    /// step has reached (`step ≥ boundary`). Absolute values: `base_lr` is ignored.
    PiecewiseConstant {
        /// The first value.
        init_value: f64,
        /// `(boundary, scale)` pairs.
        boundaries_and_scales: Vec<(u64, f64)>,
    },
    /// Anything else: `f(base_lr, step)`, e.g. a seasonal multiplier. See
    /// [`LrSchedule::custom`].
    Custom(ScheduleFn),
}

/// A user's schedule function, `f(base_lr, step)`.
#[derive(Clone)]
pub struct ScheduleFn(pub Arc<dyn Fn(f64, u64) -> f64 + Send + Sync>);

impl fmt::Debug for ScheduleFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScheduleFn(..)")
    }
}

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
    /// [`LrSchedule::lr`]).
    pub fn lr(&self, step: u64) -> f64 {
        if self.validate().is_err() {
            return f64::NAN;
        }
        if step < self.warmup_steps {
            // optax.linear_schedule over the warm-up.
            let frac = 1.0 - step as f64 / self.warmup_steps as f64;
            return (self.init_value - self.peak_value) * frac + self.peak_value;
        }
        // optax.cosine_decay_schedule from the warm-up's end.
        let steps = self.decay_steps - self.warmup_steps;
        let count = (step - self.warmup_steps).min(steps);
        let alpha = self.end_value / self.peak_value;
        let cos = if steps == 0 {
            1.0
        } else {
            0.5 * (1.0 + (PI * count as f64 / steps as f64).cos())
        };
        self.peak_value * ((1.0 - alpha) * cos.powf(self.exponent) + alpha)
    }

    fn validate(&self) -> Result<()> {
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

/// How [`OneCycle`] anneals between its phase ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anneal {
    /// `end + (start − end) / 2 · (1 + cos(π · pct))` (PyTorch's default).
    #[default]
    Cos,
    /// `start + (end − start) · pct`.
    Linear,
}

/// `torch.optim.lr_scheduler.OneCycleLR` (Smith & Topin 2017, "Super-Convergence"), with its
/// defaults: warm-up from `max_lr / div_factor` to `max_lr` over `pct_start` of the steps,
/// then annealing to `max_lr / div_factor / final_div_factor`; momentum moves the other way
/// between `max_momentum` and `base_momentum`.
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycle {
    /// The peak learning rate.
    pub max_lr: f64,
    /// Steps in the cycle (> 0). PyTorch raises past them, and at `total_steps` itself
    /// computes an overshoot of the last phase (negative with linear annealing); here every
    /// step from `total_steps - 1` on keeps the cycle's final value,
    /// `max_lr / div_factor / final_div_factor`, so a loop that runs past the cycle goes on.
    pub total_steps: u64,
    /// Share of the cycle spent rising (default 0.3).
    pub pct_start: f64,
    /// Annealing shape (default cos).
    pub anneal: Anneal,
    /// Whether momentum cycles (default true).
    pub cycle_momentum: bool,
    /// Momentum at the learning-rate peak (default 0.85).
    pub base_momentum: f64,
    /// Momentum at both ends (default 0.95).
    pub max_momentum: f64,
    /// `max_lr / initial lr` (default 25).
    pub div_factor: f64,
    /// `initial lr / final lr` (default 1e4).
    pub final_div_factor: f64,
    /// Fastai's two phases (false, default) or the paper's three.
    pub three_phase: bool,
}

impl OneCycle {
    /// The defaults of PyTorch around `max_lr` and `total_steps`.
    pub fn new(max_lr: f64, total_steps: u64) -> Self {
        OneCycle {
            max_lr,
            total_steps,
            pct_start: 0.3,
            anneal: Anneal::Cos,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    }

    // (end step, start lr, end lr, start momentum, end momentum) of each phase.
    fn phases(&self) -> Vec<(f64, f64, f64, f64, f64)> {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let total = self.total_steps as f64;
        let (low, high) = (self.base_momentum, self.max_momentum);
        let warm_up = (
            self.pct_start * total - 1.0,
            initial,
            self.max_lr,
            high,
            low,
        );
        if self.three_phase {
            let back_down = (
                2.0 * self.pct_start * total - 2.0,
                self.max_lr,
                initial,
                low,
                high,
            );
            vec![warm_up, back_down, (total - 1.0, initial, min, high, high)]
        } else {
            vec![warm_up, (total - 1.0, self.max_lr, min, low, high)]
        }
    }

    // The learning rate and momentum at `step`, as `OneCycleLR.get_lr`, holding the last
    // step's values after the cycle.
    fn at(&self, step: u64) -> (f64, f64) {
        let step = step.min(self.total_steps.saturating_sub(1)) as f64;
        let phases = self.phases();
        let mut start = 0.0;
        for (i, &(end, lr0, lr1, m0, m1)) in phases.iter().enumerate() {
            if step <= end || i == phases.len() - 1 {
                let pct = (step - start) / (end - start);
                return (self.anneal(lr0, lr1, pct), self.anneal(m0, m1, pct));
            }
            start = end;
        }
        unreachable!("the last phase always matches")
    }

    fn anneal(&self, start: f64, end: f64, pct: f64) -> f64 {
        match self.anneal {
            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }

    /// The momentum (SGD's `momentum`, Adam's `beta1`) at `step`: `max_momentum` when the
    /// cycle does not move it.
    pub fn momentum(&self, step: u64) -> f64 {
        if self.cycle_momentum {
            self.at(step).1
        } else {
            self.max_momentum
        }
    }
}

impl LrSchedule {
    /// A schedule of the user's: `f(base_lr, step)`.
    ///
    /// ```
    /// # use wgpu_optim::LrSchedule;
    /// // A seasonal multiplier: 20% higher on every 7th step of a week-long cycle.
    /// let seasonal = LrSchedule::custom(|base, step| if step % 7 == 6 { base * 1.2 } else { base });
    /// assert_eq!(seasonal.lr(1.0, 6), 1.2);
    /// ```
    pub fn custom(f: impl Fn(f64, u64) -> f64 + Send + Sync + 'static) -> Self {
        LrSchedule::Custom(ScheduleFn(Arc::new(f)))
    }

    /// The learning rate after `step` optimizer steps (for the next one), from the group's
    /// initial learning rate `base_lr`. Every valid schedule returns in time independent of
    /// `step` (warm restarts included: a closed form, as PyTorch's `step(epoch)`). A schedule
    /// that [`LrSchedule::validate`] refuses returns NaN, never panics or hangs, and
    /// [`Optimizer::set_lr`](crate::Optimizer::set_lr) refuses NaN.
    pub fn lr(&self, base_lr: f64, step: u64) -> f64 {
        if self.validate().is_err() {
            return f64::NAN;
        }
        match self {
            LrSchedule::Constant => base_lr,
            LrSchedule::Step { step_size, gamma } => {
                base_lr * gamma.powi(exponent(step / step_size))
            }
            LrSchedule::MultiStep { milestones, gamma } => {
                let reached = milestones.iter().filter(|&&m| m <= step).count() as u64;
                base_lr * gamma.powi(exponent(reached))
            }
            LrSchedule::Exponential { gamma } => base_lr * gamma.powi(exponent(step)),
            LrSchedule::Polynomial { total_iters, power } => {
                let done = step.min(*total_iters) as f64 / *total_iters as f64;
                base_lr * (1.0 - done).powf(*power)
            }
            LrSchedule::CosineAnnealing { t_max, eta_min } => {
                cosine(base_lr, *eta_min, step as f64 / *t_max as f64)
            }
            LrSchedule::CosineAnnealingWarmRestarts {
                t_0,
                t_mult,
                eta_min,
            } => {
                let (t_cur, t_i) = warm_restart(step, *t_0, *t_mult);
                cosine(base_lr, *eta_min, t_cur as f64 / t_i as f64)
            }
            LrSchedule::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                let done = step.min(*total_iters) as f64 / *total_iters as f64;
                base_lr * (start_factor + (end_factor - start_factor) * done)
            }
            LrSchedule::Sequential {
                schedules,
                milestones,
            } => {
                let i = milestones.iter().filter(|&&m| m <= step).count();
                let start = if i == 0 { 0 } else { milestones[i - 1] };
                schedules[i].lr(base_lr, step - start)
            }
            LrSchedule::OneCycle(cycle) => cycle.at(step).0,
            LrSchedule::WarmupCosineDecay(schedule) => schedule.lr(step),
            LrSchedule::PiecewiseConstant {
                init_value,
                boundaries_and_scales,
            } => boundaries_and_scales
                .iter()
                .filter(|&&(boundary, _)| step >= boundary)
                .fold(*init_value, |value, &(_, scale)| value * scale),
            LrSchedule::Custom(f) => (f.0)(base_lr, step),
        }
    }

    /// Refuses what PyTorch or Optax refuse, and values that would divide by zero.
    pub fn validate(&self) -> Result<()> {
        match self {
            LrSchedule::Constant | LrSchedule::Custom(_) => Ok(()),
            LrSchedule::Step { step_size, gamma } => {
                positive_steps("step_size", *step_size)?;
                finite("gamma", *gamma)
            }
            LrSchedule::MultiStep { gamma, .. } | LrSchedule::Exponential { gamma } => {
                finite("gamma", *gamma)
            }
            LrSchedule::Polynomial { total_iters, power } => {
                positive_steps("total_iters", *total_iters)?;
                finite("power", *power)
            }
            LrSchedule::CosineAnnealing { t_max, eta_min } => {
                positive_steps("T_max", *t_max)?;
                finite("eta_min", *eta_min)
            }
            LrSchedule::CosineAnnealingWarmRestarts {
                t_0,
                t_mult,
                eta_min,
            } => {
                positive_steps("T_0", *t_0)?;
                positive_steps("T_mult", *t_mult)?;
                finite("eta_min", *eta_min)
            }
            LrSchedule::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                // PyTorch: start_factor in (0, 1], end_factor in [0, 1].
                if !(*start_factor > 0.0 && *start_factor <= 1.0) {
                    return invalid("start_factor", *start_factor, "a value in (0, 1]");
                }
                if !(0.0..=1.0).contains(end_factor) {
                    return invalid("end_factor", *end_factor, "a value in [0, 1]");
                }
                positive_steps("total_iters", *total_iters)
            }
            LrSchedule::Sequential {
                schedules,
                milestones,
            } => {
                if schedules.len() != milestones.len() + 1 {
                    return Err(Error::InvalidOptions(
                        "SequentialLR needs one milestone fewer than schedules",
                    ));
                }
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(Error::InvalidOptions(
                        "SequentialLR's milestones must increase",
                    ));
                }
                schedules.iter().try_for_each(LrSchedule::validate)
            }
            LrSchedule::OneCycle(c) => {
                positive_steps("total_steps", c.total_steps)?;
                for (name, value) in [
                    ("max_lr", c.max_lr),
                    ("base_momentum", c.base_momentum),
                    ("max_momentum", c.max_momentum),
                    ("div_factor", c.div_factor),
                    ("final_div_factor", c.final_div_factor),
                ] {
                    finite(name, value)?;
                }
                if !(0.0..=1.0).contains(&c.pct_start) {
                    return invalid("pct_start", c.pct_start, "a value in [0, 1]");
                }
                // Every phase must have a length, or its pct divides by zero.
                let mut start = 0.0;
                for (end, ..) in c.phases() {
                    if end <= start {
                        return Err(Error::InvalidOptions(
                            "OneCycleLR: pct_start leaves a phase without steps",
                        ));
                    }
                    start = end;
                }
                Ok(())
            }
            LrSchedule::WarmupCosineDecay(schedule) => schedule.validate(),
            LrSchedule::PiecewiseConstant {
                init_value,
                boundaries_and_scales,
            } => {
                finite("init_value", *init_value)?;
                boundaries_and_scales
                    .iter()
                    .try_for_each(|&(_, scale)| finite("scale", scale))
            }
        }
    }
}

fn invalid(name: &'static str, value: f64, expected: &'static str) -> Result<()> {
    Err(Error::InvalidHyperparameter {
        name,
        value,
        expected,
    })
}

/// A step count that divides: at least 1.
fn positive_steps(name: &'static str, steps: u64) -> Result<()> {
    if steps == 0 {
        invalid(name, 0.0, "an integer > 0")
    } else {
        Ok(())
    }
}

fn finite(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        invalid(name, value, "a finite value")
    }
}

/// SGDR's position after `step` steps: `(T_cur, T_i)`, the steps into the current cycle and its
/// length, in integers as PyTorch's `step()` counts them. With `t_mult = 1` a modulo; otherwise
/// the cycles grow geometrically, so at most 64 of them fit in a u64 step count (u128 holds
/// the last product). `t_0` and `t_mult` are at least 1 (validated).
fn warm_restart(step: u64, t_0: u64, t_mult: u64) -> (u128, u128) {
    if t_mult == 1 {
        return (u128::from(step % t_0), u128::from(t_0));
    }
    let (mut t_cur, mut t_i) = (u128::from(step), u128::from(t_0));
    while t_cur >= t_i {
        t_cur -= t_i;
        t_i *= u128::from(t_mult);
    }
    (t_cur, t_i)
}

/// `eta_min + (base − eta_min) · (1 + cos(π · fraction)) / 2`.
fn cosine(base_lr: f64, eta_min: f64, fraction: f64) -> f64 {
    eta_min + (base_lr - eta_min) * (1.0 + (PI * fraction).cos()) / 2.0
}

/// A step count as an exponent of `powi`, saturating (`gamma^i32::MAX` is already 0 or inf).
fn exponent(count: u64) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}
