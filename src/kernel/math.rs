//! Host twins of `shaders/common/math.wgsl`, operation for operation, in f32: what the host
//! derives as the device does (NAdam's `mu_product` for checkpoints) and what the CPU
//! reference mirrors (`reference::math` re-exports them).

// Constants carry the same decimal digits as the WGSL source, so both round to the same f32.
#![allow(clippy::excessive_precision)]

const LN2_HI: f32 = 6.9314575195e-01;
const LN2_LO: f32 = 1.4286067653e-06;
const LOG2_E: f32 = 1.4426950409e+00;

/// `exp(x) - 1` for `x <= 0`, as `expm1_nonpositive` in WGSL.
pub fn expm1_nonpositive(x: f32) -> f32 {
    if x < -104.0 {
        return -1.0;
    }
    // WGSL's round() rounds halves to even.
    let k = (x * LOG2_E).round_ties_even();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p: f32 = 2.7557319224e-07;
    p = p * r + 2.7557319224e-06;
    p = p * r + 2.4801587302e-05;
    p = p * r + 1.9841269841e-04;
    p = p * r + 1.3888888889e-03;
    p = p * r + 8.3333333333e-03;
    p = p * r + 4.1666666667e-02;
    p = p * r + 1.6666666667e-01;
    p = p * r + 5.0000000000e-01;
    let em = r + r * r * p;
    let s = 2f64.powi(k as i32) as f32;
    s * em + (s - 1.0)
}

/// `1 - beta^step` from `ln(beta)`, as `bias_correction` in WGSL.
pub fn bias_correction(ln_beta: f32, step: f32) -> f32 {
    -expm1_nonpositive(step * ln_beta)
}

/// PyTorch's lerp, as `lerp` in WGSL.
pub fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight.abs() < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

/// WGSL's `sign`: -1, 0 or 1 (0 for both zeros; NaN stays NaN).
pub fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_correction_matches_f64_within_a_few_ulp() {
        for beta in [0.0_f64, 0.5, 0.9, 0.99, 0.999, 0.9999, 0.999_999] {
            for step in [1u32, 2, 3, 10, 100, 1000, 10_000, 100_000, 1_000_000] {
                let exact = 1.0 - beta.powi(step as i32);
                let got = f64::from(bias_correction(beta.ln() as f32, step as f32));
                let ulp = f64::from(f32::EPSILON) * exact;
                // ln(beta) rounded to f32 alone moves step * ln(beta) by half an ulp of itself.
                let input_error = if beta > 0.0 {
                    (step as f64 * beta.ln()).abs() * f64::from(f32::EPSILON) * (1.0 - exact)
                } else {
                    0.0
                };
                assert!(
                    (got - exact).abs() <= 4.0 * ulp + input_error,
                    "beta {beta} step {step}: {got} vs {exact}"
                );
            }
        }
    }
}
