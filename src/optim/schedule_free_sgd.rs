//! Schedule-Free SGD: the `schedulefree` package's `SGDScheduleFree`.

use super::schedule_free::{step_overrides, switch_weights, Schedule, SWITCH};
use super::{config_struct, row, Algorithm, ScheduleFreeRunning};
use crate::error::Result;
use crate::kernel::{
    shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, StateSpec, SCHEDULE_FREE,
};
use crate::setters::setters;

config_struct! {
    /// Schedule-Free SGD (Defazio et al. 2024, "The Road Less Scheduled"), exactly as the
    /// `schedulefree` package's `SGDScheduleFree` (1.4.1). As
    /// [`ScheduleFreeAdamWConfig`](crate::ScheduleFreeAdamWConfig), whose schedule, running values,
    /// averaging weight and eval/train switch it shares, with an SGD base step and `momentum` in
    /// the place of `beta1`:
    ///
    /// ```text
    /// lr          = lr * min(t / warmup_steps, 1)          (t = 1, 2, ...)
    /// lr_max      = max(lr, lr_max)                        (lr_max starts at -1)
    /// weight      = t^r * lr_max^weight_lr_power
    /// weight_sum  = weight_sum + weight                    (starts at 0)
    /// ckp1        = weight / weight_sum                    (0 when weight_sum is 0)
    /// g           = g + weight_decay * y
    /// y           = lerp(y, z, ckp1) + lr * (momentum * (1 - ckp1) - 1) * g
    /// z           = z - lr * g
    /// ```
    ///
    /// `z` starts as the parameters at the first step. `lr_max` and `weight_sum` are kept on the
    /// device at the end of [`ScheduleFreeSgdHyper`], carried across configuration changes and
    /// saved in checkpoints as `param_groups.<g>.lr_max` and `param_groups.<g>.weight_sum`.
    /// [`Optimizer::schedule_free_eval`](crate::Optimizer::schedule_free_eval) records
    /// `p = lerp(p, z, 1 - 1 / momentum)` (y to x) and
    /// [`Optimizer::schedule_free_train`](crate::Optimizer::schedule_free_train)
    /// `p = lerp(p, z, 1 - momentum)` (x back to y). `momentum` must be in (0, 1), as the package
    /// requires.
    ///
    /// State: `z` (the package's name).
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, Param, ScheduleFreeSgdConfig};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let optimizer = ScheduleFreeSgdConfig::default()
    ///     .with_lr(0.5)
    ///     .with_warmup_steps(100.0)
    ///     .build(ctx, params)?;
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// optimizer.step(&mut encoder); // a training step at y
    /// optimizer.schedule_free_eval(&mut encoder)?; // the parameters are now x: evaluate
    /// optimizer.schedule_free_train(&mut encoder)?; // back to y before the next step
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct ScheduleFreeSgdConfig {
        /// Learning rate (default 1.0, the package's).
        pub lr: f64,
        /// The interpolation between `z` and `x` (default 0.9): in (0, 1).
        pub momentum: f64,
        /// Weight decay, an L2 term at `y` added to the gradient (default 0).
        pub weight_decay: f64,
        /// Steps of linear learning-rate warm-up (default 0): a whole number.
        pub warmup_steps: f64,
        /// The power of the step in the averaging weight (default 0).
        pub r: f64,
        /// The power of `lr_max` in the averaging weight (default 2).
        pub weight_lr_power: f64,
    }
}

impl Default for ScheduleFreeSgdConfig {
    fn default() -> Self {
        ScheduleFreeSgdConfig {
            lr: 1.0,
            momentum: 0.9,
            weight_decay: 0.0,
            warmup_steps: 0.0,
            r: 0.0,
            weight_lr_power: 2.0,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/schedule_free_sgd.wgsl`.
    pub struct ScheduleFreeSgdHyper as "Hyper" {
        /// Learning rate, before warm-up.
        lr: f32,
        /// The interpolation between `z` and `x`.
        momentum: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Steps of warm-up.
        warmup_steps: f32,
        /// The step's power in the averaging weight.
        r: f32,
        /// lr_max's power in the averaging weight.
        weight_lr_power: f32,
        /// `eval()`'s weight of z, 1 - 1 / momentum, computed in f64.
        eval_weight: f32,
        /// `train()`'s weight of z, 1 - momentum, computed in f64.
        train_weight: f32,
    }
}

wgsl_struct! {
    /// `Derived` of `shaders/schedule_free_sgd.wgsl`: what the prologue derives each step.
    pub struct ScheduleFreeSgdDerived as "Derived" {
        /// The warmed-up learning rate.
        scheduled_lr: f32,
        /// The averaging weight ckp1.
        ckp1: f32,
        /// lr * (momentum * (1 - ckp1) - 1), y's multiplier of the gradient.
        y_step: f32,
        /// 1 when this dispatch moves the parameters between y and x: a switch pass whose
        /// target mode they are not in yet, or a step taken in eval mode (x back to y first).
        moves: f32,
    }
}

/// `shaders/schedule_free_sgd.wgsl`: one state slot (`z`), the step's scalars derived and the
/// running values carried by the prologue, the eval/train switch.
const KERNEL: Kernel = Kernel {
    name: "schedule_free_sgd",
    file: shader_file!("schedule_free_sgd.wgsl"),
    family: &[SCHEDULE_FREE],
    state_slots: 1,
    record: GroupRecord::of::<ScheduleFreeSgdHyper>()
        .with_derived::<ScheduleFreeSgdDerived>()
        .with_running::<ScheduleFreeRunning>(),
    trust_ratio: false,
    modes: Some(SWITCH),
};

setters! {
    ScheduleFreeSgdConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets the momentum (the interpolation between `z` and `x`).
    with_momentum(momentum: f64);
    /// Sets the weight decay.
    with_weight_decay(weight_decay: f64);
    /// Sets the steps of warm-up.
    with_warmup_steps(warmup_steps: f64);
    /// Sets the step's power in the averaging weight.
    with_r(r: f64);
    /// Sets lr_max's power in the averaging weight.
    with_weight_lr_power(weight_lr_power: f64);
}

impl ScheduleFreeSgdConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> ScheduleFreeSgdHyper {
        let (eval_weight, train_weight) = switch_weights(self.momentum);
        ScheduleFreeSgdHyper {
            lr: self.lr as f32,
            momentum: self.momentum as f32,
            weight_decay: self.weight_decay as f32,
            warmup_steps: self.warmup_steps as f32,
            r: self.r as f32,
            weight_lr_power: self.weight_lr_power as f32,
            eval_weight,
            train_weight,
        }
    }
}

impl Algorithm for ScheduleFreeSgdConfig {
    row!(name: "SGDScheduleFree", kernel: &KERNEL, momentum: momentum);

    fn check_running(&self, step: u32, running: &[f32]) -> Result<()> {
        ScheduleFreeRunning::check_words(step, running)
    }

    fn lower(&self) -> Result<KernelSpec> {
        Schedule {
            lr: self.lr,
            beta_name: "momentum",
            beta: self.momentum,
            weight_decay: self.weight_decay,
            warmup_steps: self.warmup_steps,
            r: self.r,
            weight_lr_power: self.weight_lr_power,
        }
        .check()?;
        let z = StateSpec {
            name: "z",
            slot: 0,
            init: 0.0,
        };
        let spec = KernelSpec::new(&KERNEL, step_overrides(), vec![z], &self.hyper())?;
        Ok(spec.with_running(&ScheduleFreeRunning::INITIAL))
    }
}
