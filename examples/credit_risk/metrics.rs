//! Evaluation metrics on the host, from the logits a pass reads back once per evaluation.

use crate::data::sigmoid;

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

/// What an evaluation reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Evaluation {
    pub loss: f64,
    pub auc: f64,
    /// At the F1-optimal threshold.
    pub threshold: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// The metrics of `logits` against `labels`.
pub fn evaluate(logits: &[f32], labels: &[f32], gamma: f64, alpha: Option<f64>) -> Evaluation {
    let n = labels.len();
    let loss = logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| focal_loss(f64::from(z), f64::from(y), gamma, alpha))
        .sum::<f64>()
        / n as f64;
    // Highest score first; ties broken by nothing the metrics depend on.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let positives = labels.iter().filter(|&&y| y > 0.5).count();
    let negatives = n - positives;
    let auc = roc(logits, labels, &order)
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum();
    // Sweep thresholds from the top: predict positive for the first k records.
    let mut best = Evaluation {
        loss,
        auc,
        ..Default::default()
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
        let recall = true_positives as f64 / positives.max(1) as f64;
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
    best
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
