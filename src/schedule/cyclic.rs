//! Cyclic schedules: PyTorch's `OneCycleLR` and `CyclicLR`, with the momentum they cycle.

use std::f64::consts::PI;

use super::{finite, positive_steps};
use crate::error::Result;

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
    pub(super) fn phases(&self) -> Vec<(f64, f64, f64, f64, f64)> {
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
    pub(super) fn at(&self, step: u64) -> (f64, f64) {
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
    pub(super) fn at(&self, step: u64) -> (f64, f64) {
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

    pub(super) fn lr(&self, step: u64) -> f64 {
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

    pub(super) fn validate(&self) -> Result<()> {
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
