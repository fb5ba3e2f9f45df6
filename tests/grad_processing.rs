//! Gradient processing on the device: global norms against f64, PyTorch's values for inf, NaN
//! and overflowing gradients, determinism, the non-finite skip, the loss scaler, clipping
//! against the reference, the data-parallel split and the non-blocking readback.

mod common;
use common::*;
use wgpu_optim::*;

/// The reduction paths this adapter has: the workgroup-memory tree always, subgroup
/// operations where the adapter has them (lavapipe, and so CI, does).
fn contexts() -> Vec<(&'static str, Context)> {
    let ctx = context();
    let tree = ctx.clone().with_tuning(Tuning {
        subgroups: false,
        ..ctx.tuning()
    });
    let mut paths = vec![("workgroup tree", tree)];
    if ctx.uses_subgroups() {
        paths.push(("subgroups", ctx.clone()));
    } else {
        eprintln!("this adapter has no subgroup operations: only the workgroup tree is tested");
    }
    paths
}

fn submit(ctx: &Context, record: impl FnOnce(&mut wgpu::CommandEncoder)) {
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
}

/// `total` elements cut into `count` tensors of uneven lengths.
fn split(total: usize, count: usize, rng: &mut Rng) -> Vec<usize> {
    let weights: Vec<u64> = (0..count).map(|_| 1 + rng.next_u64() % 1000).collect();
    let sum: u64 = weights.iter().sum();
    let mut lens: Vec<usize> = weights
        .iter()
        .map(|w| (total as u64 * w / sum) as usize)
        .collect();
    lens[0] += total - lens.iter().sum::<usize>();
    lens
}

fn relative_error(device: f32, exact: f64) -> f64 {
    ((f64::from(device) - exact) / exact).abs()
}

/// Steps `run` with `grads` clipped to `max_norm` in `norm_type`; checks the device's norm
/// against f64 (within 1e-6 relative) and `clip_grad_norm_`'s coefficient from it (in f32).
/// Returns the norm's relative error.
fn check_clipped_norm(
    run: &mut Run,
    ctx: &Context,
    grads: &[Vec<f32>],
    norm_type: f64,
    max_norm: f64,
    what: &str,
) -> f64 {
    run.set_grad_processing(Some(
        GradConfig::default()
            .with_max_norm(max_norm)
            .with_norm_type(norm_type),
    ));
    run.step_with(ctx, grads);
    let control = run.device.read_control().unwrap();
    let exact = reference::global_norm(grads, norm_type);
    let error = relative_error(control.grad_norm, exact);
    assert!(
        error < 1e-6,
        "{what}: device {} vs f64 {exact}",
        control.grad_norm
    );
    let coef = (max_norm as f32 / (control.grad_norm + 1e-6)).min(1.0);
    assert!(
        (control.clip_coef - coef).abs() <= 2.0 * f32::EPSILON * coef,
        "{what}: clip_coef {} vs {coef}",
        control.clip_coef
    );
    error
}

#[test]
fn global_norms_match_f64_over_1_7_and_1000_tensors() {
    const TOTAL: usize = 10_000_000;
    let mut rng = Rng::new(7);
    for count in [1, 7, 1000] {
        let lens = split(TOTAL, count, &mut rng);
        let sgd = OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.0));
        for (path, ctx) in contexts() {
            let mut run = Run::new(&ctx, &sgd, &lens, count as u64);
            let grads = run.gradients();
            for norm_type in [2.0, f64::INFINITY] {
                let max_norm = 1.0;
                let what = format!("{count} tensors, {path}, norm {norm_type}");
                let error = check_clipped_norm(&mut run, &ctx, &grads, norm_type, max_norm, &what);
                eprintln!("{what}: relative error {error:.2e}");
            }
        }
    }
}

/// `clip_grad_norm_` accepts any `norm_type > 0`: the 1-norm, fractional and higher p, beside 2
/// and inf. Global norms over tensors of many sizes (ends inside a vec4, several workgroups,
/// many tensors) against f64, on both reduction paths, and the clip coefficient from them;
/// the 1-norm sums `|c|` exactly as the 2-norm sums squares, other p go through WGSL's `pow`.
#[test]
fn p_norms_of_many_sizes_match_f64() {
    let mut rng = Rng::new(17);
    let sgd = OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.0));
    let mut worst = Vec::new();
    for norm_type in [1.0, 1.5, 3.0, 2.0, f64::INFINITY] {
        let mut worst_error = 0.0_f64;
        for lens in [
            vec![1],
            vec![3],
            vec![4, 5],
            vec![1000],
            vec![257, 4099, 7],
            split(300_000, 37, &mut rng),
        ] {
            for (path, ctx) in contexts() {
                let mut run = Run::new(&ctx, &sgd, &lens, lens.len() as u64);
                let grads = run.gradients();
                let what = format!(
                    "norm {norm_type}, lens {:?}, {path}",
                    &lens[..lens.len().min(3)]
                );
                let error = check_clipped_norm(&mut run, &ctx, &grads, norm_type, 0.5, &what);
                worst_error = worst_error.max(error);
                let (exact, control) = (
                    reference::global_norm(&grads, norm_type),
                    run.device.read_control().unwrap(),
                );
                if exact > 1.0 {
                    assert!(control.clip_coef < 1.0, "{what}: never clipped");
                }
                run.compare(&ctx, &what);
            }
        }
        worst.push(format!("p = {norm_type}: {worst_error:.1e}"));
    }
    eprintln!("worst relative error against f64: {}", worst.join(", "));
}

/// PyTorch's `clip_grad_norm_` (torch/nn/utils/clip_grad.py) computes
/// `total_norm = vector_norm(stack([vector_norm(g) for g in grads]))` in f32 and
/// `clip_coef = clamp(max_norm / (total_norm + 1e-6), max=1)`. Its f32 2-norm squares without
/// rescaling, so entries of 1e20 overflow it to inf (pytorch/pytorch#193006): clip_coef is then
/// max_norm / inf = 0. An inf gradient gives norm inf and coefficient 0; a NaN gives NaN and
/// NaN (`clamp` keeps NaN). With an inf or NaN the step is skipped here, as GradScaler skips
/// it; 1e20 entries are finite, so that step is taken, with every gradient times 0.
#[test]
fn pytorch_values_for_inf_nan_and_overflowing_gradients() {
    struct Case {
        name: &'static str,
        poison: &'static [f32],
        norm: f32,
        clip_coef: f32,
        skipped: bool,
    }
    let cases = [
        Case {
            name: "an inf",
            poison: &[f32::INFINITY],
            norm: f32::INFINITY,
            clip_coef: 0.0,
            skipped: true,
        },
        Case {
            name: "a -inf",
            poison: &[f32::NEG_INFINITY],
            norm: f32::INFINITY,
            clip_coef: 0.0,
            skipped: true,
        },
        Case {
            name: "a NaN",
            poison: &[f32::NAN],
            norm: f32::NAN,
            clip_coef: f32::NAN,
            skipped: true,
        },
        Case {
            name: "an inf and a NaN",
            poison: &[f32::INFINITY, f32::NAN],
            norm: f32::NAN,
            clip_coef: f32::NAN,
            skipped: true,
        },
        Case {
            name: "1e20 entries",
            poison: &[1e20, -1e20],
            norm: f32::INFINITY,
            clip_coef: 0.0,
            skipped: false,
        },
    ];
    let adamw = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01));
    for (path, ctx) in contexts() {
        for case in &cases {
            let what = format!("{} ({path})", case.name);
            let mut run = Run::new(&ctx, &adamw, &[5, 1000, 3], 11);
            run.set_grad_processing(Some(GradConfig::default().with_max_norm(1.0)));
            let mut grads = run.gradients();
            for (k, &v) in case.poison.iter().enumerate() {
                grads[1][100 * k + 7] = v;
            }
            let before = run.snapshot(&ctx);
            run.step_with(&ctx, &grads);
            let control = run.device.read_control().unwrap();
            assert_eq!(
                bits(&[control.grad_norm]),
                bits(&[case.norm]),
                "{what}: norm"
            );
            if case.clip_coef.is_nan() {
                assert!(control.clip_coef.is_nan(), "{what}: clip_coef");
            } else {
                assert_eq!(control.clip_coef, case.clip_coef, "{what}: clip_coef");
            }
            assert_eq!(control.skipped(), case.skipped, "{what}: skipped");
            assert_eq!(control.step, u32::from(!case.skipped), "{what}: step");
            if case.skipped {
                assert_eq!(run.snapshot(&ctx), before, "{what}: a skipped step wrote");
            } else {
                assert_ne!(run.snapshot(&ctx), before, "{what}: the step did nothing");
            }
            run.compare(&ctx, &what);
        }
        // Overflow where each invocation loops over many vec4s (one workgroup per dispatch):
        // the blocked sums stay inf to the end.
        let looping = ctx.clone().with_tuning(Tuning {
            max_workgroups_per_dispatch: 1,
            ..ctx.tuning()
        });
        let mut run = Run::new(&looping, &adamw, &[100_000], 13);
        run.set_grad_processing(Some(GradConfig::default().with_max_norm(1.0)));
        let mut grads = run.gradients();
        for i in [5, 50_000, 99_998] {
            grads[0][i] = 1e20;
        }
        run.step_with(&looping, &grads);
        let control = run.device.read_control().unwrap();
        assert_eq!(
            (control.grad_norm, control.clip_coef, control.found_inf),
            (f32::INFINITY, 0.0, 0),
            "{path}: 1e20 entries in a long tensor"
        );
        run.compare(&looping, &format!("1e20 entries in a long tensor ({path})"));

        // The inf-norm of 1e20 entries is finite: max |g| = 1e20.
        let mut run = Run::new(&ctx, &adamw, &[1000], 12);
        run.set_grad_processing(Some(
            GradConfig::default()
                .with_max_norm(1.0)
                .with_norm_type(f64::INFINITY),
        ));
        let mut grads = run.gradients();
        grads[0][10] = -1e20;
        run.step_with(&ctx, &grads);
        let control = run.device.read_control().unwrap();
        assert_eq!(control.grad_norm, 1e20, "{path}: inf-norm of 1e20");
        assert_eq!(control.clip_coef, 1.0 / (1e20 + 1e-6), "{path}");
        run.compare(&ctx, &format!("inf-norm of 1e20 ({path})"));
    }
}

#[test]
fn fifty_runs_give_the_same_bits() {
    let lens = [1, 1000, 100_003, 4099];
    let adamw = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01));
    for (path, ctx) in contexts() {
        let mut first: Option<(Vec<u32>, Vec<Vec<u32>>)> = None;
        for run_index in 0..50 {
            // The same seed: the same params and gradients every run.
            let mut run = Run::new(&ctx, &adamw, &lens, 5);
            run.set_grad_processing(Some(GradConfig::default().with_max_norm(0.5)));
            let mut norms = Vec::new();
            for _ in 0..2 {
                let grads = run.gradients();
                run.step_with(&ctx, &grads);
                norms.push(run.device.read_control().unwrap().grad_norm.to_bits());
            }
            let result = (norms, run.snapshot(&ctx));
            match &first {
                None => first = Some(result),
                Some(first) => assert!(
                    *first == result,
                    "{path}: run {run_index} differs from run 0"
                ),
            }
        }
    }
}

#[test]
fn a_nan_step_changes_nothing_and_the_next_matches_a_run_that_never_saw_it() {
    let ctx = context();
    let lens = [1, 257, 1000];
    for (n, config) in all_configs().iter().enumerate() {
        let grad_config = GradConfig::default().with_max_norm(2.0);
        let mut poisoned = Run::new(ctx, config, &lens, 300 + n as u64);
        let mut clean = Run::new(ctx, config, &lens, 300 + n as u64);
        poisoned.set_grad_processing(Some(grad_config.clone()));
        clean.set_grad_processing(Some(grad_config));
        let first = poisoned.gradients();
        let mut nan = poisoned.gradients();
        let second = poisoned.gradients();
        nan[2][999] = f32::NAN;

        poisoned.step_with(ctx, &first);
        clean.step_with(ctx, &first);
        let before = poisoned.snapshot(ctx);
        poisoned.step_with(ctx, &nan);
        assert_eq!(
            poisoned.snapshot(ctx),
            before,
            "{config:?}: the NaN step wrote"
        );
        let control = poisoned.device.read_control().unwrap();
        assert!(control.skipped(), "{config:?}");
        assert_eq!((control.step, control.skipped_steps), (1, 1), "{config:?}");

        poisoned.step_with(ctx, &second);
        clean.step_with(ctx, &second);
        assert_eq!(
            poisoned.snapshot(ctx),
            clean.snapshot(ctx),
            "{config:?}: the step after the NaN differs from a run without it"
        );
        assert_eq!(poisoned.device.read_step().unwrap(), 2, "{config:?}");
        poisoned.compare(ctx, &format!("{config:?} after a skipped step"));
    }
}

#[test]
fn error_if_nonfinite_halts_and_reports_at_the_next_readback() {
    let ctx = context();
    let adam = OptimizerConfig::Adam(AdamConfig::default());
    let mut run = Run::new(ctx, &adam, &[100, 7], 21);
    run.set_grad_processing(Some(GradConfig::default().with_error_if_nonfinite(true)));
    let mut reader = ControlReader::new(ctx, 4);
    run.step(ctx);
    let after_first = run.snapshot(ctx);
    let mut grads = run.gradients();
    grads[0][3] = f32::INFINITY;
    run.step_with(ctx, &grads);
    run.step(ctx); // finite, but the optimizer is halted
    submit(ctx, |encoder| {
        assert!(reader.record(encoder, &run.device).unwrap());
    });
    match run.device.read_control() {
        Err(Error::NonFiniteGradients {
            step,
            steps_taken,
            grad_norm,
        }) => {
            assert_eq!(step, 2);
            assert_eq!(steps_taken, 1);
            assert_eq!(grad_norm, f32::INFINITY);
        }
        other => panic!("expected NonFiniteGradients, got {other:?}"),
    }
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    assert!(matches!(
        reader.try_read(),
        Err(Error::NonFiniteGradients { step: 2, .. })
    ));
    assert_eq!(run.snapshot(ctx), after_first, "a halted optimizer wrote");

    run.device.clear_nonfinite_error();
    run.reference.clear_nonfinite_error();
    run.step(ctx);
    assert_eq!(run.device.read_control().unwrap().step, 2);
    run.compare(ctx, "after clearing the error");

    // clip_grad_norm_ raises on a non-finite total norm, also when finite gradients overflow
    // it: 1e20 entries halt too.
    let mut grads = run.gradients();
    grads[1][0] = 1e20;
    run.step_with(ctx, &grads);
    assert!(matches!(
        run.device.read_control(),
        Err(Error::NonFiniteGradients { step: 3, .. })
    ));
    run.compare(ctx, "halted by an overflowing norm");
    // Turning gradient processing off clears the halt: plain steps go on.
    run.set_grad_processing(None);
    run.step(ctx);
    assert_eq!(run.device.read_control().unwrap().step, 3);
    run.compare(ctx, "after turning gradient processing off");
}

/// A step recorded with gradient processing and submitted after it was turned off finalizes
/// into the control block last; steps recorded afterwards must not read what it left there.
#[test]
fn steps_recorded_without_processing_ignore_a_stale_control_block() {
    let ctx = context();
    let sgd = OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.1));
    let mut run = Run::new(ctx, &sgd, &[64], 81);
    run.set_grad_processing(Some(GradConfig::default().with_max_norm(1e-3)));
    let mut grads = run.gradients();
    grads[0][0] = f32::NAN;
    run.write_grads(ctx, &grads);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    run.device.step(&mut encoder); // leaves found_inf = 1 and clip_coef = NaN
    run.reference.step(&mut run.host_params, &grads).unwrap();
    run.set_grad_processing(None);
    ctx.queue().submit([encoder.finish()]);
    let control = run.device.read_control().unwrap();
    assert!(control.skipped() && control.clip_coef.is_nan());
    for _ in 0..3 {
        run.step(ctx);
    }
    assert_eq!(run.device.read_step().unwrap(), 3);
    run.compare(ctx, "plain steps after a stale finalize");
}

/// GradScaler.update (ATen's `_amp_update_scale_`): a non-finite step halves the scale and
/// resets the growth tracker; the growth_interval-th consecutive finite step doubles it.
/// With growth_interval = 3, from 65536, the script F F F N F F F F N N F F F gives the scales
/// below, worked by hand from that rule.
#[test]
fn the_loss_scaler_follows_pytorchs_scale_sequence() {
    let ctx = context();
    let script = "FFFNFFFFNNFFF";
    let expected = [
        65536.0, 65536.0, 131072.0, 65536.0, 65536.0, 65536.0, 131072.0, 131072.0, 65536.0,
        32768.0, 32768.0, 32768.0, 65536.0,
    ];
    let adamw = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01));
    let mut scaled = Run::new(ctx, &adamw, &[300, 5], 31);
    let mut unscaled = Run::new(ctx, &adamw, &[300, 5], 31);
    scaled.set_grad_processing(Some(
        GradConfig::default().with_grad_scaler(GradScalerConfig::default().with_growth_interval(3)),
    ));
    assert_eq!(scaled.device.read_control().unwrap().grad_scale, 65536.0);
    for (k, (event, expected)) in script.chars().zip(expected).enumerate() {
        let grads = scaled.gradients();
        // The backward pass multiplies the loss, and so every gradient, by the current scale.
        let scale = scaled.device.read_control().unwrap().grad_scale;
        let mut scaled_grads: Vec<Vec<f32>> = grads
            .iter()
            .map(|g| g.iter().map(|v| v * scale).collect())
            .collect();
        if event == 'N' {
            scaled_grads[0][k] = f32::INFINITY;
        }
        scaled.step_with(ctx, &scaled_grads);
        if event == 'F' {
            unscaled.step_with(ctx, &grads);
        }
        let control = scaled.device.read_control().unwrap();
        assert_eq!(control.grad_scale, expected, "after step {k} ({event})");
        assert_eq!(control.grad_scale, scaled.reference.control().grad_scale);
    }
    // Power-of-two scales unscale exactly: the scaled run equals, bit for bit, a run that
    // saw the true gradients and never the overflowing steps.
    assert_eq!(scaled.snapshot(ctx), unscaled.snapshot(ctx));
    scaled.compare(ctx, "scaled run");

    // The defaults: growth after 2000 finite steps, backoff on the next overflow.
    let mut run = Run::new(ctx, &adamw, &[64], 32);
    run.set_grad_processing(Some(
        GradConfig::default().with_grad_scaler(GradScalerConfig::default()),
    ));
    let grads = run.gradients();
    ctx.write_f32(&run.params[0].grad, &grads[0]).unwrap();
    submit(ctx, |encoder| {
        for _ in 0..1999 {
            run.device.step(encoder);
        }
    });
    let control = run.device.read_control().unwrap();
    assert_eq!(
        (control.grad_scale, control.growth_tracker),
        (65536.0, 1999)
    );
    submit(ctx, |encoder| run.device.step(encoder));
    let control = run.device.read_control().unwrap();
    assert_eq!((control.grad_scale, control.growth_tracker), (131072.0, 0));
    ctx.write_f32(&run.params[0].grad, &vec![f32::NAN; 64])
        .unwrap();
    submit(ctx, |encoder| run.device.step(encoder));
    let control = run.device.read_control().unwrap();
    assert_eq!((control.grad_scale, control.step), (65536.0, 2000));

    // The scale never grows past f32: PyTorch keeps it when growing would overflow.
    let mut run = Run::new(ctx, &adamw, &[8], 33);
    let top = 2.0_f32.powi(127);
    run.set_grad_processing(Some(
        GradConfig::default().with_grad_scaler(
            GradScalerConfig::default()
                .with_init_scale(f64::from(top))
                .with_growth_interval(1),
        ),
    ));
    run.step(ctx);
    assert_eq!(run.device.read_control().unwrap().grad_scale, top);
}

#[test]
fn clipping_matches_the_reference() {
    let ctx = context();
    let grad_configs = [
        GradConfig::default(),
        GradConfig::default().with_max_norm(0.5),
        GradConfig::default()
            .with_max_norm(0.5)
            .with_clip_mode(ClipMode::Optax),
        // Far above the norm: Optax leaves gradients alone, PyTorch scales by just under 1.
        GradConfig::default().with_max_norm(1e4),
        GradConfig::default()
            .with_max_norm(1e4)
            .with_clip_mode(ClipMode::Optax),
        GradConfig::default()
            .with_max_norm(0.3)
            .with_norm_type(f64::INFINITY),
        GradConfig::default().with_max_norm(0.5).with_norm_type(1.0),
        GradConfig::default()
            .with_max_norm(0.5)
            .with_norm_type(3.0)
            .with_clip_value(0.25),
        GradConfig::default().with_clip_value(0.25),
        GradConfig::default()
            .with_clip_value(0.25)
            .with_max_norm(0.5)
            .with_grad_scaler(GradScalerConfig::default().with_init_scale(1024.0)),
    ];
    let configs = [
        OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01)),
        OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.05).with_momentum(0.9)),
        OptimizerConfig::Lion(LionConfig::default()),
        OptimizerConfig::Adagrad(AdagradConfig::default()),
    ];
    for config in &configs {
        for grad_config in &grad_configs {
            let what = format!("{config:?} with {grad_config:?}");
            let mut run = Run::new(ctx, config, &[1, 1000, 4099], 41);
            run.set_grad_processing(Some(grad_config.clone()));
            for step in 0..4 {
                let scale = run.reference.control().grad_scale;
                let grads: Vec<Vec<f32>> = run
                    .gradients()
                    .into_iter()
                    .map(|g| g.into_iter().map(|v| v * scale).collect())
                    .collect();
                run.step_with(ctx, &grads);
                let device = run.device.read_control().unwrap();
                let host = run.reference.control();
                let what = format!("{what}, step {step}");
                assert!(
                    relative_error(device.grad_norm, f64::from(host.grad_norm)) < 1e-6,
                    "{what}: norm {} vs {}",
                    device.grad_norm,
                    host.grad_norm
                );
                assert!(
                    (device.clip_coef - host.clip_coef).abs() <= 2e-6 * host.clip_coef,
                    "{what}: clip_coef {} vs {}",
                    device.clip_coef,
                    host.clip_coef
                );
                let flags = |c: &Control| (c.step, c.found_inf, c.grad_scale, c.clip_value);
                assert_eq!(flags(&device), flags(&host), "{what}");
            }
            run.compare(ctx, &what);
            let control = run.device.read_control().unwrap();
            if grad_config.clip_mode == ClipMode::Optax && grad_config.max_norm == Some(1e4) {
                assert_eq!(control.clip_coef, 1.0, "{what}");
            }
            if grad_config.max_norm == Some(0.5) && grad_config.norm_type != 3.0 {
                assert!(control.clip_coef < 1.0, "{what}: the test never clips");
            }
        }
    }
}

#[test]
fn a_data_parallel_step_matches_one_device() {
    let ctx = context();
    let lens = [1000, 33, 4099, 257, 5];
    let config = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01));
    for norm_type in [2.0, f64::INFINITY, 1.0, 3.0] {
        for poison in [false, true] {
            let what = format!("norm {norm_type}, poisoned {poison}");
            let grad_config = GradConfig::default()
                .with_max_norm(0.5)
                .with_norm_type(norm_type);
            // One run holds every tensor: its reference is the single-device truth. The
            // device side is two optimizers over disjoint shards (ZeRO-1 style).
            let mut whole = Run::new(ctx, &config, &lens, 51);
            whole.set_grad_processing(Some(grad_config.clone()));
            let shards = [&whole.params[..2], &whole.params[2..]];
            let mut workers: Vec<(Optimizer, BufferRange)> = shards
                .iter()
                .map(|shard| {
                    let mut optimizer = config.build(ctx, shard).unwrap();
                    optimizer
                        .set_grad_processing(Some(grad_config.clone()))
                        .unwrap();
                    let stats = BufferRange::whole(&ctx.upload_f32("stats", &[0.0; 2]));
                    optimizer.set_norm_stats_buffer(stats.clone()).unwrap();
                    (optimizer, stats)
                })
                .collect();
            for step in 0..3 {
                let mut grads = whole.gradients();
                if poison && step == 1 {
                    grads[3][100] = f32::NAN;
                }
                whole.write_grads(ctx, &grads);
                submit(ctx, |encoder| {
                    for (optimizer, _) in &workers {
                        optimizer.record_grad_stats(encoder).unwrap();
                    }
                });
                // The all-reduce: SUM for a finite norm (sums of |c|^p), MAX for the inf-norm.
                let local: Vec<Vec<f32>> = workers
                    .iter()
                    .map(|(_, stats)| ctx.read_f32(stats).unwrap())
                    .collect();
                let reduce = |a: f32, b: f32| {
                    if norm_type.is_finite() {
                        a + b
                    } else {
                        a.max(b)
                    }
                };
                let reduced = [
                    reduce(local[0][0], local[1][0]),
                    reduce(local[0][1], local[1][1]),
                ];
                for (_, stats) in &workers {
                    ctx.write_f32(stats, &reduced).unwrap();
                }
                submit(ctx, |encoder| {
                    for (optimizer, _) in &workers {
                        optimizer.record_update(encoder);
                    }
                });
                whole
                    .reference
                    .step(&mut whole.host_params, &grads)
                    .unwrap();
                let host = whole.reference.control();
                for (optimizer, _) in &mut workers {
                    let device = optimizer.read_control().unwrap();
                    assert_eq!(device.skipped(), host.skipped(), "{what}, step {step}");
                    assert_eq!(device.step, host.step, "{what}, step {step}");
                    if !host.skipped() {
                        assert!(
                            relative_error(device.grad_norm, f64::from(host.grad_norm)) < 1e-6,
                            "{what}, step {step}: norm {} vs {}",
                            device.grad_norm,
                            host.grad_norm
                        );
                    }
                }
            }
            for (i, param) in whole.params.iter().enumerate() {
                assert_close(
                    &format!("{what}: tensor {i}"),
                    &ctx.read_f32(&param.param).unwrap(),
                    &whole.host_params[i],
                );
            }
            // The workers stepped; `whole`'s own optimizer never did.
            drop(workers);
        }
    }
}

#[test]
fn the_control_reader_returns_copies_in_order_without_blocking() {
    let ctx = context();
    let adam = OptimizerConfig::Adam(AdamConfig::default());
    let mut run = Run::new(ctx, &adam, &[1000], 61);
    run.set_grad_processing(Some(GradConfig::default().with_max_norm(1.0)));
    let mut reader = ControlReader::new(ctx, 2);
    let mut expected = Vec::new();
    let mut recorded = Vec::new();
    for step in 1..=3 {
        let grads = run.gradients();
        run.write_grads(ctx, &grads);
        submit(ctx, |encoder| {
            run.device.step(encoder);
            recorded.push(reader.record(encoder, &run.device).unwrap());
        });
        run.reference.step(&mut run.host_params, &grads).unwrap();
        expected.push((step, run.reference.control().grad_norm));
    }
    // Two slots: the third copy found none free.
    assert_eq!(recorded, [true, true, false]);
    assert_eq!(reader.in_flight(), 2);
    // A copy recorded into an encoder that is dropped never arrives; its slot frees again.
    let mut reader_of_dropped = ControlReader::new(ctx, 1);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    assert!(reader_of_dropped.record(&mut encoder, &run.device).unwrap());
    drop(encoder);
    assert!(reader_of_dropped.try_read().unwrap().is_empty());
    assert_eq!(reader_of_dropped.in_flight(), 0);
    let mut arrived = Vec::new();
    while arrived.len() < 2 {
        arrived.extend(reader.try_read().unwrap());
        std::thread::yield_now();
    }
    assert_eq!(reader.in_flight(), 0);
    for (control, (step, norm)) in arrived.iter().zip(&expected) {
        assert_eq!(control.step, *step);
        assert!(relative_error(control.grad_norm, f64::from(*norm)) < 1e-6);
    }
    assert!(reader.try_read().unwrap().is_empty());
}

#[test]
fn clip_value_in_place_matches_the_reference() {
    let ctx = context();
    let mut rng = Rng::new(71);
    let lens = [1, 255, 4099];
    let mut values: Vec<Vec<f32>> = lens.iter().map(|&n| rng.gradient(n)).collect();
    // NaN stays NaN (PyTorch's clamp keeps it); infinities clamp to the bound.
    values[1][3] = f32::NAN;
    values[2][7] = f32::INFINITY;
    values[2][8] = f32::NEG_INFINITY;
    let ranges: Vec<BufferRange> = values
        .iter()
        .map(|v| BufferRange::whole(&ctx.upload_f32("grad", v)))
        .collect();
    let mut clip = ClipValue::new(ctx, &ranges, 0.5).unwrap();
    for bound in [0.5_f32, 0.125] {
        clip.set_clip_value(f64::from(bound)).unwrap();
        submit(ctx, |encoder| clip.record(encoder));
        let mut clipped = 0;
        for (range, original) in ranges.iter().zip(&values) {
            let device = ctx.read_f32(range).unwrap();
            let host: Vec<f32> = original
                .iter()
                .map(|&g| reference::clip_by_value(g, bound))
                .collect();
            assert_eq!(bits(&device), bits(&host), "bound {bound}");
            clipped += original.iter().filter(|g| g.abs() > bound).count();
        }
        assert!(
            clipped > 100,
            "bound {bound}: the test clips almost nothing"
        );
    }
}

#[test]
fn the_reference_norms_keep_nan_and_inf() {
    let nan_in_the_middle = [vec![1.0, f32::NAN, 2.0]];
    assert!(reference::global_norm(&nan_in_the_middle, f64::INFINITY).is_nan());
    assert!(reference::global_norm(&nan_in_the_middle, 2.0).is_nan());
    let inf = [vec![1.0, f32::NEG_INFINITY, 2.0]];
    assert_eq!(reference::global_norm(&inf, f64::INFINITY), f64::INFINITY);
    assert_eq!(reference::global_norm(&inf, 2.0), f64::INFINITY);
}

#[test]
fn the_loss_scale_is_the_first_field_of_the_control_block() {
    // A loss kernel binds 4 bytes at offset 0 of the control buffer as its scale.
    assert_eq!(Control::offset_of("grad_scale"), Some(0));
}

/// The gradient-norm reduction and [`ClipValue`] walk an arena's segment table: the bytes
/// between its tensors (NaN here) are never read as gradients nor written, and tensors that
/// end inside a vec4 are reduced, clamped and stepped to their last element.
#[test]
fn arena_gaps_are_never_read_or_written() {
    let ctx = context();
    let lens = [5, 1000, 3, 4096 + 7, 64];
    let arena = Arena::new(ctx, &lens).unwrap();
    let mut rng = Rng::new(83);
    let words = arena.param(0).unwrap().buffer().size() as usize / 4;
    let nan = vec![f32::NAN; words];
    for buffer in [
        arena.param(0).unwrap().buffer(),
        arena.grad(0).unwrap().buffer(),
    ] {
        ctx.queue()
            .write_buffer(buffer, 0, bytemuck::cast_slice(&nan));
    }
    let mut host: Vec<Vec<f32>> = lens.iter().map(|&n| rng.vector(n)).collect();
    let grads: Vec<Vec<f32>> = lens.iter().map(|&n| rng.gradient(n)).collect();
    for (i, (p, g)) in host.iter().zip(&grads).enumerate() {
        arena.write_param(i, p).unwrap();
        arena.write_grad(i, g).unwrap();
    }
    let whole = |role: fn(&Arena, usize) -> Result<BufferRange>| {
        let range = role(&arena, 0).unwrap();
        ctx.read_f32(&BufferRange::whole(range.buffer())).unwrap()
    };
    let tensors: Vec<(usize, usize)> = (0..lens.len())
        .map(|t| {
            let range = arena.param(t).unwrap();
            (range.offset() as usize / 4, range.len() as usize)
        })
        .collect();
    let gaps = |values: &[f32]| bits_outside(values, &tensors);
    let (params_before, grads_before) = (whole(Arena::param), whole(Arena::grad));

    let config = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01));
    let processing = GradConfig::default()
        .with_max_norm(0.5)
        .with_clip_value(0.8);
    let mut optimizer = config.build(ctx, &arena.params()).unwrap();
    optimizer
        .set_grad_processing(Some(processing.clone()))
        .unwrap();
    assert_eq!(optimizer.update_dispatches(), 1);
    assert_eq!(
        optimizer.tail_dispatches(),
        1,
        "5, 3 and 4103 end inside a vec4"
    );
    let mut reference = reference::Optimizer::new(&config, &lens).unwrap();
    reference.set_grad_processing(Some(processing)).unwrap();
    for _ in 0..3 {
        submit(ctx, |encoder| optimizer.step(encoder));
        reference.step(&mut host, &grads).unwrap();
    }
    let control = optimizer.read_control().unwrap();
    assert_eq!(control.skipped_steps, 0, "a NaN between tensors was read");
    assert_eq!(control.step, 3);
    let clipped: Vec<Vec<f32>> = grads
        .iter()
        .map(|g| {
            g.iter()
                .map(|&x| reference::clip_by_value(x, 0.8))
                .collect()
        })
        .collect();
    let exact = reference::global_norm(&clipped, 2.0);
    assert!(relative_error(control.grad_norm, exact) < 1e-6);
    for (i, expected) in host.iter().enumerate() {
        assert_close(
            &format!("tensor {i}"),
            &arena.read_param(i).unwrap(),
            expected,
        );
    }
    assert_eq!(gaps(&whole(Arena::param)), gaps(&params_before));

    let ranges: Vec<BufferRange> = (0..lens.len()).map(|i| arena.grad(i).unwrap()).collect();
    let clip = ClipValue::new(ctx, &ranges, 0.25).unwrap();
    submit(ctx, |encoder| clip.record(encoder));
    for (i, g) in grads.iter().enumerate() {
        let expected: Vec<f32> = g
            .iter()
            .map(|&x| reference::clip_by_value(x, 0.25))
            .collect();
        assert_eq!(
            bits(&arena.read_grad(i).unwrap()),
            bits(&expected),
            "tensor {i}"
        );
    }
    assert_eq!(gaps(&whole(Arena::grad)), gaps(&grads_before));
}
