//! Learning-rate schedules on the host (see [`LrSchedule`]).

use std::f64::consts::{PI, TAU};
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
    /// [`LrSchedule::lr`]).
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

    fn validate(&self) -> Result<()> {
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
    /// [`LrSchedule::lr`]).
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

    fn validate(&self) -> Result<()> {
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
    /// [`LrSchedule::lr`]).
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

    fn validate(&self) -> Result<()> {
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

/// How [`Cyclic`] scales the amplitude of its cycles: PyTorch's `CyclicLR` `mode` with
/// `scale_fn=None`, which also fixes `scale_mode` (by cycle for the triangles, by step for
/// `exp_range`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CyclicMode {
    /// `"triangular"`: the full amplitude every cycle (PyTorch's default).
    #[default]
    Triangular,
    /// `"triangular2"`: the amplitude halves each cycle, `1 / 2^(cycle − 1)`.
    Triangular2,
    /// `"exp_range"`: the amplitude decays with every step, `gamma^step`.
    ExpRange,
}

/// `torch.optim.lr_scheduler.CyclicLR` (Smith 2017, "Cyclical Learning Rates for Training
/// Neural Networks"): the rate climbs from `base_lr` to `max_lr` over `step_size_up` steps and
/// back over `step_size_down`, the climb scaled by the [`CyclicMode`]; momentum moves the
/// other way between `max_momentum` and `base_momentum`. As PyTorch, with
/// `total = step_size_up + step_size_down`:
///
/// ```text
/// cycle = ⌊1 + step / total⌋,  x = 1 + step / total − cycle
/// f     = x / r if x ≤ r else (x − 1) / (r − 1),  r = step_size_up / total
/// lr       = base_lr + (max_lr − base_lr) · f · scale
/// momentum = max_momentum − (max_momentum − base_momentum) · f · scale
/// ```
///
/// where `scale` is 1, `1 / 2^(cycle − 1)` or `gamma^step` by mode.
///
/// ```
/// # use wgpu_optim::{Cyclic, LrSchedule};
/// // CyclicLR(opt, base_lr=0.001, max_lr=0.1, step_size_up=10)
/// let cyclic = Cyclic::new(0.001, 0.1, 10);
/// let schedule = LrSchedule::Cyclic(cyclic.clone());
/// assert_eq!(schedule.lr(0.0, 0), 0.001);
/// assert!((schedule.lr(0.0, 10) - 0.1).abs() < 1e-15);
/// assert!((cyclic.momentum(10) - 0.8).abs() < 1e-15);
/// assert_eq!(schedule.lr(0.0, 20), 0.001);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Cyclic {
    /// The rate at the start of each cycle.
    pub base_lr: f64,
    /// The rate at the top of the first cycle.
    pub max_lr: f64,
    /// Steps of the climb (> 0; PyTorch default 2000).
    pub step_size_up: u64,
    /// Steps of the descent (PyTorch default: `step_size_up`; 0 makes a sawtooth).
    pub step_size_down: u64,
    /// How the amplitude shrinks (default triangular).
    pub mode: CyclicMode,
    /// The per-step decay of [`CyclicMode::ExpRange`] (default 1).
    pub gamma: f64,
    /// Whether momentum cycles (default true).
    pub cycle_momentum: bool,
    /// Momentum at the learning-rate peak (default 0.8).
    pub base_momentum: f64,
    /// Momentum at the cycle's start (default 0.9).
    pub max_momentum: f64,
}

impl Cyclic {
    /// The defaults of PyTorch around `base_lr`, `max_lr` and `step_size_up`: a symmetric
    /// triangle, momentum cycling between 0.9 and 0.8.
    pub fn new(base_lr: f64, max_lr: f64, step_size_up: u64) -> Self {
        Cyclic {
            base_lr,
            max_lr,
            step_size_up,
            step_size_down: step_size_up,
            mode: CyclicMode::Triangular,
            gamma: 1.0,
            cycle_momentum: true,
            base_momentum: 0.8,
            max_momentum: 0.9,
        }
    }

    // (f, scale) at `step`, in `CyclicLR.get_lr`'s order of operations.
    fn at(&self, step: u64) -> (f64, f64) {
        let total = self.step_size_up as f64 + self.step_size_down as f64;
        let step_ratio = self.step_size_up as f64 / total;
        let epoch = step as f64;
        let cycle = (1.0 + epoch / total).floor();
        let x = 1.0 + epoch / total - cycle;
        let scale_factor = if x <= step_ratio {
            x / step_ratio
        } else {
            (x - 1.0) / (step_ratio - 1.0)
        };
        let scale = match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2.0_f64.powf(cycle - 1.0),
            CyclicMode::ExpRange => self.gamma.powf(epoch),
        };
        (scale_factor, scale)
    }

    fn lr(&self, step: u64) -> f64 {
        let (scale_factor, scale) = self.at(step);
        let base_height = (self.max_lr - self.base_lr) * scale_factor;
        self.base_lr + base_height * scale
    }

    /// The momentum (SGD's `momentum`, Adam's `beta1`) at `step`: `max_momentum` when the
    /// cycle does not move it; NaN when the schedule is invalid.
    pub fn momentum(&self, step: u64) -> f64 {
        if self.validate().is_err() {
            return f64::NAN;
        }
        if !self.cycle_momentum {
            return self.max_momentum;
        }
        let (scale_factor, scale) = self.at(step);
        let base_height = (self.max_momentum - self.base_momentum) * scale_factor;
        self.max_momentum - base_height * scale
    }

    fn validate(&self) -> Result<()> {
        positive_steps("step_size_up", self.step_size_up)?;
        for (name, value) in [
            ("base_lr", self.base_lr),
            ("max_lr", self.max_lr),
            ("gamma", self.gamma),
            ("base_momentum", self.base_momentum),
            ("max_momentum", self.max_momentum),
        ] {
            finite(name, value)?;
        }
        Ok(())
    }
}

/// A seasonal learning-rate adjustment: a periodic multiplier of any schedule,
///
/// `factor(step) = 1 + amplitude · sin(2π · (step / period) + phase)`
///
/// computed as `1 + amplitude · sin(τ · (step / period) + phase)` in f64, with
/// `0 ≤ amplitude < 1` so that the factor stays in `(0, 2)` and the rate positive, a finite
/// `period > 0` in steps (fractional periods allowed) and a finite `phase` in radians.
/// Neither PyTorch nor Optax has it; apply it with [`LrSchedule::with_seasonal`], or multiply
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
