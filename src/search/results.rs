//! What a search found: every trial's scores, configurations ranked, a table and CSV.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use super::Trial;

/// One trial and the scores it reported.
///
/// ```
/// use wgpu_optim::search::{Search, SearchSpace, Trial};
/// let space = SearchSpace::new().with_uniform("x", 0.0, 1.0);
/// let mut objective = |t: &[Trial], budget: u64| -> wgpu_optim::Result<Vec<f64>> {
///     Ok(vec![budget as f64; t.len()])
/// };
/// let results = Search::new(space).random(2, 5, &mut objective)?;
/// let record = &results.trials()[0];
/// assert_eq!((record.budget(), record.score()), (5, 5.0));
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TrialRecord {
    /// The trial.
    pub trial: Trial,
    /// `(budget, score)` of every [`Objective::run`](super::Objective::run) call that held the
    /// trial, in order (budgets increase).
    pub history: Vec<(u64, f64)>,
    /// Whether successive halving stopped it before the last rung.
    pub stopped_early: bool,
}

impl TrialRecord {
    /// The budget the trial reached (0 if it never ran).
    pub fn budget(&self) -> u64 {
        self.history.last().map_or(0, |h| h.0)
    }

    /// Its score at that budget (NaN if it never ran).
    pub fn score(&self) -> f64 {
        self.history.last().map_or(f64::NAN, |h| h.1)
    }
}

/// One configuration's result over its restarts: a row of [`SearchResults::ranking`].
/// Ray Tune's `ResultGrid` row, Optuna's `study.trials_dataframe()` grouped by params.
///
/// ```
/// use wgpu_optim::search::{Search, SearchSpace, Trial};
/// let space = SearchSpace::new().with_choice("x", [1.0, 2.0]);
/// let mut objective = |t: &[Trial], _: u64| -> wgpu_optim::Result<Vec<f64>> {
///     Ok(t.iter().map(|t| t.values[0] + t.restart as f64).collect()) // restarts score x, x + 1
/// };
/// let results = Search::new(space).with_restarts(2).grid(1, 1, &mut objective)?;
/// let best = results.best().unwrap();
/// assert_eq!((best.values.as_slice(), best.mean, best.count), (&[1.0][..], 1.5, 2));
/// assert!((best.std - 0.5f64.sqrt()).abs() < 1e-15); // sample std of {1, 2}
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigSummary {
    /// The configuration's index ([`Trial::config`]).
    pub config: usize,
    /// Its values, in the space's order.
    pub values: Vec<f64>,
    /// The budget its trials reached.
    pub budget: u64,
    /// Mean of its trials' last scores: non-finite if any of them is.
    pub mean: f64,
    /// Sample standard deviation of those scores (`n − 1` in the denominator, as NumPy's
    /// `std(ddof=1)` and pandas' `std()`); NaN for a single trial.
    pub std: f64,
    /// Number of trials (restarts) averaged.
    pub count: usize,
}

/// Mean and sample standard deviation (`n − 1`) of `scores`.
pub(crate) fn mean_std(scores: &[f64]) -> (f64, f64) {
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (
        mean,
        if scores.len() > 1 {
            var.sqrt()
        } else {
            f64::NAN
        },
    )
}

/// Orders scores best first: finite ones ascending, then every non-finite one.
pub(crate) fn by_score(a: f64, b: f64) -> Ordering {
    let key = |s: f64| if s.is_finite() { s } else { f64::INFINITY };
    (!a.is_finite())
        .cmp(&!b.is_finite())
        .then(key(a).total_cmp(&key(b)))
}

/// Every trial of a search with its scores, and the configurations ranked: those that reached
/// the largest budget first (successive halving's survivors), then by mean score over
/// restarts, lower first, non-finite last, ties by configuration index.
///
/// `Display` prints the top 10 as a fixed-width table ([`table`](Self::table) for another
/// count); [`to_csv`](Self::to_csv) writes one row per trial and
/// [`summary_csv`](Self::summary_csv) one per configuration. Optuna's
/// `study.trials_dataframe()`, Ray Tune's `ResultGrid.get_dataframe()`.
///
/// ```
/// use wgpu_optim::search::{Search, SearchSpace, Trial};
/// let space = SearchSpace::new().with_log_uniform("lr", 1e-3, 1e-1);
/// let mut objective = |t: &[Trial], _: u64| -> wgpu_optim::Result<Vec<f64>> {
///     Ok(t.iter().map(|t| t.values[0]).collect())
/// };
/// let results = Search::new(space).grid(3, 1, &mut objective)?;
/// assert_eq!(results.best().unwrap().values, [1e-3]);
/// assert!(results.to_csv().starts_with("trial,config,restart,seed,lr,budget,score,stopped\n"));
/// print!("{}", results.table(3));
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SearchResults {
    names: Arc<[String]>,
    trials: Vec<TrialRecord>,
    ranking: Vec<ConfigSummary>,
}

impl SearchResults {
    pub(crate) fn new(names: Arc<[String]>, trials: Vec<TrialRecord>) -> Self {
        let configs = trials.iter().map(|r| r.trial.config + 1).max().unwrap_or(0);
        let mut members: Vec<Vec<&TrialRecord>> = vec![Vec::new(); configs];
        for r in &trials {
            members[r.trial.config].push(r);
        }
        let mut ranking: Vec<ConfigSummary> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.is_empty())
            .map(|(config, m)| {
                let scores: Vec<f64> = m.iter().map(|r| r.score()).collect();
                let (mean, std) = mean_std(&scores);
                ConfigSummary {
                    config,
                    values: m[0].trial.values.clone(),
                    budget: m.iter().map(|r| r.budget()).max().unwrap_or(0),
                    mean,
                    std,
                    count: m.len(),
                }
            })
            .collect();
        ranking.sort_by(|a, b| {
            b.budget
                .cmp(&a.budget)
                .then(by_score(a.mean, b.mean))
                .then(a.config.cmp(&b.config))
        });
        SearchResults {
            names,
            trials,
            ranking,
        }
    }

    /// The dimensions' names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every trial, in [`Trial::id`] order.
    pub fn trials(&self) -> &[TrialRecord] {
        &self.trials
    }

    /// The configurations, best first (see the type's docs for the order).
    pub fn ranking(&self) -> &[ConfigSummary] {
        &self.ranking
    }

    /// The best configuration: the first of the ranking, if its mean is finite.
    pub fn best(&self) -> Option<&ConfigSummary> {
        self.ranking.first().filter(|c| c.mean.is_finite())
    }

    /// The ranking's first `top` rows as a fixed-width table (`Display`).
    pub fn table(&self, top: usize) -> RankedTable<'_> {
        RankedTable { results: self, top }
    }

    /// One row per trial after the header
    /// `trial,config,restart,seed,<dimension names...>,budget,score,stopped`: the budget it
    /// reached, its score there, and `stopped` 1 if successive halving stopped it early.
    /// Numbers are written in Rust's shortest round-trip form, so parsing gives back the same
    /// `f64`s (non-finite as `NaN`, `inf`, `-inf`).
    pub fn to_csv(&self) -> String {
        let mut out = format!(
            "trial,config,restart,seed,{},budget,score,stopped\n",
            self.names.join(",")
        );
        for r in &self.trials {
            let t = &r.trial;
            let _ = write!(out, "{},{},{},{}", t.id, t.config, t.restart, t.seed);
            for v in &t.values {
                let _ = write!(out, ",{v}");
            }
            let _ = writeln!(
                out,
                ",{},{},{}",
                r.budget(),
                r.score(),
                u8::from(r.stopped_early)
            );
        }
        out
    }

    /// One row per configuration, best first, after the header
    /// `rank,config,<dimension names...>,budget,mean,std,count` (rank from 1).
    pub fn summary_csv(&self) -> String {
        let mut out = format!(
            "rank,config,{},budget,mean,std,count\n",
            self.names.join(",")
        );
        for (rank, c) in self.ranking.iter().enumerate() {
            let _ = write!(out, "{},{}", rank + 1, c.config);
            for v in &c.values {
                let _ = write!(out, ",{v}");
            }
            let _ = writeln!(out, ",{},{},{},{}", c.budget, c.mean, c.std, c.count);
        }
        out
    }
}

impl fmt::Display for SearchResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table(10).fmt(f)
    }
}

/// The top rows of a [`SearchResults`] ranking as a fixed-width text table: rank,
/// configuration index, one column per dimension, budget, mean, std and count (`-` for the
/// std of a single trial).
///
/// ```
/// # use wgpu_optim::search::{Search, SearchSpace, Trial};
/// # let space = SearchSpace::new().with_uniform("x", 0.0, 1.0);
/// # let mut objective = |t: &[Trial], _: u64| -> wgpu_optim::Result<Vec<f64>> { Ok(vec![1.0; t.len()]) };
/// let results = Search::new(space).random(4, 1, &mut objective)?;
/// let text = results.table(2).to_string();
/// assert_eq!(text.lines().count(), 1 + 2); // header and two rows
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RankedTable<'a> {
    results: &'a SearchResults,
    top: usize,
}

impl fmt::Display for RankedTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NUM: usize = 11;
        let widths: Vec<usize> = self
            .results
            .names
            .iter()
            .map(|n| n.len().max(NUM))
            .collect();
        write!(f, "{:>4} {:>6}", "rank", "config")?;
        for (name, w) in self.results.names.iter().zip(&widths) {
            write!(f, " {name:>w$}")?;
        }
        writeln!(
            f,
            " {:>8} {:>NUM$} {:>NUM$} {:>5}",
            "budget", "mean", "std", "count"
        )?;
        for (rank, c) in self.results.ranking.iter().take(self.top).enumerate() {
            write!(f, "{:>4} {:>6}", rank + 1, c.config)?;
            for (v, w) in c.values.iter().zip(&widths) {
                write!(f, " {v:>w$.4e}")?;
            }
            let std = if c.std.is_nan() {
                "-".to_string()
            } else {
                format!("{:.4e}", c.std)
            };
            writeln!(
                f,
                " {:>8} {:>NUM$.4e} {std:>NUM$} {:>5}",
                c.budget, c.mean, c.count
            )?;
        }
        Ok(())
    }
}
