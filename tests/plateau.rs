//! `ReduceLrOnPlateau` against PyTorch (`tools/golden/plateau.py` wrote
//! `tests/golden/plateau.json` with torch 2.15.0: every learning rate, bit for bit), driving a
//! real optimizer; `EarlyStopping` against Lightning's rule; `Snapshot` save and restore.

mod common;
use common::*;
use serde_json::Value;
use wgpu_optim::*;

const FIXTURE: &str = include_str!("golden/plateau.json");

/// A float as the fixture writes it: Python's `repr`, which Rust parses to the same bits.
fn float(value: &Value) -> f64 {
    let text = value.as_str().expect("floats are repr strings");
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} is not a float: {e}"))
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(float)
        .collect()
}

fn config_of(case: &Value) -> PlateauConfig {
    let c = &case["config"];
    let text = |key: &str| c[key].as_str().expect("a string").to_string();
    let count = |key: &str| c[key].as_u64().expect("an integer") as usize;
    PlateauConfig {
        mode: match text("mode").as_str() {
            "min" => MetricMode::Min,
            "max" => MetricMode::Max,
            other => panic!("mode {other}"),
        },
        factor: float(&c["factor"]),
        patience: count("patience"),
        threshold: float(&c["threshold"]),
        threshold_mode: match text("threshold_mode").as_str() {
            "rel" => ThresholdMode::Rel,
            "abs" => ThresholdMode::Abs,
            other => panic!("threshold_mode {other}"),
        },
        cooldown: count("cooldown"),
        min_lr: match &c["min_lr"] {
            Value::Array(_) => MinLr::PerGroup(floats(&c["min_lr"])),
            scalar => MinLr::All(float(scalar)),
        },
        eps: float(&c["eps"]),
    }
}

#[test]
fn replays_pytorch_bit_for_bit() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    assert_eq!(fixture["torch"], "2.15.0");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 15, "the fixture has {} cases", cases.len());
    let mut reductions = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut plateau = config_of(case).build().unwrap();
        let mut lrs = floats(&case["initial_lrs"]);
        let metrics = floats(&case["metrics"]);
        let expected = case["lrs"].as_array().unwrap();
        assert!(metrics.len() >= 60, "{name}: {} steps", metrics.len());
        for (t, (&metric, expected)) in metrics.iter().zip(expected).enumerate() {
            let before = lrs.clone();
            let changes = plateau.step(metric, &mut lrs).unwrap();
            let expected = floats(expected);
            for (g, (&lr, &torch)) in lrs.iter().zip(&expected).enumerate() {
                assert_eq!(
                    lr.to_bits(),
                    torch.to_bits(),
                    "{name}, step {t}, group {g}: lr {lr:e}, PyTorch {torch:e}"
                );
            }
            // The changes reported are exactly the rates that moved.
            let moved: Vec<LrChange> = (0..lrs.len())
                .filter(|&g| lrs[g].to_bits() != before[g].to_bits())
                .map(|g| LrChange {
                    group: g,
                    old: before[g],
                    new: lrs[g],
                })
                .collect();
            assert_eq!(changes, moved, "{name}, step {t}");
            reductions += changes.len();
        }
        assert_eq!(plateau.last_epoch(), metrics.len() as u64, "{name}");
    }
    // The fixture exercises reductions, not only constant rates.
    assert!(reductions > 100, "{reductions} reductions replayed");
}

#[test]
fn refuses_what_pytorch_refuses_and_non_finite_values() {
    for factor in [1.0, 1.5, f64::NAN] {
        match PlateauConfig::default().with_factor(factor).build() {
            Err(Error::InvalidHyperparameter { name: "factor", .. }) => {}
            other => panic!("factor {factor}: {other:?}"),
        }
    }
    let bad = [
        PlateauConfig::default().with_threshold(f64::NAN),
        PlateauConfig::default().with_eps(f64::INFINITY),
        PlateauConfig::default().with_min_lr(MinLr::All(f64::NAN)),
        PlateauConfig::default().with_min_lr(MinLr::PerGroup(vec![0.0, f64::INFINITY])),
    ];
    for config in bad {
        assert!(
            matches!(config.validate(), Err(Error::InvalidHyperparameter { .. })),
            "{config:?}"
        );
    }
    // Just under 1 is fine, as in PyTorch.
    PlateauConfig::default().with_factor(0.999).build().unwrap();
}

#[test]
fn per_group_min_lr_must_match_the_group_count() {
    let mut plateau = PlateauConfig::default()
        .with_patience(0)
        .with_min_lr(MinLr::PerGroup(vec![0.0, 0.0]))
        .build()
        .unwrap();
    let before = plateau.clone();
    let mut lrs = [0.1, 0.1, 0.1];
    match plateau.step(1.0, &mut lrs) {
        Err(Error::WrongLength {
            expected: 2,
            actual: 3,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // Refused before anything changed.
    assert_eq!(plateau, before);
    assert_eq!(lrs, [0.1; 3]);
}

/// Two SGD groups over f32 tensors, learning rates 0.1 and 0.2.
fn two_groups(ctx: &Context) -> (Optimizer, Vec<wgpu::Buffer>, Vec<Vec<f32>>) {
    let mut rng = Rng::new(7);
    let mut buffers = Vec::new();
    let mut grads = Vec::new();
    let mut groups = Vec::new();
    for (g, lr) in [0.1, 0.2].into_iter().enumerate() {
        let param = ctx.upload_f32(&format!("param {g}"), &rng.vector(37));
        let grad_values = rng.gradient(37);
        let grad = ctx.upload_f32(&format!("grad {g}"), &grad_values);
        groups.push(ParamGroup {
            config: OptimizerConfig::Sgd(SgdConfig::default().with_lr(lr)),
            params: vec![Param::whole(&param, &grad)],
        });
        buffers.push(param);
        grads.push(grad_values);
    }
    (Optimizer::with_groups(ctx, groups).unwrap(), buffers, grads)
}

fn step(ctx: &Context, optimizer: &Optimizer) {
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    optimizer.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
}

fn group_lrs(optimizer: &Optimizer) -> Vec<f64> {
    optimizer.group_configs().iter().map(|c| c.lr()).collect()
}

#[test]
fn drives_an_optimizer_on_the_device() {
    let ctx = context();
    let (mut optimizer, params, grads) = two_groups(ctx);
    let mut plateau = PlateauConfig::default()
        .with_factor(0.5)
        .with_patience(0)
        .with_min_lr(MinLr::PerGroup(vec![0.0, 0.15]))
        .build()
        .unwrap();
    // The first metric improves on +inf; the second does not: patience 0 reduces.
    assert!(plateau
        .step_optimizer(1.0, &mut optimizer)
        .unwrap()
        .is_empty());
    assert_eq!(group_lrs(&optimizer), [0.1, 0.2]);
    let changes = plateau.step_optimizer(1.0, &mut optimizer).unwrap();
    // max(0.1 * 0.5, 0) and max(0.2 * 0.5, 0.15), PyTorch's `_reduce_lr`.
    let expected = [0.1 * 0.5, 0.15];
    assert_eq!(group_lrs(&optimizer), expected);
    assert_eq!(
        changes,
        [
            LrChange {
                group: 0,
                old: 0.1,
                new: expected[0]
            },
            LrChange {
                group: 1,
                old: 0.2,
                new: expected[1]
            }
        ]
    );

    // The device steps with the new rates: plain SGD, p - lr * g in f32.
    let before: Vec<Vec<f32>> = params
        .iter()
        .map(|p| ctx.read_f32(&BufferRange::whole(p)).unwrap())
        .collect();
    step(ctx, &optimizer);
    for g in 0..2 {
        let after = ctx.read_f32(&BufferRange::whole(&params[g])).unwrap();
        let lr = expected[g] as f32;
        let host: Vec<f32> = before[g]
            .iter()
            .zip(&grads[g])
            .map(|(p, d)| p - lr * d)
            .collect();
        assert_close(&format!("group {g} after the reduction"), &after, &host);
    }
}

#[test]
fn one_scheduler_per_replica_group() {
    let ctx = context();
    let (mut optimizer, _, _) = two_groups(ctx);
    let mut schedulers: Vec<ReduceLrOnPlateau> = (0..2)
        .map(|_| {
            PlateauConfig::default()
                .with_factor(0.5)
                .with_patience(1)
                .build()
                .unwrap()
        })
        .collect();
    // Replica 0 keeps improving; replica 1 stalls at 1.0 from its second evaluation and is
    // reduced at its third (patience 1: the second bad evaluation in a row).
    let losses = [[3.0, 1.0], [2.0, 1.0], [1.0, 1.0]];
    for (epoch, pair) in losses.iter().enumerate() {
        for (replica, scheduler) in schedulers.iter_mut().enumerate() {
            let changes = scheduler
                .step_groups(pair[replica], &mut optimizer, &[replica])
                .unwrap();
            let reduced = replica == 1 && epoch == 2;
            assert_eq!(changes.len(), usize::from(reduced), "{epoch} {replica}");
            if reduced {
                assert_eq!(changes[0].group, 1, "the optimizer's group index");
            }
        }
    }
    assert_eq!(group_lrs(&optimizer), [0.1, 0.2 * 0.5]);

    let before = schedulers[0].clone();
    match schedulers[0].step_groups(1.0, &mut optimizer, &[2]) {
        Err(Error::NoSuchGroup { group: 2, count: 2 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        schedulers[0].step_groups(1.0, &mut optimizer, &[0, 0]),
        Err(Error::InvalidOptions(_))
    ));
    assert_eq!(schedulers[0], before, "refused calls change nothing");
}

#[test]
fn a_rate_the_optimizer_refuses_changes_nothing() {
    let ctx = context();
    let (mut optimizer, _, _) = two_groups(ctx);
    // A negative factor takes the rate to min_lr, here negative: SGD refuses lr < 0.
    let mut plateau = PlateauConfig::default()
        .with_factor(-1.0)
        .with_patience(0)
        .with_min_lr(MinLr::All(-1.0))
        .build()
        .unwrap();
    plateau.step_optimizer(1.0, &mut optimizer).unwrap();
    let before = plateau.clone();
    assert!(matches!(
        plateau.step_optimizer(1.0, &mut optimizer),
        Err(Error::InvalidHyperparameter { name: "lr", .. })
    ));
    assert_eq!(plateau, before);
    assert_eq!(group_lrs(&optimizer), [0.1, 0.2]);
}

/// Lightning's `EarlyStopping._evaluate_stopping_criteria`
/// (`src/lightning/pytorch/callbacks/early_stopping.py`), for finite metrics and no stopping
/// or divergence threshold, written as plainly as possible: the index (from 1) of the check
/// that says stop, and the checks that improved. In min mode Lightning stores
/// `min_delta *= -1` and tests `torch.lt(current - min_delta, best)`; in max mode
/// `torch.gt(current - min_delta, best)`; a non-improvement adds 1 to `wait_count` and stops
/// once `wait_count >= patience`.
fn lightning(
    metrics: &[f64],
    max_mode: bool,
    min_delta: f64,
    patience: usize,
) -> (Option<u64>, Vec<u64>) {
    let stored_delta = if max_mode { min_delta } else { -min_delta };
    let mut best = if max_mode {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };
    let mut wait_count = 0;
    let mut improved = Vec::new();
    for (i, &current) in metrics.iter().enumerate() {
        let shifted = current - stored_delta;
        let better = if max_mode {
            shifted > best
        } else {
            shifted < best
        };
        if better {
            best = current;
            wait_count = 0;
            improved.push(i as u64 + 1);
        } else {
            wait_count += 1;
            if wait_count >= patience {
                return (Some(i as u64 + 1), improved);
            }
        }
    }
    (None, improved)
}

/// Runs `metrics` through an `EarlyStopping` until it says stop: the stopping check and the
/// checks that improved.
fn run(config: EarlyStoppingConfig, metrics: &[f64]) -> (Option<u64>, Vec<u64>, EarlyStopping) {
    let mut early = config.build().unwrap();
    let mut improved = Vec::new();
    for &metric in metrics {
        let check = early.check(metric);
        assert_eq!(check.should_stop, check.reason.is_some());
        assert!(!(check.improved && check.should_stop));
        if check.improved {
            improved.push(early.checks());
        }
        if check.should_stop {
            break;
        }
    }
    (early.stopped_at(), improved, early)
}

#[test]
fn early_stopping_follows_lightnings_rule() {
    let mut rng = Rng::new(11);
    let noisy: Vec<f64> = (0..200)
        .map(|t| 1.0 / (1.0 + t as f64 * 0.05) + f64::from(rng.uniform()) * 0.02)
        .collect();
    let staircase: Vec<f64> = (0..60).map(|t| f64::from(10 - t / 7)).collect();
    let scripted: Vec<(&str, Vec<f64>)> = vec![
        ("noisy", noisy.clone()),
        ("staircase", staircase),
        ("noisy, negated", noisy.iter().map(|m| -m).collect()),
    ];
    let mut stops = 0;
    for (name, metrics) in &scripted {
        for max_mode in [false, true] {
            for min_delta in [0.0, 0.001, 0.5] {
                for patience in [0, 1, 3, 10] {
                    let mode = if max_mode {
                        MetricMode::Max
                    } else {
                        MetricMode::Min
                    };
                    let config = EarlyStoppingConfig::default()
                        .with_mode(mode)
                        .with_min_delta(min_delta)
                        .with_patience(patience);
                    let (stopped, improved, _) = run(config, metrics);
                    let expected = lightning(metrics, max_mode, min_delta, patience);
                    assert_eq!(
                        (stopped, improved),
                        expected,
                        "{name}, {mode:?}, min_delta {min_delta}, patience {patience}"
                    );
                    stops += usize::from(stopped.is_some());
                }
            }
        }
    }
    // Both outcomes occur in the table.
    assert!(stops > 10 && stops < 72, "{stops} of 72 runs stopped");
}

#[test]
fn early_stopping_by_hand() {
    // Min, patience 3: checks 1 and 2 improve (5, then 4), 3, 4 and 5 do not (wait 1, 2, 3):
    // the fifth says stop (wait_count 3 >= patience 3).
    let (stopped, improved, early) = run(
        EarlyStoppingConfig::default(),
        &[5.0, 4.0, 4.0, 4.5, 4.0, 1.0],
    );
    assert_eq!((stopped, improved), (Some(5), vec![1, 2]));
    assert_eq!(early.best(), 4.0);
    assert_eq!(early.wait_count(), 3);

    // min_delta 0.25: 0.75 + 0.25 < 1.0 is false (strict), 0.5 + 0.25 < 1.0 is true. All
    // exact in binary.
    let config = EarlyStoppingConfig::default()
        .with_min_delta(0.25)
        .with_patience(2);
    let (stopped, improved, early) = run(config, &[1.0, 0.75, 0.5, 0.375, 0.3]);
    assert_eq!((stopped, improved), (Some(5), vec![1, 3]));
    assert_eq!(early.best(), 0.5);

    // Max, patience 0: the first check without improvement stops.
    let config = EarlyStoppingConfig::default()
        .with_mode(MetricMode::Max)
        .with_patience(0);
    assert_eq!(run(config, &[0.1, 0.2, 0.2]).0, Some(3));

    // check_finite: NaN stops at once, keeping wait_count; off, NaN is only not better.
    let (stopped, _, early) = run(EarlyStoppingConfig::default(), &[1.0, 2.0, f64::NAN]);
    assert_eq!(stopped, Some(3));
    assert_eq!(early.wait_count(), 1);
    let mut early = EarlyStoppingConfig::default()
        .with_check_finite(false)
        .build()
        .unwrap();
    early.check(1.0);
    let check = early.check(f64::NAN);
    assert!(!check.should_stop && !check.improved);
    assert_eq!(early.wait_count(), 1);

    // Thresholds stop at once, and a stopping threshold's metric is not recorded as the best.
    let mut early = EarlyStoppingConfig::default()
        .with_stopping_threshold(Some(0.1))
        .with_divergence_threshold(Some(10.0))
        .build()
        .unwrap();
    early.check(1.0);
    let check = early.check(0.05);
    assert_eq!(check.reason, Some(StopReason::StoppingThreshold));
    assert_eq!(early.best(), 1.0);
    let check = early.check(11.0);
    assert_eq!(check.reason, Some(StopReason::DivergenceThreshold));
    assert_eq!(early.stopped_at(), Some(2), "the first stop is kept");

    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            EarlyStoppingConfig::default().with_min_delta(bad).build(),
            Err(Error::InvalidHyperparameter {
                name: "min_delta",
                ..
            })
        ));
    }
}

/// Everything a snapshot of `optimizer` covers, read back: params, states, control block.
fn everything(ctx: &Context, optimizer: &Optimizer) -> Vec<Vec<u32>> {
    let bits = |values: Vec<f32>| values.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let mut out = Vec::new();
    for (index, param) in optimizer.params().enumerate() {
        out.push(bits(ctx.read_f32(&param.param).unwrap()));
        for name in optimizer.state_names() {
            out.push(bits(optimizer.read_state(index, name).unwrap()));
        }
    }
    let control = optimizer.read_control_unchecked().unwrap();
    out.push(bytemuck::cast_slice(bytemuck::bytes_of(&control)).to_vec());
    out
}

#[test]
fn snapshot_restores_params_states_and_control_bit_for_bit() {
    let ctx = context();
    let mut rng = Rng::new(3);
    // bf16 states of odd-length tensors: 16-bit ranges copied as whole words.
    let mut params = Vec::new();
    for len in [7, 300, 1] {
        let param = ctx.upload_f32("param", &rng.vector(len));
        let grad = ctx.upload_f32("grad", &rng.gradient(len));
        params.push(Param::whole(&param, &grad));
    }
    let config = OptimizerConfig::Adam(AdamConfig::default().with_lr(0.01).with_amsgrad(true));
    let group = ParamGroup {
        config,
        params: params.clone(),
    };
    let precision = Precision::default().with_states(Dtype::BF16);
    let mut optimizer = Optimizer::with_precision(ctx, vec![group], precision).unwrap();
    optimizer
        .set_grad_processing(Some(GradConfig::default().with_max_norm(0.5)))
        .unwrap();
    let snapshot = Snapshot::of_optimizer(ctx, &optimizer, &[]).unwrap();
    // Per tensor: param + 3 states; and the control block.
    assert_eq!(snapshot.copies(), 3 * 4 + 1);

    for _ in 0..3 {
        step(ctx, &optimizer);
    }
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    snapshot.record_save(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let saved = everything(ctx, &optimizer);
    step(ctx, &optimizer);
    let after_one = everything(ctx, &optimizer);
    for _ in 0..3 {
        step(ctx, &optimizer);
    }
    assert_ne!(
        everything(ctx, &optimizer),
        saved,
        "the steps changed something"
    );

    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    snapshot.record_restore(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    assert_eq!(everything(ctx, &optimizer), saved);
    assert_eq!(optimizer.read_step().unwrap(), 3);
    // The optimizer carries on from the restored state exactly as it did from the saved one.
    step(ctx, &optimizer);
    assert_eq!(everything(ctx, &optimizer), after_one);
}

#[test]
fn snapshot_refuses_bad_ranges() {
    let ctx = context();
    let device = ctx.device();
    let buffer = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 1024,
            usage,
            mapped_at_creation: false,
        })
    };
    let copy = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let good = buffer(copy);
    let no_dst = buffer(wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);

    let ranges = [
        BufferRange::new(&good, 0, 4),
        BufferRange::new(&no_dst, 0, 4),
    ];
    match Snapshot::new(ctx, &ranges) {
        Err(Error::MissingUsage { index, missing, .. }) => {
            assert_eq!((index, missing), (1, wgpu::BufferUsages::COPY_DST));
        }
        other => panic!("{other:?}"),
    }
    match Snapshot::new(ctx, &[BufferRange::new(&good, 2, 4)]) {
        Err(Error::MisalignedOffset { offset: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    match Snapshot::new(ctx, &[BufferRange::new(&good, 1000, 8)]) {
        Err(Error::OutOfBounds { end: 1032, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Bytes 0..16 and 12..20 overlap, and so do the bf16 ranges 64..70 and 68..72 (copied
    // as the words 64..72 and 68..72).
    let overlapping = [
        BufferRange::new(&good, 0, 4),
        BufferRange::new(&good, 512, 4),
        BufferRange::new(&good, 12, 2),
    ];
    match Snapshot::new(ctx, &overlapping) {
        Err(Error::SnapshotOverlap { first, second }) => {
            assert_eq!((first.as_str(), second.as_str()), ("range 0", "range 2"));
        }
        other => panic!("{other:?}"),
    }
    let sixteen_bit = [
        BufferRange::typed(&good, 64, 3, Dtype::BF16),
        BufferRange::typed(&good, 68, 2, Dtype::BF16),
    ];
    assert!(matches!(
        Snapshot::new(ctx, &sixteen_bit),
        Err(Error::SnapshotOverlap { .. })
    ));
    // Disjoint ranges and empty ones are fine; an empty one copies nothing.
    let fine = [
        BufferRange::new(&good, 0, 4),
        BufferRange::new(&good, 16, 0),
        BufferRange::new(&good, 16, 4),
    ];
    let snapshot = Snapshot::new(ctx, &fine).unwrap();
    assert_eq!((snapshot.copies(), snapshot.bytes()), (2, 32));

    // An optimizer whose params lack COPY_DST; an extra range overlapping a param.
    let param = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let grad = ctx.upload_f32("grad", &[0.0; 16]);
    let sgd = SgdConfig::default()
        .build(ctx, &[Param::whole(&param, &grad)])
        .unwrap();
    match Snapshot::of_optimizer(ctx, &sgd, &[]) {
        Err(Error::MissingUsage { index: 0, role, .. }) => assert_eq!(role, "param"),
        other => panic!("{other:?}"),
    }
    let param = ctx.upload_f32("param", &[0.0; 16]);
    let sgd = SgdConfig::default()
        .with_momentum(0.9)
        .build(ctx, &[Param::whole(&param, &grad)])
        .unwrap();
    let extra = [BufferRange::new(&param, 32, 4)];
    match Snapshot::of_optimizer(ctx, &sgd, &extra) {
        Err(Error::SnapshotOverlap { first, second }) => {
            assert_eq!(
                (first.as_str(), second.as_str()),
                ("tensor 0's param", "extra range 0")
            );
        }
        other => panic!("{other:?}"),
    }
    // The message names both.
    let error = Snapshot::of_optimizer(ctx, &sgd, &extra).unwrap_err();
    assert!(error.to_string().contains("extra range 0"), "{error}");
    // Without the overlap: param, momentum_buffer, control block and the extra range.
    let other = ctx.upload_f32("other", &[0.0; 4]);
    let snapshot = Snapshot::of_optimizer(ctx, &sgd, &[BufferRange::whole(&other)]).unwrap();
    assert_eq!(snapshot.copies(), 4);
}

/// Issue 25, finding 7: a restore leaves the control words that belong to the gradient
/// processing in force as they are, as loading a checkpoint does: saved under a GradScaler
/// and restored with clipping only, the loss scale stays 1 (not 65536); a saved
/// `clip_value` does not override the one configured; a saved halt does not stop a
/// configuration that skips. What the processing in force owns comes back.
#[test]
fn a_restore_keeps_the_control_words_of_the_processing_in_force() {
    let ctx = context();
    let (mut optimizer, buffers, grads) = two_groups(ctx);
    let scaler = GradConfig::default()
        .with_clip_value(0.05)
        .with_grad_scaler(GradScalerConfig::default().with_growth_interval(2));
    optimizer.set_grad_processing(Some(scaler.clone())).unwrap();
    let snapshot = Snapshot::of_optimizer(ctx, &optimizer, &[]).unwrap();
    let restore = |optimizer: &Optimizer| {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        snapshot.record_restore(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        optimizer.read_control_unchecked().unwrap()
    };
    step(ctx, &optimizer);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    snapshot.record_save(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let saved = optimizer.read_control_unchecked().unwrap();
    assert_eq!((saved.grad_scale, saved.growth_tracker), (65536.0, 1));

    // Clipping by value only, at 100: no scaler, another bound.
    let clip = GradConfig::default().with_clip_value(100.0);
    optimizer.set_grad_processing(Some(clip)).unwrap();
    step(ctx, &optimizer);
    let control = restore(&optimizer);
    assert_eq!((control.grad_scale, control.growth_tracker), (1.0, 0));
    assert_eq!(control.clip_value, 100.0);
    assert_eq!(
        control.step, saved.step,
        "the step counter is state: restored"
    );
    // The next step unscales by 1 and clips at 100: the gradients as they are (|g| < 100).
    let before: Vec<Vec<f32>> = buffers
        .iter()
        .map(|b| ctx.read_f32(&BufferRange::whole(b)).unwrap())
        .collect();
    step(ctx, &optimizer);
    for (g, ((buffer, before), grad)) in buffers.iter().zip(&before).zip(&grads).enumerate() {
        let lr = [0.1_f32, 0.2][g];
        let after = ctx.read_f32(&BufferRange::whole(buffer)).unwrap();
        for ((a, b), g) in after.iter().zip(before).zip(grad) {
            assert_eq!(*a, b - lr * g, "group {g}: SGD with the gradient as it is");
        }
    }

    // The scaler back: its words come back from the save.
    optimizer.set_grad_processing(Some(scaler)).unwrap();
    let control = restore(&optimizer);
    assert_eq!((control.grad_scale, control.growth_tracker), (65536.0, 1));
    assert_eq!(control.clip_value, 0.05);

    // Saved halted by error_if_nonfinite, restored under a configuration that skips: the
    // next finite step is taken.
    let halting = GradConfig::default().with_error_if_nonfinite(true);
    optimizer.set_grad_processing(Some(halting)).unwrap();
    let grad = optimizer.params().next().unwrap().grad.clone();
    ctx.write_f32(&grad, &[f32::NAN; 37]).unwrap();
    step(ctx, &optimizer);
    assert!(optimizer.read_control().is_err(), "halted");
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    snapshot.record_save(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    optimizer
        .set_grad_processing(Some(GradConfig::default()))
        .unwrap();
    let control = restore(&optimizer);
    assert_eq!(
        control.nonfinite_step, 0,
        "no halt without error_if_nonfinite"
    );
    ctx.write_f32(&grad, &grads[0]).unwrap();
    let taken = control.step;
    step(ctx, &optimizer);
    assert_eq!(
        optimizer.read_step().unwrap(),
        taken + 1,
        "the finite step is taken"
    );
}

/// Issue 25, finding 11: the rates of several groups are set all or none. A scheduler over
/// groups sets them with one call, so a rate refused in one group (by the configuration or
/// by a device schedule's table) leaves every group's as it was.
#[test]
fn group_rates_are_set_all_or_none() {
    let ctx = context();
    let (mut optimizer, _, _) = two_groups(ctx);
    assert!(matches!(
        optimizer.set_group_lrs(&[(0, 0.05), (1, -1.0)]),
        Err(Error::InvalidHyperparameter { name: "lr", .. })
    ));
    assert!(matches!(
        optimizer.set_group_lrs(&[(0, 0.05), (2, 0.1)]),
        Err(Error::NoSuchGroup { group: 2, count: 2 })
    ));
    assert_eq!(group_lrs(&optimizer), [0.1, 0.2]);
    optimizer.set_group_lrs(&[(1, 0.05), (0, 0.01)]).unwrap();
    assert_eq!(group_lrs(&optimizer), [0.01, 0.05]);
    // Under a device schedule the table is rebuilt once for both, and the plateau's
    // reductions land in both groups together.
    optimizer
        .set_schedule(Some(DeviceSchedule::new(
            LrSchedule::CosineAnnealing {
                t_max: 10,
                eta_min: 0.0,
            },
            10,
        )))
        .unwrap();
    let mut plateau = PlateauConfig::default().with_patience(0).build().unwrap();
    plateau.step_optimizer(1.0, &mut optimizer).unwrap();
    let changes = plateau.step_optimizer(2.0, &mut optimizer).unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(group_lrs(&optimizer), [0.01 * 0.1, 0.05 * 0.1]);
}
