//! The credit-default example's risk metrics (`examples/credit_risk/metrics.rs`), which score
//! a model whatever loss trained it: log loss and the Brier score against values recorded from
//! scikit-learn and against their formulas, the base-rate scores a model must beat, the
//! stratified bootstrap interval of ROC AUC, the equal-count calibration table and its
//! expected calibration error, and the calibration plot `plots::write` draws from it. Host
//! only: no adapter needed.

mod common;
// The whole example, `main.rs` and its modules, as the binary builds it.
#[path = "../examples/credit_risk/main.rs"]
#[allow(dead_code)]
mod app;

use app::{data, metrics, plots};
use data::{sigmoid, Rng};

/// Scores recorded from scikit-learn 1.9.1 (NumPy 2.4.6), the probabilities being the f64
/// sigmoid of the f32 logits:
///
/// ```text
/// python3 -c "import numpy as np; from sklearn.metrics import log_loss, brier_score_loss, \
///   roc_auc_score; z = np.array(LOGITS, dtype=np.float32).astype(np.float64); \
///   y = np.array(LABELS); p = 1 / (1 + np.exp(-z)); \
///   print(repr(log_loss(y, p)), repr(brier_score_loss(y, p)), repr(roc_auc_score(y, p)))"
/// ```
struct Recorded {
    logits: &'static [f32],
    labels: &'static [f32],
    log_loss: f64,
    brier: f64,
    auc: f64,
}

const RECORDED: [Recorded; 2] = [
    // Ties: 0.0 held by a positive and a negative (half a pair each way), 0.75 by two
    // negatives.
    Recorded {
        logits: &[-3.0, -1.5, -0.25, 0.0, 0.0, 0.75, 1.25, 2.5, -2.0, 0.75],
        labels: &[0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0],
        log_loss: 0.5193723249465922,
        brier: 0.18436972660855944,
        auc: 0.7708333333333334,
    },
    Recorded {
        logits: &[4.0, -6.5, 0.125, -0.5, 2.0, -2.0],
        labels: &[1.0, 0.0, 0.0, 1.0, 1.0, 0.0],
        log_loss: 0.33419737994346416,
        brier: 0.11639724131576491,
        auc: 0.888888888888889,
    },
];

/// The textbook formulas, straight from the probability: `-(y ln p + (1 - y) ln(1 - p))` and
/// `(p - y)^2`, averaged. Accurate for moderate logits only (p rounds to 1 from about 37).
fn direct(logits: &[f32], labels: &[f32]) -> (f64, f64) {
    let n = labels.len() as f64;
    let (mut log_loss, mut brier) = (0.0, 0.0);
    for (&z, &y) in logits.iter().zip(labels) {
        let (p, y) = (sigmoid(f64::from(z)), f64::from(y));
        log_loss -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
        brier += (p - y).powi(2);
    }
    (log_loss / n, brier / n)
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * b.abs().max(1e-300)
}

#[test]
fn log_loss_brier_and_auc_match_scikit_learn_and_the_formulas() {
    for (case, r) in RECORDED.iter().enumerate() {
        let log_loss = metrics::log_loss(r.logits, r.labels);
        let brier = metrics::brier(r.logits, r.labels);
        assert!(close(log_loss, r.log_loss, 1e-13), "{case}: {log_loss}");
        assert!(close(brier, r.brier, 1e-13), "{case}: {brier}");
        let (direct_log_loss, direct_brier) = direct(r.logits, r.labels);
        assert!(close(log_loss, direct_log_loss, 1e-13), "{case}");
        assert!(close(brier, direct_brier, 1e-13), "{case}");
        // The evaluation reports the same, whatever the training loss.
        let evaluation = metrics::try_evaluate(r.logits, r.labels, 2.0, Some(0.75)).unwrap();
        assert_eq!((evaluation.log_loss, evaluation.brier), (log_loss, brier));
        assert!(
            close(evaluation.auc, r.auc, 1e-14),
            "{case}: {evaluation:?}"
        );
        // The rank-sum AUC is the trapezoid rule over the ROC curve's points, ties included.
        let mut order: Vec<usize> = (0..r.labels.len()).collect();
        order.sort_by(|&a, &b| r.logits[b].total_cmp(&r.logits[a]));
        let trapezoid: f64 = metrics::roc(r.logits, r.labels, &order)
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!(
            close(evaluation.auc, trapezoid, 1e-14),
            "{case}: {trapezoid}"
        );
    }
}

/// At |logit| 80 the probability is 1 - 1.8e-35, 1 in f64: the direct formula gives an
/// infinite loss for a confident miss and 0 for a confident hit. The softplus form gives
/// `80 + ln(1 + e^-80)` and `ln(1 + e^-80)`, its terms exact.
#[test]
fn log_loss_is_finite_and_exact_at_extreme_logits() {
    let tail = (-80.0_f64).exp().ln_1p();
    let cases: [(f32, f32, f64); 4] = [
        (80.0, 1.0, tail),
        (-80.0, 0.0, tail),
        (80.0, 0.0, 80.0 + tail),
        (-80.0, 1.0, 80.0 + tail),
    ];
    for (z, y, expected) in cases {
        let ours = metrics::log_loss(&[z], &[y]);
        assert!(close(ours, expected, 1e-15), "{z} {y}: {ours}");
        assert!(tail > 0.0 && close(tail, (-80.0_f64).exp(), 1e-15));
    }
    assert!(direct(&[80.0], &[0.0]).0.is_infinite());
    let (logits, labels) = ([80.0_f32, -80.0, 80.0, -80.0], [1.0_f32, 0.0, 0.0, 1.0]);
    assert!(close(
        metrics::log_loss(&logits, &labels),
        (2.0 * tail + 2.0 * (80.0 + tail)) / 4.0,
        1e-15
    ));
    // Brier needs no care: the squared errors are 0 and 1 to f64's precision.
    assert!(close(metrics::brier(&logits, &labels), 0.5, 1e-15));
}

#[test]
fn base_rate_scores_are_those_of_predicting_the_sets_own_rate() {
    for (positives, n) in [(2, 50), (1, 3), (17, 1000), (0, 10), (10, 10)] {
        let labels: Vec<f32> = (0..n).map(|i| f32::from(u8::from(i < positives))).collect();
        let rate = positives as f64 / n as f64;
        // Every record predicted `rate`, scored record by record.
        let (mut log_loss, mut brier) = (0.0, 0.0);
        for &y in &labels {
            let p_of_y = if y > 0.5 { rate } else { 1.0 - rate };
            // Only labels that occur are scored, so ln 0 never is.
            log_loss -= p_of_y.ln();
            brier += (rate - f64::from(y)).powi(2);
        }
        let (log_loss, brier) = (log_loss / n as f64, brier / n as f64);
        let base = metrics::base_rate_log_loss(&labels);
        // The loop rounds once per record.
        assert!(
            (base - log_loss).abs() < 1e-13,
            "{positives}/{n}: {base} {log_loss}"
        );
        assert!((metrics::base_rate_brier(&labels) - brier).abs() < 1e-13);
        if positives == 0 || positives == n {
            assert_eq!((base, metrics::base_rate_brier(&labels)), (0.0, 0.0));
            continue;
        }
        // The metrics' own scores of the constant logit agree (to the logit's f32 rounding),
        // and it is the best constant: any other scores worse.
        let logit = (rate / (1.0 - rate)).ln();
        let constant = |z: f64| vec![z as f32; n];
        let at_rate = metrics::log_loss(&constant(logit), &labels);
        assert!((at_rate - base).abs() < 1e-6, "{positives}/{n}: {at_rate}");
        for shift in [-0.25, 0.25] {
            let other = constant(logit + shift);
            assert!(metrics::log_loss(&other, &labels) > base + 1e-4);
            assert!(metrics::brier(&other, &labels) > metrics::base_rate_brier(&labels));
        }
    }
    assert!(metrics::base_rate_log_loss(&[]).is_nan() && metrics::base_rate_brier(&[]).is_nan());
}

/// Log loss and Brier are defined on one label, as the training loss is: `evaluate` shows
/// them there. A non-finite logit is a diverged run: NaN, even where a logit of +inf on a
/// positive would score a perfect 0.
#[test]
fn evaluate_scores_one_label_but_not_a_diverged_run() {
    let logits = [2.0_f32, -1.0, 0.5];
    let shown = metrics::evaluate(&logits, &[0.0; 3], 2.0, Some(0.75));
    assert!(shown.auc.is_nan());
    assert_eq!(shown.log_loss, metrics::log_loss(&logits, &[0.0; 3]));
    assert_eq!(shown.brier, metrics::brier(&logits, &[0.0; 3]));
    assert!(shown.log_loss > 0.0 && shown.brier > 0.0);
    for bad in [f32::NAN, f32::INFINITY] {
        let shown = metrics::evaluate(&[bad, -1.0, 0.5], &[1.0, 0.0, 1.0], 0.0, None);
        assert!(
            shown.log_loss.is_nan() && shown.brier.is_nan(),
            "{bad}: {shown:?}"
        );
    }
}

/// `n` scored records, about `rate` of them positive: a positive's logit is drawn from
/// N(separation, 1), a negative's from N(0, 1), rounded to 1/8 so that scores tie.
fn scored(n: usize, rate: f64, separation: f64, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let labels: Vec<f32> = (0..n)
        .map(|_| f32::from(u8::from(rng.uniform() < rate)))
        .collect();
    let logits = labels
        .iter()
        .map(|&y| ((rng.normal() + separation * f64::from(y)) * 8.0).round() as f32 / 8.0)
        .collect();
    (logits, labels)
}

#[test]
fn the_bootstrap_interval_holds_the_auc_narrows_with_records_and_repeats_per_seed() {
    let mut widths = Vec::new();
    for n in [2_000, 20_000] {
        let (logits, labels) = scored(n, 0.05, 1.0, 11);
        let auc = metrics::try_evaluate(&logits, &labels, 0.0, None)
            .unwrap()
            .auc;
        let (low, high) = metrics::auc_interval(&logits, &labels, 500, 3);
        assert!(
            low < auc && auc < high,
            "{n}: {auc} outside ({low}, {high})"
        );
        // About 2 standard errors each side: Hanley and McNeil's for AUC 0.76 at 100 (1000)
        // positives is 0.025 (0.008).
        assert!(
            0.02 < high - low && high - low < 0.2,
            "{n}: ({low}, {high})"
        );
        widths.push(high - low);
        assert_eq!(metrics::auc_interval(&logits, &labels, 500, 3), (low, high));
        assert_ne!(metrics::auc_interval(&logits, &labels, 500, 4), (low, high));
    }
    // 10 times the records: the width shrinks as 1/sqrt(10) = 0.32.
    assert!(widths[1] < 0.5 * widths[0], "{widths:?}");
}

#[test]
fn the_bootstrap_interval_of_a_perfect_separator_is_one_and_undefined_without_an_auc() {
    let logits = [-2.0_f32, -1.0, -1.0, 0.5, 1.0, 1.0, 3.0];
    let labels = [0.0_f32, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
    assert_eq!(metrics::auc_interval(&logits, &labels, 200, 1), (1.0, 1.0));
    // Exactly inverted: 0.
    let inverted: Vec<f32> = logits.iter().map(|z| -z).collect();
    assert_eq!(
        metrics::auc_interval(&inverted, &labels, 200, 1),
        (0.0, 0.0)
    );
    let nan = |(a, b): (f64, f64)| a.is_nan() && b.is_nan();
    assert!(nan(metrics::auc_interval(&logits, &[1.0; 7], 200, 1)));
    assert!(nan(metrics::auc_interval(&[f32::NAN; 7], &labels, 200, 1)));
    assert!(nan(metrics::auc_interval(&logits, &labels, 0, 1)));
}

/// Each resample's AUC, computed from counts per distinct score, is exactly the AUC
/// `try_evaluate` reports when the resample is built record by record: same records drawn,
/// same tie handling (half a pair), same arithmetic.
#[test]
fn each_resample_auc_is_try_evaluates_auc_of_the_resample() {
    // Three scores only: most pairs tie.
    let logits = [
        0.0_f32, 1.0, -1.0, 0.0, 1.0, 0.0, -1.0, 1.0, 0.0, -1.0, -0.0, 1.0,
    ];
    let labels = [
        1.0_f32, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0,
    ];
    let positives = labels.iter().filter(|&&y| y > 0.5).count();
    let seed = 42;
    let aucs = metrics::auc_bootstrap(&logits, &labels, 64, seed);
    assert_eq!(aucs.len(), 64);
    let mut rng = Rng::new(seed);
    let mut distinct = std::collections::BTreeSet::new();
    for (r, &auc) in aucs.iter().enumerate() {
        let records = metrics::stratified_resample(&labels, &mut rng);
        let z: Vec<f32> = records.iter().map(|&i| logits[i]).collect();
        let y: Vec<f32> = records.iter().map(|&i| labels[i]).collect();
        assert_eq!(y.iter().filter(|&&y| y > 0.5).count(), positives);
        assert_eq!(y.len(), labels.len());
        let evaluated = metrics::try_evaluate(&z, &y, 0.0, None).unwrap().auc;
        assert_eq!(auc, evaluated, "resample {r}: {records:?}");
        distinct.insert(auc.to_bits());
    }
    // The resamples differ: the comparison is not of one number 64 times.
    assert!(distinct.len() > 10, "{}", distinct.len());
}

/// The interval's cost is that of counting: 10,000 records x 1000 resamples well under a
/// second in a release build (about 0.02 s there); a debug build gets 10 times the room.
#[test]
fn the_bootstrap_is_fast() {
    let (logits, labels) = scored(10_000, 0.03, 1.0, 5);
    let start = std::time::Instant::now();
    let (low, high) = metrics::auc_interval(&logits, &labels, 1000, 9);
    let seconds = start.elapsed().as_secs_f64();
    assert!(low < high);
    let limit = if cfg!(debug_assertions) { 10.0 } else { 1.0 };
    assert!(seconds < limit, "{seconds} s");
}

/// Bins of equal count over distinct scores: every record in one, counts within one of each
/// other, lowest probability first, as many as asked (or one per record).
#[test]
fn calibration_bins_have_equal_counts() {
    let mut rng = Rng::new(8);
    for (n, bins) in [(1000, 10), (1003, 10), (37, 5), (7, 10), (1, 3), (10, 1)] {
        let logits: Vec<f32> = (0..n).map(|_| rng.normal() as f32 * 2.0 - 3.0).collect();
        let labels: Vec<f32> = (0..n)
            .map(|i| f32::from(u8::from(rng.uniform() < sigmoid(f64::from(logits[i])))))
            .collect();
        let table = metrics::calibration(&logits, &labels, bins);
        assert_eq!(table.len(), bins.min(n), "{n} into {bins}");
        assert_eq!(table.iter().map(|b| b.count).sum::<usize>(), n);
        let (fewest, most) = (
            table.iter().map(|b| b.count).min().unwrap(),
            table.iter().map(|b| b.count).max().unwrap(),
        );
        assert!(
            fewest >= 1 && most - fewest <= 1,
            "{n} into {bins}: {table:?}"
        );
        assert!(table.windows(2).all(|w| w[0].predicted < w[1].predicted));
        let positives = labels.iter().filter(|&&y| y > 0.5).count() as f64;
        let observed: f64 = table.iter().map(|b| b.observed * b.count as f64).sum();
        assert!((observed - positives).abs() < 1e-9);
    }
    assert!(metrics::calibration(&[], &[], 10).is_empty());
    assert!(metrics::calibration(&[0.0, 1.0], &[0.0, 1.0], 0).is_empty());
    assert!(metrics::calibration(&[0.0, f32::NAN], &[0.0, 1.0], 2).is_empty());
}

/// A run of equal scores stays in one bin; no bin is empty.
#[test]
fn calibration_keeps_ties_together() {
    // Every prediction 0.5: one bin, observed the positive rate.
    let labels: Vec<f32> = (0..40).map(|i| f32::from(u8::from(i % 13 == 0))).collect();
    assert_eq!(
        metrics::calibration(&[0.0; 40], &labels, 10),
        vec![metrics::Bin {
            predicted: 0.5,
            observed: 4.0 / 40.0,
            count: 40
        }]
    );
    // Ten records into five bins; the cut after the second record falls inside the run of
    // -1s (records 1 to 4), which the first bin takes whole; the second bin's cut (at 4) is
    // then inside the first, and it goes.
    let logits = [-2.0_f32, -1.0, -1.0, -1.0, -1.0, 0.0, 1.0, 2.0, 3.0, 3.0];
    let labels = [0.0_f32, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0];
    let counts: Vec<usize> = metrics::calibration(&logits, &labels, 5)
        .iter()
        .map(|b| b.count)
        .collect();
    assert_eq!(counts, [5, 1, 2, 2]);
    let table = metrics::calibration(&logits, &labels, 5);
    assert!((table[0].predicted - (sigmoid(-2.0) + 4.0 * sigmoid(-1.0)) / 5.0).abs() < 1e-15);
    assert_eq!(table[0].observed, 0.2);
    assert_eq!(table[3].observed, 1.0);
}

#[test]
fn expected_calibration_error_weights_the_gaps_by_count() {
    let bin = |predicted, observed, count| metrics::Bin {
        predicted,
        observed,
        count,
    };
    let table = [bin(0.1, 0.2, 10), bin(0.5, 0.375, 30)];
    // (10 x 0.1 + 30 x 0.125) / 40.
    let ece = metrics::expected_calibration_error(&table);
    assert!((ece - 4.75 / 40.0).abs() < 1e-15, "{ece}");
    assert!(metrics::expected_calibration_error(&[]).is_nan());
}

/// Labels drawn Bernoulli(sigmoid(z)) from the logits themselves are calibrated by
/// construction. The bins depend on the predictions alone, so given them a bin's gap
/// `observed - predicted` is a mean of independent `y - p`: mean 0, standard deviation
/// `sqrt(sum p (1 - p)) / count`. Each of the 10 gaps lies within 4 of its standard
/// deviations but with probability 6e-5, hence the bound: the count-weighted sum of 4
/// standard deviations (about 0.005 here, against a 2.5% default rate; the expected ECE is
/// about a fifth of it). The same logits with
/// labels drawn at e^1 times the odds (risk underestimated) are far outside it.
#[test]
fn a_calibrated_model_has_a_small_expected_calibration_error() {
    let n = 100_000;
    let bins = 10;
    let mut rng = Rng::new(2024);
    let logits: Vec<f32> = (0..n).map(|_| (rng.normal() * 0.8 - 4.0) as f32).collect();
    let draw = |rng: &mut Rng, shift: f64| -> Vec<f32> {
        logits
            .iter()
            .map(|&z| f32::from(u8::from(rng.uniform() < sigmoid(f64::from(z) + shift))))
            .collect()
    };
    let calibrated = draw(&mut rng, 0.0);
    let table = metrics::calibration(&logits, &calibrated, bins);
    assert_eq!(table.len(), bins);
    // The bins are contiguous runs of the probabilities sorted.
    let mut p: Vec<f64> = logits.iter().map(|&z| sigmoid(f64::from(z))).collect();
    p.sort_by(f64::total_cmp);
    let mut bound = 0.0;
    let mut start = 0;
    for bin in &table {
        let variance: f64 = p[start..start + bin.count]
            .iter()
            .map(|p| p * (1.0 - p))
            .sum();
        bound += bin.count as f64 / n as f64 * 4.0 * variance.sqrt() / bin.count as f64;
        start += bin.count;
    }
    assert!(0.002 < bound && bound < 0.01, "{bound}");
    let ece = metrics::expected_calibration_error(&table);
    assert!(ece < bound, "ECE {ece}, bound {bound}");
    let underestimated = draw(&mut rng, 1.0);
    let ece =
        metrics::expected_calibration_error(&metrics::calibration(&logits, &underestimated, bins));
    assert!(ece > 5.0 * bound, "ECE {ece}, bound {bound}");
}

fn series<'a>(name: &'a str, calibration: Vec<metrics::Bin>) -> plots::Series<'a> {
    let steps = |f: fn(f64) -> f64| -> Vec<(f64, f64)> {
        (1..20).map(|s| (s as f64, f(s as f64))).collect()
    };
    plots::Series {
        name,
        train_loss: steps(|s| 0.5 / s),
        val_loss: steps(|s| 0.6 / s),
        lr: steps(|s| 0.01 * s / 20.0),
        grad_norm: steps(|s| 1.0 + 1.0 / s),
        roc: vec![(0.0, 0.0), (0.1, 0.5), (0.4, 0.8), (1.0, 1.0)],
        auc: Some(0.78),
        calibration,
    }
}

/// calibration.png beside the other plots where a run has a table; a run without one is
/// left out, and with none at all the file is not written.
#[test]
fn plots_write_a_calibration_plot() {
    let dir = std::env::temp_dir().join(format!("credit_metrics_plots_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (logits, labels) = scored(5000, 0.03, 1.5, 17);
    let logits: Vec<f32> = logits.iter().map(|z| z - 4.0).collect();
    let table = metrics::calibration(&logits, &labels, 10);
    let written = plots::write(&dir, &[series("adamw", table), series("sgd", Vec::new())]).unwrap();
    let path = dir.join("calibration.png");
    assert!(written.contains(&path), "{written:?}");
    assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    for name in ["loss.png", "lr.png", "grad_norm.png", "roc.png"] {
        assert!(
            std::fs::metadata(dir.join(name)).unwrap().len() > 1000,
            "{name}"
        );
    }
    std::fs::remove_file(&path).unwrap();
    let written = plots::write(&dir, &[series("sgd", Vec::new())]).unwrap();
    assert!(!written.contains(&path) && !path.exists(), "{written:?}");
    std::fs::remove_dir_all(&dir).ok();
}
