//! Mirror of `shaders/adamax.wgsl` (its `prepare_group` is the Adam family's
//! [`prepare_adam`]).

use super::common::{l2_grad, max, prepare_adam};
use super::math::lerp;
use super::step::{Mirror, Tensor};
use crate::optim::{AdamDerived, AdamHyper, AdamaxConfig, AdamaxOptions};

/// `adamax_math` of `shaders/adamax.wgsl`.
pub fn adamax_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_inf: &mut f32,
    h: &AdamHyper,
    d: &AdamDerived,
    o: AdamaxOptions,
) {
    let g = l2_grad(grad, *p, h.weight_decay, o.maximize);
    *exp_avg = lerp(*exp_avg, g, h.one_minus_beta1);
    *exp_inf = max(h.beta2 * *exp_inf, g.abs() + h.eps);
    *p -= d.step_size * (*exp_avg / *exp_inf);
}

impl Mirror for AdamaxConfig {
    type Prepared = (AdamHyper, AdamDerived, AdamaxOptions);

    fn prologue(&self, step: f32, _running: &mut [f32]) -> Self::Prepared {
        let h = self.hyper();
        (h, prepare_adam(&h, step), self.options())
    }

    fn update(&self, (h, d, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        tensor.each(&mut |p, g, [s0, s1, _]| adamax_math(p, g, s0, s1, h, d, *o));
    }
}
