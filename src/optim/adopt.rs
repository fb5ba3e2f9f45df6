//! ADOPT: the authors' PyTorch ADOPT and `optax.contrib.adopt`.

use super::adam::moment_states;
use super::{row, adam_family, config_struct, with_betas, Algorithm};
use crate::error::Result;
use crate::kernel::{shader_file, wgsl_struct, GroupRecord, Kernel, KernelSpec, L2, MOMENTS};
use crate::setters::setters;

config_struct! {
    /// ADOPT (Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any beta2 with the
    /// Optimal Rate"), as the authors' PyTorch implementation (as `pytorch_optimizer.ADOPT` 4.1
    /// carries it):
    ///
    /// ```text
    /// g          = maximize ? -g : g
    /// g          = g + weight_decay * p             (decoupled: p = p * (1 - lr * weight_decay),
    ///                                                fixed_decay: p = p * (1 - weight_decay))
    /// step 1:      exp_avg_sq = exp_avg_sq + g * g  (the second moment is only initialised)
    /// later steps:
    ///   normed     = g / max(sqrt(exp_avg_sq), eps) (the second moment of the steps before)
    ///   normed     = clamp(normed, -t^(1/4), t^(1/4))          (use_clipping)
    ///   exp_avg    = lerp(exp_avg, normed, 1 - beta1)
    ///   p          = p - lr * exp_avg                (nesterov: lr * lerp(exp_avg, normed, 1 - beta1))
    ///   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
    /// ```
    ///
    /// With `optax_form`, `optax.contrib.adopt`'s (0.2.8) clip: its `clip_value_fn` (default
    /// `x^0.25`) takes the count of the steps before, so step `t` clips at `(t - 1)^(1/4)` where
    /// the authors' `clip_lambda` takes `t`. The rest is the same algorithm (Optax's first step
    /// decays exp_avg by 1 and exp_avg_sq by 0, which leaves the parameters as they are), up to
    /// rounding, save one rounding the form reproduces: Optax computes `1 - b1` and `1 - b2` in f32
    /// from the f32 betas (`1 - b2` is 1.7e-4 off for 0.9999). `nesterov` is Optax's option. Optax has no weight decay of its own:
    /// `optax.chain(optax.add_decayed_weights(wd), optax.contrib.adopt(lr))` is `weight_decay`,
    /// and `add_decayed_weights` between `scale_by_adopt` and the learning rate is the decoupled
    /// form. The clip is computed on the device from the step counter, in the prologue.
    ///
    /// State: `exp_avg`, `exp_avg_sq` (the authors' names; Optax's `mu`, `nu`).
    ///
    /// ```no_run
    /// # use wgpu_optim::{AdoptConfig, Context, Param};
    /// # fn demo(ctx: &Context, params: &[Param]) -> wgpu_optim::Result<()> {
    /// let adopt = AdoptConfig::default()
    ///     .with_lr(1e-3)
    ///     .with_weight_decay(0.01)
    ///     .with_decoupled_weight_decay(true)
    ///     .build(ctx, params)?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug, PartialEq)]
    pub struct AdoptConfig {
        /// Learning rate (default 1e-3).
        pub lr: f64,
        /// Decay of the first moment (default 0.9).
        pub beta1: f64,
        /// Decay of the second moment (default 0.9999).
        pub beta2: f64,
        /// The least value of `sqrt(exp_avg_sq)` the gradient is divided by (default 1e-6).
        pub eps: f64,
        /// Weight decay (default 0): an L2 penalty, or decoupled when `decoupled_weight_decay`.
        pub weight_decay: f64,
        /// Decoupled weight decay, as AdamW (default false).
        pub decoupled_weight_decay: bool,
        /// With `decoupled_weight_decay`, decay by `weight_decay` alone, not
        /// `lr * weight_decay` (default false; pytorch-optimizer's `fixed_decay`, which it
        /// ignores without `weight_decouple`, as here).
        pub fixed_decay: bool,
        /// Clip the normalised gradient to `±t^(1/4)` (default true).
        pub use_clipping: bool,
        /// Nesterov momentum, as Optax's `nesterov` (default false).
        pub nesterov: bool,
        /// Maximize the objective (default false).
        pub maximize: bool,
        /// `optax.contrib.adopt`'s clip, `(t - 1)^(1/4)` (default false).
        pub optax_form: bool,
    }
}

impl Default for AdoptConfig {
    fn default() -> Self {
        AdoptConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.9999,
            eps: 1e-6,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            fixed_decay: false,
            use_clipping: true,
            nesterov: false,
            maximize: false,
            optax_form: false,
        }
    }
}

wgsl_struct! {
    /// `Hyper` of `shaders/adopt.wgsl`.
    pub struct AdoptHyper as "Hyper" {
        /// Learning rate.
        lr: f32,
        /// Second-moment decay.
        beta2: f32,
        /// 1 - beta1, computed in f64 (Optax form: in f32, from beta1 rounded to f32).
        one_minus_beta1: f32,
        /// 1 - beta2, computed in f64 (Optax form: in f32, from beta2 rounded to f32).
        one_minus_beta2: f32,
        /// The floor of the denominator.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Decoupled decay multiplier, 1 - lr * weight_decay (fixed_decay: 1 - weight_decay),
        /// computed in f64.
        decay: f32,
    }
}

wgsl_struct! {
    /// `Derived` of `shaders/adopt.wgsl`: what the prologue derives each step.
    pub struct AdoptDerived as "Derived" {
        /// The bound of the normalised gradient, t^(1/4) (Optax: (t - 1)^(1/4)).
        clip: f32,
    }
}

/// `shaders/adopt.wgsl`: two state slots, the clip bound derived each step.
const KERNEL: Kernel = Kernel {
    name: "adopt",
    file: shader_file!("adopt.wgsl"),
    family: &[L2, MOMENTS],
    state_slots: 2,
    record: GroupRecord::of::<AdoptHyper>().with_derived::<AdoptDerived>(),
    trust_ratio: false,
    modes: None,
};

with_betas!(AdoptConfig);

/// The structural options of the ADOPT kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdoptOptions {
    /// Gradient ascent.
    pub maximize: bool,
    /// AdamW's decoupled weight decay.
    pub decoupled_weight_decay: bool,
    /// Clip the normalised gradient.
    pub use_clipping: bool,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Optax's clip.
    pub optax_form: bool,
}

setters! {
    AdoptConfig;
    /// Sets the learning rate.
    with_lr(lr: f64);
    /// Sets eps.
    with_eps(eps: f64);
    /// Sets the weight decay.
    with_weight_decay(weight_decay: f64);
    /// Decouples the weight decay from the gradient (AdamW's form).
    with_decoupled_weight_decay(decoupled_weight_decay: bool);
    /// Fixed (learning-rate independent) decoupled decay.
    with_fixed_decay(fixed_decay: bool);
    /// Clips the normalised gradient (true) or not.
    with_use_clipping(use_clipping: bool);
    /// Nesterov momentum.
    with_nesterov(nesterov: bool);
    /// Maximizes instead of minimizing.
    with_maximize(maximize: bool);
    /// Takes `optax.contrib.adopt`'s clip.
    with_optax_form(optax_form: bool);
}

impl AdoptConfig {
    /// The kernel's hyperparameter struct.
    pub fn hyper(&self) -> AdoptHyper {
        // Optax computes 1 - b in f32 from b rounded to f32 (1.7e-4 off for b2 = 0.9999, which
        // compounds in exp_avg without clipping); PyTorch in f64.
        let one_minus = |b: f64| {
            if self.optax_form {
                1.0 - b as f32
            } else {
                (1.0 - b) as f32
            }
        };
        AdoptHyper {
            lr: self.lr as f32,
            beta2: self.beta2 as f32,
            one_minus_beta1: one_minus(self.beta1),
            one_minus_beta2: one_minus(self.beta2),
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            decay: if self.fixed_decay {
                (1.0 - self.weight_decay) as f32
            } else {
                (1.0 - self.lr * self.weight_decay) as f32
            },
        }
    }

    /// The kernel's structural options.
    pub fn options(&self) -> AdoptOptions {
        AdoptOptions {
            maximize: self.maximize,
            decoupled_weight_decay: self.decoupled_weight_decay,
            use_clipping: self.use_clipping,
            nesterov: self.nesterov,
            optax_form: self.optax_form,
        }
    }
}

impl Algorithm for AdoptConfig {
    row!(name: "ADOPT", kernel: &KERNEL, momentum: beta1);

    fn lower(&self) -> Result<KernelSpec> {
        adam_family!(self).check()?;
        let o = self.options();
        KernelSpec::new(
            &KERNEL,
            vec![
                ("MAXIMIZE", o.maximize),
                ("DECOUPLED_WEIGHT_DECAY", o.decoupled_weight_decay),
                ("USE_CLIPPING", o.use_clipping),
                ("NESTEROV", o.nesterov),
                ("OPTAX_FORM", o.optax_form),
            ],
            moment_states(["exp_avg", "exp_avg_sq", ""], false),
            &self.hyper(),
        )
    }
}
