//! Mirror of `shaders/rprop.wgsl`.

use super::common::l2_grad;
use super::math::sign;
use super::step::{Mirror, Tensor};
use crate::optim::{RpropConfig, RpropHyper, RpropOptions};

/// `rprop_math` of `shaders/rprop.wgsl`.
pub fn rprop_math(
    p: &mut f32,
    grad: f32,
    prev: &mut f32,
    step_size: &mut f32,
    first_step: bool,
    h: &RpropHyper,
    o: RpropOptions,
) {
    let g = l2_grad(grad, *p, h.weight_decay, o.maximize);
    let size = if first_step { h.lr } else { *step_size };
    let s = g * *prev;
    let eta = if s > 0.0 {
        h.etaplus
    } else if s < 0.0 {
        h.etaminus
    } else {
        1.0
    };
    // WGSL's clamp(e, low, high) is min(max(e, low), high); a NaN stays NaN, as in PyTorch.
    *step_size = if s.is_nan() || size.is_nan() {
        s + size
    } else {
        (size * eta).max(h.step_size_min).min(h.step_size_max)
    };
    let kept = if s < 0.0 { 0.0 } else { g };
    *p -= sign(kept) * *step_size;
    *prev = kept;
}

impl Mirror for RpropConfig {
    type Prepared = (RpropHyper, RpropOptions);

    fn prologue(&self, _step: f32, _running: &mut [f32]) -> Self::Prepared {
        (self.hyper(), self.options())
    }

    fn update(&self, (h, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        let first_step = tensor.first_step();
        tensor.each(&mut |p, g, [s0, s1, _]| rprop_math(p, g, s0, s1, first_step, h, *o));
    }
}
