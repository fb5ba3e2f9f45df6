//! What Schedule-Free AdamW and Schedule-Free SGD share on the host: the running values'
//! names, the eval/train weights and the validation of the schedule's hyperparameters
//! (`shaders/common/schedule_free.wgsl` shares the device's side).

use super::non_negative;
use crate::error::{Error, Result};

/// The running values at the end of a Schedule-Free hyperparameter struct, as checkpoints
/// name them (PyTorch's `param_groups` keys).
pub(crate) const RUNNING: &[&str] = &["lr_max", "weight_sum"];

/// `eval()`'s and `train()`'s weights of z, `1 - 1 / beta` and `1 - beta`, computed in f64.
pub(crate) fn switch_weights(beta: f64) -> (f32, f32) {
    ((1.0 - 1.0 / beta) as f32, (1.0 - beta) as f32)
}

/// Checks what every Schedule-Free configuration has: `lr`, the interpolation `beta` (named
/// `beta_name`: AdamW's `beta1`, SGD's `momentum`) in (0, 1), `weight_decay`, `r` and
/// `weight_lr_power` non-negative, and `warmup_steps` a whole number exact in f32.
pub(crate) fn check_schedule(
    lr: f64,
    (beta_name, beta): (&'static str, f64),
    weight_decay: f64,
    warmup_steps: f64,
    r: f64,
    weight_lr_power: f64,
) -> Result<()> {
    non_negative("lr", lr)?;
    if !(beta > 0.0 && beta < 1.0) {
        return Err(Error::InvalidHyperparameter {
            name: beta_name,
            value: beta,
            expected: "a value in (0, 1): eval() divides by it",
        });
    }
    non_negative("weight_decay", weight_decay)?;
    non_negative("r", r)?;
    non_negative("weight_lr_power", weight_lr_power)?;
    if !(warmup_steps >= 0.0 && warmup_steps.fract() == 0.0 && warmup_steps <= 16_777_216.0) {
        return Err(Error::InvalidHyperparameter {
            name: "warmup_steps",
            value: warmup_steps,
            expected: "a whole number of steps in [0, 2^24] (exact in f32)",
        });
    }
    Ok(())
}
