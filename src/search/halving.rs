//! Successive halving (Jamieson & Talwalkar 2016), the inner loop of Hyperband.

use super::results::{by_score, mean_std};
use super::{positive, Runner, Search, SearchResults};
use crate::error::{Error, Result};
use crate::search::Objective;

/// Settings of [`Search::successive_halving`]: `configurations` random configurations start at
/// `min_budget`; after each rung the best `⌊n/eta⌋` (at least one) continue to `eta` times the
/// budget, the rest stop. Rung `i` trains to `min_budget · etaⁱ`.
///
/// The algorithm of Jamieson & Talwalkar, "Non-stochastic Best Arm Identification and
/// Hyperparameter Optimization" (AISTATS 2016), as run by one bracket of Hyperband (Li et al.,
/// JMLR 2018); Optuna's `SuccessiveHalvingPruner` and Ray Tune's `ASHAScheduler` are its
/// asynchronous form. Here every rung is synchronous: its trials run as populations.
///
/// ```
/// use wgpu_optim::search::SuccessiveHalving;
/// let sh = SuccessiveHalving::new(27, 1).with_eta(3); // rungs of 27, 9, 3, 1 configurations
/// assert_eq!(sh.rung_count(), 4);
/// assert_eq!(sh.budgets()?, [1, 3, 9, 27]);
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SuccessiveHalving {
    /// Configurations sampled for the first rung (≥ 1), Hyperband's `n`.
    pub configurations: usize,
    /// Budget of the first rung (≥ 1), Hyperband's `r`.
    pub min_budget: u64,
    /// Reduction factor (≥ 2; Hyperband's default 3): the budget grows and the survivors shrink
    /// by it at each rung.
    pub eta: u64,
    /// Number of rungs; `None` for `⌊log_eta(configurations)⌋ + 1`, the most whose last rung
    /// still holds a configuration. With more, the last survivor trains on alone.
    pub rungs: Option<usize>,
}

impl SuccessiveHalving {
    /// `configurations` random configurations starting at `min_budget`, eta = 3, as many rungs
    /// as leave one configuration.
    pub fn new(configurations: usize, min_budget: u64) -> Self {
        SuccessiveHalving {
            configurations,
            min_budget,
            eta: 3,
            rungs: None,
        }
    }

    /// Sets the reduction factor.
    pub fn with_eta(mut self, eta: u64) -> Self {
        self.eta = eta;
        self
    }

    /// Sets the number of rungs.
    pub fn with_rungs(mut self, rungs: usize) -> Self {
        self.rungs = Some(rungs);
        self
    }

    /// The number of rungs run.
    pub fn rung_count(&self) -> usize {
        self.rungs.unwrap_or_else(|| {
            let (mut n, mut rungs) = (self.configurations, 1);
            while self.eta >= 2 && n as u64 >= self.eta {
                n /= self.eta as usize;
                rungs += 1;
            }
            rungs
        })
    }

    /// The budget of each rung, checking the settings.
    pub fn budgets(&self) -> Result<Vec<u64>> {
        positive("configurations", self.configurations as u64)?;
        positive("min_budget", self.min_budget)?;
        if self.eta < 2 {
            return Err(Error::InvalidSearch {
                setting: "eta".into(),
                value: self.eta as f64,
                expected: ">= 2",
            });
        }
        positive("rungs", self.rung_count() as u64)?;
        let mut budgets = vec![self.min_budget];
        for _ in 1..self.rung_count() {
            let last = budgets[budgets.len() - 1];
            let next = last
                .checked_mul(self.eta)
                .ok_or_else(|| Error::InvalidSearch {
                    setting: "rungs".into(),
                    value: self.rung_count() as f64,
                    expected: "few enough that min_budget * eta^(rungs - 1) fits in u64",
                })?;
            budgets.push(next);
        }
        Ok(budgets)
    }
}

impl Search {
    /// Successive halving: samples `settings.configurations` random configurations (the same
    /// ones [`random_trials`](Self::random_trials) would), runs all their trials to the first
    /// rung's budget, then keeps the best `⌊n/eta⌋` configurations (at least one) by mean
    /// score over their restarts and continues them to the next budget; the others stop
    /// early, all restarts of a configuration together, and are never run again
    /// ([`Objective::stop`] is called with them). Ties go to the lower configuration index.
    ///
    /// The objective sees a trial again at a larger budget: it continues its training.
    ///
    /// ```
    /// use wgpu_optim::search::{Search, SearchSpace, SuccessiveHalving, Trial};
    /// let space = SearchSpace::new().with_uniform("x", -1.0, 1.0);
    /// let mut objective = |t: &[Trial], budget: u64| -> wgpu_optim::Result<Vec<f64>> {
    ///     Ok(t.iter().map(|t| t.values[0].abs() + 1.0 / budget as f64).collect())
    /// };
    /// let sh = SuccessiveHalving::new(9, 1).with_eta(3);
    /// let results = Search::new(space).with_seed(3).successive_halving(&sh, &mut objective)?;
    /// assert_eq!(results.trials().iter().filter(|r| !r.stopped_early).count(), 1);
    /// assert_eq!(results.best().unwrap().budget, 9);
    /// # Ok::<(), wgpu_optim::Error>(())
    /// ```
    pub fn successive_halving<O: Objective + ?Sized>(
        &self,
        settings: &SuccessiveHalving,
        objective: &mut O,
    ) -> Result<SearchResults> {
        let budgets = settings.budgets()?;
        let trials = self.random_trials(settings.configurations)?;
        let mut runner = Runner::new(objective, self.population);
        runner.add(trials);
        let restarts = self.restarts;
        // Trials of configuration c are c*R .. (c+1)*R.
        let ids_of = |configs: &[usize]| -> Vec<usize> {
            configs
                .iter()
                .flat_map(|&c| c * restarts..(c + 1) * restarts)
                .collect()
        };
        let mut alive: Vec<usize> = (0..settings.configurations).collect();
        for (rung, &budget) in budgets.iter().enumerate() {
            runner.run(&ids_of(&alive), budget)?;
            if rung + 1 == budgets.len() {
                break;
            }
            let means: Vec<f64> = alive
                .iter()
                .map(|&c| {
                    let scores: Vec<f64> = ids_of(&[c])
                        .iter()
                        .map(|&i| runner.records[i].score())
                        .collect();
                    mean_std(&scores).0
                })
                .collect();
            let mut order: Vec<usize> = (0..alive.len()).collect();
            order.sort_by(|&a, &b| by_score(means[a], means[b]).then(alive[a].cmp(&alive[b])));
            let keep = (alive.len() / settings.eta as usize).max(1);
            let stopped: Vec<usize> = order[keep..].iter().map(|&k| alive[k]).collect();
            let mut survivors: Vec<usize> = order[..keep].iter().map(|&k| alive[k]).collect();
            survivors.sort_unstable();
            runner.stop_early(&ids_of(&stopped));
            alive = survivors;
        }
        runner.finish(&self.space)
    }
}
