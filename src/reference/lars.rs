//! Mirror of `shaders/lars.wgsl`: two passes with the tensor's trust ratio between them
//! (`shaders/common/trust.wgsl`).

use super::step::{Mirror, Squares, Tensor};
use crate::optim::{LarsConfig, LarsHyper};

/// LARS's direction, `g + weight_decay * p` (`shaders/lars.wgsl`).
pub fn lars_direction(p: f32, grad: f32, h: &LarsHyper) -> f32 {
    grad + h.weight_decay * p
}

/// The second pass of `step_math` in `shaders/lars.wgsl`: momentum over the scaled update.
pub fn lars_apply(
    p: &mut f32,
    grad: f32,
    trace: &mut f32,
    ratio: f32,
    h: &LarsHyper,
    nesterov: bool,
) {
    let s = -h.lr * (lars_direction(*p, grad, h) * ratio);
    *trace = s + h.momentum * *trace;
    *p += if nesterov {
        s + h.momentum * *trace
    } else {
        *trace
    };
}

impl Mirror for LarsConfig {
    type Prepared = LarsHyper;

    fn prologue(&self, _step: f32, _running: &mut [f32]) -> Self::Prepared {
        self.hyper()
    }

    fn update(&self, h: &Self::Prepared, tensor: &mut Tensor<'_>) {
        let mut sums = Squares::default();
        tensor.each(&mut |p, g, _| sums.add(*p, lars_direction(*p, g, h)));
        let ratio = tensor.trust_ratio(&sums, h.trust_coefficient, h.trust_eps, h.trust_on);
        let nesterov = self.nesterov;
        tensor.each(&mut |p, g, s| lars_apply(p, g, &mut s[0], ratio, h, nesterov));
    }
}
