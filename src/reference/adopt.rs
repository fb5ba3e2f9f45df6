//! Mirror of `shaders/adopt.wgsl`.

use super::common::{decayed_grad, max, moments_of};
use super::math::lerp;
use super::step::{Mirror, Tensor};
use crate::optim::{AdoptConfig, AdoptDerived, AdoptHyper, AdoptOptions};

moments_of!(AdoptHyper, AdoptOptions);

/// `prepare_group` of `shaders/adopt.wgsl`.
pub fn prepare_adopt(step: f32, o: AdoptOptions) -> AdoptDerived {
    let count = if o.optax_form { step - 1.0 } else { step };
    AdoptDerived {
        clip: count.sqrt().sqrt(),
    }
}

/// `adopt_math` of `shaders/adopt.wgsl` (its arguments, with the structural options).
#[allow(clippy::too_many_arguments)]
pub fn adopt_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_sq: &mut f32,
    first_step: bool,
    h: &AdoptHyper,
    d: &AdoptDerived,
    o: AdoptOptions,
) {
    let g = decayed_grad(p, grad, &h.moments(), o.into());
    let mut normed = g / max(exp_avg_sq.sqrt(), h.eps);
    if o.use_clipping {
        // WGSL's clamp(e, low, high) is min(max(e, low), high).
        normed = max(normed, -d.clip).min(d.clip);
    }
    let next = lerp(*exp_avg, normed, h.one_minus_beta1);
    let mut update = next;
    if o.nesterov {
        update = lerp(next, normed, h.one_minus_beta1);
    }
    // The first step only initialises the second moment.
    if first_step {
        *exp_avg_sq += g * g;
        return;
    }
    *exp_avg = next;
    *p -= h.lr * update;
    *exp_avg_sq = h.beta2 * *exp_avg_sq + h.one_minus_beta2 * g * g;
}

impl Mirror for AdoptConfig {
    type Prepared = (AdoptHyper, AdoptDerived, AdoptOptions);

    fn prologue(&self, step: f32, _running: &mut [f32]) -> Self::Prepared {
        let o = self.options();
        (self.hyper(), prepare_adopt(step, o), o)
    }

    fn update(&self, (h, d, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        let first_step = tensor.first_step();
        tensor.each(&mut |p, g, [s0, s1, _]| adopt_math(p, g, s0, s1, first_step, h, d, *o));
    }
}
