//! Learning-rate schedules: on the host ([`LrSchedule`]: PyTorch's `lr_scheduler` classes,
//! Optax's forms in `optax.rs`, the cyclic ones in `cyclic.rs`, a seasonal factor) and on the
//! device ([`DeviceSchedule`], `device.rs`).

mod cyclic;
mod device;
mod optax;
mod seasonal;

use std::f64::consts::PI;
use std::fmt;
use std::sync::Arc;

pub use cyclic::{Anneal, Cyclic, CyclicMode, OneCycle};
pub use device::{
    schedule_files, schedule_source, DeviceSchedule, ScheduleCounter, ScheduleShape, SCHEDULE,
};
pub(crate) use device::{ScheduleTable, ScheduleTarget};
pub use optax::{CosineDecay, ExponentialDecay, PolynomialSchedule, WarmupCosineDecay};
pub use seasonal::Seasonal;

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
    /// `optax.exponential_decay`: `init_value · decay_rate^((step − transition_begin) /
    /// transition_steps)`, clipped at `end_value`. Absolute values: `base_lr` is ignored.
    ExponentialDecay(ExponentialDecay),
    /// `optax.polynomial_schedule`, and `optax.linear_schedule` as its power 1 (see
    /// [`PolynomialSchedule::linear`]). Absolute values: `base_lr` is ignored.
    PolynomialSchedule(PolynomialSchedule),
    /// `optax.cosine_decay_schedule`. Absolute values: `base_lr` is ignored.
    CosineDecay(CosineDecay),
    /// `ConstantLR`: `base_lr · factor` for the first `total_iters` steps, `base_lr` from then
    /// on.
    ///
    /// ```
    /// # use wgpu_optim::LrSchedule;
    /// let schedule = LrSchedule::ConstantFactor { factor: 0.5, total_iters: 4 };
    /// assert_eq!(schedule.lr(0.1, 3), 0.05);
    /// assert_eq!(schedule.lr(0.1, 4), 0.1);
    /// ```
    ConstantFactor {
        /// The factor, in [0, 1] (PyTorch default 1/3).
        factor: f64,
        /// Steps at the reduced rate (> 0; PyTorch default 5). PyTorch's recursive form with
        /// `total_iters = 0` keeps the factor for ever while its closed form never applies
        /// it, so 0 is refused.
        total_iters: u64,
    },
    /// `CyclicLR`, whose momentum (or Adam's beta1) cycles too: see [`Cyclic::momentum`] and
    /// [`OptimizerConfig::with_cycled_momentum`](crate::OptimizerConfig::with_cycled_momentum).
    /// `base_lr` is ignored: the cycle is set by [`Cyclic::base_lr`], as PyTorch's `CyclicLR`
    /// overwrites the group's learning rate with its own `base_lr`.
    Cyclic(Cyclic),
    /// `ChainedScheduler`: the product of multiplicative schedules' factors,
    /// `base_lr · Π_i schedules[i].lr(1, step)`, which is what PyTorch's chain of recursive
    /// updates computes. Each schedule must be multiplicative, its rate `base_lr` times a
    /// factor of the step (`Constant`, `Step`, `MultiStep`, `Exponential`, `Polynomial`,
    /// `Linear`, `ConstantFactor`, or a `Chained` of them); others are refused, as their
    /// chained recursive forms are not products. At least one schedule, as PyTorch.
    ///
    /// ```
    /// # use wgpu_optim::LrSchedule;
    /// // ChainedScheduler([ConstantLR(factor=0.5, total_iters=4), ExponentialLR(gamma=0.9)])
    /// let schedule = LrSchedule::Chained(vec![
    ///     LrSchedule::ConstantFactor { factor: 0.5, total_iters: 4 },
    ///     LrSchedule::Exponential { gamma: 0.9 },
    /// ]);
    /// assert!((schedule.lr(0.1, 2) - 0.1 * 0.5 * 0.81).abs() < 1e-15);
    /// assert!((schedule.lr(0.1, 4) - 0.1 * 0.6561).abs() < 1e-15);
    /// ```
    Chained(Vec<LrSchedule>),
    /// A seasonal adjustment of any schedule: `schedule.lr(base_lr, step) ·
    /// seasonal.factor(step)`. Neither PyTorch nor Optax has it. Build it with
    /// [`LrSchedule::with_seasonal`].
    Seasonal {
        /// The schedule adjusted.
        schedule: Box<LrSchedule>,
        /// The periodic multiplier.
        seasonal: Seasonal,
    },
    /// Anything else: `f(base_lr, step)`. See [`LrSchedule::custom`].
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

impl LrSchedule {
    /// A schedule of the user's: `f(base_lr, step)`.
    ///
    /// ```
    /// # use wgpu_optim::LrSchedule;
    /// // 20% higher on every 7th step of a week-long cycle.
    /// let seasonal = LrSchedule::custom(|base, step| if step % 7 == 6 { base * 1.2 } else { base });
    /// assert_eq!(seasonal.lr(1.0, 6), 1.2);
    /// ```
    pub fn custom(f: impl Fn(f64, u64) -> f64 + Send + Sync + 'static) -> Self {
        LrSchedule::Custom(ScheduleFn(Arc::new(f)))
    }

    /// This schedule times a [`Seasonal`] multiplier:
    /// `lr(base_lr, step) = self.lr(base_lr, step) · (1 + amplitude · sin(2π · step / period +
    /// phase))`.
    ///
    /// ```
    /// # use wgpu_optim::{LrSchedule, Seasonal};
    /// let seasonal = Seasonal { amplitude: 0.1, period: 4.0, phase: 0.0 };
    /// let schedule = LrSchedule::Exponential { gamma: 0.9 }.with_seasonal(seasonal);
    /// // A quarter period in, the sine peaks: 10% above the exponential decay.
    /// assert!((schedule.lr(1.0, 1) - 0.9 * 1.1).abs() < 1e-15);
    /// // Three quarters in, 10% below.
    /// assert!((schedule.lr(1.0, 3) - 0.729 * 0.9).abs() < 1e-15);
    /// ```
    pub fn with_seasonal(self, seasonal: Seasonal) -> Self {
        LrSchedule::Seasonal {
            schedule: Box::new(self),
            seasonal,
        }
    }

    /// Whether the rate is `base_lr` times a factor of the step, so that PyTorch's chained
    /// recursive updates multiply (see [`LrSchedule::Chained`]).
    fn is_multiplicative(&self) -> bool {
        match self {
            LrSchedule::Constant
            | LrSchedule::Step { .. }
            | LrSchedule::MultiStep { .. }
            | LrSchedule::Exponential { .. }
            | LrSchedule::Polynomial { .. }
            | LrSchedule::Linear { .. }
            | LrSchedule::ConstantFactor { .. } => true,
            LrSchedule::Chained(schedules) => schedules.iter().all(LrSchedule::is_multiplicative),
            _ => false,
        }
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
            LrSchedule::ExponentialDecay(schedule) => schedule.lr(step),
            LrSchedule::PolynomialSchedule(schedule) => schedule.lr(step),
            LrSchedule::CosineDecay(schedule) => schedule.lr(step),
            LrSchedule::ConstantFactor {
                factor,
                total_iters,
            } => {
                if step < *total_iters {
                    base_lr * factor
                } else {
                    base_lr
                }
            }
            LrSchedule::Cyclic(cyclic) => cyclic.lr(step),
            LrSchedule::Chained(schedules) => schedules
                .iter()
                .fold(base_lr, |lr, schedule| lr * schedule.lr(1.0, step)),
            LrSchedule::Seasonal { schedule, seasonal } => {
                schedule.lr(base_lr, step) * seasonal.factor(step)
            }
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
            LrSchedule::ExponentialDecay(schedule) => schedule.validate(),
            LrSchedule::PolynomialSchedule(schedule) => schedule.validate(),
            LrSchedule::CosineDecay(schedule) => schedule.validate(),
            LrSchedule::ConstantFactor {
                factor,
                total_iters,
            } => {
                // PyTorch: factor in [0, 1].
                if !(0.0..=1.0).contains(factor) {
                    return invalid("factor", *factor, "a value in [0, 1]");
                }
                positive_steps("total_iters", *total_iters)
            }
            LrSchedule::Cyclic(cyclic) => cyclic.validate(),
            LrSchedule::Chained(schedules) => {
                if schedules.is_empty() {
                    return Err(Error::InvalidOptions(
                        "ChainedScheduler expects at least one scheduler",
                    ));
                }
                if !schedules.iter().all(LrSchedule::is_multiplicative) {
                    return Err(Error::InvalidOptions(
                        "ChainedScheduler chains multiplicative schedules only (Constant, Step, \
                         MultiStep, Exponential, Polynomial, Linear, ConstantFactor, Chained)",
                    ));
                }
                schedules.iter().try_for_each(LrSchedule::validate)
            }
            LrSchedule::Seasonal { schedule, seasonal } => {
                seasonal.validate()?;
                schedule.validate()
            }
        }
    }
}

pub(super) fn invalid(name: &'static str, value: f64, expected: &'static str) -> Result<()> {
    Err(Error::InvalidHyperparameter {
        name,
        value,
        expected,
    })
}

/// A step count that divides: at least 1.
pub(super) fn positive_steps(name: &'static str, steps: u64) -> Result<()> {
    if steps == 0 {
        invalid(name, 0.0, "an integer > 0")
    } else {
        Ok(())
    }
}

pub(super) fn finite(name: &'static str, value: f64) -> Result<()> {
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
pub(super) fn warm_restart(step: u64, t_0: u64, t_mult: u64) -> (u128, u128) {
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
pub(super) fn cosine(base_lr: f64, eta_min: f64, fraction: f64) -> f64 {
    eta_min + (base_lr - eta_min) * (1.0 + (PI * fraction).cos()) / 2.0
}

/// A step count as an exponent of `powi`, saturating (`gamma^i32::MAX` is already 0 or inf).
pub(super) fn exponent(count: u64) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}
