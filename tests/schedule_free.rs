//! Schedule-Free AdamW and SGD beyond the step: the eval/train switch against the reference, its typed
//! error for other optimizers, and the running values (`lr_max`, `weight_sum`) carried across
//! configuration changes and checkpoints.

mod common;
use common::*;
use wgpu_optim::*;

fn schedule_free_configs() -> Vec<OptimizerConfig> {
    all_configs()
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                OptimizerConfig::ScheduleFreeAdamW(_) | OptimizerConfig::ScheduleFreeSgd(_)
            )
        })
        .collect()
}

/// Records `switch` on the device and submits it.
fn record(
    ctx: &Context,
    optimizer: &Optimizer,
    switch: fn(&Optimizer, &mut wgpu::CommandEncoder) -> Result<()>,
) -> Result<()> {
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    switch(optimizer, &mut encoder)?;
    ctx.queue().submit([encoder.finish()]);
    Ok(())
}

fn device_params(ctx: &Context, run: &Run) -> Vec<Vec<f32>> {
    run.params
        .iter()
        .map(|p| ctx.read_f32(&p.param).unwrap())
        .collect()
}

/// eval() moves y to x and train() x back to y, on the device as in the reference; a second
/// eval() or train() in a row changes nothing; steps after the round trip still match.
#[test]
fn eval_and_train_match_the_reference() {
    let ctx = context();
    let lens = [1, 3, 257, 1000];
    let configs = schedule_free_configs();
    assert_eq!(configs.len(), 12);
    for (n, config) in configs.iter().enumerate() {
        let mut run = Run::new(ctx, config, &lens, 500 + n as u64);
        // Before the first step there is no z: both switches are no-ops.
        let initial = device_params(ctx, &run);
        record(ctx, &run.device, Optimizer::schedule_free_eval).unwrap();
        record(ctx, &run.device, Optimizer::schedule_free_train).unwrap();
        assert_eq!(
            device_params(ctx, &run),
            initial,
            "{config:?}: before a step"
        );
        for _ in 0..4 {
            run.step(ctx);
        }
        let y = device_params(ctx, &run);
        for (switch, host, eval) in [
            (
                Optimizer::schedule_free_eval as fn(&Optimizer, &mut _) -> _,
                reference::Optimizer::schedule_free_eval
                    as fn(&mut reference::Optimizer, &mut [Vec<f32>]) -> Result<()>,
                true,
            ),
            (
                Optimizer::schedule_free_train,
                reference::Optimizer::schedule_free_train,
                false,
            ),
        ] {
            // Twice: the second is a no-op on both sides.
            for _ in 0..2 {
                record(ctx, &run.device, switch).unwrap();
                host(&mut run.reference, &mut run.host_params).unwrap();
            }
            assert_eq!(run.device.is_schedule_free_eval().unwrap(), eval);
            let what = format!("{config:?} after eval: {eval}");
            for (device, host) in device_params(ctx, &run).iter().zip(&run.host_params) {
                assert_close(&what, device, host);
            }
            if eval {
                // x differs from y wherever z does.
                assert_ne!(device_params(ctx, &run), y, "{what}: nothing moved");
            }
        }
        // Back at y (within the rounding of the two lerps): training carries on.
        for (after, before) in device_params(ctx, &run).iter().zip(&y) {
            for (a, b) in after.iter().zip(before) {
                assert!(
                    (a - b).abs() <= 1e-6 + 1e-5 * b.abs(),
                    "{config:?}: {a} vs {b}"
                );
            }
        }
        for _ in 0..2 {
            run.step(ctx);
        }
        run.compare(ctx, &format!("{config:?} after the round trip"));
    }
}

/// The switch is a typed error for every other optimizer, on the device and in the reference.
#[test]
fn other_optimizers_have_no_switch() {
    let ctx = context();
    let config = OptimizerConfig::AdamW(AdamWConfig::default());
    let mut run = Run::new(ctx, &config, &[5], 1);
    for switch in [
        Optimizer::schedule_free_eval,
        Optimizer::schedule_free_train,
    ] {
        assert!(matches!(
            record(ctx, &run.device, switch),
            Err(Error::NotScheduleFree("AdamW"))
        ));
    }
    assert!(matches!(
        run.reference.schedule_free_eval(&mut run.host_params),
        Err(Error::NotScheduleFree("AdamW"))
    ));
    assert!(!run.device.is_schedule_free_eval().unwrap());
}

/// A new learning rate mid-warm-up rewrites the configuration but not `lr_max` and
/// `weight_sum`: the device keeps matching the reference, which carries them on as the package
/// does; and a checkpoint holds them under PyTorch's `param_groups` keys. Schedule-Free AdamW
/// and SGD alike (the same schedule: the same running values).
#[test]
fn running_values_survive_new_configurations_and_checkpoints() {
    let ctx = context();
    for config in [
        ScheduleFreeAdamWConfig::default()
            .with_lr(0.02)
            .with_warmup_steps(6.0)
            .into(),
        ScheduleFreeSgdConfig::default()
            .with_lr(0.02)
            .with_warmup_steps(6.0)
            .into(),
    ] {
        running_values_carry_on(ctx, config);
    }
}

fn running_values_carry_on(ctx: &Context, config: OptimizerConfig) {
    let mut run = Run::new(ctx, &config, &[3, 300], 7);
    for step in 1..=8 {
        if step == 4 {
            // Below lr_max so far: lr_max must stay where it was.
            let lower = config.with_lr(0.005);
            run.device.set_config(lower.clone()).unwrap();
            run.reference.set_config(lower).unwrap();
        }
        run.step(ctx);
        run.compare(ctx, &format!("step {step}"));
    }
    let bytes = run.device.checkpoint().unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    // lr_max: the warmed-up 0.02 * 3 / 6 of step 3; weight_sum: 0.02^2 (1/36 + 4/36 + 9/36)
    // + 5 steps at lr_max^2.
    let lr_max: f32 = metadata["param_groups.0.lr_max"].parse().unwrap();
    assert!((lr_max - 0.01).abs() < 1e-9, "lr_max {lr_max}");
    let weight_sum: f64 = metadata["param_groups.0.weight_sum"].parse().unwrap();
    let exact = 4e-4 * 14.0 / 36.0 + 5.0 * 1e-4;
    assert!(
        (weight_sum - exact).abs() < 1e-6 * exact,
        "weight_sum {weight_sum}"
    );
    // Without them a checkpoint is refused.
    let mut other = config.build(ctx, &run.params).unwrap();
    let stripped = {
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut metadata = metadata.clone();
        metadata.remove("param_groups.0.weight_sum");
        let tensors: Vec<(String, safetensors::tensor::TensorView)> =
            file.tensors().into_iter().collect();
        safetensors::serialize(tensors, Some(metadata)).unwrap()
    };
    assert!(matches!(
        other.load_checkpoint(&stripped),
        Err(Error::CheckpointMismatch(_))
    ));
    other.load_checkpoint(&bytes).unwrap();
}

/// The metadata value of `key` in `optimizer`'s checkpoint.
fn checkpoint_value(optimizer: &Optimizer, key: &str) -> String {
    let bytes = optimizer.checkpoint().unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().clone().unwrap()[key].clone()
}

/// The eval/train mode travels with checkpoints and snapshots: the parameters saved beside a
/// checkpoint, or by a snapshot, are x in eval mode and y in train mode, and a load or a
/// restore brings the mode back with the running values, so `schedule_free_train` afterwards
/// moves x back to y and the next steps repeat the ones taken after the save.
#[test]
fn the_mode_travels_with_checkpoints_and_snapshots() {
    let ctx = context();
    let configs = schedule_free_configs();
    let sgd = configs
        .iter()
        .find(|c| matches!(c, OptimizerConfig::ScheduleFreeSgd(_)));
    for config in [&configs[0], sgd.expect("a Schedule-Free SGD configuration")] {
        let mut run = Run::new(ctx, config, &[3, 300], 11);
        for _ in 0..4 {
            run.step(ctx);
        }
        assert_eq!(checkpoint_value(&run.device, "schedule_free.mode"), "train");
        record(ctx, &run.device, Optimizer::schedule_free_eval).unwrap();
        assert_eq!(checkpoint_value(&run.device, "schedule_free.mode"), "eval");
        let saved = run.device.checkpoint().unwrap();
        let mut fresh = Run::new(ctx, config, &[3, 300], 11);
        fresh.device.load_checkpoint(&saved).unwrap();
        assert!(
            fresh.device.is_schedule_free_eval().unwrap(),
            "{config:?}: loaded in eval mode"
        );

        // A snapshot saved in eval mode, then train and three steps, then a restore.
        let snapshot = Snapshot::of_optimizer(ctx, &run.device, &[]).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        snapshot.record_save(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        let x = device_params(ctx, &run);
        let weight_sum = checkpoint_value(&run.device, "param_groups.0.weight_sum");
        let grads: Vec<Vec<Vec<f32>>> = (0..3).map(|_| run.gradients()).collect();
        let after_steps = |run: &Run| {
            record(ctx, &run.device, Optimizer::schedule_free_train).unwrap();
            for g in &grads {
                run.step_device(ctx, g);
            }
            device_params(ctx, run)
        };
        let first = after_steps(&run);
        assert_ne!(
            checkpoint_value(&run.device, "param_groups.0.weight_sum"),
            weight_sum
        );
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        snapshot.record_restore(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        assert!(
            run.device.is_schedule_free_eval().unwrap(),
            "{config:?}: restored in eval mode"
        );
        assert_eq!(bits_of(&device_params(ctx, &run)), bits_of(&x));
        assert_eq!(
            checkpoint_value(&run.device, "param_groups.0.weight_sum"),
            weight_sum,
            "{config:?}: the running values come back"
        );
        assert_eq!(bits_of(&after_steps(&run)), bits_of(&first), "{config:?}");
    }
}

fn bits_of(tensors: &[Vec<f32>]) -> Vec<Vec<u32>> {
    tensors.iter().map(|t| bits(t)).collect()
}

/// Issue 25, finding 8: the mode is kept on the device and follows the work submitted. An
/// `eval()` (or a snapshot's restore of an eval-mode save) recorded into an encoder that is
/// dropped changes nothing: the optimizer is still in train mode, a `train()` moves nothing,
/// and the next steps are the ones taken without the dropped encoder.
#[test]
fn the_mode_follows_submitted_work_not_recorded_work() {
    let ctx = context();
    for config in schedule_free_configs() {
        let mut run = Run::new(ctx, &config, &[3, 300], 21);
        for _ in 0..3 {
            run.step(ctx);
        }
        // A save in eval mode, for the dropped restore below.
        let snapshot = Snapshot::of_optimizer(ctx, &run.device, &[]).unwrap();
        record(ctx, &run.device, Optimizer::schedule_free_eval).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        snapshot.record_save(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        record(ctx, &run.device, Optimizer::schedule_free_train).unwrap();
        run.reference
            .schedule_free_eval(&mut run.host_params)
            .unwrap();
        run.reference
            .schedule_free_train(&mut run.host_params)
            .unwrap();
        let y = device_params(ctx, &run);

        for dropped in ["eval", "restore"] {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            match dropped {
                "eval" => run.device.schedule_free_eval(&mut encoder).unwrap(),
                _ => snapshot.record_restore(&mut encoder),
            }
            drop(encoder);
            assert!(
                !run.device.is_schedule_free_eval().unwrap(),
                "{config:?}: a dropped {dropped} left train mode"
            );
            record(ctx, &run.device, Optimizer::schedule_free_train).unwrap();
            assert_eq!(
                bits_of(&device_params(ctx, &run)),
                bits_of(&y),
                "{config:?}"
            );
        }
        for step in 0..2 {
            run.step(ctx);
            run.compare(
                ctx,
                &format!("{config:?}: step {step} after dropped switches"),
            );
        }
    }
}

/// Issue 25, finding 16: the package refuses a step in eval mode; here a step taken while the
/// parameters are x moves them back to y first, as `train()` would, on the device, so it is
/// bit for bit `train()` then the step, and the optimizer is in train mode after it.
#[test]
fn a_step_in_eval_mode_takes_train_first() {
    let ctx = context();
    for config in schedule_free_configs() {
        let mut explicit = Run::new(ctx, &config, &[3, 300], 31);
        let mut implicit = Run::new(ctx, &config, &[3, 300], 31);
        let grads: Vec<Vec<Vec<f32>>> = (0..5).map(|_| explicit.gradients()).collect();
        for (n, g) in grads.iter().enumerate() {
            // Every step in eval mode (the first's eval moves nothing: z does not exist yet).
            record(ctx, &explicit.device, Optimizer::schedule_free_eval).unwrap();
            record(ctx, &implicit.device, Optimizer::schedule_free_eval).unwrap();
            explicit
                .reference
                .schedule_free_eval(&mut explicit.host_params)
                .unwrap();
            implicit
                .reference
                .schedule_free_eval(&mut implicit.host_params)
                .unwrap();
            record(ctx, &explicit.device, Optimizer::schedule_free_train).unwrap();
            explicit
                .reference
                .schedule_free_train(&mut explicit.host_params)
                .unwrap();
            explicit.step_with(ctx, g);
            implicit.step_with(ctx, g);
            assert!(!implicit.device.is_schedule_free_eval().unwrap());
            assert_eq!(
                implicit.snapshot(ctx),
                explicit.snapshot(ctx),
                "{config:?}: step {n} in eval mode"
            );
            implicit.compare(ctx, &format!("{config:?}: step {n} in eval mode"));
        }
    }
}
