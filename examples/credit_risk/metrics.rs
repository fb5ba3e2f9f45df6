//! Evaluation metrics on the host, from the logits a pass reads back once per evaluation.

use super::data::sigmoid;

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

/// The metrics of `logits` against `labels`, NaN where they are undefined (the mean loss is
/// defined on one label; see [`try_evaluate`] for why): never an AUC of 0 or a precision of 1
/// that look like results. For `examples/data_parallel.rs`, which prints them.
pub fn evaluate(logits: &[f32], labels: &[f32], gamma: f64, alpha: Option<f64>) -> Evaluation {
    try_evaluate(logits, labels, gamma, alpha).unwrap_or(Evaluation {
        loss: mean_loss(logits, labels, gamma, alpha),
        auc: f64::NAN,
        threshold: f64::NAN,
        accuracy: f64::NAN,
        precision: f64::NAN,
        recall: f64::NAN,
        f1: f64::NAN,
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
    let auc = roc(logits, labels, &order)
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum();
    // Sweep thresholds from the top: predict positive for the first k records.
    let mut best = Evaluation {
        loss,
        auc,
        threshold: 0.0,
        accuracy: 0.0,
        precision: 0.0,
        recall: 0.0,
        f1: 0.0,
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
