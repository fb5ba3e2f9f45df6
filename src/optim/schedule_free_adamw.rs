//! Schedule-Free AdamW: the `schedulefree` package's `AdamWScheduleFree`.

use super::adam::moment_states;
use super::schedule_free::{step_overrides, switch_weights, Schedule, SWITCH};
use super::{
    beta, config_struct, ln, non_negative, row, with_betas, Algorithm, ScheduleFreeRunning,
};
use crate::error::Result;
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, SCHEDULE_FREE};
use crate::setters::setters;

config_struct! {
    /// Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled"), exactly as the
    /// `schedulefree` package's `AdamWScheduleFree` (1.4.1). The parameters the model sees are
    /// `y`, the point gradients are taken at; the kernel keeps `z` (the base AdamW iterate) and
    /// `exp_avg_sq`, and the averaged iterate `x` only implicitly, as `y = (1 - beta1) z + beta1 x`:
    ///
    /// ```text
    /// lr          = lr * min(t / warmup_steps, 1)          (t = 1, 2, ...: warm-up over warmup_steps)
    /// lr_max      = max(lr, lr_max)                        (lr_max starts at -1)
    /// weight      = t^r * lr_max^weight_lr_power
    /// weight_sum  = weight_sum + weight                    (starts at 0)
    /// ckp1        = weight / weight_sum                    (0 when weight_sum is 0)
    /// exp_avg_sq  = beta2 * exp_avg_sq + (1 - beta2) * g * g
    /// g           = g / (sqrt(exp_avg_sq / (1 - beta2^t)) + eps) + weight_decay * y
    /// y           = lerp(y, z, ckp1) + lr * (beta1 * (1 - ckp1) - 1) * g
    /// z           = z - lr * g
    /// ```
    ///
    /// `z` starts as the parameters at the first step (zeros before it). Every per-step scalar
    /// (the warmed-up `lr`, `ckp1`, the bias correction) is computed on the device in the
    /// prologue, from its step counter, into the group's [`ScheduleFreeAdamWDerived`];
    /// `lr_max` and `weight_sum` are running values the prologue carries in its
    /// [`ScheduleFreeRunning`], apart from the hyperparameters
    /// ([`ScheduleFreeAdamWHyper`]) that [`Optimizer::set_config`](crate::Optimizer::set_config)
    /// and the learning-rate setters write, so a schedule or a new `lr` carries them on, as a
    /// PyTorch `param_group` carries them. Checkpoints save them in the metadata as
    /// `param_groups.<g>.lr_max` and `param_groups.<g>.weight_sum` (PyTorch's `param_groups` keys)
    /// and loading restores them.
    ///
    /// Evaluate at `x`: [`Optimizer::schedule_free_eval`](crate::Optimizer::schedule_free_eval)
    /// records `p = lerp(p, z, 1 - 1 / beta1)` (y to x) and
    /// [`Optimizer::schedule_free_train`](crate::Optimizer::schedule_free_train)
    /// `p = lerp(p, z, 1 - beta1)` (x back to y), as the package's `optimizer.eval()` and
    /// `optimizer.train()`. An optimizer starts in train mode (the package starts in eval mode
    /// and needs a `train()` before the first step; before it, both are no-ops).
    ///
    /// Optax's `optax.contrib.schedule_free_adamw` (0.2.8) is the same method with `r = 0`, its
    /// warm-up from a schedule and `max_lr` starting at 0 (the same values from the first step);
    /// it recovers `x` from `y` and `z` instead of interpolating, which rounds differently. This
    /// crate follows the `schedulefree` package. `beta1` must be in (0, 1) (eval divides by it, and
    /// Optax requires it positive); the package itself checks no hyperparameter.
    ///
    /// State: `z`, `exp_avg_sq` (the package's names).
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, Param, ScheduleFreeAdamWConfig};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let optimizer = ScheduleFreeAdamWConfig::default()
    ///     .with_lr(2.5e-3)
    ///     .with_warmup_steps(100.0)
    ///     .with_weight_decay(0.01)
    ///     .build(ctx, params)?;
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// optimizer.step(&mut encoder); // a training step at y
    /// optimizer.schedule_free_eval(&mut encoder)?; // the parameters are now x: evaluate
    /// optimizer.schedule_free_train(&mut encoder)?; // back to y before the next step
    /// ctx.queue().submit([encoder.finish()]);
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct ScheduleFreeAdamWConfig {
        /// Learning rate (default 0.0025, the package's).
        pub lr: f64,
        /// The interpolation between `z` and `x` (default 0.9): in (0, 1).
        pub beta1: f64,
        /// Decay of the second moment (default 0.999).
        pub beta2: f64,
        /// Added to the denominator (default 1e-8).
        pub eps: f64,
        /// Weight decay, an L2 term at `y` added to the normalized gradient (default 0).
        pub weight_decay: f64,
        /// Steps of linear learning-rate warm-up (default 0): a whole number.
        pub warmup_steps: f64,
        /// The power of the step in the averaging weight (default 0).
        pub r: f64,
        /// The power of `lr_max` in the averaging weight (default 2).
        pub weight_lr_power: f64,
    }
}

impl Default for ScheduleFreeAdamWConfig {
    fn default() -> Self {
        ScheduleFreeAdamWConfig {
            lr: 0.0025,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0.0,
            r: 0.0,
            weight_lr_power: 2.0,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/schedule_free_adamw.wgsl`.
    pub struct ScheduleFreeAdamWHyper as "Hyper" {
        /// Learning rate, before warm-up.
        lr: f32,
        /// The interpolation between `z` and `x`.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// 1 - beta2, computed in f64.
        one_minus_beta2: f32,
        /// ln(beta2), computed in f64.
        ln_beta2: f32,
        /// Denominator term.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Steps of warm-up.
        warmup_steps: f32,
        /// The step's power in the averaging weight.
        r: f32,
        /// lr_max's power in the averaging weight.
        weight_lr_power: f32,
        /// `eval()`'s weight of z, 1 - 1 / beta1, computed in f64.
        eval_weight: f32,
        /// `train()`'s weight of z, 1 - beta1, computed in f64.
        train_weight: f32,
    }
}

wgsl_struct! {
    /// `Derived` of `shaders/schedule_free_adamw.wgsl`: what the prologue derives each step.
    pub struct ScheduleFreeAdamWDerived as "Derived" {
        /// The warmed-up learning rate.
        scheduled_lr: f32,
        /// The averaging weight ckp1.
        ckp1: f32,
        /// lr * (beta1 * (1 - ckp1) - 1), y's multiplier of the normalized gradient.
        y_step: f32,
        /// 1 - beta2^t.
        bias_correction2: f32,
        /// 1 when this dispatch moves the parameters between y and x: a switch pass whose
        /// target mode they are not in yet, or a step taken in eval mode (x back to y first).
        moves: f32,
    }
}

/// `shaders/schedule_free_adamw.wgsl`: two state slots (`z`, `exp_avg_sq`), the step's scalars
/// derived and the running values carried by the prologue, the eval/train switch.
const KERNEL: Kernel = Kernel {
    name: "schedule_free_adamw",
    file: shader_file!("schedule_free_adamw.wgsl"),
    family: &[SCHEDULE_FREE],
    state_slots: 2,
    record: GroupRecord::of::<ScheduleFreeAdamWHyper>()
        .with_derived::<ScheduleFreeAdamWDerived>()
        .with_running::<ScheduleFreeRunning>(),
    trust_ratio: false,
    modes: Some(SWITCH),
};

with_betas!(ScheduleFreeAdamWConfig);

setters! {
    ScheduleFreeAdamWConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the weight decay.
    with_weight_decay(weight_decay: f64);
    /// Sets the steps of warm-up.
    with_warmup_steps(warmup_steps: f64);
    /// Sets the step's power in the averaging weight.
    with_r(r: f64);
    /// Sets lr_max's power in the averaging weight.
    with_weight_lr_power(weight_lr_power: f64);
}

impl ScheduleFreeAdamWConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> ScheduleFreeAdamWHyper {
        let (eval_weight, train_weight) = switch_weights(self.beta1);
        ScheduleFreeAdamWHyper {
            lr: self.lr as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            ln_beta2: ln(self.beta2),
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            warmup_steps: self.warmup_steps as f32,
            r: self.r as f32,
            weight_lr_power: self.weight_lr_power as f32,
            eval_weight,
            train_weight,
        }
    }
}

impl Algorithm for ScheduleFreeAdamWConfig {
    row!(name: "AdamWScheduleFree", kernel: &KERNEL, momentum: beta1);

    fn check_running(&self, step: u32, running: &[f32]) -> Result<()> {
        ScheduleFreeRunning::check_words(step, running)
    }

    fn lower(&self) -> Result<KernelSpec> {
        Schedule {
            lr: self.lr,
            beta_name: "beta1",
            beta: self.beta1,
            weight_decay: self.weight_decay,
            warmup_steps: self.warmup_steps,
            r: self.r,
            weight_lr_power: self.weight_lr_power,
        }
        .check()?;
        non_negative("eps", self.eps)?;
        beta("beta2", self.beta2)?;
        let states = moment_states(["z", "exp_avg_sq", ""], false);
        let spec = KernelSpec::new(&KERNEL, step_overrides(), states, &self.hyper())?;
        Ok(spec.with_running(&ScheduleFreeRunning::INITIAL))
    }
}
