//! What Schedule-Free AdamW and Schedule-Free SGD share on the host: the running values the
//! prologue carries ([`ScheduleFreeRunning`]), the eval/train weights, the switch's overrides
//! and the validation of the schedule's hyperparameters (`shaders/common/schedule_free.wgsl`
//! shares the device's side).

use super::non_negative;
use crate::error::{invalid, Error, Result};
use crate::kernel::wgsl_struct;

wgsl_struct! {
    /// `Running` of `shaders/common/schedule_free.wgsl`: what the prologue carries from step to
    /// step, as the package keeps them in each param group (Optax's `ScheduleFreeState`). The
    /// host writes them at the build and from a checkpoint only, never with a new
    /// configuration; checkpoints save them as `param_groups.<g>.lr_max` and
    /// `param_groups.<g>.weight_sum`.
    pub struct ScheduleFreeRunning as "Running" {
        /// The largest learning rate so far (-1 before the first step).
        lr_max: f32,
        /// The sum of the averaging weights so far.
        weight_sum: f32,
        /// The package's `train_mode`: 1 while the parameters are y, 0 while they are x
        /// (after `eval()`). On the device, the mode follows the work submitted: a switch
        /// recorded into an encoder that is dropped changes nothing.
        train_mode: f32,
    }
}

impl ScheduleFreeRunning {
    /// Before the first step, as the package starts.
    pub const INITIAL: ScheduleFreeRunning = ScheduleFreeRunning {
        lr_max: -1.0,
        weight_sum: 0.0,
        train_mode: 1.0,
    };

    /// Refuses running values no sequence of `step` steps leaves (from a checkpoint's
    /// metadata): an `lr_max` other than -1 before the first step or a learning rate (finite,
    /// at least 0) after, a `weight_sum` other than 0 before the first step or negative or not
    /// finite after, a `train_mode` other than 0 or 1.
    pub fn check(&self, step: u32) -> Result<()> {
        let fail = |name, value: f32, expected| invalid(name, f64::from(value), expected);
        if self.train_mode != 0.0 && self.train_mode != 1.0 {
            return fail("train_mode", self.train_mode, "1 (train: y) or 0 (eval: x)");
        }
        if step == 0 {
            if self.lr_max != -1.0 {
                return fail("lr_max", self.lr_max, "-1 before the first step");
            }
            if self.weight_sum != 0.0 {
                return fail("weight_sum", self.weight_sum, "0 before the first step");
            }
            return Ok(());
        }
        if !(self.lr_max >= 0.0 && self.lr_max.is_finite()) {
            return fail("lr_max", self.lr_max, "a learning rate: finite, at least 0");
        }
        if !(self.weight_sum >= 0.0 && self.weight_sum.is_finite()) {
            return fail(
                "weight_sum",
                self.weight_sum,
                "a sum of weights: finite, at least 0",
            );
        }
        Ok(())
    }

    /// Whether the parameters are x (eval mode).
    pub fn is_eval(&self) -> bool {
        self.train_mode == 0.0
    }

    /// [`ScheduleFreeRunning::check`] of running values as f32 words.
    pub(crate) fn check_words(step: u32, running: &[f32]) -> Result<()> {
        bytemuck::pod_read_unaligned::<Self>(bytemuck::cast_slice(running)).check(step)
    }
}

/// The overrides that turn a Schedule-Free update into `eval()` (y to x) and `train()` (x to
/// y).
pub(crate) const SWITCH: [&str; 2] = ["TO_EVAL", "TO_TRAIN"];

/// The structural options of a Schedule-Free step: the switch off.
pub(crate) fn step_overrides() -> Vec<(&'static str, bool)> {
    SWITCH.iter().map(|&name| (name, false)).collect()
}

/// `eval()`'s and `train()`'s weights of z, `1 - 1 / beta` and `1 - beta`, computed in f64.
pub(crate) fn switch_weights(beta: f64) -> (f32, f32) {
    ((1.0 - 1.0 / beta) as f32, (1.0 - beta) as f32)
}

/// What every Schedule-Free configuration has, to check alike.
pub(crate) struct Schedule {
    pub lr: f64,
    /// The interpolation's name (AdamW's `beta1`, SGD's `momentum`) and value.
    pub beta_name: &'static str,
    pub beta: f64,
    pub weight_decay: f64,
    pub warmup_steps: f64,
    pub r: f64,
    pub weight_lr_power: f64,
}

impl Schedule {
    /// `lr`, the interpolation `beta` in (0, 1), `weight_decay`, `r` and `weight_lr_power`
    /// non-negative, and `warmup_steps` a whole number exact in f32.
    pub fn check(&self) -> Result<()> {
        non_negative("lr", self.lr)?;
        if !(self.beta > 0.0 && self.beta < 1.0) {
            return Err(Error::InvalidHyperparameter {
                name: self.beta_name,
                value: self.beta,
                expected: "a value in (0, 1): eval() divides by it",
            });
        }
        non_negative("weight_decay", self.weight_decay)?;
        non_negative("r", self.r)?;
        non_negative("weight_lr_power", self.weight_lr_power)?;
        let steps = self.warmup_steps;
        if !(steps >= 0.0 && steps.fract() == 0.0 && steps <= 16_777_216.0) {
            return Err(Error::InvalidHyperparameter {
                name: "warmup_steps",
                value: steps,
                expected: "a whole number of steps in [0, 2^24] (exact in f32)",
            });
        }
        Ok(())
    }
}
