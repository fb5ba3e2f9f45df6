//! [`EarlyStopping`]: Lightning's `EarlyStopping` callback as a host-side state machine fed one
//! metric per evaluation; with a [`Snapshot`](crate::Snapshot), the best weights are restored
//! on the device without a host round trip.

use super::plateau::MetricMode;
use crate::error::{Error, Result};

/// [`EarlyStopping`]'s configuration. `Default` is Lightning's: `mode="min"`, `min_delta=0`,
/// `patience=3`, `check_finite=True`, no stopping or divergence threshold.
///
/// ```no_run
/// use wgpu_optim::{EarlyStoppingConfig, MetricMode};
///
/// let early = EarlyStoppingConfig::default()
///     .with_mode(MetricMode::Max)
///     .with_min_delta(1e-3)
///     .with_patience(5)
///     .build()?;
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStoppingConfig {
    /// Whether the metric should go down or up.
    pub mode: MetricMode,
    /// How much better than the best a metric must be to count: `metric < best - min_delta`
    /// (min) or `metric > best + min_delta` (max), evaluated as Lightning writes it
    /// (`metric + min_delta < best`, `metric - min_delta > best`). At least 0 and finite
    /// ([`Error::InvalidHyperparameter`]; Lightning would take a negative one and count small
    /// regressions as improvements, Keras takes its absolute value).
    pub min_delta: f64,
    /// Evaluations without improvement after which to stop: the check whose `wait_count`
    /// reaches `patience` says stop (0: the first evaluation without improvement).
    pub patience: usize,
    /// Stop at once on a NaN or infinite metric (Lightning's `check_finite`, default true).
    /// Off, such a metric is just not an improvement.
    pub check_finite: bool,
    /// Stop at once when the metric reaches a better value than this (strictly), without
    /// recording it as the best (Lightning's `stopping_threshold`).
    pub stopping_threshold: Option<f64>,
    /// Stop at once when the metric is worse than this (strictly; Lightning's
    /// `divergence_threshold`).
    pub divergence_threshold: Option<f64>,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        EarlyStoppingConfig {
            mode: MetricMode::Min,
            min_delta: 0.0,
            patience: 3,
            check_finite: true,
            stopping_threshold: None,
            divergence_threshold: None,
        }
    }
}

crate::setters::setters! { EarlyStoppingConfig;
    /// Sets whether the metric should go down or up.
    with_mode(mode: MetricMode);
    /// Sets the smallest change that counts as an improvement.
    with_min_delta(min_delta: f64);
    /// Sets the evaluations without improvement after which to stop.
    with_patience(patience: usize);
    /// Sets whether a non-finite metric stops at once.
    with_check_finite(check_finite: bool);
    /// Sets the value whose reaching stops at once.
    with_stopping_threshold(stopping_threshold: Option<f64>);
    /// Sets the value past which the metric diverged.
    with_divergence_threshold(divergence_threshold: Option<f64>);
}

impl EarlyStoppingConfig {
    /// Refuses a negative or non-finite `min_delta` and NaN thresholds.
    pub fn validate(&self) -> Result<()> {
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(Error::InvalidHyperparameter {
                name: "min_delta",
                value: self.min_delta,
                expected: "a finite value >= 0",
            });
        }
        for (name, threshold) in [
            ("stopping_threshold", self.stopping_threshold),
            ("divergence_threshold", self.divergence_threshold),
        ] {
            if let Some(value) = threshold.filter(|t| t.is_nan()) {
                return Err(Error::InvalidHyperparameter {
                    name,
                    value,
                    expected: "a number (not NaN)",
                });
            }
        }
        Ok(())
    }

    /// Validates and builds the state machine.
    pub fn build(self) -> Result<EarlyStopping> {
        EarlyStopping::new(self)
    }
}

/// Why an [`EarlyStopping`] check says stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The metric was NaN or infinite, with `check_finite`.
    NonFinite,
    /// The metric reached `stopping_threshold`.
    StoppingThreshold,
    /// The metric passed `divergence_threshold`.
    DivergenceThreshold,
    /// `patience` evaluations in a row without improvement.
    Patience,
}

/// The outcome of one [`EarlyStopping::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyStoppingCheck {
    /// This metric is the new best: the moment to [`Snapshot::record_save`](crate::Snapshot::record_save).
    pub improved: bool,
    /// Training should stop now; `reason` says why.
    pub should_stop: bool,
    /// Why it should stop (`None` when it should not).
    pub reason: Option<StopReason>,
}

/// Lightning's `lightning.pytorch.callbacks.EarlyStopping` (`_evaluate_stopping_criteria`),
/// one [`check`](EarlyStopping::check) per evaluation; Keras' `EarlyStopping` is the same idea
/// with `wait >= patience` counted the same way. The checks, in Lightning's order:
///
/// ```text
/// if check_finite and metric is not finite:            stop (NonFinite)
/// elif stopping_threshold and metric better than it:   stop (StoppingThreshold)
/// elif divergence_threshold and metric worse than it:  stop (DivergenceThreshold)
/// elif metric + min_delta < best   (max: metric - min_delta > best):
///     best = metric; wait_count = 0                    improved
/// else:
///     wait_count += 1; if wait_count >= patience:      stop (Patience)
/// ```
///
/// `best` starts at the mode's worst value (`+inf` for min), so the first finite metric
/// improves. Comparisons are in f64 (Lightning compares in the logged tensor's dtype, usually
/// f32). The state machine keeps going after a stop (Lightning's trainer stops calling it);
/// [`stopped_at`](EarlyStopping::stopped_at) keeps the first check that said stop.
///
/// Restoring the best weights without a host round trip pairs it with a
/// [`Snapshot`](crate::Snapshot):
///
/// ```no_run
/// # use wgpu_optim::{Context, EarlyStoppingConfig, Optimizer, Snapshot};
/// # fn demo(ctx: &Context, optimizer: &Optimizer, validation_loss: impl Fn() -> f64) -> wgpu_optim::Result<()> {
/// let best = Snapshot::of_optimizer(ctx, optimizer, &[])?;
/// let mut early = EarlyStoppingConfig::default().with_patience(5).build()?;
/// loop {
///     // ... an epoch of optimizer.step(&mut encoder), submitted ...
///     let check = early.check(validation_loss());
///     let mut encoder = ctx.device().create_command_encoder(&Default::default());
///     if check.improved {
///         best.record_save(&mut encoder);
///     }
///     if check.should_stop {
///         best.record_restore(&mut encoder);
///     }
///     ctx.queue().submit([encoder.finish()]);
///     if check.should_stop {
///         break;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    config: EarlyStoppingConfig,
    best: f64,
    wait_count: usize,
    checks: u64,
    stopped_at: Option<u64>,
}

impl EarlyStopping {
    /// A state machine in its initial state (validates `config`).
    pub fn new(config: EarlyStoppingConfig) -> Result<Self> {
        config.validate()?;
        Ok(EarlyStopping {
            best: config.mode.worst(),
            config,
            wait_count: 0,
            checks: 0,
            stopped_at: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EarlyStoppingConfig {
        &self.config
    }

    /// The best metric so far (Lightning's `best_score`).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Evaluations without improvement since the last improvement (Lightning's `wait_count`).
    pub fn wait_count(&self) -> usize {
        self.wait_count
    }

    /// Checks made so far.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    /// The first check (counted from 1) that said stop, if any (Lightning's `stopped_epoch`,
    /// in checks rather than epochs).
    pub fn stopped_at(&self) -> Option<u64> {
        self.stopped_at
    }

    /// One evaluation of `metric`: see the type's documentation for the rule.
    pub fn check(&mut self, metric: f64) -> EarlyStoppingCheck {
        self.checks += 1;
        let better = |a: f64, b: f64| match self.config.mode {
            MetricMode::Min => a < b,
            MetricMode::Max => a > b,
        };
        let stop = |reason| EarlyStoppingCheck {
            improved: false,
            should_stop: true,
            reason: Some(reason),
        };
        // Lightning stores min_delta negated in min mode and compares `metric - min_delta`.
        let signed_delta = match self.config.mode {
            MetricMode::Min => -self.config.min_delta,
            MetricMode::Max => self.config.min_delta,
        };
        let outcome = if self.config.check_finite && !metric.is_finite() {
            stop(StopReason::NonFinite)
        } else if self
            .config
            .stopping_threshold
            .is_some_and(|t| better(metric, t))
        {
            stop(StopReason::StoppingThreshold)
        } else if self
            .config
            .divergence_threshold
            .is_some_and(|t| better(-metric, -t))
        {
            stop(StopReason::DivergenceThreshold)
        } else if better(metric - signed_delta, self.best) {
            self.best = metric;
            self.wait_count = 0;
            EarlyStoppingCheck {
                improved: true,
                should_stop: false,
                reason: None,
            }
        } else {
            self.wait_count += 1;
            if self.wait_count >= self.config.patience {
                stop(StopReason::Patience)
            } else {
                EarlyStoppingCheck {
                    improved: false,
                    should_stop: false,
                    reason: None,
                }
            }
        };
        if outcome.should_stop && self.stopped_at.is_none() {
            self.stopped_at = Some(self.checks);
        }
        outcome
    }
}
