//! Mirror of `shaders/sgd.wgsl`.

use super::common::l2_grad;
use super::step::{Mirror, Tensor};
use crate::optim::{SgdConfig, SgdHyper, SgdOptions};

/// `sgd_math` of `shaders/sgd.wgsl`.
pub fn sgd_math(
    p: &mut f32,
    grad: f32,
    momentum_buffer: &mut f32,
    first_step: bool,
    h: &SgdHyper,
    o: SgdOptions,
) {
    let mut d_p = l2_grad(grad, *p, h.weight_decay, o.maximize);
    if o.momentum {
        if first_step {
            *momentum_buffer = d_p;
        } else {
            *momentum_buffer = h.momentum * *momentum_buffer + h.one_minus_dampening * d_p;
        }
        if o.nesterov {
            d_p += h.momentum * *momentum_buffer;
        } else {
            d_p = *momentum_buffer;
        }
    }
    *p -= h.lr * d_p;
}

impl Mirror for SgdConfig {
    type Prepared = (SgdHyper, SgdOptions);

    fn prologue(&self, _step: f32, _running: &mut [f32]) -> Self::Prepared {
        (self.hyper(), self.options())
    }

    fn update(&self, (h, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        let first_step = tensor.first_step();
        tensor.each(&mut |p, g, s| sgd_math(p, g, &mut s[0], first_step, h, *o));
    }
}
