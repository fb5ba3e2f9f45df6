//! Mirror of `shaders/lamb.wgsl`: two passes with the tensor's trust ratio between them
//! (`shaders/common/trust.wgsl`).

use super::math::bias_correction;
use super::step::{Mirror, Squares, Tensor};
use crate::optim::{LambConfig, LambDerived, LambHyper};

/// `prepare_group` of `shaders/lamb.wgsl`.
pub fn prepare_lamb(h: &LambHyper, step: f32) -> LambDerived {
    LambDerived {
        bias_correction1: bias_correction(h.ln_beta1, step),
        bias_correction2: bias_correction(h.ln_beta2, step),
    }
}

/// LAMB's moments, the first pass of `step_math` in `shaders/lamb.wgsl`.
pub fn lamb_moments(grad: f32, exp_avg: &mut f32, exp_avg_sq: &mut f32, h: &LambHyper) {
    *exp_avg = h.one_minus_beta1 * grad + h.beta1 * *exp_avg;
    *exp_avg_sq = h.one_minus_beta2 * (grad * grad) + h.beta2 * *exp_avg_sq;
}

/// `lamb_direction` of `shaders/lamb.wgsl`.
pub fn lamb_direction(p: f32, exp_avg: f32, exp_avg_sq: f32, h: &LambHyper, d: &LambDerived) -> f32 {
    let m_hat = exp_avg / d.bias_correction1;
    let v_hat = exp_avg_sq / d.bias_correction2;
    m_hat / ((v_hat + h.eps_root).sqrt() + h.eps) + h.weight_decay * p
}

impl Mirror for LambConfig {
    type Prepared = (LambHyper, LambDerived);

    fn prologue(&self, step: f32, _running: &mut [f32]) -> Self::Prepared {
        let h = self.hyper();
        (h, prepare_lamb(&h, step))
    }

    fn update(&self, (h, d): &Self::Prepared, tensor: &mut Tensor<'_>) {
        // First pass: the moments, and the norms of p and of the direction.
        let mut sums = Squares::default();
        tensor.each(&mut |p, g, [s0, s1, _]| {
            lamb_moments(g, s0, s1, h);
            sums.add(*p, lamb_direction(*p, *s0, *s1, h, d));
        });
        let ratio = tensor.trust_ratio(&sums, h.trust_coefficient, h.trust_eps, h.trust_on);
        // Second: the update from the stored moments.
        tensor.each(&mut |p, _, [s0, s1, _]| {
            *p -= h.lr * (lamb_direction(*p, *s0, *s1, h, d) * ratio);
        });
    }
}
