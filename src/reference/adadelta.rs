//! Mirror of `shaders/adadelta.wgsl`.

use super::common::l2_grad;
use super::step::{Mirror, Tensor};
use crate::optim::{AdadeltaConfig, AdadeltaHyper, AdadeltaOptions};

/// `adadelta_math` of `shaders/adadelta.wgsl`.
pub fn adadelta_math(
    p: &mut f32,
    grad: f32,
    square_avg: &mut f32,
    acc_delta: &mut f32,
    h: &AdadeltaHyper,
    o: AdadeltaOptions,
) {
    let g = l2_grad(grad, *p, h.weight_decay, o.maximize);
    *square_avg = h.rho * *square_avg + h.one_minus_rho * g * g;
    let square_avg_root = (*square_avg + h.eps).sqrt();
    let delta = (*acc_delta + h.eps).sqrt() / square_avg_root * g;
    *acc_delta = h.rho * *acc_delta + h.one_minus_rho * delta * delta;
    *p -= h.lr * delta;
}

impl Mirror for AdadeltaConfig {
    type Prepared = (AdadeltaHyper, AdadeltaOptions);

    fn prologue(&self, _step: f32, _running: &mut [f32]) -> Self::Prepared {
        (self.hyper(), self.options())
    }

    fn update(&self, (h, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        tensor.each(&mut |p, g, [s0, s1, _]| adadelta_math(p, g, s0, s1, h, *o));
    }
}
