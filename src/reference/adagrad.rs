//! Mirror of `shaders/adagrad.wgsl`.

use super::common::l2_grad;
use super::step::{Mirror, Tensor};
use crate::optim::{AdagradConfig, AdagradDerived, AdagradHyper, AdagradOptions};

/// `prepare_group` of `shaders/adagrad.wgsl`.
pub fn prepare_adagrad(h: &AdagradHyper, step: f32) -> AdagradDerived {
    // `step - 1.0` is exact, as the WGSL's integer count of the steps before this one.
    AdagradDerived {
        clr: h.lr / (1.0 + (step - 1.0) * h.lr_decay),
    }
}

/// `adagrad_math` of `shaders/adagrad.wgsl`.
pub fn adagrad_math(
    p: &mut f32,
    grad: f32,
    sum: &mut f32,
    h: &AdagradHyper,
    d: &AdagradDerived,
    o: AdagradOptions,
) {
    let g = l2_grad(grad, *p, h.weight_decay, o.maximize);
    *sum += g * g;
    if o.eps_in_sqrt {
        let scaled = if *sum > 0.0 {
            g / (*sum + h.eps).sqrt()
        } else {
            0.0
        };
        *p -= d.clr * scaled;
    } else {
        let denom = sum.sqrt() + h.eps;
        *p -= d.clr * (g / denom);
    }
}

impl Mirror for AdagradConfig {
    type Prepared = (AdagradHyper, AdagradDerived, AdagradOptions);

    fn prologue(&self, step: f32, _running: &mut [f32]) -> Self::Prepared {
        let h = self.hyper();
        (h, prepare_adagrad(&h, step), self.options())
    }

    fn update(&self, (h, d, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        tensor.each(&mut |p, g, s| adagrad_math(p, g, &mut s[0], h, d, *o));
    }
}
