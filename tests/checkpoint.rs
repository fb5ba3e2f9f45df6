//! Optimizer-state checkpoints: a bit-identical round trip for every configuration, PyTorch's
//! names in the file, and every wrong checkpoint refused with nothing changed.

mod common;
use common::*;
use safetensors::SafeTensors;
use wgpu_optim::*;

/// Steps `run` with `grads` (one set per step), on both sides.
fn steps(run: &mut Run, ctx: &Context, grads: &[Vec<Vec<f32>>]) {
    for g in grads {
        run.step_with(ctx, g);
    }
}

/// Three steps, a checkpoint, three more; and a fresh optimizer that loads the checkpoint (and
/// the params as they were then) and takes the same three steps: the same bits.
fn round_trip(ctx: &Context, config: &OptimizerConfig, grad: Option<GradConfig>, seed: u64) {
    let lens = [1, 257, 1000];
    let mut original = Run::new(ctx, config, &lens, seed);
    original.set_grad_processing(grad.clone());
    let before: Vec<Vec<Vec<f32>>> = (0..3).map(|_| original.gradients()).collect();
    let after: Vec<Vec<Vec<f32>>> = (0..3).map(|_| original.gradients()).collect();
    steps(&mut original, ctx, &before);
    let checkpoint = original.device.checkpoint().unwrap();
    let params: Vec<Vec<f32>> = original
        .params
        .iter()
        .map(|p| ctx.read_f32(&p.param).unwrap())
        .collect();
    steps(&mut original, ctx, &after);

    let mut resumed = Run::new(ctx, config, &lens, seed + 1000);
    resumed.set_grad_processing(grad);
    for (param, values) in resumed.params.iter().zip(&params) {
        ctx.write_f32(&param.param, values).unwrap();
    }
    resumed.device.load_checkpoint(&checkpoint).unwrap();
    // The device side only: the resumed run's reference never saw the checkpoint.
    for grads in &after {
        resumed.step_device(ctx, grads);
    }
    assert_eq!(
        resumed.snapshot(ctx),
        original.snapshot(ctx),
        "{config:?}: resuming from the checkpoint differs from never stopping"
    );
    assert_eq!(
        resumed.device.read_control().unwrap(),
        original.device.read_control().unwrap(),
        "{config:?}: control block"
    );
}

#[test]
fn a_checkpoint_round_trip_is_bit_identical_for_every_configuration() {
    let ctx = context();
    for (n, config) in all_configs().iter().enumerate() {
        round_trip(ctx, config, None, n as u64);
    }
    // With gradient processing: the loss scale and growth tracker carry over too.
    let adamw = OptimizerConfig::AdamW(AdamWConfig::default());
    let grad = GradConfig::default()
        .with_max_norm(1.0)
        .with_grad_scaler(GradScalerConfig::default().with_growth_interval(2));
    round_trip(ctx, &adamw, Some(grad), 99);
}

#[test]
fn the_file_uses_pytorchs_state_dict_names() {
    let ctx = context();
    let config = OptimizerConfig::Adam(AdamConfig::default().with_lr(0.01).with_amsgrad(true));
    let mut run = Run::new(ctx, &config, &[7, 300], 3);
    for _ in 0..4 {
        run.step(ctx);
    }
    let path = std::env::temp_dir().join(format!("wgpu-optim-{}.safetensors", std::process::id()));
    run.device.save_checkpoint(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    for (i, len) in [(0, 7), (1, 300)] {
        for name in ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] {
            let tensor = file.tensor(&format!("state.{i}.{name}")).unwrap();
            assert_eq!(tensor.shape(), [len]);
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(tensor.data());
            assert_eq!(values, run.device.read_state(i, name).unwrap());
        }
        let step = file.tensor(&format!("state.{i}.step")).unwrap();
        assert_eq!(step.dtype(), safetensors::Dtype::F64);
        assert_eq!(step.data(), 4.0_f64.to_le_bytes());
    }
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    assert_eq!(metadata["optimizer"], "Adam");
    assert_eq!(metadata["param_groups.0.lr"], "0.01");
    assert_eq!(metadata["param_groups.0.amsgrad"], "true");

    // Tensors of an arena share state buffers: each is cut out at its own offset.
    let arena = Arena::new(ctx, &[7, 300]).unwrap();
    for (i, param) in run.params.iter().enumerate() {
        arena
            .write_grad(i, &ctx.read_f32(&param.param).unwrap())
            .unwrap();
    }
    let shared = config.build(ctx, &arena.params()).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    shared.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let bytes_of_arena = shared.checkpoint().unwrap();
    let file_of_arena = SafeTensors::deserialize(&bytes_of_arena).unwrap();
    for i in 0..2 {
        for name in ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] {
            let tensor = file_of_arena.tensor(&format!("state.{i}.{name}")).unwrap();
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(tensor.data());
            assert_eq!(
                values,
                shared.read_state(i, name).unwrap(),
                "arena {i} {name}"
            );
        }
    }

    // Loading restores the hyperparameters too.
    let mut other = config.with_lr(0.5).build(ctx, &run.params).unwrap();
    other.load_checkpoint(&bytes).unwrap();
    assert_eq!(other.config(), &config);
    assert_eq!(other.read_step().unwrap(), 4);
}

/// Adamax's, NAdam's, RAdam's, Adadelta's, ADOPT's and rectified AdaBelief's states under
/// their libraries' names (`exp_inf`, `acc_delta`; NAdam's scalar `mu_product`, from the step
/// and the running values, beside its step), and only those.
#[test]
fn adamax_nadam_radam_adadelta_and_adopt_files_use_pytorchs_names() {
    let ctx = context();
    let cases: [(OptimizerConfig, &[&str]); 7] = [
        (AdamaxConfig::default().into(), &["exp_avg", "exp_inf"]),
        (NAdamConfig::default().into(), &["exp_avg", "exp_avg_sq"]),
        (
            NAdamConfig::default().with_optax_form(true).into(),
            &["exp_avg", "exp_avg_sq"],
        ),
        (RAdamConfig::default().into(), &["exp_avg", "exp_avg_sq"]),
        (
            AdadeltaConfig::default().into(),
            &["square_avg", "acc_delta"],
        ),
        (AdoptConfig::default().into(), &["exp_avg", "exp_avg_sq"]),
        (
            AdaBeliefConfig::default()
                .with_rectify(true)
                .with_amsgrad(true)
                .into(),
            &["exp_avg", "exp_avg_var", "max_exp_avg_var"],
        ),
    ];
    for (config, names) in cases {
        let mut run = Run::new(ctx, &config, &[7, 300], 4);
        for _ in 0..4 {
            run.step(ctx);
        }
        let bytes = run.device.checkpoint().unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut expected: Vec<String> = Vec::new();
        for (i, len) in [(0, 7), (1, 300)] {
            for name in names {
                let tensor = file.tensor(&format!("state.{i}.{name}")).unwrap();
                assert_eq!(tensor.shape(), [len]);
                let values: Vec<f32> = bytemuck::pod_collect_to_vec(tensor.data());
                assert_eq!(values, run.device.read_state(i, name).unwrap());
                expected.push(format!("state.{i}.{name}"));
            }
            expected.push(format!("state.{i}.step"));
            if let OptimizerConfig::NAdam(c) = &config {
                if !c.optax_form {
                    // PyTorch's running product of mu_t = 0.9 (1 - 0.5 * 0.96^(0.004 t)).
                    let exact: f64 = (1..=4)
                        .map(|t| 0.9 * (1.0 - 0.5 * 0.96_f64.powf(0.004 * f64::from(t))))
                        .product();
                    let tensor = file.tensor(&format!("state.{i}.mu_product")).unwrap();
                    assert_eq!(tensor.dtype(), safetensors::Dtype::F32);
                    let value = f32::from_le_bytes(tensor.data().try_into().unwrap());
                    // Its f32 logarithm's rounding: a few ulp of |ln mu_product|, relative.
                    let tolerance = 4.0 * (1.0 - exact.ln()) * f64::from(f32::EPSILON) * exact;
                    assert!(
                        (f64::from(value) - exact).abs() <= tolerance,
                        "mu_product {value} vs {exact}"
                    );
                    expected.push(format!("state.{i}.mu_product"));
                }
            }
        }
        let mut found: Vec<String> = file
            .names()
            .into_iter()
            .filter(|n| n.starts_with("state."))
            .map(str::to_string)
            .collect();
        found.sort();
        expected.sort();
        assert_eq!(found, expected, "{config:?}");
        // It loads back.
        run.device.load_checkpoint(&bytes).unwrap();
    }
}

/// `load` must fail as `check` says and leave `run`'s optimizer as it was.
fn refused(ctx: &Context, run: &mut Run, bytes: &[u8], check: impl Fn(&Error) -> bool) {
    let before = (run.snapshot(ctx), run.device.read_control().unwrap());
    let config = run.device.config().clone();
    match run.device.load_checkpoint(bytes) {
        Err(e) => assert!(check(&e), "unexpected error: {e}"),
        Ok(()) => panic!("the checkpoint should have been refused"),
    }
    assert_eq!(
        (run.snapshot(ctx), run.device.read_control().unwrap()),
        before
    );
    assert_eq!(run.device.config(), &config);
}

#[test]
fn wrong_checkpoints_are_refused_and_change_nothing() {
    let ctx = context();
    let adam = OptimizerConfig::Adam(AdamConfig::default());
    let checkpoint_of = |config: &OptimizerConfig, lens: &[usize]| {
        let mut run = Run::new(ctx, config, lens, 5);
        run.step(ctx);
        run.device.checkpoint().unwrap()
    };
    let mut run = Run::new(ctx, &adam, &[10, 20], 6);
    run.step(ctx);
    run.step(ctx);
    let mismatch = |e: &Error| matches!(e, Error::CheckpointMismatch(_));
    let unreadable = |e: &Error| matches!(e, Error::Checkpoint(_));

    let sgd = OptimizerConfig::Sgd(SgdConfig::default().with_momentum(0.9));
    refused(ctx, &mut run, &checkpoint_of(&sgd, &[10, 20]), mismatch);
    refused(ctx, &mut run, &checkpoint_of(&adam, &[10]), mismatch);
    refused(ctx, &mut run, &checkpoint_of(&adam, &[10, 21]), mismatch);
    let amsgrad = OptimizerConfig::Adam(AdamConfig::default().with_amsgrad(true));
    refused(ctx, &mut run, &checkpoint_of(&amsgrad, &[10, 20]), |e| {
        matches!(e, Error::StructuralChange(_))
    });
    let good = checkpoint_of(&adam, &[10, 20]);
    refused(ctx, &mut run, &good[..good.len() - 7], unreadable);
    refused(ctx, &mut run, &good[..5], unreadable);
    refused(ctx, &mut run, b"not a checkpoint at all", unreadable);
    refused(ctx, &mut run, &[], unreadable);
    assert!(matches!(
        run.device
            .load_checkpoint_file("/nonexistent/wgpu-optim.safetensors"),
        Err(Error::Checkpoint(_))
    ));
    // The good one still loads.
    run.device.load_checkpoint(&good).unwrap();
    assert_eq!(run.device.read_step().unwrap(), 1);
}

#[test]
fn hyperparameters_round_trip_through_text() {
    for config in all_configs() {
        let mut copy = OptimizerConfig::from_name(config.name()).expect("a registered name");
        for (name, value) in config.hyperparameters() {
            assert!(copy.set_hyperparameter(name, &value), "{name} = {value}");
        }
        // Every field is listed: the copy is the configuration again.
        assert_eq!(copy, config);
        assert!(!copy.set_hyperparameter("no_such_field", "1"));
        assert!(!copy.set_hyperparameter("lr", "fast"));
    }
}

/// `bytes` with the control block and the metadata edited, re-serialized.
fn rewrite(
    bytes: &[u8],
    control: impl Fn(&mut Control),
    metadata: impl Fn(&mut std::collections::HashMap<String, String>),
) -> Vec<u8> {
    rewrite_checkpoint(
        bytes,
        |name, data| {
            if name == "wgpu_optim.control" {
                let mut block: Control = bytemuck::pod_read_unaligned(data);
                control(&mut block);
                *data = bytemuck::bytes_of(&block).to_vec();
            }
        },
        metadata,
    )
}

/// Issue 12, finding 1: a control block that no optimizer can step from is refused with
/// nothing changed; fields that belong to the loading optimizer's configuration are reset to
/// what it implies (a loss scale without a scaler, a halt without `error_if_nonfinite`), so
/// that stepping after any accepted load is correct.
#[test]
fn a_checkpoints_control_block_is_checked_against_the_loading_optimizer() {
    let ctx = context();
    let sgd = OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.1));
    let scaler = GradConfig::default().with_grad_scaler(GradScalerConfig::default());

    // Saved with a GradScaler, loaded without one: the scale is 1, not 65536.
    let mut saver = Run::new(ctx, &sgd, &[16], 1);
    saver.set_grad_processing(Some(scaler.clone()));
    saver.step(ctx);
    let scaled = saver.device.checkpoint().unwrap();
    let mut plain = Run::new(ctx, &sgd, &[16], 2);
    // One step first, so that its reference counts the step the checkpoint restores.
    plain.step(ctx);
    plain.device.load_checkpoint(&scaled).unwrap();
    let control = plain.device.read_control().unwrap();
    assert_eq!((control.grad_scale, control.growth_tracker), (1.0, 0));
    plain.step(ctx);
    plain.compare(ctx, "a scaler's checkpoint in an optimizer without one");

    // Saved halted by error_if_nonfinite, loaded into one that skips: it steps on.
    let mut halting = Run::new(ctx, &sgd, &[16], 3);
    halting.set_grad_processing(Some(GradConfig::default().with_error_if_nonfinite(true)));
    halting.step_device(ctx, &[vec![f32::NAN; 16]]);
    assert!(halting.device.read_control().is_err(), "the saver halted");
    let halted = halting.device.checkpoint().unwrap();
    let mut skipping = Run::new(ctx, &sgd, &[16], 4);
    skipping.set_grad_processing(Some(GradConfig::default()));
    skipping.device.load_checkpoint(&halted).unwrap();
    assert_eq!(skipping.device.read_control().unwrap().nonfinite_step, 0);
    skipping.step(ctx);
    skipping.compare(ctx, "a halted checkpoint in an optimizer that skips");
    // Loaded into one that halts too, it stays halted.
    halting.device.load_checkpoint(&halted).unwrap();
    assert!(halting.device.read_control().is_err());

    // Values no optimizer steps from: refused, nothing changed.
    let mut run = Run::new(ctx, &sgd, &[16], 5);
    run.set_grad_processing(Some(scaler));
    run.step(ctx);
    let unreadable = |e: &Error| matches!(e, Error::Checkpoint(_));
    for scale in [0.0, -2.0, f32::NAN, f32::INFINITY, 1e-40] {
        let bytes = rewrite(&scaled, |c| c.grad_scale = scale, |_| {});
        refused(ctx, &mut run, &bytes, unreadable);
    }
    for tracker in [2000, u32::MAX] {
        let bytes = rewrite(&scaled, |c| c.growth_tracker = tracker, |_| {});
        refused(ctx, &mut run, &bytes, unreadable);
    }
    let wrapping = rewrite(&scaled, |c| c.step = u32::MAX, |_| {});
    refused(ctx, &mut run, &wrapping, unreadable);
    run.device.load_checkpoint(&scaled).unwrap();
}

/// Issue 12, finding 4: one hyperparameter spelled several ways (`param_groups.0.lr`,
/// `param_groups.00.lr`, `param_groups.+0.lr`) is refused, whatever order the metadata map
/// iterates in.
#[test]
fn non_canonical_hyperparameter_keys_are_refused() {
    let ctx = context();
    let adam = OptimizerConfig::Adam(AdamConfig::default());
    let mut run = Run::new(ctx, &adam, &[8], 7);
    run.step(ctx);
    let good = run.device.checkpoint().unwrap();
    for alias in [
        "param_groups.00.lr",
        "param_groups.+0.lr",
        "param_groups.0x0.lr",
    ] {
        let bytes = rewrite(
            &good,
            |_| {},
            |meta| {
                meta.insert(alias.to_string(), "0.5".to_string());
            },
        );
        refused(ctx, &mut run, &bytes, |e| {
            matches!(e, Error::CheckpointMismatch(_))
        });
    }
    // Values past f32 in the metadata are refused like any other (finding 2).
    for value in ["1e39", "nan", "inf", "-1"] {
        let bytes = rewrite(
            &good,
            |_| {},
            |meta| {
                meta.insert("param_groups.0.lr".to_string(), value.to_string());
            },
        );
        refused(ctx, &mut run, &bytes, |e| {
            matches!(e, Error::InvalidHyperparameter { name: "lr", .. })
        });
    }
}

/// Issue 12, finding 13: `state.<i>.step` holds the step count exactly (f64), past f32's 2^24.
#[test]
fn the_step_count_is_saved_exactly() {
    let ctx = context();
    let sgd = OptimizerConfig::Sgd(SgdConfig::default());
    let mut run = Run::new(ctx, &sgd, &[8], 9);
    let bytes = rewrite(
        &run.device.checkpoint().unwrap(),
        |c| c.step = 16_777_219,
        |_| {},
    );
    run.device.load_checkpoint(&bytes).unwrap();
    assert_eq!(run.device.read_step().unwrap(), 16_777_219);
    let saved = run.device.checkpoint().unwrap();
    let file = SafeTensors::deserialize(&saved).unwrap();
    let step = file.tensor("state.0.step").unwrap();
    assert_eq!(step.dtype(), safetensors::Dtype::F64);
    assert_eq!(step.data(), 16_777_219.0_f64.to_le_bytes());
}

/// The metadata value `key` of `run`'s checkpoint now.
fn saved(run: &Run, key: &str) -> String {
    let bytes = run.device.checkpoint().unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().as_ref().unwrap()[key].clone()
}

/// A metadata key's name in group 0, and values to write there.
type Edit<'a> = (&'a str, &'a [&'a str]);

/// Issue 25, finding 9: running values read from a checkpoint's metadata are checked as
/// strictly as hyperparameters: Schedule-Free's `lr_max` and `weight_sum` (inf, NaN, a value
/// past f32, a negative one; anything but the initial values before the first step) and
/// NAdam's running product (a last beta1 that is no ln(beta1), an excess of NaN or +inf, a
/// product above 1) are refused with nothing changed, the running values included.
#[test]
fn running_values_from_a_file_are_validated() {
    let ctx = context();
    let invalid = |e: &Error| matches!(e, Error::InvalidHyperparameter { .. });
    let cases: [(OptimizerConfig, &[Edit]); 3] = [
        (
            ScheduleFreeAdamWConfig::default().into(),
            &[
                ("lr_max", &["inf", "NaN", "1e39", "-1", "-0.5", "-inf"]),
                ("weight_sum", &["inf", "NaN", "1e39", "-1"]),
            ],
        ),
        (
            ScheduleFreeSgdConfig::default().into(),
            &[("lr_max", &["inf", "-1"]), ("weight_sum", &["NaN", "-3"])],
        ),
        (
            NAdamConfig::default().into(),
            &[
                (
                    "mu_ln_beta1",
                    &["1", "0.5", "NaN", "inf", "0", "-0", "1e-50"],
                ),
                ("mu_ln_base", &["0.1", "-inf", "NaN"]),
                ("mu_ln_excess", &["inf", "NaN", "100", "1e39"]),
            ],
        ),
    ];
    for (n, (config, edits)) in cases.into_iter().enumerate() {
        let mut run = Run::new(ctx, &config, &[7, 40], 70 + n as u64);
        run.step(ctx);
        run.step(ctx);
        let good = run.device.checkpoint().unwrap();
        for &(name, values) in edits {
            let key = format!("param_groups.0.{name}");
            let before = saved(&run, &key);
            for value in values {
                let bytes = rewrite(
                    &good,
                    |_| {},
                    |m| {
                        m.insert(key.clone(), value.to_string());
                    },
                );
                refused(ctx, &mut run, &bytes, invalid);
                assert_eq!(saved(&run, &key), before, "{key} = {value}");
            }
        }
        // Before the first step, only the initial values: a file of step 0 with a running
        // value already moved is refused.
        let fresh = Run::new(ctx, &config, &[7, 40], 80 + n as u64);
        let initial = fresh.device.checkpoint().unwrap();
        let &(name, _) = &edits[0];
        let moved = rewrite(
            &initial,
            |_| {},
            |m| {
                m.insert(format!("param_groups.0.{name}"), "-0.25".into());
            },
        );
        let mut fresh = fresh;
        refused(ctx, &mut fresh, &moved, invalid);
        // The good file still loads.
        run.device.load_checkpoint(&good).unwrap();
    }
}

/// Issue 25, finding 12: a control block whose `step + skipped_steps` passes u32 is refused:
/// a schedule counting iterations would wrap to an early row.
#[test]
fn a_step_count_that_wraps_with_the_skipped_steps_is_refused() {
    let ctx = context();
    let config = OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.1));
    let mut run = Run::new(ctx, &config, &[16], 9);
    run.step(ctx);
    let good = run.device.checkpoint().unwrap();
    let unreadable = |e: &Error| matches!(e, Error::Checkpoint(_));
    for (step, skipped) in [
        (10, u32::MAX - 5),
        (u32::MAX / 2 + 1, u32::MAX / 2),
        (1, u32::MAX),
    ] {
        let bytes = rewrite(
            &good,
            |c| {
                c.step = step;
                c.skipped_steps = skipped;
            },
            |_| {},
        );
        refused(ctx, &mut run, &bytes, unreadable);
    }
    // Just below the edge loads.
    let edge = rewrite(
        &good,
        |c| {
            c.step = 10;
            c.skipped_steps = u32::MAX - 11;
        },
        |_| {},
    );
    run.device.load_checkpoint(&edge).unwrap();
}
