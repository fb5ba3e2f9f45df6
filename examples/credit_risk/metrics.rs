//! Evaluation metrics on the host, from the logits a pass reads back once per evaluation.
//!
//! Besides the training loss (focal or cross-entropy, whichever trained the network), the
//! scores a risk modeller compares across models whatever loss trained them: log loss and the
//! Brier score against a constant predictor of the base rate, ROC AUC with a bootstrap
//! interval, and a calibration (decile) table with its expected calibration error.

use super::data::{sigmoid, Rng};

/// Focal loss of one logit (torchvision's `sigmoid_focal_loss`), in f64; `alpha` weights the
/// positives (negatives: 1 - alpha), `None` weights none; `gamma` 0 is cross-entropy.
pub fn focal_loss(logit: f64, label: f64, gamma: f64, alpha: Option<f64>) -> f64 {
    let positive = label > 0.5;
    let s = if positive { logit } else { -logit };
    // softplus(-s) = -log(sigmoid(s)), stably.
    let ce = (-s).max(0.0) + (-s.abs()).exp().ln_1p();
    let q = sigmoid(-s);
    let alpha_t = alpha.map_or(1.0, |a| if positive { a } else { 1.0 - a });
    let modulating = if gamma == 0.0 { 1.0 } else { q.powf(gamma) };
    alpha_t * modulating * ce
}

/// What an evaluation reports. Every field is defined where [`try_evaluate`] gives one: finite
/// logits over both labels.
#[derive(Clone, Copy, Debug)]
pub struct Evaluation {
    pub loss: f64,
    pub auc: f64,
    /// At the F1-optimal threshold.
    pub threshold: f64,
    pub accuracy: f64,
    /// Defined: the F1-optimal threshold predicts at least one positive (F1 is positive once
    /// every record is predicted positive, as soon as one record is).
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Mean binary cross-entropy of the logits ([`log_loss`]), whatever loss trained the
    /// network: a focal loss is not comparable across `gamma` and `alpha`, this is.
    pub log_loss: f64,
    /// Mean squared error of the predicted probability against the label ([`brier`]).
    pub brier: f64,
}

/// Why [`try_evaluate`] gives no metrics.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum Undefined {
    /// ROC AUC needs both labels (its false- or true-positive rate divides by zero), and so
    /// does an F1-optimal threshold (without positives no threshold has a positive F1, and
    /// its precision would divide by zero predicted positives).
    #[error(
        "{positives} of {records} records are positive: ROC AUC and precision are undefined \
         without both labels"
    )]
    OneLabel { records: usize, positives: usize },
    /// A logit is inf or NaN: the network diverged.
    #[error("the logit of record {record} is {logit}: the network diverged")]
    NonFinite { record: usize, logit: f32 },
}

/// The mean focal loss of `logits` against `labels`, in f64 (defined for one label too).
pub fn mean_loss(logits: &[f32], labels: &[f32], gamma: f64, alpha: Option<f64>) -> f64 {
    logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| focal_loss(f64::from(z), f64::from(y), gamma, alpha))
        .sum::<f64>()
        / labels.len() as f64
}

/// The metrics of `logits` against `labels`, NaN where they are undefined (the mean loss, log
/// loss and Brier score are defined on one label, but not on a non-finite logit; see
/// [`try_evaluate`] for why): never an AUC of 0 or a precision of 1 that look like results.
/// For `examples/data_parallel.rs`, which prints them.
pub fn evaluate(logits: &[f32], labels: &[f32], gamma: f64, alpha: Option<f64>) -> Evaluation {
    try_evaluate(logits, labels, gamma, alpha).unwrap_or_else(|undefined| {
        // An infinite logit on the right side scores a finite log loss: the run diverged all
        // the same, so no score of it is shown.
        let one_label = matches!(undefined, Undefined::OneLabel { .. });
        let scored = |f: fn(&[f32], &[f32]) -> f64| {
            if one_label {
                f(logits, labels)
            } else {
                f64::NAN
            }
        };
        Evaluation {
            loss: mean_loss(logits, labels, gamma, alpha),
            auc: f64::NAN,
            threshold: f64::NAN,
            accuracy: f64::NAN,
            precision: f64::NAN,
            recall: f64::NAN,
            f1: f64::NAN,
            log_loss: scored(log_loss),
            brier: scored(brier),
        }
    })
}

/// The metrics of `logits` against `labels`, or why they are undefined: a non-finite logit,
/// or a single label.
pub fn try_evaluate(
    logits: &[f32],
    labels: &[f32],
    gamma: f64,
    alpha: Option<f64>,
) -> Result<Evaluation, Undefined> {
    let n = labels.len();
    if let Some(record) = logits[..n].iter().position(|z| !z.is_finite()) {
        return Err(Undefined::NonFinite {
            record,
            logit: logits[record],
        });
    }
    let positives = labels.iter().filter(|&&y| y > 0.5).count();
    let negatives = n - positives;
    if positives == 0 || negatives == 0 {
        return Err(Undefined::OneLabel {
            records: n,
            positives,
        });
    }
    let loss = mean_loss(&logits[..n], labels, gamma, alpha);
    // Highest score first; ties broken by nothing the metrics depend on.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    // The area under `roc`'s points (trapezoid rule), as the Mann-Whitney rank sum in
    // integers: `auc_bootstrap` computes each resample's AUC with the same arithmetic.
    let (ranks, distinct) = distinct_ranks(&logits[..n], order.iter().rev().copied());
    let mut counts = RankCounts::new(distinct);
    for (&rank, &y) in ranks.iter().zip(labels) {
        counts.add(rank, y > 0.5);
    }
    let auc = counts.auc();
    // Sweep thresholds from the top: predict positive for the first k records.
    let mut best = Evaluation {
        loss,
        auc,
        threshold: 0.0,
        accuracy: 0.0,
        precision: 0.0,
        recall: 0.0,
        f1: 0.0,
        log_loss: log_loss(&logits[..n], labels),
        brier: brier(&logits[..n], labels),
    };
    let mut true_positives = 0;
    for (k, &i) in order.iter().enumerate() {
        if labels[i] > 0.5 {
            true_positives += 1;
        }
        // Only between distinct scores.
        if k + 1 < n && logits[order[k + 1]] == logits[i] {
            continue;
        }
        let predicted = k + 1;
        let precision = true_positives as f64 / predicted as f64;
        let recall = true_positives as f64 / positives as f64;
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        if f1 > best.f1 {
            let false_positives = predicted - true_positives;
            let true_negatives = negatives - false_positives;
            best = Evaluation {
                threshold: sigmoid(f64::from(logits[i])),
                accuracy: (true_positives + true_negatives) as f64 / n as f64,
                precision,
                recall,
                f1,
                ..best
            };
        }
    }
    Ok(best)
}

/// The ROC curve: (false-positive rate, true-positive rate) from (0, 0) to (1, 1), one point
/// per distinct score, `order` sorting the scores highest first.
pub fn roc(logits: &[f32], labels: &[f32], order: &[usize]) -> Vec<(f64, f64)> {
    let positives = labels.iter().filter(|&&y| y > 0.5).count().max(1) as f64;
    let negatives = labels.iter().filter(|&&y| y <= 0.5).count().max(1) as f64;
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] > 0.5 {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if k + 1 == order.len() || logits[order[k + 1]] != logits[i] {
            points.push((fp / negatives, tp / positives));
        }
    }
    points
}

/// Mean binary cross-entropy of `logits` against `labels` (positive: above 0.5), in f64:
/// `-(y ln p + (1 - y) ln(1 - p))` with `p = sigmoid(z)`, computed from the logit as
/// `softplus(-z)` for a positive and `softplus(z)` for a negative, so that no probability
/// rounds to 0 or 1 first (a logit of 80 scores 80, not infinity). The focal loss with
/// `gamma` 0 and no `alpha`; scikit-learn's `log_loss`, PyTorch's
/// `binary_cross_entropy_with_logits`. NaN for no records.
pub fn log_loss(logits: &[f32], labels: &[f32]) -> f64 {
    mean_loss(logits, labels, 0.0, None)
}

/// The Brier score: the mean of `(sigmoid(z) - y)^2` over the records, `y` 1 for a label
/// above 0.5 and 0 otherwise, in f64 (scikit-learn's `brier_score_loss`). NaN for no records.
pub fn brier(logits: &[f32], labels: &[f32]) -> f64 {
    logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| (sigmoid(f64::from(z)) - f64::from(u8::from(y > 0.5))).powi(2))
        .sum::<f64>()
        / labels.len() as f64
}

/// The positive rate of `labels` (positive: above 0.5); NaN for no records.
fn positive_rate(labels: &[f32]) -> f64 {
    labels.iter().filter(|&&y| y > 0.5).count() as f64 / labels.len() as f64
}

/// The [`log_loss`] of predicting `labels`' own positive rate `r` for every record, the
/// entropy `-(r ln r + (1 - r) ln(1 - r))` (0 ln 0 = 0): what a model must beat to have
/// learnt anything from the attributes. The rate is the evaluated set's own, so this is the
/// best constant prediction in hindsight, slightly harder to beat than the training split's
/// rate would be. NaN for no records.
pub fn base_rate_log_loss(labels: &[f32]) -> f64 {
    let r = positive_rate(labels);
    // NaN (no records) stays NaN.
    let term = |p: f64| if p == 0.0 { 0.0 } else { -p * p.ln() };
    term(r) + term(1.0 - r)
}

/// The [`brier`] score of predicting `labels`' own positive rate `r` for every record,
/// `r (1 - r)`; like [`base_rate_log_loss`], with the evaluated set's own rate. NaN for no
/// records.
pub fn base_rate_brier(labels: &[f32]) -> f64 {
    let r = positive_rate(labels);
    r * (1.0 - r)
}

/// Each record's rank among the distinct logits (equal logits share one rank, lowest 0),
/// given the records in `ascending` order of logit, and the number of distinct logits.
fn distinct_ranks(logits: &[f32], ascending: impl Iterator<Item = usize>) -> (Vec<usize>, usize) {
    let mut ranks = vec![0; logits.len()];
    let mut previous: Option<f32> = None;
    let mut rank = 0;
    for i in ascending {
        // `==`, as `roc` groups its points: -0 and 0 are one score.
        if previous.is_some_and(|p| p != logits[i]) {
            rank += 1;
        }
        previous = Some(logits[i]);
        ranks[i] = rank;
    }
    (ranks, if previous.is_some() { rank + 1 } else { 0 })
}

/// How many positives and negatives hold each distinct score (lowest first): all that ROC
/// AUC depends on, for the full set and for each bootstrap resample alike.
struct RankCounts {
    positives: Vec<usize>,
    negatives: Vec<usize>,
}

impl RankCounts {
    fn new(distinct: usize) -> RankCounts {
        RankCounts {
            positives: vec![0; distinct],
            negatives: vec![0; distinct],
        }
    }

    fn add(&mut self, rank: usize, positive: bool) {
        if positive {
            self.positives[rank] += 1;
        } else {
            self.negatives[rank] += 1;
        }
    }

    fn clear(&mut self) {
        self.positives.fill(0);
        self.negatives.fill(0);
    }

    /// ROC AUC as the Mann-Whitney statistic `U / (P N)`: the share of (positive, negative)
    /// pairs the positive scores above, a tie counting half; the trapezoid rule over the ROC
    /// curve's points (one per distinct score, as [`roc`] gives) is the same number. `2U` is
    /// summed in integers and divided once, so a resample's AUC is exactly the AUC
    /// [`try_evaluate`] reports for the same records. NaN without both labels.
    fn auc(&self) -> f64 {
        let (mut negatives_below, mut positives, mut twice_u) = (0u128, 0u128, 0u128);
        for (&p, &q) in self.positives.iter().zip(&self.negatives) {
            let (p, q) = (p as u128, q as u128);
            twice_u += p * (2 * negatives_below + q);
            negatives_below += q;
            positives += p;
        }
        twice_u as f64 / (2 * positives * negatives_below) as f64
    }
}

/// The records of each label (positive: above 0.5), in record order.
fn by_label(labels: &[f32]) -> (Vec<usize>, Vec<usize>) {
    (0..labels.len()).partition(|&i| labels[i] > 0.5)
}

/// Uniform in 0..n (n > 0) from one draw: the high word of `u64 x n` (Lemire's
/// multiply-shift; its bias, under n / 2^64, is far below anything a bootstrap resolves).
fn below(rng: &mut Rng, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// One stratified resample: as many draws with replacement from `positives` as it holds,
/// then as many from `negatives`; `visit` sees each drawn element and whether it is positive.
fn draw_stratified<T: Copy>(
    rng: &mut Rng,
    positives: &[T],
    negatives: &[T],
    mut visit: impl FnMut(T, bool),
) {
    for (pool, positive) in [(positives, true), (negatives, false)] {
        for _ in 0..pool.len() {
            visit(pool[below(rng, pool.len())], positive);
        }
    }
}

/// The records (indices into `labels`, repeats allowed) of one stratified bootstrap resample
/// drawn from `rng`: as many positives as `labels` holds, drawn with replacement from its
/// positives, then as many negatives from its negatives. [`auc_bootstrap`]'s resample `r` is
/// the `r`-th of these drawn from `Rng::new(seed)`; here so that a resample can be rebuilt
/// record by record and evaluated.
pub fn stratified_resample(labels: &[f32], rng: &mut Rng) -> Vec<usize> {
    let (positives, negatives) = by_label(labels);
    let mut records = Vec::with_capacity(labels.len());
    draw_stratified(rng, &positives, &negatives, |i, _| records.push(i));
    records
}

/// The ROC AUC of each of `resamples` stratified bootstrap resamples of the records (see
/// [`stratified_resample`]), deterministic from `seed`; empty where [`try_evaluate`] gives no
/// AUC (a non-finite logit, or a single label).
///
/// Stratified, as pROC's `ci.auc(boot.stratified = TRUE)`: every resample keeps the set's
/// count of each label, so none lacks one and the interval reflects the ranking alone, not
/// the noise of the class balance. Fast: the logits are sorted once; a resample only counts
/// its draws per distinct score, then sums ranks (O(n) per resample, no sort).
pub fn auc_bootstrap(logits: &[f32], labels: &[f32], resamples: usize, seed: u64) -> Vec<f64> {
    let n = labels.len();
    let logits = &logits[..n];
    let (positives, negatives) = by_label(labels);
    if positives.is_empty() || negatives.is_empty() || logits.iter().any(|z| !z.is_finite()) {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let (ranks, distinct) = distinct_ranks(logits, order.into_iter());
    // A draw of a record only needs its rank: pools of ranks, drawn as the records would be.
    let positives: Vec<usize> = positives.iter().map(|&i| ranks[i]).collect();
    let negatives: Vec<usize> = negatives.iter().map(|&i| ranks[i]).collect();
    let mut rng = Rng::new(seed);
    let mut counts = RankCounts::new(distinct);
    (0..resamples)
        .map(|_| {
            counts.clear();
            draw_stratified(&mut rng, &positives, &negatives, |rank, positive| {
                counts.add(rank, positive)
            });
            counts.auc()
        })
        .collect()
}

/// The `q`-quantile of `sorted` (ascending, not empty), interpolated linearly between the
/// two nearest (NumPy's default `percentile`).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (low, high) = (at.floor() as usize, at.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (at - low as f64)
}

/// A 95% percentile-bootstrap interval of ROC AUC: the 2.5th and 97.5th percentiles of the
/// AUCs of `resamples` stratified resamples ([`auc_bootstrap`]; deterministic from `seed`).
/// Each resample's AUC is computed as [`try_evaluate`]'s, ties counting half. 1000 resamples
/// is the usual count (pROC's default 2000); NaN for both ends where there is no AUC or no
/// resample.
pub fn auc_interval(logits: &[f32], labels: &[f32], resamples: usize, seed: u64) -> (f64, f64) {
    let mut aucs = auc_bootstrap(logits, labels, resamples, seed);
    if aucs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    aucs.sort_by(f64::total_cmp);
    (quantile(&aucs, 0.025), quantile(&aucs, 0.975))
}

/// One bin of a calibration table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bin {
    /// The mean predicted probability of its records.
    pub predicted: f64,
    /// Their positive rate (the observed default rate).
    pub observed: f64,
    pub count: usize,
}

/// A calibration (reliability) table: the records sorted by predicted probability and cut
/// into `bins` bins of equal count (quantile bins, as a modeller's decile table and
/// scikit-learn's `calibration_curve(strategy="quantile")`: with a 2% default rate, bins of
/// equal width would leave nearly every record in the first). Lowest probability first.
///
/// Without ties the counts differ by at most one. A run of equal logits is never split: a
/// cut inside it moves to its end, so a bin may hold more, and there may be fewer bins than
/// asked (one, where every prediction is the same); no bin is empty. Empty for no records,
/// for `bins` 0, or where a logit is NaN (the network diverged).
pub fn calibration(logits: &[f32], labels: &[f32], bins: usize) -> Vec<Bin> {
    let n = labels.len();
    let logits = &logits[..n];
    if n == 0 || bins == 0 || logits.iter().any(|z| z.is_nan()) {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let mut table = Vec::with_capacity(bins);
    let mut start = 0;
    for k in 1..=bins {
        let mut end = k * n / bins;
        if end <= start {
            // Taken by the previous bin's run of ties (or fewer records than bins).
            continue;
        }
        while end < n && logits[order[end]] == logits[order[end - 1]] {
            end += 1;
        }
        let records = &order[start..end];
        let sum = |f: &dyn Fn(usize) -> f64| records.iter().map(|&i| f(i)).sum::<f64>();
        let count = records.len();
        table.push(Bin {
            predicted: sum(&|i| sigmoid(f64::from(logits[i]))) / count as f64,
            observed: sum(&|i| f64::from(u8::from(labels[i] > 0.5))) / count as f64,
            count,
        });
        start = end;
    }
    table
}

/// The expected calibration error of a calibration table: the mean over records of their
/// bin's `|predicted - observed|`, i.e. the bins' gaps weighted by count (Naeini et al.,
/// 2015). NaN for an empty table.
pub fn expected_calibration_error(bins: &[Bin]) -> f64 {
    let records: usize = bins.iter().map(|b| b.count).sum();
    bins.iter()
        .map(|b| b.count as f64 * (b.predicted - b.observed).abs())
        .sum::<f64>()
        / records as f64
}
