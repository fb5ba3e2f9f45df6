//! Hyperparameter search whose trials run as populations.
//!
//! A search hands its [`Objective`] a whole batch of [`Trial`]s at once, so an objective can
//! train them as K model replicas in one GPU population (each replica a parameter group with
//! its own hyperparameters, stepped in one dispatch) instead of one model at a time.
//!
//! | driver | method | equivalent |
//! |---|---|---|
//! | grid search | [`Search::grid`] | scikit-learn `GridSearchCV`, Ray Tune `tune.grid_search` |
//! | random search (Bergstra & Bengio 2012) | [`Search::random`] | Optuna `RandomSampler`, scikit-learn `RandomizedSearchCV` |
//! | random restarts of given configurations | [`Search::random_restarts`] | Ray Tune `num_samples` over fixed configs |
//! | successive halving (Jamieson & Talwalkar 2016) | [`Search::successive_halving`] | Hyperband's inner loop, Optuna `SuccessiveHalvingPruner`, Ray Tune `ASHAScheduler` (synchronous) |
//! | Bayesian optimisation, batch expected improvement | [`Search::bayes`] | scikit-optimize `gp_minimize`, Optuna `GPSampler`, BoTorch `qEI` |
//!
//! Every driver runs each configuration `R` times ([`Search::with_restarts`]), the restarts
//! differing only by their [`Trial::seed`], and ranks configurations by their mean score over
//! restarts ([`SearchResults`]). Everything is deterministic given [`Search::with_seed`].
//!
//! ```
//! use wgpu_optim::search::{Search, SearchSpace, Trial};
//!
//! let space = SearchSpace::new().with_log_uniform("lr", 1e-4, 1.0).with_uniform("momentum", 0.0, 0.99);
//! // An objective that trains every trial of the population together; here a formula.
//! let mut objective = |trials: &[Trial], _budget: u64| -> wgpu_optim::Result<Vec<f64>> {
//!     Ok(trials.iter().map(|t| (t.get("lr").unwrap().log10() + 2.0).powi(2)).collect())
//! };
//! let results = Search::new(space).with_seed(1).with_restarts(2).random(16, 100, &mut objective)?;
//! println!("{results}");
//! let best = results.best().unwrap();
//! assert!(best.mean < 0.5);
//! # Ok::<(), wgpu_optim::Error>(())
//! ```

mod bayes;
mod gp;
mod halving;
mod normal;
mod results;
mod rng;
mod space;

use std::sync::Arc;

pub use bayes::{Bayes, Liar};
pub use halving::SuccessiveHalving;
pub use normal::{erf, erfc, expected_improvement, normal_cdf, normal_pdf};
pub use results::{ConfigSummary, RankedTable, SearchResults, TrialRecord};
pub use rng::{trial_seed, Rng};
pub use space::{Dimension, SearchSpace};

use crate::error::{Error, Result};

/// The most trials one search runs (configurations times restarts), the grid's limit: each is a
/// record held until the search ends (its values, seed and score history, over 100 bytes), and
/// 2²⁴ of them is already more runs than any objective trains. A count past it, or past
/// `usize`, is a mistake refused before any trial is built.
const MAX_TRIALS: usize = 1 << 24;

/// Salt of the sampling stream, so that configurations and trial seeds never share draws.
const SAMPLING_STREAM: u64 = 0x5341_4d50_4c45_5253; // "SAMPLERS"

/// One training run: a configuration (one value per dimension of the space, in its order), its
/// restart index and a seed for the model's initialisation. Optuna's `Trial`, Ray Tune's
/// trial with its `config` dict.
///
/// ```
/// use wgpu_optim::search::{Search, SearchSpace};
/// let space = SearchSpace::new().with_log_uniform("lr", 1e-4, 1e-1).with_int("layers", 1, 4);
/// let trials = Search::new(space).with_restarts(2).random_trials(3)?;
/// assert_eq!(trials.len(), 6);
/// let t = &trials[1];
/// assert_eq!((t.config, t.restart), (0, 1));
/// assert_eq!(t.get("lr"), trials[0].get("lr"));
/// assert_ne!(t.seed, trials[0].seed);
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// Position in the search's trials, unique within a search; a key for the objective's
    /// per-trial state.
    pub id: usize,
    /// Index of its configuration, shared by the configuration's restarts.
    pub config: usize,
    /// Which of the configuration's restarts (`0..R`).
    pub restart: usize,
    /// [`trial_seed`]`(search seed, config, restart)`: seed the model's initialisation with it.
    pub seed: u64,
    /// The configuration's values, in the space's order.
    pub values: Vec<f64>,
    names: Arc<[String]>,
}

impl Trial {
    /// The value of the dimension `name`, if the space has one.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.values[i])
    }

    /// The dimensions' names, in the order of [`values`](Self::values).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// `(name, value)` pairs in the space's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().copied())
    }
}

/// What a search optimises: trains a population of trials and scores them. Lower scores are
/// better (a validation loss); a NaN or infinite score ranks last. Ray Tune's trainable,
/// Optuna's objective function, but called with a batch.
///
/// `run` gets every trial of one population and the cumulative budget (steps, epochs, ...)
/// each must have reached when it returns: an objective keeps per-trial state (keyed by
/// [`Trial::id`]) so that [`Search::successive_halving`] continues a trial from its last
/// budget instead of restarting it. It returns one score per trial, in order. A population
/// never holds more than [`Search::with_population`] trials, so it can be sized to the K
/// replicas a device holds.
///
/// A closure `FnMut(&[Trial], u64) -> Result<Vec<f64>>` is an objective.
///
/// ```no_run
/// use std::collections::HashMap;
/// use wgpu_optim::search::{Objective, Trial};
///
/// /// Trains each trial's replica (one parameter group of a population) and reports its loss.
/// struct Replicas { steps_done: HashMap<usize, u64> }
///
/// impl Objective for Replicas {
///     fn run(&mut self, trials: &[Trial], budget: u64) -> wgpu_optim::Result<Vec<f64>> {
///         for t in trials {
///             let done = self.steps_done.entry(t.id).or_insert(0); // new: init from t.seed
///             // ... set the group's lr to t.get("lr"), record budget - *done steps ...
///             *done = budget;
///         }
///         // ... one readback of every replica's validation loss ...
///         Ok(vec![0.0; trials.len()])
///     }
///     fn stop(&mut self, trials: &[Trial]) {
///         for t in trials { self.steps_done.remove(&t.id); } // free the replicas
///     }
/// }
/// ```
pub trait Objective {
    /// Trains each trial until it has reached `budget` and returns their scores, in order.
    fn run(&mut self, trials: &[Trial], budget: u64) -> Result<Vec<f64>>;

    /// Says that the search will never run these trials again: stopped early by successive
    /// halving, or done at the end of a search. Release their state here; by default nothing.
    fn stop(&mut self, trials: &[Trial]) {
        let _ = trials;
    }
}

impl<F> Objective for F
where
    F: FnMut(&[Trial], u64) -> Result<Vec<f64>>,
{
    fn run(&mut self, trials: &[Trial], budget: u64) -> Result<Vec<f64>> {
        self(trials, budget)
    }
}

/// A hyperparameter search over a [`SearchSpace`]: the settings every driver shares (seed,
/// restarts per configuration, largest population) and the drivers as methods. Optuna's
/// `Study`, Ray Tune's `Tuner`.
///
/// ```
/// use wgpu_optim::search::{Search, SearchSpace, Trial};
/// let space = SearchSpace::new().with_uniform("x", -1.0, 1.0);
/// let mut calls = Vec::new();
/// let mut objective = |trials: &[Trial], _budget: u64| -> wgpu_optim::Result<Vec<f64>> {
///     calls.push(trials.len());
///     Ok(trials.iter().map(|t| t.values[0].powi(2)).collect())
/// };
/// let results = Search::new(space).with_population(4).grid(5, 10, &mut objective)?;
/// assert_eq!(calls, [4, 1]); // 5 grid points in populations of at most 4
/// assert_eq!(results.best().unwrap().values, [0.0]);
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Search {
    space: SearchSpace,
    seed: u64,
    restarts: usize,
    population: usize,
}

impl Search {
    /// A search over `space` with seed 0, one run per configuration and unbounded populations.
    pub fn new(space: SearchSpace) -> Self {
        Search {
            space,
            seed: 0,
            restarts: 1,
            population: usize::MAX,
        }
    }

    /// Sets the seed every random choice and every [`Trial::seed`] derives from.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets `R`, the runs per configuration (≥ 1), each with its own [`Trial::seed`]. A driver
    /// refuses a search of more than 2²⁴ trials in all (configurations times `R`) with
    /// [`Error::InvalidSearch`] on `trials`, before building any: `usize::MAX` is an error, not
    /// an overflow.
    pub fn with_restarts(mut self, restarts: usize) -> Self {
        self.restarts = restarts;
        self
    }

    /// Sets the most trials one [`Objective::run`] call gets (≥ 1): the replicas a device
    /// holds. A stage with more trials is split into several calls.
    pub fn with_population(mut self, population: usize) -> Self {
        self.population = population;
        self
    }

    /// The space searched.
    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    fn validate(&self) -> Result<()> {
        self.space.validate()?;
        positive("restarts", self.restarts as u64)?;
        positive("population", self.population as u64)
    }

    /// `configurations · R`, the trials a search of `configurations` runs, if it is at most
    /// [`MAX_TRIALS`]. Drivers call it before sampling or building anything, so that
    /// `with_restarts(usize::MAX)` or `random(usize::MAX, ..)` is an error, not an overflow or
    /// an allocation of exabytes.
    fn trial_count(&self, configurations: usize) -> Result<usize> {
        configurations
            .checked_mul(self.restarts)
            .filter(|&n| n <= MAX_TRIALS)
            .ok_or(Error::InvalidSearch {
                setting: "trials".into(),
                // In f64, which cannot wrap.
                value: configurations as f64 * self.restarts as f64,
                expected: "at most 2^24 trials (configurations * restarts)",
            })
    }

    /// The trials of `configs`, `R` per configuration, restarts adjacent.
    fn trials_of(
        &self,
        configs: Vec<Vec<f64>>,
        first_config: usize,
        first_id: usize,
    ) -> Result<Vec<Trial>> {
        let names = self.space.shared_names();
        // Checked again here, cheaply, so that no caller can size the Vec by a wrapped product.
        let mut trials = Vec::with_capacity(self.trial_count(configs.len())?);
        for (c, values) in configs.into_iter().enumerate() {
            let config = first_config + c;
            for restart in 0..self.restarts {
                trials.push(Trial {
                    id: first_id + trials.len(),
                    config,
                    restart,
                    seed: trial_seed(self.seed, config, restart),
                    values: values.clone(),
                    names: names.clone(),
                });
            }
        }
        Ok(trials)
    }

    fn sampler(&self) -> Rng {
        Rng::new(self.seed ^ SAMPLING_STREAM)
    }

    /// The trials [`grid`](Self::grid) runs, without running them.
    pub fn grid_trials(&self, points: usize) -> Result<Vec<Trial>> {
        self.validate()?;
        self.trial_count(self.space.grid_size(points)?)?;
        self.trials_of(self.space.grid(points)?, 0, 0)
    }

    /// The trials [`random`](Self::random) runs, without running them.
    pub fn random_trials(&self, samples: usize) -> Result<Vec<Trial>> {
        self.validate()?;
        positive("samples", samples as u64)?;
        self.trial_count(samples)?;
        let mut rng = self.sampler();
        let configs = (0..samples).map(|_| self.space.sample(&mut rng)).collect();
        self.trials_of(configs, 0, 0)
    }

    /// Grid search: every configuration of [`SearchSpace::grid`]`(points)`, `R` restarts each,
    /// trained to `budget`. scikit-learn's `GridSearchCV`.
    pub fn grid<O: Objective + ?Sized>(
        &self,
        points: usize,
        budget: u64,
        objective: &mut O,
    ) -> Result<SearchResults> {
        positive("budget", budget)?;
        let trials = self.grid_trials(points)?;
        self.run_all(trials, budget, objective)
    }

    /// Random search (Bergstra & Bengio 2012): `samples` configurations drawn by
    /// [`SearchSpace::sample`] from the search's seed, `R` restarts each, trained to `budget`.
    /// Optuna's `RandomSampler`.
    pub fn random<O: Objective + ?Sized>(
        &self,
        samples: usize,
        budget: u64,
        objective: &mut O,
    ) -> Result<SearchResults> {
        positive("budget", budget)?;
        let trials = self.random_trials(samples)?;
        self.run_all(trials, budget, objective)
    }

    /// Random restarts: the given configurations (one value per dimension, each inside its
    /// dimension), `R` runs each that differ only by their seed, trained to `budget`. For the
    /// variance of a few chosen configurations, such as the top of an earlier search.
    pub fn random_restarts<O: Objective + ?Sized>(
        &self,
        configs: &[Vec<f64>],
        budget: u64,
        objective: &mut O,
    ) -> Result<SearchResults> {
        self.validate()?;
        positive("budget", budget)?;
        positive("configurations", configs.len() as u64)?;
        self.trial_count(configs.len())?;
        for config in configs {
            self.space.check(config)?;
        }
        self.run_all(self.trials_of(configs.to_vec(), 0, 0)?, budget, objective)
    }

    fn run_all<O: Objective + ?Sized>(
        &self,
        trials: Vec<Trial>,
        budget: u64,
        objective: &mut O,
    ) -> Result<SearchResults> {
        let mut runner = Runner::new(objective, self.population);
        let ids = runner.add(trials);
        runner.run(&ids, budget)?;
        runner.finish(&self.space)
    }
}

/// `Err(InvalidSearch)` unless `value ≥ 1`.
fn positive(setting: &str, value: u64) -> Result<()> {
    if value == 0 {
        return Err(Error::InvalidSearch {
            setting: setting.into(),
            value: 0.0,
            expected: ">= 1",
        });
    }
    Ok(())
}

/// Runs trials through an objective in populations and records what came back.
struct Runner<'a, O: ?Sized> {
    objective: &'a mut O,
    population: usize,
    records: Vec<TrialRecord>,
}

impl<'a, O: Objective + ?Sized> Runner<'a, O> {
    fn new(objective: &'a mut O, population: usize) -> Self {
        Runner {
            objective,
            population,
            records: Vec::new(),
        }
    }

    /// Adds trials (their ids must continue the records') and returns their ids.
    fn add(&mut self, trials: Vec<Trial>) -> Vec<usize> {
        let ids = trials.iter().map(|t| t.id).collect();
        self.records
            .extend(trials.into_iter().map(|trial| TrialRecord {
                trial,
                history: Vec::new(),
                stopped_early: false,
            }));
        ids
    }

    /// Runs the trials `ids` to `budget`, in populations.
    fn run(&mut self, ids: &[usize], budget: u64) -> Result<()> {
        for chunk in ids.chunks(self.population) {
            let trials: Vec<Trial> = chunk
                .iter()
                .map(|&i| self.records[i].trial.clone())
                .collect();
            let scores = self.objective.run(&trials, budget)?;
            if scores.len() != trials.len() {
                return Err(Error::WrongLength {
                    what: "objective scores",
                    expected: trials.len(),
                    actual: scores.len(),
                });
            }
            for (&i, score) in chunk.iter().zip(scores) {
                self.records[i].history.push((budget, score));
            }
        }
        Ok(())
    }

    /// Marks trials stopped early and tells the objective.
    fn stop_early(&mut self, ids: &[usize]) {
        for &i in ids {
            self.records[i].stopped_early = true;
        }
        let trials: Vec<Trial> = ids.iter().map(|&i| self.records[i].trial.clone()).collect();
        if !trials.is_empty() {
            self.objective.stop(&trials);
        }
    }

    /// Tells the objective the trials still running are done, and ranks the results.
    fn finish(self, space: &SearchSpace) -> Result<SearchResults> {
        let running: Vec<Trial> = self
            .records
            .iter()
            .filter(|r| !r.stopped_early)
            .map(|r| r.trial.clone())
            .collect();
        if !running.is_empty() {
            self.objective.stop(&running);
        }
        Ok(SearchResults::new(space.shared_names(), self.records))
    }
}
