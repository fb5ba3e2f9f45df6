//! Search spaces: named dimensions and their map to the unit cube.

use std::sync::Arc;

use super::rng::Rng;
use crate::error::{Error, Result};

/// The largest integer bound an [`Dimension::Int`] takes: every integer up to 2⁵³ is an f64.
const MAX_EXACT_INT: i64 = 1 << 53;

/// The largest grid [`SearchSpace::grid`] builds, in configurations: 2²⁴ (16.7 million runs) is
/// already past what any search trains and over 128 MiB per dimension, so a larger grid is
/// a mistake, refused before anything is allocated.
const MAX_GRID: usize = 1 << 24;

/// Column names of the CSV files, refused as dimension names so that a column is never
/// ambiguous.
const RESERVED: [&str; 11] = [
    "trial", "config", "restart", "seed", "budget", "score", "stopped", "rank", "mean", "std",
    "count",
];

/// One axis of a [`SearchSpace`], as Optuna's distributions (`FloatDistribution`,
/// `FloatDistribution(log=True)`, `IntDistribution`, `CategoricalDistribution`) and Ray Tune's
/// `tune.uniform`, `tune.loguniform`, `tune.randint`, `tune.choice`.
///
/// Every value is an `f64` (an integer dimension's values are whole numbers). Each dimension
/// maps to `[0, 1]`, the unit cube where random search samples and the Gaussian process of
/// [`Bayes`](super::Bayes) models: linearly for `Uniform`, in log space for `LogUniform`, and
/// as equal cells for the discrete `Int` and `Choice` (a value at its cell's centre).
///
/// ```
/// use wgpu_optim::search::Dimension;
/// let lr = Dimension::LogUniform { low: 1e-4, high: 1e-1 };
/// assert!((lr.from_unit(0.5) - 10f64.powf(-2.5)).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Dimension {
    /// Uniform on `[low, high]` (`low < high`, both finite, and the width `high - low` finite
    /// too: `-1e308..1e308` is refused, since every value drawn from an infinite width is a
    /// bound).
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Log-uniform on `[low, high]` (`0 < low < high`, both finite, and `ln low < ln high`, which
    /// adjacent large floats can miss): uniform in `ln x`, for learning rates and weight decays.
    LogUniform {
        /// Lower bound (> 0).
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// The integers `low..=high` (`low < high`, |bounds| ≤ 2⁵³).
    Int {
        /// Smallest value.
        low: i64,
        /// Largest value (inclusive).
        high: i64,
    },
    /// One of a list of values (finite, at least one), such as batch sizes or a categorical
    /// choice coded as numbers. The Gaussian process treats the list as ordered.
    Choice(Vec<f64>),
}

impl Dimension {
    fn validate(&self, name: &str) -> Result<()> {
        let bad = |field: &str, value: f64, expected: &'static str| {
            Err(Error::InvalidSearch {
                setting: format!("{name}.{field}"),
                value,
                expected,
            })
        };
        match *self {
            Dimension::Uniform { low, high } | Dimension::LogUniform { low, high } => {
                if !low.is_finite() {
                    return bad("low", low, "a finite number");
                }
                if !high.is_finite() || high <= low {
                    return bad("high", high, "a finite number > low");
                }
                let log = matches!(self, Dimension::LogUniform { .. });
                if log && low <= 0.0 {
                    return bad("low", low, "> 0 (a log-uniform dimension)");
                }
                // `from_unit` and `to_unit` scale by the width: an infinite one (finite bounds
                // of opposite signs further apart than f64::MAX) maps every point to `high`,
                // or to NaN at `u = 0`. In log space the width of positive finite bounds is at
                // most about 1454, but it rounds to 0 for neighbouring floats far from 1, which
                // `to_unit` divides by.
                if !log && (high - low).is_infinite() {
                    return bad("high", high, "a finite number with high - low finite");
                }
                if log && high.ln() - low.ln() <= 0.0 {
                    return bad("high", high, "a finite number with ln(high) > ln(low)");
                }
            }
            Dimension::Int { low, high } => {
                // `unsigned_abs`, since `i64::MIN.abs()` overflows.
                if low.unsigned_abs() > MAX_EXACT_INT.unsigned_abs() {
                    return bad("low", low as f64, "|low| <= 2^53");
                }
                if high.unsigned_abs() > MAX_EXACT_INT.unsigned_abs() || high <= low {
                    return bad("high", high as f64, "> low and <= 2^53");
                }
            }
            Dimension::Choice(ref values) => {
                if values.is_empty() {
                    return bad("values", 0.0, "at least one value");
                }
                if let Some(&v) = values.iter().find(|v| !v.is_finite()) {
                    return bad("values", v, "finite values");
                }
            }
        }
        Ok(())
    }

    /// Number of cells of a discrete dimension (`None` for a continuous one).
    fn cells(&self) -> Option<f64> {
        match self {
            Dimension::Int { low, high } => Some((high - low) as f64 + 1.0),
            Dimension::Choice(values) => Some(values.len() as f64),
            _ => None,
        }
    }

    /// The value at `u` in `[0, 1]`: `low + u (high − low)`, its log-space analogue, or the
    /// value of the cell `⌊u n⌋` of a discrete dimension with `n` values. `u` outside `[0, 1]`
    /// is clamped and a NaN `u` is 0, so a valid dimension only ever gives a finite value it
    /// [`contains`](Self::contains).
    pub fn from_unit(&self, u: f64) -> f64 {
        // `clamp` passes NaN through, and a NaN here would become a configuration.
        let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
        let cell = |n: f64| (u * n).floor().min(n - 1.0);
        match self {
            Dimension::Uniform { low, high } => (low + u * (high - low)).clamp(*low, *high),
            Dimension::LogUniform { low, high } => (low.ln() + u * (high.ln() - low.ln()))
                .exp()
                .clamp(*low, *high),
            Dimension::Int { low, high } => *low as f64 + cell((high - low) as f64 + 1.0),
            Dimension::Choice(values) => values[cell(values.len() as f64) as usize],
        }
    }

    /// Where `value` lies in `[0, 1]`: the inverse of [`from_unit`](Self::from_unit), a
    /// discrete value at the centre of its cell (a value not in a `Choice` list at its nearest
    /// entry's).
    pub fn to_unit(&self, value: f64) -> f64 {
        match self {
            Dimension::Uniform { low, high } => (value - low) / (high - low),
            Dimension::LogUniform { low, high } => (value.ln() - low.ln()) / (high.ln() - low.ln()),
            Dimension::Int { low, .. } => {
                (value.round() - *low as f64 + 0.5) / self.cells().unwrap_or(1.0)
            }
            Dimension::Choice(values) => {
                let nearest = values
                    .iter()
                    .enumerate()
                    .min_by(|a, b| (a.1 - value).abs().total_cmp(&(b.1 - value).abs()))
                    .map_or(0, |(i, _)| i);
                (nearest as f64 + 0.5) / values.len() as f64
            }
        }
    }

    /// Whether `value` is one this dimension can take.
    pub fn contains(&self, value: f64) -> bool {
        match self {
            Dimension::Uniform { low, high } | Dimension::LogUniform { low, high } => {
                (*low..=*high).contains(&value)
            }
            Dimension::Int { low, high } => {
                value.fract() == 0.0 && (*low as f64..=*high as f64).contains(&value)
            }
            Dimension::Choice(values) => values.contains(&value),
        }
    }

    /// How many values [`grid`](Self::grid) gives, computed without building them (`None`
    /// past `usize`).
    fn grid_len(&self, points: usize) -> Option<usize> {
        match self {
            Dimension::Uniform { .. } | Dimension::LogUniform { .. } => Some(points),
            // At most 2^54 + 1 for a valid dimension: no i64 overflow, but past a 32-bit usize.
            Dimension::Int { low, high } => usize::try_from(high - low).ok()?.checked_add(1),
            Dimension::Choice(values) => Some(values.len()),
        }
    }

    /// The grid values: `points` evenly spaced from `low` to `high` (log-spaced for
    /// `LogUniform`, the midpoint when `points == 1`), every value of a discrete dimension.
    /// Callers bound [`grid_len`](Self::grid_len) first: an `Int` dimension can hold 2⁵⁴ values.
    fn grid(&self, points: usize) -> Vec<f64> {
        match self {
            Dimension::Uniform { low, high } | Dimension::LogUniform { low, high } => {
                if points == 1 {
                    return vec![self.from_unit(0.5)];
                }
                (0..points)
                    .map(|i| match i {
                        0 => *low,
                        i if i == points - 1 => *high,
                        i => self.from_unit(i as f64 / (points - 1) as f64),
                    })
                    .collect()
            }
            Dimension::Int { low, high } => (*low..=*high).map(|v| v as f64).collect(),
            Dimension::Choice(values) => values.clone(),
        }
    }
}

/// A search space: named [`Dimension`]s in order. A configuration is one value per dimension,
/// in this order. The equivalent of Optuna's distributions dict, Ray Tune's `param_space`, or
/// scikit-learn's `ParameterGrid`/`ParameterSampler` input.
///
/// Built with infallible `with_*` calls; every driver calls [`validate`](Self::validate)
/// before it runs anything.
///
/// ```
/// use wgpu_optim::search::{Rng, SearchSpace};
/// let space = SearchSpace::new()
///     .with_log_uniform("lr", 1e-4, 1e-1)
///     .with_uniform("beta1", 0.8, 0.99)
///     .with_choice("batch", [32.0, 64.0, 128.0]);
/// space.validate()?;
/// let config = space.sample(&mut Rng::new(0));
/// assert!(space.contains(&config));
/// assert_eq!(space.grid(3)?.len(), 3 * 3 * 3);
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct SearchSpace {
    names: Vec<String>,
    dims: Vec<Dimension>,
}

impl SearchSpace {
    /// An empty space (which [`validate`](Self::validate) refuses until a dimension is added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dimension named `name`.
    pub fn with(mut self, name: impl Into<String>, dimension: Dimension) -> Self {
        self.names.push(name.into());
        self.dims.push(dimension);
        self
    }

    /// Adds [`Dimension::Uniform`] on `[low, high]`.
    pub fn with_uniform(self, name: impl Into<String>, low: f64, high: f64) -> Self {
        self.with(name, Dimension::Uniform { low, high })
    }

    /// Adds [`Dimension::LogUniform`] on `[low, high]`.
    pub fn with_log_uniform(self, name: impl Into<String>, low: f64, high: f64) -> Self {
        self.with(name, Dimension::LogUniform { low, high })
    }

    /// Adds [`Dimension::Int`], the integers `low..=high`.
    pub fn with_int(self, name: impl Into<String>, low: i64, high: i64) -> Self {
        self.with(name, Dimension::Int { low, high })
    }

    /// Adds [`Dimension::Choice`] among `values`.
    pub fn with_choice(self, name: impl Into<String>, values: impl Into<Vec<f64>>) -> Self {
        self.with(name, Dimension::Choice(values.into()))
    }

    /// The dimensions' names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The dimensions, in order.
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dims
    }

    /// Number of dimensions.
    pub fn len(&self) -> usize {
        self.dims.len()
    }

    /// Whether the space has no dimension.
    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    /// Checks the space: at least one dimension; names non-empty, distinct, free of `,` `"`
    /// and line breaks (they head CSV columns) and none of the CSV's own column names
    /// (`trial`, `config`, `restart`, `seed`, `budget`, `score`, `stopped`, `rank`, `mean`,
    /// `std`, `count`); every dimension valid.
    pub fn validate(&self) -> Result<()> {
        if self.dims.is_empty() {
            return Err(Error::InvalidSearch {
                setting: "dimensions".into(),
                value: 0.0,
                expected: "at least one dimension",
            });
        }
        for (i, (name, dim)) in self.names.iter().zip(&self.dims).enumerate() {
            let unusable = name.is_empty()
                || name.contains([',', '"', '\n', '\r'])
                || RESERVED.contains(&name.as_str());
            if unusable {
                return Err(Error::InvalidSearch {
                    setting: format!("name of dimension {i} ({name:?})"),
                    value: i as f64,
                    expected: "a non-empty name without , \" or line breaks, not a CSV column",
                });
            }
            if self.names[..i].contains(name) {
                return Err(Error::InvalidSearch {
                    setting: format!("name of dimension {i} ({name:?})"),
                    value: i as f64,
                    expected: "a name no other dimension has",
                });
            }
            dim.validate(name)?;
        }
        Ok(())
    }

    /// Every configuration of a grid search, as scikit-learn's `ParameterGrid` and Ray Tune's
    /// `tune.grid_search`: `points` values per continuous dimension (evenly spaced, log-spaced
    /// for log-uniform ones, both bounds included; the midpoint when `points == 1`) and every
    /// value of a discrete one, in lexicographic order with the last dimension varying fastest.
    ///
    /// The grid holds at most 2²⁴ configurations: a larger one (`points` past 2²⁴, an integer
    /// dimension `0..=2^40`, or many dimensions) is [`Error::InvalidSearch`] on `grid size`,
    /// refused before any value is built.
    pub fn grid(&self, points: usize) -> Result<Vec<Vec<f64>>> {
        let total = self.grid_size(points)?;
        let axes: Vec<Vec<f64>> = self.dims.iter().map(|d| d.grid(points)).collect();
        Ok((0..total)
            .map(|mut k| {
                let mut config = vec![0.0; axes.len()];
                for (slot, axis) in config.iter_mut().zip(&axes).rev() {
                    *slot = axis[k % axis.len()];
                    k /= axis.len();
                }
                config
            })
            .collect())
    }

    /// The number of configurations [`grid`](Self::grid)`(points)` holds, checking the space,
    /// `points` and the size limit, from the dimensions' value counts alone: an `Int` dimension
    /// of 2⁴⁰ values costs nothing here.
    pub(crate) fn grid_size(&self, points: usize) -> Result<usize> {
        self.validate()?;
        if points == 0 {
            return Err(Error::InvalidSearch {
                setting: "points".into(),
                value: 0.0,
                expected: ">= 1",
            });
        }
        self.dims
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(d.grid_len(points)?))
            .filter(|&n| n <= MAX_GRID)
            .ok_or_else(|| Error::InvalidSearch {
                setting: "grid size".into(),
                // In f64, which saturates to inf rather than wrapping like the usize product.
                value: self
                    .dims
                    .iter()
                    .map(|d| d.grid_len(points).map_or(f64::INFINITY, |n| n as f64))
                    .product(),
                expected: "at most 2^24 configurations",
            })
    }

    /// One configuration drawn at random: each dimension independently uniform in the unit
    /// cube, mapped by [`Dimension::from_unit`] (so log-uniform values are uniform in `ln x`).
    pub fn sample(&self, rng: &mut Rng) -> Vec<f64> {
        self.dims
            .iter()
            .map(|d| d.from_unit(rng.next_f64()))
            .collect()
    }

    /// A configuration's point in the unit cube ([`Dimension::to_unit`] per dimension).
    pub fn to_unit(&self, config: &[f64]) -> Vec<f64> {
        self.dims
            .iter()
            .zip(config)
            .map(|(d, &v)| d.to_unit(v))
            .collect()
    }

    /// The configuration at a point of the unit cube ([`Dimension::from_unit`] per dimension).
    pub fn from_unit(&self, unit: &[f64]) -> Vec<f64> {
        self.dims
            .iter()
            .zip(unit)
            .map(|(d, &u)| d.from_unit(u))
            .collect()
    }

    /// Whether `config` has one value per dimension, each one it can take.
    pub fn contains(&self, config: &[f64]) -> bool {
        config.len() == self.dims.len() && self.dims.iter().zip(config).all(|(d, &v)| d.contains(v))
    }

    /// [`contains`](Self::contains) as a typed error naming the first bad value.
    pub(crate) fn check(&self, config: &[f64]) -> Result<()> {
        if config.len() != self.dims.len() {
            return Err(Error::WrongLength {
                what: "configuration",
                expected: self.dims.len(),
                actual: config.len(),
            });
        }
        for ((name, dim), &v) in self.names.iter().zip(&self.dims).zip(config) {
            if !dim.contains(v) {
                return Err(Error::InvalidSearch {
                    setting: name.clone(),
                    value: v,
                    expected: "a value of its dimension",
                });
            }
        }
        Ok(())
    }

    pub(crate) fn shared_names(&self) -> Arc<[String]> {
        self.names.clone().into()
    }
}
