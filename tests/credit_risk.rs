//! The credit-default example's pieces (`examples/credit_risk/`): the forward and backward
//! kernels against a CPU implementation in f64 and against finite differences, the focal loss
//! against values recorded from torchvision, the data generator's default rate and
//! determinism, and a short training run whose validation AUC and loss a broken optimizer or
//! backward pass would not reach. Then the example as a user runs it (`app::run`, in process,
//! on tiny tables): hostile tables refused with their line, column and value named, splits
//! that would hold a single label refused or avoided, and a diverging run reported, not a
//! panic.

mod common;
// The whole example, `main.rs` and its modules, as the binary builds it.
#[path = "../examples/credit_risk/main.rs"]
#[allow(dead_code)]
mod app;

use app::{data, metrics, mlp};
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
        metrics::try_evaluate(&logits, &val.labels, 2.0, Some(0.75)).unwrap()
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
/// attributes in file order (a byte-order mark and CRLF line ends are fine; a value beyond
/// f32's smallest is 0, as any f32 parse makes it); malformed files are refused with their
/// line, column and value named. Issue 25 (14): a cell finite in f64 but not in f32, the
/// device's type (`1e39`), was accepted and every standardized value became NaN; so are the
/// other shapes a careless export gives: an empty file, a header alone, ragged lines, a label
/// not 0 or 1 or not a number, a column named twice.
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
    assert_eq!(table.names, ["age", "income"]);
    let exported = write("exported.csv", "\u{feff}a,y\r\n3.4e38,1.0\r\n1e-50,0\r\n");
    let table = data::read_csv(&exported, "y").unwrap();
    assert_eq!(
        (table.records, table.labels),
        (vec![3.4e38, 0.0], vec![1.0, 0.0])
    );
    for (text, expected) in [
        (
            "a,y\n1,0\n1e39,1\n",
            "line 3, column \"a\": \"1e39\" is not a finite number in f32",
        ),
        (
            "a,y\n-3.5e38,1\n",
            "\"-3.5e38\" is not a finite number in f32",
        ),
        (
            "a,y\ninf,1\n",
            "line 2, column \"a\": \"inf\" is not a finite number",
        ),
        ("a,y\n-Infinity,1\n", "\"-Infinity\" is not a finite number"),
        (
            "a,y\n1,0\n1,inf\n",
            "line 3, column \"y\": label inf is not 0 or 1",
        ),
        (
            "a,y\n1,yes\n",
            "line 2, column \"y\": label yes is not 0 or 1",
        ),
        ("a,y\n1,0.5\n", "label 0.5 is not 0 or 1"),
        ("a,y\n1,\n", "label  is not 0 or 1"),
        ("a,y\n1,0,7\n", "line 2: 3 fields, the header has 2"),
        (
            "a,y,a\n1,0,2\n",
            "names column \"a\" twice (columns 1 and 3)",
        ),
        ("a,y\n", "a header row and no records"),
        ("a,y\n\n  \n", "a header row and no records"),
        (" \n\n", "an empty file"),
        ("a,b\n1,2\n", "no column \"y\""),
        ("a,y\n1,0\n2\n", "line 3: 1 fields"),
        ("a,y\n1,0\nx,1\n", "line 3, column \"a\""),
        ("a,y\n1,0\nnan,1\n", "is not a finite number"),
        ("a,y\n1,2\n", "label 2 is not 0 or 1"),
        ("y\n1\n", "no attribute columns"),
        ("", "an empty file"),
    ] {
        let error = data::read_csv(&write("bad.csv", text), "y")
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A directory of `test`'s own under the system's temporary one.
fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("credit_risk_{test}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A table of `rows` records, `positive(i)` labelling record `i`: attributes `a` (the label
/// plus noise: learnable), `b` (noise) and `c` (constant), then the label `y`.
fn table(rows: usize, positive: impl Fn(usize) -> bool) -> String {
    let mut rng = data::Rng::new(17);
    let mut text = String::from("a,b,c,y\n");
    for i in 0..rows {
        let y = u8::from(positive(i));
        let a = f64::from(y) + 0.5 * rng.normal();
        text += &format!("{a:.4},{:.4},4.5,{y}\n", rng.normal());
    }
    text
}

/// The example's arguments: the table at `csv` (label `y`), one epoch of batches of 8, one
/// evaluation, one timing repetition (the table's forward / backward / optimizer split waits
/// for each), curves into `out`; then `extra`, which may override them.
fn csv_args(csv: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> app::Args {
    let csv = csv.display().to_string();
    let out = out.display().to_string();
    let base = [
        "--csv",
        &csv,
        "--label",
        "y",
        "--out",
        &out,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--evals-per-epoch",
        "1",
        "--timing-repeats",
        "1",
    ];
    app::parse_args_from(base.iter().chain(extra).map(|s| s.to_string()).collect())
}

/// Issue 25 (4), the bookkeeping: a log point is named by the training loop's step, and a
/// control block names it by the steps attempted, taken plus skipped (a skipped step does not
/// advance the device's counter). Keyed by the counter alone, the second reading below names
/// step 7, never logged: the example panicked there ("no entry found for key"). A reading of
/// a step never logged is an error naming it.
#[test]
fn the_log_names_a_control_block_by_the_steps_attempted() {
    use wgpu_optim::Control;
    let mut log = app::train_log::TrainLog::default();
    for step in [1, 11, 21, 31] {
        log.expect(step, step as f64 / 100.0);
    }
    let control = |taken: u32, skipped: u32, found_inf: u32, grad_norm: f32| Control {
        step: taken,
        skipped_steps: skipped,
        found_inf,
        grad_norm,
        ..Control::INITIAL
    };
    // Step 1 taken; 4 of steps 2 to 11 skipped; step 21 itself skipped; steps 22 to 31 too.
    let first = log.control(&control(1, 0, 0, 0.5)).unwrap();
    assert_eq!((first.step, first.lr, first.skipped), (1, 0.01, false));
    log.loss(11, 0.25).unwrap();
    let eleventh = log.control(&control(7, 4, 0, 2.0)).unwrap();
    assert_eq!(eleventh.step, 11);
    assert_eq!(eleventh.lr, 0.11);
    assert_eq!((eleventh.loss, eleventh.grad_norm), (Some(0.25), Some(2.0)));
    let skipped = log.control(&control(16, 5, 1, f32::NAN)).unwrap();
    assert_eq!(
        (skipped.step, skipped.lr, skipped.skipped),
        (21, 0.21, true)
    );
    let last = log.control(&control(16, 15, 1, f32::NAN)).unwrap();
    assert_eq!((last.step, last.skipped), (31, true));
    assert_eq!(log.skipped_steps(), 15);
    let unlogged = log.control(&control(3, 2, 0, 1.0)).unwrap_err();
    assert_eq!(unlogged.step, 5);
    assert!(unlogged.to_string().contains("step 5"), "{unlogged}");
    assert_eq!(log.loss(2, 1.0).unwrap_err().step, 2);
    let steps: Vec<usize> = log.entries().iter().map(|e| e.step).collect();
    assert_eq!(steps, [1, 11, 21, 31]);
}

/// Issue 25 (4), end to end: SGD at a learning rate of 30 diverges; its NaN gradients skip
/// steps, and logging every second step, the old keying soon met a device counter that was
/// no logged step. The run ends without a panic: it stops at the first evaluation whose
/// validation logits are not finite, its result counts the skipped steps, every log point
/// carries its own step's learning rate and the last is marked skipped (the readings land on
/// their own steps, not on the device counter's), no test metrics are made up, the curves
/// leave the validation cells empty, and `verdict` turns it into a typed error after the
/// report.
#[test]
fn a_diverging_run_is_reported_not_a_panic() {
    let dir = scratch("diverging");
    let csv = dir.join("table.csv");
    std::fs::write(&csv, table(200, |i| i % 4 == 0)).unwrap();
    let args = csv_args(
        &csv,
        &dir,
        &["--optim", "sgd", "--lr", "30", "--log-every", "2"],
    );
    let results = match app::run(common::context(), args) {
        Ok(results) => results,
        Err(e) => panic!("the run failed: {e}"),
    };
    let run = &results[0];
    let at = run.diverged_at.expect("SGD at lr 30 diverges");
    assert!(run.skipped >= 2, "{} skipped", run.skipped);
    assert_eq!(run.attempted, at);
    assert!(
        matches!(run.test, Err(metrics::Undefined::NonFinite { .. })),
        "{:?}",
        run.test
    );
    assert!(run.test_roc.is_empty());
    // The example's schedule: 20 steps (160 training records), one of warm-up.
    let steps = run.log.len();
    let schedule = LrSchedule::WarmupCosineDecay(WarmupCosineDecay {
        init_value: 0.0,
        peak_value: 30.0,
        warmup_steps: 1,
        decay_steps: 20,
        end_value: 0.0,
        exponent: 1.0,
    });
    for entry in &run.log {
        assert_eq!(entry.step % 2, 1, "{entry:?}");
        assert_eq!(
            entry.lr,
            schedule.lr(30.0, entry.step as u64 - 1),
            "{entry:?}"
        );
    }
    let last = run.log.last().expect("log points");
    assert!(
        last.skipped && !last.grad_norm.unwrap().is_finite(),
        "{steps} log points: {:?}",
        run.log
    );
    let error = app::verdict(&results).unwrap_err().to_string();
    assert!(
        error.contains("sgd diverged") && error.contains("skipped"),
        "{error}"
    );
    let curves = std::fs::read_to_string(dir.join("curves.csv")).unwrap();
    assert!(curves.trim_end().ends_with(",,"), "{curves}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 25 (13): a table sorted by label (every default last) used to split in file order:
/// a training split without one default, then "AUC 0.0000" and "precision 1.000" on a test
/// split of defaults only. Split stratified by label, each split holds both labels in the
/// table's proportion (a tenth of each label to validation, as many to test), the same for
/// the same seed; the run's test metrics are defined and learned (the attribute `a` alone
/// ranks at an AUC of about 0.92). The constant column `c` is only centred: finite values.
#[test]
fn a_table_sorted_by_label_splits_with_both_labels() {
    let dir = scratch("sorted");
    let csv = dir.join("table.csv");
    std::fs::write(&csv, table(200, |i| i >= 160)).unwrap();
    let all = data::read_csv(&csv, "y").unwrap();
    let [train, val, test] = all.split_stratified(7).unwrap();
    for (set, negatives, positives) in [(&train, 128, 32), (&val, 16, 4), (&test, 16, 4)] {
        assert_eq!(set.positives(), positives);
        assert_eq!(set.len() - set.positives(), negatives);
    }
    let [again, ..] = all.split_stratified(7).unwrap();
    assert_eq!(again.records, train.records);
    let [other, ..] = all.split_stratified(8).unwrap();
    assert_ne!(other.records, train.records);
    let moments = train.moments();
    assert_eq!(moments[2], (4.5, 0.0));
    let mut standardized = val.select(&[0, 1]);
    standardized
        .try_standardize(&moments, "validation")
        .unwrap();
    assert_eq!(
        [standardized.records[2], standardized.records[5]],
        [0.0, 0.0]
    );

    let args = csv_args(
        &csv,
        &dir,
        &["--optim", "adamw", "--epochs", "2", "--batch-size", "16"],
    );
    let results = match app::run(common::context(), args) {
        Ok(results) => results,
        Err(e) => panic!("the run failed: {e}"),
    };
    app::verdict(&results).unwrap();
    let evaluation = results[0].test.unwrap();
    eprintln!("test metrics of the sorted table: {evaluation:?}");
    assert!(evaluation.auc > 0.75, "{evaluation:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 25 (13): metrics undefined on one label are not numbers. ROC AUC and an F1-optimal
/// precision need both labels (the evaluation used to return AUC 0 and precision 1 for a set
/// of positives only), and a non-finite logit means the network diverged: `try_evaluate`
/// says which, and `evaluate` (which examples/data_parallel.rs prints) gives NaN for them,
/// the loss alone where it is defined.
#[test]
fn metrics_are_undefined_on_one_label_or_non_finite_logits() {
    use metrics::Undefined;
    let logits = [2.0_f32, -1.0, 0.5, 3.0];
    for (labels, positives) in [([1.0_f32; 4], 4), ([0.0; 4], 0)] {
        assert_eq!(
            metrics::try_evaluate(&logits, &labels, 2.0, Some(0.75)).unwrap_err(),
            Undefined::OneLabel {
                records: 4,
                positives
            }
        );
        let shown = metrics::evaluate(&logits, &labels, 2.0, Some(0.75));
        let undefined = [shown.auc, shown.threshold, shown.accuracy, shown.precision];
        assert!(undefined.iter().all(|m| m.is_nan()), "{shown:?}");
        assert!(shown.recall.is_nan() && shown.f1.is_nan(), "{shown:?}");
        assert!(shown.loss.is_finite() && shown.loss > 0.0, "{shown:?}");
    }
    let labels = [1.0, 0.0, 0.0, 1.0];
    let nan = [2.0, -1.0, f32::NAN, 3.0];
    let Undefined::NonFinite { record, logit } =
        metrics::try_evaluate(&nan, &labels, 2.0, Some(0.75)).unwrap_err()
    else {
        panic!("a NaN logit")
    };
    assert!(record == 2 && logit.is_nan());
    assert!(metrics::evaluate(&nan, &labels, 2.0, Some(0.75))
        .auc
        .is_nan());
    // Both labels, ranked perfectly: every metric defined.
    let evaluation = metrics::try_evaluate(&logits, &labels, 2.0, Some(0.75)).unwrap();
    assert_eq!(
        (evaluation.auc, evaluation.precision, evaluation.recall),
        (1.0, 1.0, 1.0)
    );
}

/// Issue 25 (14), past the parse: a column with a tiny spread in the training split
/// standardizes a far value of another split beyond f32 (here 1e10 / 5e-31); refused with
/// the split, the record, the column and the value named, not a NaN downstream.
#[test]
fn a_standardized_value_beyond_f32_is_refused() {
    let train = data::Dataset {
        records: vec![1e-30, 0.0, 2e-30, 1.0],
        labels: vec![0.0, 1.0],
        features: 2,
        names: vec!["tiny".into(), "b".into()],
    };
    let mut val = data::Dataset {
        records: vec![1.5e-30, 0.5, 1e10, 0.5],
        ..train.select(&[0, 1])
    };
    let moments = train.moments();
    let error = val
        .try_standardize(&moments, "validation")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("the validation split's record 1, column \"tiny\": 1e10"),
        "{error}"
    );
}

/// Tables the example refuses before any training, each with what is wrong and how to fix
/// it: a cell beyond f32 (issue 25, 14), too few records, a label with fewer than the 3
/// records a stratified split needs (issue 25, 13: no split may hold a single label), and
/// the synthetic data's in-order split left without a default at 100 records. Nothing is
/// written to the output directory.
#[test]
fn hostile_tables_are_refused_before_training() {
    let dir = scratch("hostile");
    let overflow = table(200, |i| i % 5 == 0).replacen("4.5,0\n", "1e39,0\n", 1);
    let cases: [(&str, String, &str); 4] = [
        (
            "overflow",
            overflow,
            "line 3, column \"c\": \"1e39\" is not a finite number in f32",
        ),
        ("few", table(60, |i| i % 2 == 0), "60 records: at least 100"),
        (
            "two defaults",
            table(200, |i| i < 2),
            "2 records labelled 1: the training, validation and test splits each need",
        ),
        ("no default", table(200, |_| false), "0 records labelled 1"),
    ];
    for (name, text, expected) in cases {
        let csv = dir.join(format!("{name}.csv"));
        std::fs::write(&csv, text).unwrap();
        let out = dir.join(name);
        let error = match app::run(common::context(), csv_args(&csv, &out, &[])) {
            Ok(_) => panic!("{name}: trained"),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains(&format!("--csv {}: ", csv.display())) && error.contains(expected),
            "{name}: {error}"
        );
        assert!(!out.exists(), "{name}: wrote {}", out.display());
    }
    let out = dir.join("synthetic");
    let args = app::parse_args_from(
        ["--records", "100", "--out", out.to_str().unwrap()]
            .map(String::from)
            .to_vec(),
    );
    let error = match app::run(common::context(), args) {
        Ok(_) => panic!("100 synthetic records: trained"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("records are all labelled 0: ROC AUC and precision are undefined")
            && error.contains("--records 1000"),
        "{error}"
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).ok();
}
