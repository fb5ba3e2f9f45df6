//! Bayesian optimisation with batch expected improvement.

use super::gp::Gp;
use super::normal::expected_improvement;
use super::results::mean_std;
use super::rng::Rng;
use super::space::SearchSpace;
use super::{positive, Runner, Search, SearchResults};
use crate::error::{Error, Result};
use crate::search::Objective;

/// Standard deviations of the local perturbations, in units of the unit cube.
const LOCAL_SCALES: [f64; 3] = [0.1, 0.03, 0.01];

/// Two unit-cube points closer than this in every coordinate are the same configuration.
const SAME_POINT: f64 = 1e-9;

/// What a batch pretends a picked point scored before choosing the next point of the same
/// round (Ginsbourger, Le Riche & Carraro, "Kriging is well-suited to parallelize
/// optimization", 2010), so that the q points of a round spread out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Liar {
    /// Kriging believer: the model's own prediction there.
    #[default]
    KrigingBeliever,
    /// Constant liar with the best score seen (optimistic: the batch explores least).
    Min,
    /// Constant liar with the mean score seen.
    Mean,
    /// Constant liar with the worst score seen (pessimistic: the batch explores most).
    Max,
}

/// Settings of [`Search::bayes`]: Bayesian optimisation with expected improvement, each round
/// a population of `batch` configurations.
///
/// The model is a Gaussian process on the unit cube of the [`SearchSpace`] (log-uniform
/// dimensions in log space, discrete ones as ordered cells), with a Matérn 5/2 kernel, one
/// length scale per dimension and a nugget chosen by maximising the log marginal likelihood
/// over a grid (length scales 0.03 to 3, nuggets from `jitter` to 0.1 of the scores'
/// variance), fitted to the mean score of each configuration over its restarts, standardised
/// (non-finite scores count as the worst finite one). Each point of a round maximises expected
/// improvement over `candidates` random points and `local` Gaussian perturbations of the best
/// configuration seen and of the best random candidate; the next point of the same round is
/// chosen after a [`Liar`] fantasy. The first population is `initial` random configurations,
/// the same as [`Search::random`] with the same seed would draw first.
///
/// Jones, Schonlau & Welch, "Efficient Global Optimization of Expensive Black-Box Functions"
/// (1998); scikit-optimize's `gp_minimize(acq_func="EI")`, Optuna's `GPSampler`, BoTorch's
/// `qExpectedImprovement` (which integrates the batch by Monte Carlo where this uses the
/// kriging-believer heuristic).
///
/// ```
/// use wgpu_optim::search::{Bayes, Liar};
/// let bo = Bayes::new(6, 5, 4).with_liar(Liar::Min); // 6 random, then 5 rounds of 4
/// assert_eq!(bo.evaluations(), 26);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Bayes {
    /// Random configurations of the initial design (≥ 1; at least 2 for a model).
    pub initial: usize,
    /// Rounds of model-guided batches after the initial design.
    pub rounds: usize,
    /// Configurations per round (≥ 1), `q`: a round's population is `batch · R` trials.
    pub batch: usize,
    /// Random candidates scored per point picked (≥ 1; default 2048).
    pub candidates: usize,
    /// Local perturbations scored per point picked (default 512).
    pub local: usize,
    /// Exploration margin of expected improvement, in standard deviations of the scores seen
    /// (≥ 0; default 0.01, scikit-optimize's).
    pub xi: f64,
    /// Smallest nugget (noise variance relative to the signal's) added to the kernel's diagonal
    /// (in `(0, 1)`; default 1e-6): it keeps the Cholesky factorisation stable.
    pub jitter: f64,
    /// The fantasy of the batch heuristic.
    pub liar: Liar,
}

impl Bayes {
    /// `initial` random configurations, then `rounds` rounds of `batch`, with the defaults
    /// above.
    pub fn new(initial: usize, rounds: usize, batch: usize) -> Self {
        Bayes {
            initial,
            rounds,
            batch,
            candidates: 2048,
            local: 512,
            xi: 0.01,
            jitter: 1e-6,
            liar: Liar::KrigingBeliever,
        }
    }

    /// Sets the random candidates and local perturbations scored per point.
    pub fn with_candidates(mut self, candidates: usize, local: usize) -> Self {
        self.candidates = candidates;
        self.local = local;
        self
    }

    /// Sets the exploration margin `xi`.
    pub fn with_xi(mut self, xi: f64) -> Self {
        self.xi = xi;
        self
    }

    /// Sets the smallest nugget.
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the batch heuristic.
    pub fn with_liar(mut self, liar: Liar) -> Self {
        self.liar = liar;
        self
    }

    /// Configurations evaluated in all: `initial + rounds · batch`, saturating at `usize::MAX`
    /// (a count [`Search::bayes`] refuses: it runs at most 2²⁴ trials).
    pub fn evaluations(&self) -> usize {
        self.initial
            .saturating_add(self.rounds.saturating_mul(self.batch))
    }

    fn validate(&self) -> Result<()> {
        positive("initial", self.initial as u64)?;
        positive("batch", self.batch as u64)?;
        positive("candidates", self.candidates as u64)?;
        if !(self.xi >= 0.0 && self.xi.is_finite()) {
            return Err(Error::InvalidSearch {
                setting: "xi".into(),
                value: self.xi,
                expected: "a finite number >= 0",
            });
        }
        if !(self.jitter > 0.0 && self.jitter < 1.0) {
            return Err(Error::InvalidSearch {
                setting: "jitter".into(),
                value: self.jitter,
                expected: "in (0, 1)",
            });
        }
        Ok(())
    }
}

impl Search {
    /// Bayesian optimisation with expected improvement ([`Bayes`]): a random initial
    /// population, then `rounds` populations of `batch` configurations chosen by the model,
    /// every trial trained to `budget`. [`Bayes::evaluations`] times the restarts is at most
    /// 2²⁴ trials, checked before the first population runs.
    ///
    /// ```
    /// use wgpu_optim::search::{Bayes, Search, SearchSpace, Trial};
    /// let space = SearchSpace::new().with_uniform("x", 0.0, 1.0);
    /// let mut objective = |t: &[Trial], _: u64| -> wgpu_optim::Result<Vec<f64>> {
    ///     Ok(t.iter().map(|t| (t.values[0] - 0.3).powi(2)).collect())
    /// };
    /// let results = Search::new(space).with_seed(5).bayes(&Bayes::new(4, 3, 2), 1, &mut objective)?;
    /// assert_eq!(results.ranking().len(), 10);
    /// assert!(results.best().unwrap().mean < 1e-3);
    /// # Ok::<(), wgpu_optim::Error>(())
    /// ```
    pub fn bayes<O: Objective + ?Sized>(
        &self,
        settings: &Bayes,
        budget: u64,
        objective: &mut O,
    ) -> Result<SearchResults> {
        settings.validate()?;
        positive("budget", budget)?;
        // The whole search, not just its first population, so that a run of absurd length is
        // refused before it starts rather than after hours of rounds. `evaluations` saturates,
        // and usize::MAX configurations is past the limit for every R >= 1.
        self.validate()?;
        self.trial_count(settings.evaluations())?;
        let initial = self.random_trials(settings.initial)?;
        let mut rng = self.sampler();
        for _ in 0..settings.initial {
            self.space.sample(&mut rng); // continue the stream past the initial design
        }
        let mut runner = Runner::new(objective, self.population);
        let ids = runner.add(initial);
        runner.run(&ids, budget)?;
        let mut configs: Vec<Vec<f64>> = runner
            .records
            .iter()
            .step_by(self.restarts)
            .map(|r| r.trial.values.clone())
            .collect();
        for _ in 0..settings.rounds {
            let scores: Vec<f64> = runner
                .records
                .chunks(self.restarts)
                .map(|c| mean_std(&c.iter().map(|r| r.score()).collect::<Vec<_>>()).0)
                .collect();
            let picks = propose(&self.space, &configs, &scores, settings, &mut rng);
            let trials = self.trials_of(picks.clone(), configs.len(), runner.records.len())?;
            configs.extend(picks);
            let ids = runner.add(trials);
            runner.run(&ids, budget)?;
        }
        runner.finish(&self.space)
    }
}

/// The next batch: `settings.batch` configurations maximising expected improvement, each
/// after the fantasies of those before it.
fn propose(
    space: &SearchSpace,
    configs: &[Vec<f64>],
    scores: &[f64],
    settings: &Bayes,
    rng: &mut Rng,
) -> Vec<Vec<f64>> {
    let finite: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    let random = |rng: &mut Rng| (0..settings.batch).map(|_| space.sample(rng)).collect();
    if finite.len() < 2 {
        return random(rng);
    }
    let worst = finite.iter().copied().fold(f64::MIN, f64::max);
    let (mean, sd) = mean_std(&finite);
    let sd = if sd > 1e-12 { sd } else { 1.0 };
    let y: Vec<f64> = scores
        .iter()
        .map(|&s| ((if s.is_finite() { s } else { worst }) - mean) / sd)
        .collect();
    let x: Vec<Vec<f64>> = configs.iter().map(|c| space.to_unit(c)).collect();
    let Some(mut gp) = Gp::fit_best(x.clone(), y, settings.jitter) else {
        return random(rng);
    };
    let mut taken = x;
    let mut picks = Vec::with_capacity(settings.batch);
    for _ in 0..settings.batch {
        let point = maximise_ei(space, &gp, &taken, settings, rng)
            .unwrap_or_else(|| space.to_unit(&space.sample(rng)));
        let (_, seen) = gp.observations();
        let fantasy = match settings.liar {
            Liar::KrigingBeliever => gp.predict(&point).0,
            Liar::Min => seen.iter().copied().fold(f64::MAX, f64::min),
            Liar::Mean => seen.iter().sum::<f64>() / seen.len() as f64,
            Liar::Max => seen.iter().copied().fold(f64::MIN, f64::max),
        };
        if let Some(next) = gp.with_observation(point.clone(), fantasy) {
            gp = next;
        }
        picks.push(space.from_unit(&point));
        taken.push(point);
    }
    picks
}

/// The candidate of largest expected improvement that is no configuration already `taken`
/// (`None` if every candidate was).
fn maximise_ei(
    space: &SearchSpace,
    gp: &Gp,
    taken: &[Vec<f64>],
    settings: &Bayes,
    rng: &mut Rng,
) -> Option<Vec<f64>> {
    let (x, y) = gp.observations();
    let (best_at, &best) = y.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1))?;
    let incumbent = x[best_at].clone();
    let snap = |u: Vec<f64>| space.to_unit(&space.from_unit(&u));
    let is_new = |p: &[f64]| {
        !taken
            .iter()
            .any(|t| t.iter().zip(p).all(|(a, b)| (a - b).abs() < SAME_POINT))
    };
    let ei = |p: &[f64]| {
        let (m, s) = gp.predict(p);
        expected_improvement(m, s, best, settings.xi)
    };
    let mut top: Option<(f64, Vec<f64>)> = None;
    let consider = |p: Vec<f64>, top: &mut Option<(f64, Vec<f64>)>| {
        let value = ei(&p);
        if value.is_finite() && top.as_ref().is_none_or(|t| value > t.0) && is_new(&p) {
            *top = Some((value, p));
        }
    };
    let d = space.len();
    for _ in 0..settings.candidates {
        let p = snap((0..d).map(|_| rng.next_f64()).collect());
        consider(p, &mut top);
    }
    let best_random = top
        .as_ref()
        .map_or_else(|| incumbent.clone(), |t| t.1.clone());
    for k in 0..settings.local {
        let centre = if k % 2 == 0 { &incumbent } else { &best_random };
        let scale = LOCAL_SCALES[(k / 2) % LOCAL_SCALES.len()];
        let p = snap(
            centre
                .iter()
                .map(|c| (c + scale * rng.normal()).clamp(0.0, 1.0))
                .collect(),
        );
        consider(p, &mut top);
    }
    top.map(|t| t.1)
}
