//! Mirror of `shaders/adam.wgsl` (Adam, AMSGrad; AdamW runs it too).

use super::common::{adam_moments, max, moments_of, prepare_adam};
use super::step::{Mirror, Tensor};
use crate::optim::{AdamConfig, AdamDerived, AdamHyper, AdamOptions};

moments_of!(AdamHyper, AdamOptions);

/// `adam_math` of `shaders/adam.wgsl` (its arguments, with the structural options).
#[allow(clippy::too_many_arguments)]
pub fn adam_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_sq: &mut f32,
    max_exp_avg_sq: &mut f32,
    h: &AdamHyper,
    d: &AdamDerived,
    o: AdamOptions,
) {
    adam_moments(p, grad, exp_avg, exp_avg_sq, &h.moments(), o.into());
    let mut second_moment = *exp_avg_sq;
    if o.optax_denominator {
        second_moment /= d.bias_correction2;
    }
    if o.amsgrad {
        *max_exp_avg_sq = max(*max_exp_avg_sq, second_moment);
        second_moment = *max_exp_avg_sq;
    }
    let mut denom = second_moment.sqrt() / d.bias_correction2_sqrt + h.eps;
    if o.optax_denominator {
        denom = (second_moment + h.eps_root).sqrt() + h.eps;
    }
    *p -= d.step_size * (*exp_avg / denom);
}

impl Mirror for AdamConfig {
    type Prepared = (AdamHyper, AdamDerived, AdamOptions);

    fn prologue(&self, step: f32, _running: &mut [f32]) -> Self::Prepared {
        let h = self.hyper();
        (h, prepare_adam(&h, step), self.options())
    }

    fn update(&self, (h, d, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        tensor.each(&mut |p, g, [s0, s1, s2]| adam_math(p, g, s0, s1, s2, h, d, *o));
    }
}
