//! Mirror of `shaders/radam.wgsl`.

use super::common::{adam_moments, moments_of, radam_rho, rectification};
use super::math::bias_correction;
use super::step::{Mirror, Tensor};
use crate::optim::{RAdamConfig, RAdamDerived, RAdamHyper, RAdamOptions};

moments_of!(RAdamHyper, RAdamOptions);

/// `prepare_group` of `shaders/radam.wgsl`.
pub fn prepare_radam(h: &RAdamHyper, step: f32, o: RAdamOptions) -> RAdamDerived {
    let bias_correction1 = bias_correction(h.ln_beta1, step);
    let bias_correction2 = bias_correction(h.ln_beta2, step);
    let rho = radam_rho(h.ln_beta2, h.rho_inf, step);
    let rectified = if o.optax_form {
        rho >= h.threshold
    } else {
        rho > h.threshold
    };
    let rect = rectification(rho, h.rect_inf);
    let step_size = h.lr / bias_correction1;
    let (rectified_step_size, denom_bias_correction) = if o.optax_form {
        (step_size * rect, bias_correction2)
    } else {
        (step_size * rect * bias_correction2.sqrt(), 1.0)
    };
    RAdamDerived {
        step_size,
        rectified_step_size: if rectified { rectified_step_size } else { 0.0 },
        bias_correction2: denom_bias_correction,
        rectified: if rectified { 1.0 } else { 0.0 },
    }
}

/// `radam_math` of `shaders/radam.wgsl`.
pub fn radam_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_sq: &mut f32,
    h: &RAdamHyper,
    d: &RAdamDerived,
    o: RAdamOptions,
) {
    adam_moments(p, grad, exp_avg, exp_avg_sq, &h.moments(), o.into());
    let denom = (*exp_avg_sq / d.bias_correction2 + h.eps_root).sqrt() + h.eps;
    let adaptive = d.rectified_step_size * (*exp_avg / denom);
    *p -= if d.rectified != 0.0 {
        adaptive
    } else {
        d.step_size * *exp_avg
    };
}

impl Mirror for RAdamConfig {
    type Prepared = (RAdamHyper, RAdamDerived, RAdamOptions);

    fn prologue(&self, step: f32, _running: &mut [f32]) -> Self::Prepared {
        let (h, o) = (self.hyper(), self.options());
        (h, prepare_radam(&h, step, o), o)
    }

    fn update(&self, (h, d, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        tensor.each(&mut |p, g, [s0, s1, _]| radam_math(p, g, s0, s1, h, d, *o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rho_t` against PyTorch's f64 formula, at small steps (where the direct f32 form
    /// cancels) and large ones, and across the threshold.
    #[test]
    fn radam_rho_matches_f64_within_a_few_ulp() {
        let mut worst = 0.0_f64;
        for beta2 in [
            0.7,
            0.875,
            0.9,
            0.99,
            0.999,
            0.9990234375,
            0.9999,
            0.999_999,
        ] {
            let h = RAdamConfig::default().with_betas(0.9, beta2).hyper();
            let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
            let steps = (1..=64).chain([100, 1000, 1001, 10_000, 100_000, 1_000_000, 16_777_216]);
            for step in steps {
                // With expm1: f64's 1 - beta2^t from powf is itself off by 1e-4 at beta2
                // 0.999999, t = 2, once the difference cancels.
                let x = step as f64 * f64::ln(beta2);
                let exact = rho_inf - 2.0 * step as f64 * x.exp() / -x.exp_m1();
                let got = f64::from(radam_rho(h.ln_beta2, h.rho_inf, step as f32));
                // ln(beta2) rounded to f32 moves rho_t by up to its own half ulp relative.
                let ulps = (got - exact).abs() / (exact.abs() * f64::from(f32::EPSILON));
                worst = worst.max(ulps);
                assert!(
                    ulps <= 8.0,
                    "beta2 {beta2} step {step}: {got} vs {exact} ({ulps} ulp)"
                );
            }
        }
        eprintln!("radam_rho: worst {worst:.2} ulp");
    }
}
