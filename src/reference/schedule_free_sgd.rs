//! Mirror of `shaders/schedule_free_sgd.wgsl`.

use super::common::SwitchWeights;
use super::common::{
    schedule_free_begin, schedule_free_mode, schedule_free_schedule, schedule_free_update,
};
use super::step::{running_of, Mirror, Tensor};
use crate::optim::{
    ScheduleFreeRunning, ScheduleFreeSgdConfig, ScheduleFreeSgdDerived, ScheduleFreeSgdHyper,
};

/// `prepare_group` of `shaders/schedule_free_sgd.wgsl`: the per-step scalars, and the
/// running `lr_max`, `weight_sum` and `train_mode` carried on (a step leaves train mode).
pub fn prepare_schedule_free_sgd(
    h: &ScheduleFreeSgdHyper,
    step: f32,
    running: &mut ScheduleFreeRunning,
) -> ScheduleFreeSgdDerived {
    let (moves, train_mode) = schedule_free_mode(running.train_mode, step, None);
    running.train_mode = train_mode;
    let s = schedule_free_schedule(
        h.lr,
        h.momentum,
        h.warmup_steps,
        h.r,
        h.weight_lr_power,
        *running,
        step,
    );
    (running.lr_max, running.weight_sum) = (s.lr_max, s.weight_sum);
    ScheduleFreeSgdDerived {
        scheduled_lr: s.lr,
        ckp1: s.ckp1,
        y_step: s.y_step,
        moves,
    }
}

/// `step_math` of `shaders/schedule_free_sgd.wgsl`.
pub fn schedule_free_sgd_math(
    y: &mut f32,
    grad: f32,
    z: &mut f32,
    h: &ScheduleFreeSgdHyper,
    d: &ScheduleFreeSgdDerived,
) {
    schedule_free_update(y, z, grad, h.weight_decay, d.ckp1, d.y_step, d.scheduled_lr);
}

impl Mirror for ScheduleFreeSgdConfig {
    type Prepared = (ScheduleFreeSgdHyper, ScheduleFreeSgdDerived);

    fn prologue(&self, step: f32, running: &mut [f32]) -> Self::Prepared {
        let (h, running) = (self.hyper(), running_of(running));
        (h, prepare_schedule_free_sgd(&h, step, running))
    }

    fn update(&self, (h, d): &Self::Prepared, tensor: &mut Tensor<'_>) {
        let first_step = tensor.first_step();
        tensor.each(&mut |p, g, [s0, _, _]| {
            schedule_free_begin(p, s0, d.moves, h.train_weight, first_step);
            schedule_free_sgd_math(p, g, s0, h, d)
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
