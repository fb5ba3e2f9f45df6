//! Mirror of `shaders/rmsprop.wgsl`.

use super::common::l2_grad;
use super::math::{bias_correction, lerp};
use super::step::{Mirror, Tensor};
use crate::optim::{RmsPropConfig, RmsPropDerived, RmsPropHyper, RmsPropOptions};

/// `prepare_group` of `shaders/rmsprop.wgsl`.
pub fn prepare_rmsprop(h: &RmsPropHyper, step: f32, o: RmsPropOptions) -> RmsPropDerived {
    RmsPropDerived {
        bias_correction: if o.bias_correction {
            bias_correction(h.ln_alpha, step)
        } else {
            0.0
        },
    }
}

/// `centered_variance` of `shaders/rmsprop.wgsl`: `square_avg - grad_avg^2`, inf (PyTorch's
/// fused `addcmul`'s value) where `square_avg` is inf and `grad_avg` finite.
pub fn centered_variance(square_avg: f32, grad_avg: f32) -> f32 {
    let v = square_avg - grad_avg * grad_avg;
    if square_avg == f32::INFINITY && grad_avg.is_finite() {
        square_avg
    } else {
        v
    }
}

/// `rmsprop_math` of `shaders/rmsprop.wgsl` (its arguments, with the structural options).
#[allow(clippy::too_many_arguments)]
pub fn rmsprop_math(
    p: &mut f32,
    grad: f32,
    square_avg: &mut f32,
    momentum_buffer: &mut f32,
    grad_avg: &mut f32,
    h: &RmsPropHyper,
    d: &RmsPropDerived,
    o: RmsPropOptions,
) {
    let g = l2_grad(grad, *p, h.weight_decay, o.maximize);
    *square_avg = h.alpha * *square_avg + h.one_minus_alpha * g * g;
    let mut v = *square_avg;
    if o.bias_correction {
        v /= d.bias_correction;
    }
    if o.centered {
        *grad_avg = lerp(*grad_avg, g, h.one_minus_alpha);
        let mut m = *grad_avg;
        if o.bias_correction {
            m /= d.bias_correction;
        }
        v = centered_variance(v, m);
    }
    let avg = if o.eps_in_sqrt {
        (v + h.eps).sqrt()
    } else {
        v.sqrt() + h.eps
    };
    if o.momentum {
        *momentum_buffer = h.momentum * *momentum_buffer + g / avg;
        *p -= h.lr * *momentum_buffer;
    } else {
        *p -= h.lr * (g / avg);
    }
}

impl Mirror for RmsPropConfig {
    type Prepared = (RmsPropHyper, RmsPropDerived, RmsPropOptions);

    fn prologue(&self, step: f32, _running: &mut [f32]) -> Self::Prepared {
        let (h, o) = (self.hyper(), self.options());
        (h, prepare_rmsprop(&h, step, o), o)
    }

    fn update(&self, (h, d, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        tensor.each(&mut |p, g, [s0, s1, s2]| rmsprop_math(p, g, s0, s1, s2, h, d, *o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's fused `addcmul` keeps an overflowed square_avg at inf when grad_avg^2
    /// overflows too (torch 2.15: centered RMSprop with 1e20 gradients leaves the parameter
    /// finite); inf - inf would be NaN.
    #[test]
    fn centered_variance_keeps_an_infinite_square_avg() {
        assert_eq!(centered_variance(f32::INFINITY, 3e19), f32::INFINITY);
        assert_eq!(centered_variance(f32::INFINITY, -1e19), f32::INFINITY);
        assert_eq!(centered_variance(0.5, 0.5), 0.25);
        assert!(centered_variance(f32::INFINITY, f32::INFINITY).is_nan());
        assert!(centered_variance(1e38, 3e19).is_nan() || centered_variance(1e38, 3e19) < 0.0);
    }
}
