//! The error function and the normal distribution, to about 1e-15 relative, for expected
//! improvement.
//!
//! Two classical expansions, each where it converges fast and without cancellation:
//! - `|x| < 2`: the series of positive terms (Abramowitz & Stegun 7.1.6)
//!   `erf x = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·5···(2n+1))`, about 40 terms at x = 2;
//! - `x ≥ 2`: the continued fraction (A&S 7.1.14)
//!   `erfc x = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ···)))))`,
//!   evaluated by the modified Lentz method (Press et al., *Numerical Recipes* §5.2), 57 terms
//!   at x = 2 and fewer beyond.
//!
//! `e^(−x²)` is computed as `e^(−h²) · e^(−l(2h+l))` with `h` = x rounded down to 1/16, as in
//! W. J. Cody's `calerf`, so that rounding `x²` does not cost accuracy in the far tail.
//! Accepting A&S 7.1.26 (|error| ≤ 1.5e-7) would make expected improvement useless in the
//! tails, where Bayesian optimisation spends most of its candidates.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// `1/√π`.
const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3;

/// Where the series hands over to the continued fraction.
const SERIES_LIMIT: f64 = 2.0;

/// `e^(−x²)` without the error of rounding `x²` (Cody's split).
fn exp_neg_sq(x: f64) -> f64 {
    let hi = (x * 16.0).trunc() / 16.0;
    let lo = x - hi;
    (-hi * hi).exp() * (-lo * (hi + hi + lo)).exp()
}

/// A&S 7.1.6 for |x| < 2.
fn erf_series(x: f64) -> f64 {
    let x2 = 2.0 * x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term.abs() > 1e-17 * sum.abs() {
        n += 1.0;
        term *= x2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 * FRAC_1_SQRT_PI * exp_neg_sq(x) * sum
}

/// A&S 7.1.14 by modified Lentz for x ≥ 2.
fn erfc_fraction(x: f64) -> f64 {
    if x > 27.3 {
        return 0.0; // erfc(27.3) < 2^-1074: below the smallest subnormal
    }
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..500 {
        let a = 0.5 * k as f64;
        d = 1.0 / (x + a * d);
        c = x + a / c;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    FRAC_1_SQRT_PI * exp_neg_sq(x) / f
}

/// The error function `erf x = 2/√π ∫₀ˣ e^(−t²) dt` (C's `erf`, SciPy's `scipy.special.erf`),
/// to about 1e-15 relative (see the module docs for the method).
///
/// ```
/// use wgpu_optim::search::erf;
/// assert!((erf(1.0) - 0.842_700_792_949_714_9).abs() < 1e-15);
/// ```
pub fn erf(x: f64) -> f64 {
    if x.abs() < SERIES_LIMIT {
        erf_series(x)
    } else if x.is_nan() {
        f64::NAN
    } else {
        (1.0 - erfc_fraction(x.abs())).copysign(x)
    }
}

/// The complementary error function `erfc x = 1 − erf x`, accurate relative to itself in the
/// upper tail (where `1 − erf x` would cancel) to about 1e-14.
///
/// ```
/// use wgpu_optim::search::erfc;
/// assert!((erfc(5.0) / 1.537_459_794_428_034_8e-12 - 1.0).abs() < 1e-13);
/// ```
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else if x >= SERIES_LIMIT {
        erfc_fraction(x)
    } else if x > -SERIES_LIMIT {
        1.0 - erf_series(x)
    } else {
        2.0 - erfc_fraction(-x)
    }
}

/// The standard normal CDF `Φ(z) = ½ erfc(−z/√2)` (SciPy's `scipy.stats.norm.cdf`), accurate
/// relative to itself in the lower tail down to `Φ(−37) ≈ 6e-300`.
///
/// ```
/// use wgpu_optim::search::normal_cdf;
/// assert!((normal_cdf(1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
/// ```
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z * FRAC_1_SQRT_2)
}

/// The standard normal density `φ(z) = e^(−z²/2)/√(2π)`.
///
/// ```
/// use wgpu_optim::search::normal_pdf;
/// assert!((normal_pdf(0.0) - 0.398_942_280_401_432_7).abs() < 1e-16);
/// ```
pub fn normal_pdf(z: f64) -> f64 {
    exp_neg_sq(z * FRAC_1_SQRT_2) / (2.0 * PI).sqrt()
}

/// Expected improvement below `best` of a Gaussian prediction `N(mean, sd²)`, for
/// minimisation (Jones, Schonlau & Welch 1998; scikit-optimize's `gaussian_ei`, BoTorch's
/// `ExpectedImprovement(maximize=False)`):
///
/// `EI = E[max(best − xi − Y, 0)] = (best − xi − mean) Φ(z) + sd φ(z)`,
/// `z = (best − xi − mean) / sd`; `max(best − xi − mean, 0)` when `sd = 0`.
///
/// `xi ≥ 0` trades exploitation for exploration (scikit-optimize's default is 0.01 in the
/// units of the scores). Far below the incumbent (z ≪ 0) the two terms nearly cancel and the
/// result keeps about `16 − log10(z²)` digits, plenty to rank candidates.
///
/// ```
/// use wgpu_optim::search::expected_improvement;
/// // A prediction centred on the incumbent: EI = sd φ(0) = sd / √(2π).
/// let ei = expected_improvement(1.0, 2.0, 1.0, 0.0);
/// assert!((ei - 2.0 / (2.0 * std::f64::consts::PI).sqrt()).abs() < 1e-15);
/// ```
pub fn expected_improvement(mean: f64, sd: f64, best: f64, xi: f64) -> f64 {
    let improvement = best - xi - mean;
    if sd.is_nan() || sd <= 0.0 {
        return improvement.max(0.0);
    }
    let z = improvement / sd;
    (improvement * normal_cdf(z) + sd * normal_pdf(z)).max(0.0)
}
