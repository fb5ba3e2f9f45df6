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

use cyclic::{flatten, ChainWalk};
pub use cyclic::{Anneal, Cyclic, CyclicMode, OneCycle};
pub use device::{
    schedule_files, schedule_source, DeviceSchedule, ScheduleCounter, ScheduleShape, SCHEDULE,
};
pub(crate) use device::{ScheduleTable, ScheduleTarget};
pub use optax::{CosineDecay, ExponentialDecay, PolynomialSchedule, WarmupCosineDecay};
pub use seasonal::Seasonal;

use crate::error::{invalid, Error, Result};

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
/// held to 1e-12). A [`LrSchedule::Chained`] with a cosine follows the recursion itself, where
/// it is no product of closed forms.
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
    /// `ChainedScheduler`: every step, each schedule in turn applies PyTorch's recursive update
    /// (its `get_lr`) to the rate the ones before it have just set. Each is one of PyTorch's
    /// schedulers with a closed form (`_get_closed_form_lr`): `Step`, `MultiStep`,
    /// `Exponential`, `Polynomial`, `Linear`, `ConstantFactor`, `CosineAnnealing`; or
    /// `Constant` (factor 1), or a `Chained` of them, which steps its own in turn. At least one
    /// schedule, as PyTorch.
    ///
    /// Without `CosineAnnealing` the rate is the product of the factors,
    /// `base_lr · Π_i schedules[i].lr(1, step)`: each update scales the rate by its factor's
    /// ratio, and the ratios telescope. A cosine's update is `η + c(t) / c(t − 1) · (lr − η)`,
    /// `c(t) = 1 + cos(π · t / t_max)`, `η = eta_min`, and one step past each zero (`t` an odd
    /// multiple of `t_max`), where `c(t − 1) = 0`, it adds `(base_lr − η) · (1 − cos(π /
    /// t_max)) / 2` instead. So the rate is the product of the closed forms up to the first
    /// zero when every `eta_min` is 0; after it, the recursive cosine climbs back (period
    /// `2 · t_max`) and each zero sets the rate to `eta_min`, dropping the factors carried so
    /// far (an `Exponential`'s decay counts again from there); with `eta_min ≠ 0` the cosine's
    /// update does not commute with the others' scaling. Here the rate is that recursion, as a
    /// function of the step: from the last zero, in closed-form runs between the steps where
    /// another member changes its factor (none when every `eta_min` is 0), each of those steps
    /// taken as PyTorch takes it. A step costs those runs (at most `2 · t_max` steps, for an
    /// `Exponential` with `eta_min ≠ 0`, or two cosines and an `eta_min ≠ 0`); consecutive steps,
    /// as a [`DeviceSchedule`] tabulates them, one run each.
    ///
    /// Refused ([`Error::InvalidOptions`]): a member without a closed form in PyTorch
    /// (`CosineAnnealingWarmRestarts`, `OneCycle`, `Cyclic`, `Sequential`), whose chained
    /// recursion is not implemented, and one that is no PyTorch scheduler (Optax's,
    /// `Seasonal`, `Custom`); a `ConstantFactor` with factor 0 beside a cosine, as PyTorch
    /// divides by the factor at its `total_iters` (`ZeroDivisionError`) and a cosine's restart
    /// leaves a rate for it to divide.
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
    ///
    /// // ChainedScheduler([ExponentialLR(gamma=0.9), CosineAnnealingLR(T_max=2)])
    /// let schedule = LrSchedule::Chained(vec![
    ///     LrSchedule::Exponential { gamma: 0.9 },
    ///     LrSchedule::CosineAnnealing { t_max: 2, eta_min: 0.0 },
    /// ]);
    /// // 0 at step 2; the restart at 3 adds base_lr · (1 − cos(π / 2)) / 2 to it, 0.9³ dropped:
    /// assert!((schedule.lr(0.1, 3) - 0.05).abs() < 1e-15);
    /// // then each step scales by 0.9 · c(t) / c(t − 1).
    /// assert!((schedule.lr(0.1, 4) - 0.05 * 0.9 * 2.0).abs() < 1e-15);
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

    /// Whether a [`LrSchedule::Chained`] takes it: one of PyTorch's schedulers with a closed
    /// form, `Constant`, or a chain of them.
    fn chains(&self) -> bool {
        match self {
            LrSchedule::Constant
            | LrSchedule::Step { .. }
            | LrSchedule::MultiStep { .. }
            | LrSchedule::Exponential { .. }
            | LrSchedule::Polynomial { .. }
            | LrSchedule::Linear { .. }
            | LrSchedule::ConstantFactor { .. }
            | LrSchedule::CosineAnnealing { .. } => true,
            LrSchedule::Chained(schedules) => schedules.iter().all(LrSchedule::chains),
            _ => false,
        }
    }

    /// The rates after 0, 1, 2, ... steps: `lr(base_lr, step)` for each, bit for bit, each in
    /// time independent of the count. A [`LrSchedule::Chained`] with a cosine goes on with its
    /// walk from one step to the next where `lr` starts it again, so a loop over the steps of
    /// such a chain costs a constant time a step here.
    ///
    /// ```
    /// # use wgpu_optim::LrSchedule;
    /// let schedule = LrSchedule::Chained(vec![
    ///     LrSchedule::Exponential { gamma: 0.99 },
    ///     LrSchedule::CosineAnnealing { t_max: 100, eta_min: 1e-4 },
    /// ]);
    /// for (step, lr) in schedule.rates(0.1).enumerate().take(1000) {
    ///     assert_eq!(lr, schedule.lr(0.1, step as u64));
    /// }
    /// ```
    pub fn rates(&self, base_lr: f64) -> Box<dyn Iterator<Item = f64> + '_> {
        let steps = 0..=u64::MAX;
        match self {
            _ if self.validate().is_err() => Box::new(std::iter::repeat(f64::NAN)),
            LrSchedule::Chained(schedules) => {
                let mut walk = ChainWalk::new(schedules, base_lr);
                Box::new(steps.map(move |step| walk.lr(step)))
            }
            LrSchedule::Seasonal { schedule, seasonal } => Box::new(
                (schedule.rates(base_lr).zip(steps)).map(|(lr, step)| lr * seasonal.factor(step)),
            ),
            LrSchedule::Sequential {
                schedules,
                milestones,
            } => {
                // Each schedule from its milestone, counting its steps from there, up to the next.
                let starts = std::iter::once(0).chain(milestones.iter().copied());
                let ends = milestones.iter().map(|&end| Some(end)).chain([None]);
                let lengths = starts.zip(ends).map(|(start, end)| {
                    end.map_or(usize::MAX, |end| {
                        usize::try_from(end - start).unwrap_or(usize::MAX)
                    })
                });
                Box::new(
                    (schedules.iter().zip(lengths))
                        .flat_map(move |(schedule, length)| schedule.rates(base_lr).take(length)),
                )
            }
            _ => Box::new(steps.map(move |step| self.lr(base_lr, step))),
        }
    }

    /// The learning rate after `step` optimizer steps (for the next one), from the group's
    /// initial learning rate `base_lr`. Every valid schedule returns in time independent of
    /// `step` (warm restarts included: a closed form, as PyTorch's `step(epoch)`), but for a
    /// [`LrSchedule::Chained`] with a cosine whose `eta_min` is not 0, which walks PyTorch's
    /// recursion from the cosine's last zero (at most `2 · t_max` steps): take consecutive
    /// steps of it from [`LrSchedule::rates`], at a constant cost each. A schedule
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
            LrSchedule::Chained(schedules) => ChainWalk::new(schedules, base_lr).lr(step),
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
                if !schedules.iter().all(LrSchedule::chains) {
                    return Err(Error::InvalidOptions(
                        "ChainedScheduler chains PyTorch's schedules with closed forms only \
                         (Step, MultiStep, Exponential, Polynomial, Linear, ConstantFactor, \
                         CosineAnnealing; Constant; Chained)",
                    ));
                }
                schedules.iter().try_for_each(LrSchedule::validate)?;
                let members = flatten(schedules);
                let cosine = (members.iter())
                    .any(|member| matches!(member, LrSchedule::CosineAnnealing { .. }));
                let divides_by_0 = members.iter().any(|member| {
                    matches!(member, LrSchedule::ConstantFactor { factor, .. } if *factor == 0.0)
                });
                if cosine && divides_by_0 {
                    return Err(Error::InvalidOptions(
                        "ChainedScheduler: a ConstantFactor with factor 0 beside a \
                         CosineAnnealing divides by 0 at its total_iters, as PyTorch's",
                    ));
                }
                Ok(())
            }
            LrSchedule::Seasonal { schedule, seasonal } => {
                seasonal.validate()?;
                schedule.validate()
            }
        }
    }
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
