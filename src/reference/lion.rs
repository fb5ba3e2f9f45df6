//! Mirror of `shaders/lion.wgsl`.

use super::math::sign;
use super::step::{Mirror, Tensor};
use crate::optim::{LionConfig, LionHyper, LionOptions};

/// `lion_math` of `shaders/lion.wgsl`.
pub fn lion_math(p: &mut f32, grad: f32, exp_avg: &mut f32, h: &LionHyper, o: LionOptions) {
    let g = if o.maximize { -grad } else { grad };
    if h.weight_decay != 0.0 {
        *p *= h.decay;
    }
    let update = sign(h.beta1 * *exp_avg + h.one_minus_beta1 * g);
    *p -= h.lr * update;
    *exp_avg = h.beta2 * *exp_avg + h.one_minus_beta2 * g;
}

impl Mirror for LionConfig {
    type Prepared = (LionHyper, LionOptions);

    fn prologue(&self, _step: f32, _running: &mut [f32]) -> Self::Prepared {
        (self.hyper(), self.options())
    }

    fn update(&self, (h, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        tensor.each(&mut |p, g, s| lion_math(p, g, &mut s[0], h, *o));
    }
}
