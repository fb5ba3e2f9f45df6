//! Mirror of `shaders/schedule_free_adamw.wgsl`.

use super::common::SwitchWeights;
use super::common::{
    schedule_free_begin, schedule_free_mode, schedule_free_schedule, schedule_free_update,
};
use super::math::bias_correction;
use super::step::{running_of, Mirror, Tensor};
use crate::optim::{
    ScheduleFreeAdamWConfig, ScheduleFreeAdamWDerived, ScheduleFreeAdamWHyper, ScheduleFreeRunning,
};

/// `prepare_group` of `shaders/schedule_free_adamw.wgsl`: the per-step scalars, and the
/// running `lr_max`, `weight_sum` and `train_mode` carried on (a step leaves train mode).
pub fn prepare_schedule_free_adamw(
    h: &ScheduleFreeAdamWHyper,
    step: f32,
    running: &mut ScheduleFreeRunning,
) -> ScheduleFreeAdamWDerived {
    let (moves, train_mode) = schedule_free_mode(running.train_mode, step, None);
    running.train_mode = train_mode;
    let s = schedule_free_schedule(
        h.lr,
        h.beta1,
        h.warmup_steps,
        h.r,
        h.weight_lr_power,
        *running,
        step,
    );
    (running.lr_max, running.weight_sum) = (s.lr_max, s.weight_sum);
    ScheduleFreeAdamWDerived {
        scheduled_lr: s.lr,
        ckp1: s.ckp1,
        y_step: s.y_step,
        bias_correction2: bias_correction(h.ln_beta2, step),
        moves,
    }
}

/// `schedule_free_adamw_math` of `shaders/schedule_free_adamw.wgsl`.
pub fn schedule_free_adamw_math(
    y: &mut f32,
    grad: f32,
    z: &mut f32,
    exp_avg_sq: &mut f32,
    h: &ScheduleFreeAdamWHyper,
    d: &ScheduleFreeAdamWDerived,
) {
    *exp_avg_sq = h.beta2 * *exp_avg_sq + h.one_minus_beta2 * grad * grad;
    let denom = (*exp_avg_sq / d.bias_correction2).sqrt() + h.eps;
    let g = grad / denom;
    schedule_free_update(y, z, g, h.weight_decay, d.ckp1, d.y_step, d.scheduled_lr);
}

impl Mirror for ScheduleFreeAdamWConfig {
    type Prepared = (ScheduleFreeAdamWHyper, ScheduleFreeAdamWDerived);

    fn prologue(&self, step: f32, running: &mut [f32]) -> Self::Prepared {
        let (h, running) = (self.hyper(), running_of(running));
        (h, prepare_schedule_free_adamw(&h, step, running))
    }

    fn update(&self, (h, d): &Self::Prepared, tensor: &mut Tensor<'_>) {
        let first_step = tensor.first_step();
        tensor.each(&mut |p, g, [s0, s1, _]| {
            schedule_free_begin(p, s0, d.moves, h.train_weight, first_step);
            schedule_free_adamw_math(p, g, s0, s1, h, d)
        });
    }

    fn switch_weights(&self) -> Option<SwitchWeights> {
        let h = self.hyper();
        Some(SwitchWeights {
            eval_weight: h.eval_weight,
            train_weight: h.train_weight,
        })
    }
}
