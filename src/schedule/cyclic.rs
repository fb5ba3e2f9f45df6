//! Cyclic schedules: PyTorch's `OneCycleLR` and `CyclicLR`, with the momentum they cycle, and
//! the `ChainedScheduler` walk of a chain with `CosineAnnealingLR` members, whose recursive
//! cosine turns back up past `T_max` and cycles with period `2 · T_max`.

use std::f64::consts::PI;

use super::{exponent, finite, positive_steps, LrSchedule};
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

/// PyTorch's `ChainedScheduler` over members with closed forms, `CosineAnnealingLR` among them,
/// as its `step()` computes it: every step each member, in order, applies its recursive
/// `get_lr` to the rate the members before it have just set. Multiplicative members scale it
/// by their factor's ratio `f(t) / f(t − 1)`; a cosine (`c(t) = 1 + cos(π · t / T_max)`, η its
/// `eta_min`, b the base rate) maps it to `η + c(t) / c(t − 1) · (lr − η)`, or at
/// `t ≡ T_max + 1 (mod 2 · T_max)`, where `c(t − 1) = 0`, adds
/// `(b − η) · (1 − cos(π / T_max)) / 2`.
///
/// So where a cosine reaches 0 (`t` an odd multiple of its `T_max`) the rate is its `eta_min`
/// whatever came before, scaled by the members after it: the walk starts from the last such
/// step (or from step 0, the base times each member's factor at 0) and takes the steps since
/// then, a run of steps at a time where the maps compose in closed form: with every `eta_min`
/// 0 every map is linear, and a run is the product of each member's ratio over it (a cosine's
/// `c(t₁) / c(t₀)`); with one cosine whose `eta_min` is not 0, a run in which no other member
/// changes its factor is `η + c(t₁) / c(t₀) · (lr − η)`, and each step where one does is taken
/// as PyTorch takes it; with two cosines and an `eta_min` not 0, every step is. Before any
/// cosine reaches 0 and with every `eta_min` 0, the ratios telescope: the rate is the product
/// of the members' closed forms.
///
/// The walk keeps where it stands, so consecutive steps ([`LrSchedule::rates`]) cost a run
/// each, and a step alone costs the runs since the last zero (at most `2 · T_max` steps of the
/// smallest `T_max`; none with every `eta_min` 0).
pub(super) struct ChainWalk<'a> {
    /// The chain as written, whose product a chain without a cosine is.
    schedules: &'a [LrSchedule],
    /// Its members in the order PyTorch steps them: nested chains flattened.
    members: Vec<&'a LrSchedule>,
    /// Each cosine's `(t_max, eta_min)`.
    cosines: Vec<(u64, f64)>,
    base_lr: f64,
    /// Where the walk stands: the zero it started from (`None`: step 0), the step it has
    /// reached (the last step taken one at a time) and the rate after it.
    at: Option<(Option<u64>, u64, f64)>,
}

/// A chain's members in the order PyTorch steps them: a nested `ChainedScheduler` steps its
/// own members in turn.
pub(super) fn flatten(schedules: &[LrSchedule]) -> Vec<&LrSchedule> {
    schedules
        .iter()
        .flat_map(|schedule| match schedule {
            LrSchedule::Chained(inner) => flatten(inner),
            _ => vec![schedule],
        })
        .collect()
}

/// `1 + cos(π · step / t_max)`, in `CosineAnnealingLR.get_lr`'s order of operations but with
/// `step` reduced to one period (`2 · t_max`) first: unreduced, as PyTorch computes it, the
/// angle loses a bit for every doubling of `step / t_max`, and near the cosine's zeros, where
/// a chain divides by it, `1 + cos` is all error long before `u64` runs out.
fn one_plus_cos(t_max: u64, step: u64) -> f64 {
    let phase = u128::from(step) % (2 * u128::from(t_max));
    1.0 + (PI * phase as f64 / t_max as f64).cos()
}

/// The last step up to `step` where the recursive cosine is 0 (an odd multiple of `t_max`).
fn last_zero(t_max: u64, step: u64) -> Option<u64> {
    let (t_max, step) = (u128::from(t_max), u128::from(step));
    // u128: 2 · t_max may pass u64; the result is at most `step`.
    (step >= t_max).then(|| (t_max + (step - t_max) / (2 * t_max) * (2 * t_max)) as u64)
}

/// One member's recursive `get_lr` at `last_epoch = step` (≥ 1) on the rate `lr`, in PyTorch's
/// order of operations. `validate` admits no other member than these.
fn step_member(member: &LrSchedule, step: u64, lr: f64, base_lr: f64) -> f64 {
    match *member {
        LrSchedule::Step { step_size, gamma } if step.is_multiple_of(step_size) => lr * gamma,
        LrSchedule::MultiStep {
            ref milestones,
            gamma,
        } => match milestones.iter().filter(|&&m| m == step).count() {
            0 => lr,
            // Python's `gamma ** count`: pow, not repeated products.
            count => lr * gamma.powf(count as f64),
        },
        LrSchedule::Exponential { gamma } => lr * gamma,
        LrSchedule::Polynomial { total_iters, power } if step <= total_iters => {
            let total = total_iters as f64;
            lr * ((1.0 - step as f64 / total) / (1.0 - (step - 1) as f64 / total)).powf(power)
        }
        LrSchedule::Linear {
            start_factor,
            end_factor,
            total_iters,
        } if step <= total_iters => {
            let slope = end_factor - start_factor;
            lr * (1.0 + slope / (total_iters as f64 * start_factor + (step - 1) as f64 * slope))
        }
        LrSchedule::ConstantFactor {
            factor,
            total_iters,
        } if step == total_iters => lr * (1.0 / factor),
        LrSchedule::CosineAnnealing { t_max, eta_min } => {
            let (t, s) = (u128::from(t_max), u128::from(step));
            if s > t && (s - 1 - t) % (2 * t) == 0 {
                lr + (base_lr - eta_min) * (1.0 - (PI / t_max as f64).cos()) / 2.0
            } else {
                one_plus_cos(t_max, step) / one_plus_cos(t_max, step - 1) * (lr - eta_min) + eta_min
            }
        }
        _ => lr,
    }
}

/// The product of a member's recursive ratios over the steps `from + 1 ..= to`, where no
/// cosine restarts (a cosine's `c(to) / c(from)`).
fn carried(member: &LrSchedule, from: u64, to: u64) -> f64 {
    match *member {
        LrSchedule::Step { step_size, gamma } => {
            gamma.powi(exponent(to / step_size - from / step_size))
        }
        LrSchedule::MultiStep {
            ref milestones,
            gamma,
        } => {
            let passed = milestones.iter().filter(|&&m| from < m && m <= to).count();
            gamma.powi(exponent(passed as u64))
        }
        LrSchedule::Exponential { gamma } => gamma.powi(exponent(to - from)),
        // Past total_iters their get_lr leaves the rate as it is.
        LrSchedule::Polynomial { total_iters, power } if from < total_iters => {
            let total = total_iters as f64;
            let left = |step: u64| 1.0 - step.min(total_iters) as f64 / total;
            (left(to) / left(from)).powf(power)
        }
        LrSchedule::Linear {
            start_factor,
            end_factor,
            total_iters,
        } if from < total_iters => {
            let slope = end_factor - start_factor;
            let scaled = |step: u64| {
                total_iters as f64 * start_factor + step.min(total_iters) as f64 * slope
            };
            scaled(to) / scaled(from)
        }
        LrSchedule::ConstantFactor {
            factor,
            total_iters,
        } if from < total_iters && total_iters <= to => 1.0 / factor,
        LrSchedule::CosineAnnealing { t_max, .. } => {
            one_plus_cos(t_max, to) / one_plus_cos(t_max, from)
        }
        _ => 1.0,
    }
}

/// The next step after `step` where a multiplicative member's ratio may differ from 1.
fn next_change(member: &LrSchedule, step: u64) -> Option<u64> {
    match *member {
        LrSchedule::Step { step_size, .. } => {
            (step / step_size).checked_add(1)?.checked_mul(step_size)
        }
        LrSchedule::MultiStep { ref milestones, .. } => {
            milestones.iter().copied().filter(|&m| m > step).min()
        }
        LrSchedule::Exponential { .. } => step.checked_add(1),
        LrSchedule::Polynomial { total_iters, .. } | LrSchedule::Linear { total_iters, .. } => {
            (step < total_iters).then(|| step + 1)
        }
        LrSchedule::ConstantFactor { total_iters, .. } => {
            (step < total_iters).then_some(total_iters)
        }
        _ => None,
    }
}

impl<'a> ChainWalk<'a> {
    /// The walk of `schedules` (a valid chain) from `base_lr`.
    pub(super) fn new(schedules: &'a [LrSchedule], base_lr: f64) -> Self {
        let members = flatten(schedules);
        let cosines = members
            .iter()
            .filter_map(|member| match **member {
                LrSchedule::CosineAnnealing { t_max, eta_min } => Some((t_max, eta_min)),
                _ => None,
            })
            .collect();
        ChainWalk {
            schedules,
            members,
            cosines,
            base_lr,
            at: None,
        }
    }

    /// The chain's rate after `step` steps. Steps in increasing order go on from where the
    /// last one stopped, with the same operations as a walk from the start.
    pub(super) fn lr(&mut self, step: u64) -> f64 {
        if self.cosines.is_empty() {
            return self
                .schedules
                .iter()
                .fold(self.base_lr, |lr, schedule| lr * schedule.lr(1.0, step));
        }
        // The last zero of a cosine, and the last cosine in the chain at 0 there.
        let anchor = (self.members.iter().enumerate())
            .filter_map(|(i, member)| match **member {
                LrSchedule::CosineAnnealing { t_max, eta_min } => {
                    last_zero(t_max, step).map(|zero| (zero, i, eta_min))
                }
                _ => None,
            })
            .max_by_key(|&(zero, i, _)| (zero, i));
        let eta = self.cosines.iter().any(|&(_, eta_min)| eta_min != 0.0);
        if anchor.is_none() && !eta {
            return (self.members.iter())
                .fold(self.base_lr, |lr, member| lr * member.lr(1.0, step));
        }
        let zero = anchor.map(|(zero, ..)| zero);
        let (mut at, mut lr) = match self.at {
            Some((from, at, lr)) if from == zero && at <= step => (at, lr),
            _ => match anchor {
                // PyTorch's constructors scale the base by each member's factor at step 0 (a
                // cosine's is 1) in turn.
                None => (
                    0,
                    (self.members.iter())
                        .filter(|member| !matches!(member, LrSchedule::CosineAnnealing { .. }))
                        .fold(self.base_lr, |lr, member| lr * member.lr(1.0, 0)),
                ),
                // Cosine i sets its eta_min, whatever it was given; the members after it step
                // on from there.
                Some((zero, i, eta_min)) => (
                    zero,
                    (self.members[i + 1..].iter()).fold(eta_min, |lr, member| {
                        step_member(member, zero, lr, self.base_lr)
                    }),
                ),
            },
        };
        while let Some(next) = self.next_event(at, zero).filter(|&next| next <= step) {
            let before = self.run(lr, at, next - 1);
            lr = (self.members.iter()).fold(before, |lr, member| {
                step_member(member, next, lr, self.base_lr)
            });
            at = next;
        }
        self.at = Some((zero, at, lr));
        self.run(lr, at, step)
    }

    /// The next step after `at` to take one at a time: the restart after a zero; with two
    /// cosines and an `eta_min` not 0, every step; with one such cosine, a change of another
    /// member's factor.
    fn next_event(&self, at: u64, zero: Option<u64>) -> Option<u64> {
        let eta = self.cosines.iter().any(|&(_, eta_min)| eta_min != 0.0);
        if zero == Some(at) || (eta && self.cosines.len() > 1) {
            at.checked_add(1)
        } else if eta {
            (self.members.iter())
                .filter_map(|member| next_change(member, at))
                .min()
        } else {
            None
        }
    }

    /// The rate `lr` after step `from` carried to step `to`, over steps none of which
    /// [`ChainWalk::next_event`] takes alone.
    fn run(&self, lr: f64, from: u64, to: u64) -> f64 {
        if from == to {
            return lr;
        }
        match self.cosines[..] {
            [(t_max, eta_min)] if eta_min != 0.0 => {
                one_plus_cos(t_max, to) / one_plus_cos(t_max, from) * (lr - eta_min) + eta_min
            }
            _ => (self.members.iter()).fold(lr, |lr, member| lr * carried(member, from, to)),
        }
    }
}
