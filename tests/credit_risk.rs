//! The credit-default example's pieces (`examples/credit_risk/`): the forward and backward
//! kernels against a CPU implementation in f64 and against finite differences, the focal loss
//! against values recorded from torchvision, the data generator's default rate and
//! determinism, and a short training run whose validation AUC and loss a broken optimizer or
//! backward pass would not reach.

mod common;
#[path = "../examples/credit_risk/data.rs"]
mod data;
#[path = "../examples/credit_risk/metrics.rs"]
#[allow(dead_code)]
mod metrics;
#[path = "../examples/credit_risk/mlp.rs"]
mod mlp;

use mlp::{DeviceData, Kernels, Loss, Net, Pass};
use wgpu_optim::*;

const FOCAL: Loss = Loss {
    gamma: 2.0,
    alpha: Some(0.75),
};

/// The network's loss on the host, in f64: forward through `weights` (row-major [in, out]
/// and biases, as the arena holds them) and the mean focal loss over the batch.
fn host_loss(widths: &[usize], params: &[Vec<f64>], x: &[f64], y: &[f64], loss: Loss) -> f64 {
    let rows = y.len();
    let mut h = x.to_vec();
    let layers = widths.len() - 1;
    for l in 0..layers {
        let (k, n) = (widths[l], widths[l + 1]);
        let (w, b) = (&params[2 * l], &params[2 * l + 1]);
        let mut z = vec![0.0; rows * n];
        for r in 0..rows {
            for j in 0..n {
                let mut sum = b[j];
                for i in 0..k {
                    sum += h[r * k + i] * w[i * n + j];
                }
                z[r * n + j] = if l + 1 < layers { sum.max(0.0) } else { sum };
            }
        }
        h = z;
    }
    h.iter()
        .zip(y)
        .map(|(&z, &t)| metrics::focal_loss(z, t, f64::from(loss.gamma), loss.alpha.map(f64::from)))
        .sum::<f64>()
        / rows as f64
}

/// Forward and backward of a small network whose widths and batch are no multiples of the
/// 64 x 64 tiles: the device's gradient of every weight and bias against finite differences
/// of the host's f64 loss (central, step 1e-3 relative), within 2e-3 of the largest gradient
/// of its tensor. The device computes in f32 and sums in another order: the bound is f32's
/// rounding over sums of up to 70 terms, far below what a wrong index or transpose gives.
/// With bf16 weights (`--precision bf16...`) the same, from the weights as stored (the host
/// reads them back widened; the gradients are f32).
#[test]
fn backward_matches_finite_differences() {
    for weights in [Dtype::F32, Dtype::BF16] {
        backward_matches_finite_differences_with(weights);
    }
}

fn backward_matches_finite_differences_with(weights: Dtype) {
    let ctx = common::context();
    let kernels = Kernels::new(ctx, weights);
    let widths = [7, 70, 19, 5, 1];
    let rows = 13;
    let net = Net::new(ctx, &widths, 0.3, 11, weights).unwrap();
    let mut rng = data::Rng::new(5);
    let x: Vec<f32> = (0..rows * widths[0]).map(|_| rng.normal() as f32).collect();
    let y: Vec<f32> = (0..rows)
        .map(|i| if i % 3 == 0 { 1.0 } else { 0.0 })
        .collect();
    let data = DeviceData::upload(ctx, &x, &y, widths[0], rows);
    let pass = Pass::new(ctx, &kernels, &net, &data, rows, Some(FOCAL)).unwrap();
    pass.set_batch(ctx, 0);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    {
        let mut compute = encoder.begin_compute_pass(&Default::default());
        pass.record_forward(&kernels, &mut compute);
        pass.record_backward(&kernels, &mut compute);
    }
    ctx.queue().submit([encoder.finish()]);

    let params: Vec<Vec<f64>> = (0..net.arena.len())
        .map(|i| {
            net.arena
                .read_param(i)
                .unwrap()
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        })
        .collect();
    let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let ys: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
    let loss = |p: &[Vec<f64>]| host_loss(&widths, p, &xs, &ys, FOCAL);
    // The device's mean loss is the host's.
    let device_loss = ctx
        .read_f32(&BufferRange::new(&pass.loss_value, 0, 1))
        .unwrap()[0];
    assert!((f64::from(device_loss) - loss(&params)).abs() < 1e-5 * loss(&params).max(1.0));
    for tensor in 0..params.len() {
        let device = net.arena.read_grad(tensor).unwrap();
        let largest = device
            .iter()
            .fold(0.0_f64, |m, &g| m.max(f64::from(g).abs()));
        assert!(largest > 0.0, "tensor {tensor}: no gradient at all");
        for (i, &g) in device.iter().enumerate() {
            let step = 1e-3 * params[tensor][i].abs().max(1e-2);
            let mut plus = params.clone();
            plus[tensor][i] += step;
            let mut minus = params.clone();
            minus[tensor][i] -= step;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * step);
            assert!(
                (f64::from(g) - numeric).abs() <= 2e-3 * largest,
                "{weights} weights, tensor {tensor} element {i}: device {g:e}, finite differences {numeric:e} (largest {largest:e})"
            );
        }
    }
}

/// torchvision's `sigmoid_focal_loss` (tests/golden/focal_loss.json, logits from -100 to 100,
/// gamma 0 and 2, alpha 0.25, 0.75 and none): the kernel's mean loss within 1e-6 relative and
/// its gradient within 1e-6 of the largest (f32 against float64; `exp` and `log` of WGSL are
/// within a few ulp), and the host's f64 losses within 1e-12 (plus 1e-15 absolute).
#[test]
fn focal_loss_matches_torchvision() {
    let ctx = common::context();
    let kernels = Kernels::new(ctx, Dtype::F32);
    let document: serde_json::Value =
        serde_json::from_str(include_str!("golden/focal_loss.json")).unwrap();
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let cases = document["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let gamma = case["gamma"].as_f64().unwrap();
        let alpha = case["alpha"].as_f64().unwrap();
        let loss = Loss {
            gamma: gamma as f32,
            alpha: (alpha >= 0.0).then_some(alpha as f32),
        };
        let (logits, labels) = (numbers(&case["logits"]), numbers(&case["labels"]));
        let (losses, grads) = (numbers(&case["losses"]), numbers(&case["grad_of_mean"]));
        for ((&z, &y), &expected) in logits.iter().zip(&labels).zip(&losses) {
            let host = metrics::focal_loss(z, y, gamma, loss.alpha.map(f64::from));
            // torchvision computes log(1 + e) with e below f64 epsilon as 0 where the host keeps e:
            // an absolute floor far below any loss that matters.
            assert!(
                (host - expected).abs() <= 1e-12 * expected.abs() + 1e-15,
                "host: z {z}, y {y}, gamma {gamma}, alpha {alpha}: {host:e} vs {expected:e}"
            );
        }
        let as_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let (mean, dz) =
            mlp::focal_loss_on_device(ctx, &kernels, &as_f32(&logits), &as_f32(&labels), loss)
                .unwrap();
        let expected_mean = losses.iter().sum::<f64>() / losses.len() as f64;
        assert!(
            (f64::from(mean) - expected_mean).abs() <= 1e-6 * expected_mean,
            "gamma {gamma}, alpha {alpha}: mean {mean:e} vs {expected_mean:e}"
        );
        let largest = grads.iter().fold(0.0_f64, |m, g| m.max(g.abs()));
        for (i, (&d, &g)) in dz.iter().zip(&grads).enumerate() {
            assert!(
                (f64::from(d) - g).abs() <= 1e-6 * largest,
                "gamma {gamma}, alpha {alpha}, logit {} label {}: {d:e} vs {g:e}",
                logits[i],
                labels[i]
            );
        }
    }
}

/// The generator defaults 2.0% of customers (within 0.15 points over 200,000: the binomial's
/// standard deviation is 0.03), gives the same records for the same seed, and others for
/// another, whether generated at once or streamed in chunks.
#[test]
fn the_generator_is_calibrated_and_deterministic() {
    let set = data::Generator::new(7).generate(200_000);
    let rate = set.positives() as f64 / set.len() as f64;
    assert!((rate - 0.02).abs() < 0.0015, "default rate {rate}");
    let again = data::Generator::new(7).generate(1000);
    assert_eq!(again.records, set.records[..1000 * data::FEATURES]);
    assert_eq!(again.labels, set.labels[..1000]);
    let other = data::Generator::new(8).generate(1000);
    assert_ne!(other.records, again.records);
    // Streamed in chunks (as past 200,000 training records), the same records.
    let generator = data::Generator::new(7);
    let mut stream = generator.stream();
    let (first, second) = (stream.take(300), stream.take(700));
    assert_eq!([first.labels, second.labels].concat(), again.labels);
    assert_eq!([first.records, second.records].concat(), again.records);
}

/// Two epochs of AdamW on 12,000 records with the example's network: the validation loss falls
/// below its starting value by a margin and the AUC passes 0.7 (chance is 0.5; a sign error
/// in the backward pass or an optimizer that does not step stays near chance).
#[test]
fn a_short_training_run_learns() {
    let ctx = common::context();
    let kernels = Kernels::new(ctx, Dtype::F32);
    let widths = [data::FEATURES, 64, 32, 1];
    let all = data::Generator::new(3).generate(12_000);
    let mut train = all.slice(0..10_000);
    let mut val = all.slice(10_000..12_000);
    let moments = train.moments();
    train.standardize(&moments);
    val.standardize(&moments);
    let prior = train.positives() as f64 / train.len() as f64;
    let net = Net::new(ctx, &widths, prior, 1, Dtype::F32).unwrap();
    let train_data = DeviceData::upload(ctx, &train.records, &train.labels, data::FEATURES, 1);
    let val_data = DeviceData::upload(ctx, &val.records, &val.labels, data::FEATURES, 2000);
    let pass = Pass::new(ctx, &kernels, &net, &train_data, 250, Some(FOCAL)).unwrap();
    let val_pass = Pass::new(ctx, &kernels, &net, &val_data, 2000, None).unwrap();
    let evaluate = || {
        val_pass.set_batch(ctx, 0);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut compute = encoder.begin_compute_pass(&Default::default());
            val_pass.record_forward(&kernels, &mut compute);
        }
        ctx.queue().submit([encoder.finish()]);
        let logits = ctx
            .read_f32(&BufferRange::new(&val_pass.logits, 0, 2000))
            .unwrap();
        metrics::evaluate(&logits, &val.labels, 2.0, Some(0.75))
    };
    let before = evaluate();
    let groups = net.params();
    let optimizer = AdamWConfig::default()
        .with_lr(3e-3)
        .build(ctx, &groups)
        .unwrap();
    let mut rng = data::Rng::new(9);
    for _ in 0..2 {
        train_data.set_order(ctx, &rng.permutation(train.len()));
        for step in 0..train.len() / 250 {
            pass.train_step(ctx, &kernels, &optimizer, step * 250, |_| {});
        }
    }
    let after = evaluate();
    eprintln!(
        "validation: loss {:.5} -> {:.5}, AUC {:.3} -> {:.3}",
        before.loss, after.loss, before.auc, after.auc
    );
    assert!(
        after.loss < 0.9 * before.loss,
        "the loss did not fall: {before:?} -> {after:?}"
    );
    assert!(after.auc > 0.7, "AUC {}", after.auc);
}

/// `--csv FILE --label COLUMN`: a user's table, the label column anywhere, the rest
/// attributes in file order; malformed files are refused with their line and column named.
#[test]
fn a_users_table_is_read_or_refused() {
    let dir = std::env::temp_dir().join(format!("credit_risk_csv_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let good = write("good.csv", "age,defaulted, income\n31,0,5.5\n\n45,1,-2e3\n");
    let table = data::read_csv(&good, "defaulted").unwrap();
    assert_eq!(table.features, 2);
    assert_eq!(table.labels, vec![0.0, 1.0]);
    assert_eq!(table.records, vec![31.0, 5.5, 45.0, -2000.0]);
    for (text, expected) in [
        ("a,b\n1,2\n", "no column \"y\""),
        ("a,y\n1,0\n2\n", "line 3: 1 fields"),
        ("a,y\n1,0\nx,1\n", "line 3, column \"a\""),
        ("a,y\n1,0\nnan,1\n", "is not a finite number"),
        ("a,y\n1,2\n", "label 2 is not 0 or 1"),
        ("y\n1\n", "no attribute columns"),
        ("", "an empty file"),
    ] {
        let error = data::read_csv(&write("bad.csv", text), "y").unwrap_err();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
