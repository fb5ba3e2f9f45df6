//! [`ReduceLrOnPlateau`]: PyTorch's `torch.optim.lr_scheduler.ReduceLROnPlateau`, a learning
//! rate that drops by a factor when a validation metric stops improving.
//!
//! The scheduler is a host-side state machine over f64 learning rates, fed one metric per
//! evaluation. It reads nothing from the device: the metric comes from wherever the caller
//! computes it (a [`ControlReader`](crate::ControlReader)-style readback of a loss, say), and a
//! changed rate reaches the device as a hyperparameter write
//! ([`Optimizer::set_group_lr`](crate::Optimizer::set_group_lr)), never a rebuild.

use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

/// Whether a monitored metric should go down (a loss) or up (an accuracy): PyTorch's and
/// Lightning's `mode="min"` / `mode="max"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricMode {
    /// Lower is better (the default, as in PyTorch and Lightning).
    #[default]
    Min,
    /// Higher is better.
    Max,
}

impl MetricMode {
    /// The worst value of this mode, where the best starts (PyTorch's `mode_worse`): `+inf`
    /// for [`MetricMode::Min`], `-inf` for [`MetricMode::Max`].
    pub fn worst(self) -> f64 {
        match self {
            MetricMode::Min => f64::INFINITY,
            MetricMode::Max => f64::NEG_INFINITY,
        }
    }
}

/// How [`PlateauConfig::threshold`] measures a significant improvement (PyTorch's
/// `threshold_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Relative: better than `best * (1 - threshold)` (min) or `best * (1 + threshold)` (max).
    /// The default, as in PyTorch. With a negative `best` the bound lies on the other side of
    /// it, as in PyTorch (a stalled negative loss counts as improving).
    #[default]
    Rel,
    /// Absolute: better than `best - threshold` (min) or `best + threshold` (max).
    Abs,
}

/// The lower bound of the learning rates (PyTorch's `min_lr`: a float or a list).
#[derive(Clone, Debug, PartialEq)]
pub enum MinLr {
    /// One bound for every group (default 0).
    All(f64),
    /// One bound per group, in group order: the number of groups must match
    /// ([`Error::WrongLength`], as PyTorch raises `expected N min_lrs`).
    PerGroup(Vec<f64>),
}

impl Default for MinLr {
    fn default() -> Self {
        MinLr::All(0.0)
    }
}

impl MinLr {
    /// The bound of group `index`.
    fn of(&self, index: usize) -> f64 {
        match self {
            MinLr::All(min_lr) => *min_lr,
            MinLr::PerGroup(min_lrs) => min_lrs[index],
        }
    }
}

/// [`ReduceLrOnPlateau`]'s configuration. `Default` is PyTorch's: `mode="min"`, `factor=0.1`,
/// `patience=10`, `threshold=1e-4`, `threshold_mode="rel"`, `cooldown=0`, `min_lr=0`,
/// `eps=1e-8`.
///
/// ```no_run
/// use wgpu_optim::{MetricMode, MinLr, PlateauConfig};
///
/// let plateau = PlateauConfig::default()
///     .with_mode(MetricMode::Max)
///     .with_factor(0.5)
///     .with_patience(3)
///     .with_min_lr(MinLr::PerGroup(vec![1e-5, 0.0]))
///     .build()?;
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PlateauConfig {
    /// Whether the metric should go down or up.
    pub mode: MetricMode,
    /// `new_lr = lr * factor`. Must be < 1 ([`Error::InvalidHyperparameter`], as PyTorch
    /// raises `Factor should be < 1.0`; NaN is refused too, where PyTorch would accept it and
    /// never reduce).
    pub factor: f64,
    /// Evaluations without improvement tolerated: the rate drops at the `patience + 1`-th
    /// consecutive one.
    pub patience: usize,
    /// How much better than the best a metric must be to count (finite).
    pub threshold: f64,
    /// Whether `threshold` is relative or absolute.
    pub threshold_mode: ThresholdMode,
    /// Evaluations after a reduction during which bad evaluations are not counted.
    pub cooldown: usize,
    /// The learning rates never drop below this (finite).
    pub min_lr: MinLr,
    /// A reduction smaller than this (`old_lr - new_lr <= eps`) is not applied (finite).
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: MetricMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: MinLr::default(),
            eps: 1e-8,
        }
    }
}

crate::setters::setters! { PlateauConfig;
    /// Sets whether the metric should go down or up.
    with_mode(mode: MetricMode);
    /// Sets the factor of a reduction (< 1).
    with_factor(factor: f64);
    /// Sets the evaluations without improvement tolerated.
    with_patience(patience: usize);
    /// Sets the threshold of a significant improvement.
    with_threshold(threshold: f64);
    /// Sets whether the threshold is relative or absolute.
    with_threshold_mode(threshold_mode: ThresholdMode);
    /// Sets the evaluations after a reduction that are not counted.
    with_cooldown(cooldown: usize);
    /// Sets the lower bound of the learning rates.
    with_min_lr(min_lr: MinLr);
    /// Sets the smallest reduction applied.
    with_eps(eps: f64);
}

impl PlateauConfig {
    /// Refuses what PyTorch refuses (`factor >= 1`) and values that are not finite.
    pub fn validate(&self) -> Result<()> {
        if self.factor.is_nan() || self.factor >= 1.0 {
            return Err(Error::InvalidHyperparameter {
                name: "factor",
                value: self.factor,
                expected: "a factor < 1 (PyTorch: Factor should be < 1.0)",
            });
        }
        let min_lrs = match &self.min_lr {
            MinLr::All(min_lr) => std::slice::from_ref(min_lr),
            MinLr::PerGroup(min_lrs) => min_lrs.as_slice(),
        };
        let finite = [("threshold", self.threshold), ("eps", self.eps)]
            .into_iter()
            .chain(min_lrs.iter().map(|&m| ("min_lr", m)));
        for (name, value) in finite {
            if !value.is_finite() {
                return Err(Error::InvalidHyperparameter {
                    name,
                    value,
                    expected: "a finite value",
                });
            }
        }
        Ok(())
    }

    /// Validates and builds the scheduler.
    pub fn build(self) -> Result<ReduceLrOnPlateau> {
        ReduceLrOnPlateau::new(self)
    }
}

/// A learning rate that changed in a [`ReduceLrOnPlateau`] step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrChange {
    /// The group: an index into the slice given to [`ReduceLrOnPlateau::step`], or the
    /// optimizer's group index for [`ReduceLrOnPlateau::step_optimizer`] and
    /// [`ReduceLrOnPlateau::step_groups`].
    pub group: usize,
    /// The rate before.
    pub old: f64,
    /// The rate after: `max(old * factor, min_lr)`.
    pub new: f64,
}

/// PyTorch's `torch.optim.lr_scheduler.ReduceLROnPlateau` (torch 2.15), step for step and bit
/// for bit (the same f64 operations in the same order). Keras' `ReduceLROnPlateau` and
/// Lightning's `lr_scheduler_config = {"monitor": ...}` are the same idea.
///
/// Each [`step`](ReduceLrOnPlateau::step) takes one metric:
///
/// ```text
/// better  = metric < best * (1 - threshold)      min, rel
///           metric < best - threshold            min, abs
///           metric > best * (1 + threshold)      max, rel
///           metric > best + threshold            max, abs
/// if better { best = metric; num_bad_epochs = 0 } else { num_bad_epochs += 1 }
/// if cooldown_counter > 0 { cooldown_counter -= 1; num_bad_epochs = 0 }
/// if num_bad_epochs > patience {
///     for each group i:
///         new_lr = max(lr[i] * factor, min_lr[i])
///         if lr[i] - new_lr > eps { lr[i] = new_lr }
///     cooldown_counter = cooldown; num_bad_epochs = 0
/// }
/// ```
///
/// `best` starts at the mode's worst value (`+inf` for min), so the first finite metric is an
/// improvement. A NaN metric is never better: it counts as a bad evaluation and leaves `best`
/// alone, as in PyTorch. `max` is Python's (the product unless `min_lr` is greater).
///
/// The state machine works on any slice of learning rates; [`step_optimizer`](Self::step_optimizer)
/// drives every group of an [`Optimizer`] and [`step_groups`](Self::step_groups) a chosen few
/// (a population of replicas, each a group of one optimizer, each with its own scheduler):
///
/// ```no_run
/// # use wgpu_optim::{Optimizer, PlateauConfig};
/// # fn demo(optimizer: &mut Optimizer, validation_loss: impl Fn() -> f64) -> wgpu_optim::Result<()> {
/// let mut plateau = PlateauConfig::default().with_factor(0.5).with_patience(5).build()?;
/// for _epoch in 0..100 {
///     // ... an epoch of optimizer.step(&mut encoder) ...
///     for change in plateau.step_optimizer(validation_loss(), optimizer)? {
///         println!("group {}: lr {} -> {}", change.group, change.old, change.new);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    config: PlateauConfig,
    best: f64,
    num_bad_epochs: usize,
    cooldown_counter: usize,
    last_epoch: u64,
}

impl ReduceLrOnPlateau {
    /// A scheduler in its initial state (validates `config`: see [`PlateauConfig::validate`]).
    pub fn new(config: PlateauConfig) -> Result<Self> {
        config.validate()?;
        Ok(ReduceLrOnPlateau {
            best: config.mode.worst(),
            config,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            last_epoch: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PlateauConfig {
        &self.config
    }

    /// The best metric so far (the mode's worst value before the first improvement).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Consecutive evaluations without improvement (outside cooldown) since the last
    /// improvement or reduction.
    pub fn num_bad_epochs(&self) -> usize {
        self.num_bad_epochs
    }

    /// Evaluations of cooldown left.
    pub fn cooldown_counter(&self) -> usize {
        self.cooldown_counter
    }

    /// Whether the scheduler is in cooldown after a reduction.
    pub fn in_cooldown(&self) -> bool {
        self.cooldown_counter > 0
    }

    /// Steps taken (PyTorch's `last_epoch`).
    pub fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    /// Back to the initial state: best at the mode's worst, no bad evaluation, no cooldown
    /// (PyTorch's `_reset`; the step count is kept, as there).
    pub fn reset(&mut self) {
        self.best = self.config.mode.worst();
        self.num_bad_epochs = 0;
        self.cooldown_counter = 0;
    }

    /// Whether `metric` improves on `best` by more than the threshold (PyTorch's
    /// `_is_better`). False whenever either is NaN.
    pub fn is_better(&self, metric: f64, best: f64) -> bool {
        let threshold = self.config.threshold;
        match (self.config.mode, self.config.threshold_mode) {
            (MetricMode::Min, ThresholdMode::Rel) => metric < best * (1.0 - threshold),
            (MetricMode::Min, ThresholdMode::Abs) => metric < best - threshold,
            (MetricMode::Max, ThresholdMode::Rel) => metric > best * (threshold + 1.0),
            (MetricMode::Max, ThresholdMode::Abs) => metric > best + threshold,
        }
    }

    /// One evaluation: updates the state with `metric` and reduces `lrs` (one learning rate per
    /// group) in place when the patience has run out. Returns the rates that changed.
    ///
    /// With [`MinLr::PerGroup`], `lrs` must have one rate per bound ([`Error::WrongLength`]);
    /// it is refused before anything changes (PyTorch checks at construction, and raises at
    /// the next reduction when the group count has changed).
    pub fn step(&mut self, metric: f64, lrs: &mut [f64]) -> Result<Vec<LrChange>> {
        if let MinLr::PerGroup(min_lrs) = &self.config.min_lr {
            if min_lrs.len() != lrs.len() {
                return Err(Error::WrongLength {
                    what: "min_lr (one per group)",
                    expected: min_lrs.len(),
                    actual: lrs.len(),
                });
            }
        }
        self.last_epoch += 1;
        if self.is_better(metric, self.best) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.in_cooldown() {
            self.cooldown_counter -= 1;
            // Bad evaluations in cooldown are ignored.
            self.num_bad_epochs = 0;
        }
        let mut changes = Vec::new();
        if self.num_bad_epochs > self.config.patience {
            for (group, lr) in lrs.iter_mut().enumerate() {
                let old = *lr;
                let new = python_max(old * self.config.factor, self.config.min_lr.of(group));
                if old - new > self.config.eps {
                    *lr = new;
                    changes.push(LrChange { group, old, new });
                }
            }
            self.cooldown_counter = self.config.cooldown;
            self.num_bad_epochs = 0;
        }
        Ok(changes)
    }

    /// One evaluation over every parameter group of `optimizer`: reads each group's rate
    /// ([`OptimizerConfig::lr`](crate::OptimizerConfig::lr)), steps, and writes the rates that
    /// changed with [`Optimizer::set_group_lrs`], all or none (applied to the steps submitted
    /// after the call). A rate the optimizer refuses (a negative `min_lr`, say, or one its
    /// device schedule refuses) fails the call before anything changes, in any group, the
    /// scheduler's state included.
    pub fn step_optimizer(
        &mut self,
        metric: f64,
        optimizer: &mut Optimizer,
    ) -> Result<Vec<LrChange>> {
        let groups: Vec<usize> = (0..optimizer.group_lrs().len()).collect();
        self.step_groups(metric, optimizer, &groups)
    }

    /// One evaluation over the parameter groups `groups` of `optimizer`, in that order (a
    /// per-group `min_lr` is indexed by position in `groups`), as
    /// [`step_optimizer`](Self::step_optimizer). For a population of replicas that are groups
    /// of one optimizer, give each replica its own scheduler and its own group:
    ///
    /// ```no_run
    /// # use wgpu_optim::{Optimizer, PlateauConfig, ReduceLrOnPlateau};
    /// # fn demo(optimizer: &mut Optimizer, losses: &[f64]) -> wgpu_optim::Result<()> {
    /// let mut schedulers: Vec<ReduceLrOnPlateau> = (0..losses.len())
    ///     .map(|_| PlateauConfig::default().with_patience(2).build())
    ///     .collect::<Result<_, _>>()?;
    /// for (replica, scheduler) in schedulers.iter_mut().enumerate() {
    ///     scheduler.step_groups(losses[replica], optimizer, &[replica])?;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// [`Error::NoSuchGroup`] for an index past the optimizer's groups and
    /// [`Error::InvalidOptions`] for a group listed twice.
    pub fn step_groups(
        &mut self,
        metric: f64,
        optimizer: &mut Optimizer,
        groups: &[usize],
    ) -> Result<Vec<LrChange>> {
        let all = optimizer.group_lrs();
        for (position, &group) in groups.iter().enumerate() {
            if group >= all.len() {
                return Err(Error::NoSuchGroup {
                    group,
                    count: all.len(),
                });
            }
            if groups[..position].contains(&group) {
                return Err(Error::InvalidOptions(
                    "a parameter group is listed twice: each group has one learning rate",
                ));
            }
        }
        let mut lrs: Vec<f64> = groups.iter().map(|&g| all[g]).collect();
        let mut next = self.clone();
        let mut changes = next.step(metric, &mut lrs)?;
        for change in &mut changes {
            change.group = groups[change.group];
        }
        // All groups' rates or none: a device schedule may refuse one group's rate after
        // another's was accepted.
        let lrs: Vec<(usize, f64)> = changes.iter().map(|c| (c.group, c.new)).collect();
        optimizer.set_group_lrs(&lrs)?;
        *self = next;
        Ok(changes)
    }
}

/// Python's `max(a, b)`: `a` unless `b > a` (so a NaN `a` stays, where `f64::max` would drop it).
fn python_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}
