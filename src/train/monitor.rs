//! [`GradNormMonitor`]: running statistics of the global gradient norm and events a training
//! loop can poll (vanishing, exploding, non-finite gradients), fed by the non-blocking
//! [`ControlReader`].

use std::fmt;

use super::readback::ControlReader;
use crate::error::{Error, Result};
use crate::kernel::Control;

/// [`GradNormMonitor`]'s configuration: `Default` and `with_*` builders; validated by
/// [`GradNormMonitor::new`]. The defaults are common rules of thumb, not any library's.
///
/// ```no_run
/// use wgpu_optim::MonitorConfig;
///
/// let config = MonitorConfig::default()
///     .with_decay(0.9)
///     .with_exploding_factor(5.0)
///     .with_warmup_readings(20);
/// # let _ = config;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorConfig {
    /// The decay of the exponential moving average of the norm, in [0, 1) (default 0.98; 0:
    /// the average is the last reading).
    pub decay: f64,
    /// A reading is vanishing when its norm is strictly below this (finite, >= 0; default
    /// 1e-8).
    pub vanishing_threshold: f64,
    /// Consecutive vanishing readings that raise [`NormEvent::Vanishing`] (at least 1;
    /// default 10).
    pub vanishing_readings: usize,
    /// A reading is exploding when its norm is strictly above this times the running
    /// average (finite, >= 0; default 10).
    pub exploding_factor: f64,
    /// Finite readings averaged before any [`NormEvent::Exploding`] can fire (default 10).
    pub warmup_readings: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            decay: 0.98,
            vanishing_threshold: 1e-8,
            vanishing_readings: 10,
            exploding_factor: 10.0,
            warmup_readings: 10,
        }
    }
}

crate::setters::setters! { MonitorConfig;
    /// Sets the decay of the moving average, in [0, 1).
    with_decay(decay: f64);
    /// Sets the norm below which a reading is vanishing.
    with_vanishing_threshold(vanishing_threshold: f64);
    /// Sets the consecutive vanishing readings that raise an event.
    with_vanishing_readings(vanishing_readings: usize);
    /// Sets the multiple of the average above which a reading is exploding.
    with_exploding_factor(exploding_factor: f64);
    /// Sets the finite readings averaged before an exploding reading can be reported.
    with_warmup_readings(warmup_readings: usize);
}

impl MonitorConfig {
    /// Refuses a decay outside [0, 1), negative or non-finite thresholds and
    /// `vanishing_readings` of 0.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.decay) {
            return Err(Error::InvalidHyperparameter {
                name: "decay",
                value: self.decay,
                expected: "a value in [0, 1)",
            });
        }
        for (name, value) in [
            ("vanishing_threshold", self.vanishing_threshold),
            ("exploding_factor", self.exploding_factor),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::InvalidHyperparameter {
                    name,
                    value,
                    expected: "a finite value >= 0",
                });
            }
        }
        if self.vanishing_readings == 0 {
            return Err(Error::InvalidHyperparameter {
                name: "vanishing_readings",
                value: 0.0,
                expected: "at least 1 reading",
            });
        }
        Ok(())
    }
}

/// Something a [`GradNormMonitor`] noticed in a reading. `Display` gives a log line.
#[derive(Clone, Debug, PartialEq)]
pub enum NormEvent {
    /// The norm stayed strictly below `threshold` for `readings` consecutive readings (raised
    /// once per run, at the reading that makes it `vanishing_readings` long).
    Vanishing {
        /// The control block's step counter at the reading.
        step: u32,
        /// The reading's norm.
        grad_norm: f32,
        /// The configured threshold.
        threshold: f64,
        /// The length of the run.
        readings: usize,
    },
    /// The norm was strictly above `factor` times the average of the readings before it.
    Exploding {
        /// The control block's step counter at the reading.
        step: u32,
        /// The reading's norm.
        grad_norm: f32,
        /// The bias-corrected moving average it was compared with (this reading excluded).
        average: f64,
        /// The configured factor.
        factor: f64,
    },
    /// Steps were skipped for inf or NaN gradients since the previous reading (the control
    /// block's `skipped_steps` grew), or the reading's own step was (`found_inf`), or the
    /// reading's norm is not finite though its gradients were (their squares overflowed f32:
    /// a global-norm clip then scales them by 0, and `skipped` is 0).
    NonFinite {
        /// The control block's step counter at the reading (a skipped step does not advance
        /// it).
        step: u32,
        /// The reading's norm (inf or NaN when its own step was skipped).
        grad_norm: f32,
        /// Steps skipped since the previous reading.
        skipped: u32,
        /// Steps skipped over every reading so far.
        total_skipped: u64,
    },
}

impl fmt::Display for NormEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NormEvent::Vanishing {
                step,
                grad_norm,
                threshold,
                readings,
            } => write!(
                f,
                "step {step}: vanishing gradients: norm {grad_norm:e} below {threshold:e} for \
                 {readings} readings"
            ),
            NormEvent::Exploding {
                step,
                grad_norm,
                average,
                factor,
            } => write!(
                f,
                "step {step}: exploding gradients: norm {grad_norm:e} above {factor} x the \
                 average {average:e}"
            ),
            NormEvent::NonFinite {
                step,
                grad_norm,
                skipped,
                total_skipped,
            } => write!(
                f,
                "step {step}: non-finite gradients: {skipped} step(s) skipped since the last \
                 reading ({total_skipped} in all; norm {grad_norm})"
            ),
        }
    }
}

/// A [`GradNormMonitor`]'s statistics over the readings so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GradNormStats {
    /// Readings observed.
    pub readings: u64,
    /// Readings whose norm entered the statistics: finite, of a step that was not skipped.
    pub finite_readings: u64,
    /// The bias-corrected exponential moving average of those norms; `None` before the first.
    pub average: Option<f64>,
    /// The smallest of those norms.
    pub min: Option<f32>,
    /// The largest of those norms.
    pub max: Option<f32>,
    /// Steps skipped for inf or NaN gradients, as the readings showed them.
    pub skipped_steps: u64,
}

/// What [`GradNormMonitor::on_event`] calls.
type Callback = Box<dyn FnMut(&NormEvent) + Send>;

/// Running statistics of the global gradient norm ([`Control::grad_norm`], computed by the
/// optimizer's gradient processing: with it off the norm is never written and reads 0) and
/// events a training loop polls without waiting: the host-side counterpart of logging
/// `clip_grad_norm_`'s return value in PyTorch, Optax's `global_norm` in a metrics dict, or
/// Keras' `TerminateOnNaN`.
///
/// Statistics: the readings' count, min, max and an exponential moving average, bias-corrected
/// as Adam's moments so that early readings are not pulled towards its zero start:
///
/// ```text
/// ema_t     = decay * ema_{t-1} + (1 - decay) * norm_t        ema_0 = 0
/// average_t = ema_t / (1 - decay^t)                           t = finite readings so far
/// ```
///
/// (with equal readings, the average is that value from the first). Only finite norms of
/// steps that were not skipped enter them.
///
/// Events, in this order within one reading:
/// - [`NormEvent::NonFinite`]: `skipped_steps` grew since the previous reading (the first
///   reading compares with 0, a fresh optimizer's count; a count that went down, as after a
///   [`Snapshot`](crate::Snapshot) restore, is taken as the new baseline), `found_inf` is
///   set, or the norm is inf or NaN (finite gradients whose squares overflow).
/// - [`NormEvent::Vanishing`]: `vanishing_readings` consecutive readings strictly below
///   `vanishing_threshold` (a skipped or non-finite reading ends the run).
/// - [`NormEvent::Exploding`]: after `warmup_readings` finite readings, a norm strictly above
///   `exploding_factor` times the average of the readings *before* it: the reading is
///   compared first and only then folded into the average, so a spike never raises its own
///   bar. It is folded in afterwards all the same: a lasting change of scale stops firing
///   once the average has followed it (excluding such readings for good would fire forever).
///
/// [`observe`](Self::observe) is pure (scripted tests feed it control blocks);
/// [`poll`](Self::poll) feeds it what a [`ControlReader`] has delivered, never waiting:
///
/// ```no_run
/// # use wgpu_optim::{Context, ControlReader, GradNormMonitor, MonitorConfig, Optimizer};
/// # fn demo(ctx: &Context, optimizer: &Optimizer) -> wgpu_optim::Result<()> {
/// let mut reader = ControlReader::new(ctx, 4);
/// let mut monitor = GradNormMonitor::new(MonitorConfig::default())?
///     .on_event(|event| eprintln!("{event}"));
/// for step in 0..10_000 {
///     let mut encoder = ctx.device().create_command_encoder(&Default::default());
///     // ... forward and backward ...
///     optimizer.step(&mut encoder);
///     if step % 10 == 0 {
///         reader.record(&mut encoder, optimizer)?;
///     }
///     ctx.queue().submit([encoder.finish()]);
///     monitor.poll(&mut reader)?; // events also go to the callback
/// }
/// println!("{:?}", monitor.stats());
/// # Ok(()) }
/// ```
pub struct GradNormMonitor {
    config: MonitorConfig,
    callback: Option<Callback>,
    stats: GradNormStats,
    ema: f64,
    // decay^finite_readings, kept as a running product (no integer power to overflow).
    decay_power: f64,
    vanishing_run: usize,
    previous_skipped: u32,
    last: Option<Control>,
}

impl fmt::Debug for GradNormMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GradNormMonitor")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("callback", &self.callback.is_some())
            .finish_non_exhaustive()
    }
}

impl GradNormMonitor {
    /// A monitor with no reading yet (validates `config`: see [`MonitorConfig::validate`]).
    pub fn new(config: MonitorConfig) -> Result<Self> {
        config.validate()?;
        Ok(GradNormMonitor {
            config,
            callback: None,
            stats: GradNormStats::default(),
            ema: 0.0,
            decay_power: 1.0,
            vanishing_run: 0,
            previous_skipped: 0,
            last: None,
        })
    }

    /// Calls `callback` with every event, as it is raised (before `observe` or `poll`
    /// returns it), replacing any callback set before.
    pub fn on_event(mut self, callback: impl FnMut(&NormEvent) + Send + 'static) -> Self {
        self.callback = Some(Box::new(callback));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// The statistics so far.
    pub fn stats(&self) -> GradNormStats {
        self.stats
    }

    /// The last control block observed.
    pub fn last_reading(&self) -> Option<&Control> {
        self.last.as_ref()
    }

    /// Folds one reading into the statistics and returns the events it raises (see the type's
    /// documentation). Pure: no device access.
    pub fn observe(&mut self, control: &Control) -> Vec<NormEvent> {
        let mut events = Vec::new();
        let (step, grad_norm) = (control.step, control.grad_norm);
        self.stats.readings += 1;

        let skipped = control.skipped_steps.saturating_sub(self.previous_skipped);
        self.previous_skipped = control.skipped_steps;
        self.stats.skipped_steps += u64::from(skipped);
        // A norm that is not finite though no step was skipped: finite gradients whose sum of
        // squares overflowed f32, which a clip turns into a coefficient of 0 (the step
        // applied no gradient).
        if skipped > 0 || control.found_inf != 0 || !grad_norm.is_finite() {
            events.push(NormEvent::NonFinite {
                step,
                grad_norm,
                skipped,
                total_skipped: self.stats.skipped_steps,
            });
        }

        let usable = control.found_inf == 0 && grad_norm.is_finite();
        let norm = f64::from(grad_norm);
        if usable && norm < self.config.vanishing_threshold {
            self.vanishing_run += 1;
            if self.vanishing_run == self.config.vanishing_readings {
                events.push(NormEvent::Vanishing {
                    step,
                    grad_norm,
                    threshold: self.config.vanishing_threshold,
                    readings: self.vanishing_run,
                });
            }
        } else {
            self.vanishing_run = 0;
        }

        if usable {
            if let Some(average) = self.stats.average {
                let warm = self.stats.finite_readings >= self.config.warmup_readings as u64;
                if warm && norm > self.config.exploding_factor * average {
                    events.push(NormEvent::Exploding {
                        step,
                        grad_norm,
                        average,
                        factor: self.config.exploding_factor,
                    });
                }
            }
            let decay = self.config.decay;
            self.ema = decay * self.ema + (1.0 - decay) * norm;
            self.decay_power *= decay;
            self.stats.finite_readings += 1;
            self.stats.average = Some(self.ema / (1.0 - self.decay_power));
            self.stats.min = Some(self.stats.min.map_or(grad_norm, |m| m.min(grad_norm)));
            self.stats.max = Some(self.stats.max.map_or(grad_norm, |m| m.max(grad_norm)));
        }
        self.last = Some(*control);

        if let Some(callback) = &mut self.callback {
            for event in &events {
                callback(event);
            }
        }
        events
    }

    /// Observes every reading `reader` has delivered since the last call, oldest first, and
    /// returns their events. Only [`ControlReader::try_read`]: it never waits for the device,
    /// so right after a submit it usually returns nothing; the readings come with later
    /// calls. Its errors are `try_read`'s, and [`Error::InvalidOptions`] for a reader of a
    /// population's control blocks: give each replica a monitor of its own and
    /// [`observe`](Self::observe) its block of each [`ControlReader::try_read_blocks`] copy.
    pub fn poll(&mut self, reader: &mut ControlReader) -> Result<Vec<NormEvent>> {
        if reader.blocks() != 1 {
            return Err(Error::InvalidOptions(
                "one monitor reads one control block: a population's replicas need one each",
            ));
        }
        let mut events = Vec::new();
        for control in reader.try_read()? {
            events.extend(self.observe(&control));
        }
        Ok(events)
    }
}
