//! A small Gaussian process for [`Bayes`](super::Bayes): Matérn 5/2 correlation on the unit
//! cube, a nugget, the amplitude profiled out of the likelihood, dense Cholesky.
//!
//! Scores are standardised before the fit, so the zero prior mean is the scores' mean. With the
//! correlation matrix `C = R(ℓ) + gI` (length scales ℓ, nugget g relative to the amplitude),
//! the amplitude that maximises the likelihood is `σ̂² = yᵀC⁻¹y / n` and the profile log
//! marginal likelihood is `−n/2 · (1 + ln 2π + ln σ̂²) − ½ ln|C|` (Rasmussen & Williams 2006,
//! §5.4; the profile as in DiceKriging and Jones et al. 1998).

/// Length scales tried, in units of the unit cube.
const LENGTH_SCALES: [f64; 12] = [
    0.03, 0.05, 0.08, 0.12, 0.18, 0.27, 0.4, 0.6, 0.9, 1.4, 2.0, 3.0,
];

/// Nuggets tried above the jitter: noise from none to a third of the scores' spread.
const NUGGETS: [f64; 4] = [1e-4, 1e-3, 1e-2, 1e-1];

/// Coordinate sweeps refining one length scale per dimension after the isotropic fit.
const ARD_SWEEPS: usize = 2;

/// Matérn 5/2 correlation at scaled distance `r`: `(1 + √5 r + 5r²/3) e^(−√5 r)`.
fn matern52(r: f64) -> f64 {
    let s = 5f64.sqrt() * r;
    (1.0 + s + s * s / 3.0) * (-s).exp()
}

fn correlation(a: &[f64], b: &[f64], length_scales: &[f64]) -> f64 {
    let r2: f64 = a
        .iter()
        .zip(b)
        .zip(length_scales)
        .map(|((x, y), l)| ((x - y) / l).powi(2))
        .sum();
    matern52(r2.sqrt())
}

/// In-place Cholesky `A = LLᵀ` of a row-major `n × n` matrix; `false` if not positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.is_nan() || d <= 0.0 {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
        for k in j + 1..n {
            a[j * n + k] = 0.0;
        }
    }
    true
}

/// Solves `Lx = b` in place.
fn solve_lower(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * b[k]).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

/// Solves `Lᵀx = b` in place.
fn solve_upper_t(l: &[f64], n: usize, b: &mut [f64]) {
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * b[k]).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

/// A fitted process: data, hyperparameters and the factors predictions need.
#[derive(Clone, Debug)]
pub(crate) struct Gp {
    x: Vec<Vec<f64>>,
    y: Vec<f64>,
    length_scales: Vec<f64>,
    nugget: f64,
    chol: Vec<f64>,
    alpha: Vec<f64>,
    amplitude: f64,
    log_det: f64,
}

impl Gp {
    /// Fits fixed hyperparameters; `None` when the matrix is not numerically positive definite.
    pub(crate) fn fit(
        x: Vec<Vec<f64>>,
        y: Vec<f64>,
        length_scales: Vec<f64>,
        nugget: f64,
    ) -> Option<Gp> {
        let n = x.len();
        let mut chol = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let c = correlation(&x[i], &x[j], &length_scales);
                chol[i * n + j] = c;
                chol[j * n + i] = c;
            }
            chol[i * n + i] += nugget;
        }
        if !cholesky(&mut chol, n) {
            return None;
        }
        let mut alpha = y.clone();
        solve_lower(&chol, n, &mut alpha);
        let quad: f64 = alpha.iter().map(|a| a * a).sum();
        solve_upper_t(&chol, n, &mut alpha);
        let log_det = 2.0 * (0..n).map(|i| chol[i * n + i].ln()).sum::<f64>();
        let amplitude = (quad / n as f64).max(1e-300);
        Some(Gp {
            x,
            y,
            length_scales,
            nugget,
            chol,
            alpha,
            amplitude,
            log_det,
        })
    }

    /// Fits with the length scales and nugget (≥ `jitter`) that maximise the profile log
    /// marginal likelihood: an isotropic grid search over (ℓ, g), then coordinate sweeps over
    /// each dimension's ℓ on the same grid.
    pub(crate) fn fit_best(x: Vec<Vec<f64>>, y: Vec<f64>, jitter: f64) -> Option<Gp> {
        let d = x.first().map_or(0, Vec::len);
        let mut best: Option<Gp> = None;
        let consider = |candidate: Option<Gp>, best: &mut Option<Gp>| {
            if let Some(gp) = candidate {
                let better = best
                    .as_ref()
                    .is_none_or(|b| gp.log_likelihood() > b.log_likelihood());
                if better && gp.log_likelihood().is_finite() {
                    *best = Some(gp);
                }
            }
        };
        let nuggets = std::iter::once(jitter).chain(NUGGETS.into_iter().filter(|&g| g > jitter));
        for g in nuggets {
            for l in LENGTH_SCALES {
                consider(Gp::fit(x.clone(), y.clone(), vec![l; d], g), &mut best);
            }
        }
        if d > 1 {
            for _ in 0..ARD_SWEEPS {
                for dim in 0..d {
                    let Some(current) = best.as_ref() else { break };
                    let (ls, g) = (current.length_scales.clone(), current.nugget);
                    for l in LENGTH_SCALES {
                        let mut trial = ls.clone();
                        trial[dim] = l;
                        consider(Gp::fit(x.clone(), y.clone(), trial, g), &mut best);
                    }
                }
            }
        }
        best
    }

    /// The profile log marginal likelihood of the data under these hyperparameters.
    pub(crate) fn log_likelihood(&self) -> f64 {
        let n = self.y.len() as f64;
        -0.5 * n * (1.0 + (2.0 * std::f64::consts::PI).ln() + self.amplitude.ln())
            - 0.5 * self.log_det
    }

    /// The posterior mean and standard deviation of the latent function at `point`.
    pub(crate) fn predict(&self, point: &[f64]) -> (f64, f64) {
        let n = self.x.len();
        let mut k: Vec<f64> = self
            .x
            .iter()
            .map(|xi| correlation(xi, point, &self.length_scales))
            .collect();
        let mean = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        solve_lower(&self.chol, n, &mut k);
        let explained: f64 = k.iter().map(|v| v * v).sum();
        (mean, (self.amplitude * (1.0 - explained).max(0.0)).sqrt())
    }

    /// The same hyperparameters refitted with one more observation (a kriging-believer or
    /// constant-liar fantasy).
    pub(crate) fn with_observation(&self, point: Vec<f64>, value: f64) -> Option<Gp> {
        let mut x = self.x.clone();
        let mut y = self.y.clone();
        x.push(point);
        y.push(value);
        Gp::fit(x, y, self.length_scales.clone(), self.nugget)
    }

    pub(crate) fn observations(&self) -> (&[Vec<f64>], &[f64]) {
        (&self.x, &self.y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_its_data_and_is_uncertain_away_from_it() {
        let x: Vec<Vec<f64>> = (0..6).map(|i| vec![i as f64 / 5.0]).collect();
        let y: Vec<f64> = x.iter().map(|p| (6.0 * p[0]).sin()).collect();
        let gp = Gp::fit(x.clone(), y.clone(), vec![0.3], 1e-10).unwrap();
        for (p, v) in x.iter().zip(&y) {
            let (m, s) = gp.predict(p);
            assert!((m - v).abs() < 1e-6, "mean {m} at {p:?} vs {v}");
            assert!(s < 1e-3, "sd {s} at a data point");
        }
        let (_, far) = gp.predict(&[3.0]);
        assert!(
            (far - gp.amplitude.sqrt()).abs() < 1e-6,
            "far from the data the sd is the prior's"
        );
    }

    #[test]
    fn likelihood_prefers_the_length_scale_of_the_data() {
        // A smooth function: the best isotropic length scale is not the shortest.
        let x: Vec<Vec<f64>> = (0..12).map(|i| vec![i as f64 / 11.0]).collect();
        let y: Vec<f64> = x.iter().map(|p| (2.0 * p[0]).sin()).collect();
        let gp = Gp::fit_best(x, y, 1e-8).unwrap();
        assert!(gp.length_scales[0] >= 0.4, "chose {:?}", gp.length_scales);
    }

    #[test]
    fn cholesky_matches_a_known_factor() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        assert!(cholesky(&mut a, 2));
        let expected = [2.0, 0.0, 1.0, 2f64.sqrt()];
        for (g, e) in a.iter().zip(expected) {
            assert!((g - e).abs() < 1e-15);
        }
        assert!(!cholesky(&mut [1.0, 2.0, 2.0, 1.0], 2));
    }
}
