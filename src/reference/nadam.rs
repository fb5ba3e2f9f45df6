//! Mirror of `shaders/nadam.wgsl`.

use super::common::{adam_moments, moments_of};
use super::math::{bias_correction, expm1_nonpositive};
use super::step::{running_of, Mirror, Tensor};
use crate::optim::{schedule_sum, NAdamConfig, NAdamDerived, NAdamHyper, NAdamOptions, NAdamRunning};

moments_of!(NAdamHyper, NAdamOptions);

/// `nadam_mu` of `shaders/nadam.wgsl`: (mu_t, 1 - mu_t).
pub fn nadam_mu(h: &NAdamHyper, step: f32) -> (f32, f32) {
    let e = expm1_nonpositive(step * h.ln_mu_base);
    let half_beta1 = 0.5 * h.beta1;
    (
        half_beta1 * (1.0 - e),
        h.one_minus_beta1 + half_beta1 * (1.0 + e),
    )
}

/// `nadam_ln_mu_product` of `shaders/nadam.wgsl`: ln(mu_1 mu_2 ... mu_t), PyTorch's
/// `mu_product` in closed form for constant `beta1` and `momentum_decay`
/// ([`NAdamHyper::ln_mu_product`]).
pub fn nadam_ln_mu_product(h: &NAdamHyper, step: f32) -> f32 {
    h.ln_mu_product(step)
}

/// `nadam_schedule_sum` of `shaders/nadam.wgsl`: `sum_{i=1..t} -ln(1 - q^i / 2)` with
/// `ln q = ln_mu_base`, in closed form.
pub fn nadam_schedule_sum(ln_mu_base: f32, step: f32) -> f32 {
    schedule_sum(ln_mu_base, step)
}

/// `nadam_ln_excess` of `shaders/nadam.wgsl`: the excess of PyTorch's running ln(mu_product)
/// over the closed form at this step's values, from the `running` values the last step left.
pub fn nadam_ln_excess(h: &NAdamHyper, r: &NAdamRunning, step: f32) -> f32 {
    let mut excess = r.mu_ln_excess;
    if r.started() && (r.mu_ln_beta1 != h.ln_beta1 || r.mu_ln_base != h.ln_mu_base) {
        let before = step - 1.0;
        if r.mu_ln_beta1 == f32::NEG_INFINITY {
            excess = f32::NEG_INFINITY;
        } else if h.ln_beta1 != f32::NEG_INFINITY {
            let mut change = before * (r.mu_ln_beta1 - h.ln_beta1);
            if r.mu_ln_base != h.ln_mu_base {
                change += nadam_schedule_sum(h.ln_mu_base, before)
                    - nadam_schedule_sum(r.mu_ln_base, before);
            }
            excess += change;
        }
    }
    excess
}

/// `prepare_group` of `shaders/nadam.wgsl`, carrying the `running` values on.
pub fn prepare_nadam(
    h: &NAdamHyper,
    step: f32,
    o: NAdamOptions,
    running: &mut NAdamRunning,
) -> NAdamDerived {
    let bias_correction2 = bias_correction(h.ln_beta2, step);
    if o.optax_form {
        return NAdamDerived {
            grad_coef: h.lr * h.one_minus_beta1 / bias_correction(h.ln_beta1, step),
            exp_avg_coef: h.lr * h.beta1 / bias_correction(h.ln_beta1, step + 1.0),
            bias_correction2,
        };
    }
    let (_, one_minus_mu) = nadam_mu(h, step);
    let (mu_next, _) = nadam_mu(h, step + 1.0);
    let excess = nadam_ln_excess(h, running, step);
    *running = NAdamRunning {
        mu_ln_beta1: h.ln_beta1,
        mu_ln_base: h.ln_mu_base,
        mu_ln_excess: excess,
    };
    let one_minus_product = -expm1_nonpositive(nadam_ln_mu_product(h, step) + excess);
    let one_minus_product_next = -expm1_nonpositive(nadam_ln_mu_product(h, step + 1.0) + excess);
    NAdamDerived {
        grad_coef: h.lr * one_minus_mu / one_minus_product,
        exp_avg_coef: h.lr * mu_next / one_minus_product_next,
        bias_correction2,
    }
}

/// `nadam_math` of `shaders/nadam.wgsl`.
pub fn nadam_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_sq: &mut f32,
    h: &NAdamHyper,
    d: &NAdamDerived,
    o: NAdamOptions,
) {
    let g = adam_moments(p, grad, exp_avg, exp_avg_sq, &h.moments(), o.into());
    let denom = (*exp_avg_sq / d.bias_correction2 + h.eps_root).sqrt() + h.eps;
    *p -= d.grad_coef * (g / denom);
    *p -= d.exp_avg_coef * (*exp_avg / denom);
}

impl Mirror for NAdamConfig {
    type Prepared = (NAdamHyper, NAdamDerived, NAdamOptions);

    fn prologue(&self, step: f32, running: &mut [f32]) -> Self::Prepared {
        let (h, o) = (self.hyper(), self.options());
        (h, prepare_nadam(&h, step, o, running_of(running)), o)
    }

    fn update(&self, (h, d, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        tensor.each(&mut |p, g, [s0, s1, _]| nadam_math(p, g, s0, s1, h, d, *o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `1 - mu_product` from the closed form against PyTorch's running product, in f64.
    #[test]
    fn nadam_mu_product_matches_the_running_product() {
        let mut worst = 0.0_f64;
        for momentum_decay in [0.0, 1e-6, 4e-3, 0.1, 1.0, 50.0] {
            for beta1 in [0.0, 0.5, 0.9, 0.99, 0.999] {
                let h = NAdamConfig::default()
                    .with_betas(beta1, 0.999)
                    .with_momentum_decay(momentum_decay)
                    .hyper();
                let mut product = 1.0_f64;
                for step in 1..=20_000u32 {
                    let t = f64::from(step);
                    product *= beta1 * (1.0 - 0.5 * 0.96_f64.powf(t * momentum_decay));
                    if step > 64 && step % 97 != 0 {
                        continue;
                    }
                    let exact = 1.0 - product;
                    let got = f64::from(-expm1_nonpositive(nadam_ln_mu_product(&h, step as f32)));
                    // The exponent's own rounding: |ln mu_product| * eps relative to the product.
                    let ln_product = product.ln().max(-104.0);
                    let slack = (1.0 + ln_product.abs()) * product;
                    let ulps = (got - exact).abs() / ((exact + slack) * f64::from(f32::EPSILON));
                    worst = worst.max(ulps);
                    assert!(
                        ulps <= 8.0,
                        "beta1 {beta1} momentum_decay {momentum_decay} step {step}: \
                         1 - mu_product {got} vs {exact} ({ulps} ulp)"
                    );
                }
            }
        }
        eprintln!("nadam_ln_mu_product: worst {worst:.2} ulp");
    }
}
