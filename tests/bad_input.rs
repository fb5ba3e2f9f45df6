//! Bad input gets a typed error before anything is recorded, and changes nothing.

mod common;
use common::*;
use wgpu_optim::*;

fn storage(ctx: &Context, len: usize) -> wgpu::Buffer {
    ctx.upload_f32("t", &(0..len).map(|i| i as f32).collect::<Vec<_>>())
}

/// A buffer without `STORAGE` usage: no kernel may bind it.
fn without_storage(ctx: &Context, bytes: u64) -> wgpu::Buffer {
    ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Builds must fail with `check` and leave the parameter buffer as it was.
fn refused(ctx: &Context, params: &[Param], check: impl Fn(&Error) -> bool) {
    let whole = BufferRange::whole(params[0].param.buffer());
    let before = ctx.read_f32(&whole).unwrap();
    let config = OptimizerConfig::Adam(AdamConfig::default());
    match config.build(ctx, params) {
        Err(e) => assert!(check(&e), "unexpected error: {e}"),
        Ok(_) => panic!("the build should have been refused"),
    }
    assert_eq!(
        ctx.read_f32(&whole).unwrap(),
        before,
        "a refused build changed the params"
    );
}

#[test]
fn mismatched_lengths_are_refused() {
    let ctx = context();
    let params = [Param::whole(&storage(ctx, 10), &storage(ctx, 11))];
    refused(ctx, &params, |e| {
        matches!(
            e,
            Error::LengthMismatch {
                index: 0,
                param_len: 10,
                grad_len: 11
            }
        )
    });
}

#[test]
fn buffers_without_storage_usage_are_refused() {
    let ctx = context();
    let plain = without_storage(ctx, 40);
    let params = [Param::whole(&storage(ctx, 10), &plain)];
    refused(
        ctx,
        &params,
        |e| matches!(e, Error::MissingUsage { index: 0, role: "grad", missing } if *missing == wgpu::BufferUsages::STORAGE),
    );
    let params = [Param::whole(&plain, &storage(ctx, 10))];
    let config = OptimizerConfig::Sgd(SgdConfig::default());
    assert!(matches!(
        config.build(ctx, &params),
        Err(Error::MissingUsage { role: "param", .. })
    ));
}

#[test]
fn misaligned_and_out_of_bounds_ranges_are_refused() {
    let ctx = context();
    let big = storage(ctx, 1000);
    let grad = storage(ctx, 10);
    let big2 = storage(ctx, 50);
    let misaligned = [Param::new(
        BufferRange::new(&big, 4, 10),
        BufferRange::whole(&grad),
    )];
    refused(ctx, &misaligned, |e| {
        matches!(e, Error::MisalignedOffset { offset: 4, .. })
    });
    let past_end = [Param::new(
        BufferRange::new(&big, 3840, 50),
        BufferRange::new(&big2, 0, 50),
    )];
    refused(ctx, &past_end, |e| {
        matches!(
            e,
            Error::OutOfBounds {
                end: 4040,
                size: 4000,
                ..
            }
        )
    });
}

#[test]
fn param_and_grad_in_one_buffer_are_refused() {
    let ctx = context();
    let buffer = storage(ctx, 1000);
    // Overlapping, and disjoint: WebGPU refuses one buffer bound read-write and read-only in a
    // dispatch, so a step would fail validation when recorded.
    for grad_offset in [256, 1024] {
        let params = [Param::new(
            BufferRange::new(&buffer, 0, 100),
            BufferRange::new(&buffer, grad_offset, 100),
        )];
        refused(ctx, &params, |e| matches!(e, Error::Aliased { index: 0 }));
    }
}

#[test]
fn invalid_hyperparameters_are_refused() {
    let nan = f64::NAN;
    let cases: Vec<(OptimizerConfig, &str)> = vec![
        (
            OptimizerConfig::Sgd(SgdConfig::default().with_lr(-0.1)),
            "lr",
        ),
        (
            OptimizerConfig::Sgd(SgdConfig::default().with_lr(nan)),
            "lr",
        ),
        (
            OptimizerConfig::Sgd(SgdConfig::default().with_momentum(-0.5)),
            "momentum",
        ),
        (
            OptimizerConfig::Sgd(SgdConfig::default().with_weight_decay(-1.0)),
            "weight_decay",
        ),
        (
            OptimizerConfig::Adagrad(AdagradConfig::default().with_eps(-1e-10)),
            "eps",
        ),
        (
            OptimizerConfig::Adagrad(AdagradConfig::default().with_lr_decay(-1.0)),
            "lr_decay",
        ),
        (
            OptimizerConfig::Adagrad(AdagradConfig::default().with_initial_accumulator_value(-1.0)),
            "initial_accumulator_value",
        ),
        (
            OptimizerConfig::RmsProp(RmsPropConfig::default().with_alpha(-0.1)),
            "alpha",
        ),
        (
            OptimizerConfig::RmsProp(RmsPropConfig::default().with_eps(f64::INFINITY)),
            "eps",
        ),
        (
            OptimizerConfig::Adam(AdamConfig::default().with_lr(-1e-3)),
            "lr",
        ),
        (
            OptimizerConfig::Adam(AdamConfig::default().with_eps(-1e-8)),
            "eps",
        ),
        (
            OptimizerConfig::Adam(AdamConfig::default().with_betas(1.0, 0.999)),
            "beta1",
        ),
        (
            OptimizerConfig::Adam(AdamConfig::default().with_betas(0.9, -0.1)),
            "beta2",
        ),
        (
            OptimizerConfig::Adam(AdamConfig::default().with_betas(0.9, nan)),
            "beta2",
        ),
        (
            OptimizerConfig::AdamW(AdamWConfig::default().with_betas(0.9, 1.5)),
            "beta2",
        ),
        (
            OptimizerConfig::AdamW(AdamWConfig::default().with_weight_decay(-0.01)),
            "weight_decay",
        ),
        (
            OptimizerConfig::AdaBelief(AdaBeliefConfig::default().with_betas(-0.1, 0.999)),
            "beta1",
        ),
        (
            OptimizerConfig::Lion(LionConfig::default().with_betas(0.9, 1.1)),
            "beta2",
        ),
        (
            OptimizerConfig::Lion(LionConfig::default().with_lr(-1.0)),
            "lr",
        ),
        (
            OptimizerConfig::Adamax(AdamaxConfig::default().with_betas(0.9, 1.0)),
            "beta2",
        ),
        (
            OptimizerConfig::Adamax(AdamaxConfig::default().with_eps(-1.0)),
            "eps",
        ),
        (
            OptimizerConfig::NAdam(NAdamConfig::default().with_momentum_decay(-4e-3)),
            "momentum_decay",
        ),
        (
            OptimizerConfig::NAdam(NAdamConfig::default().with_betas(1.0, 0.999)),
            "beta1",
        ),
        (
            OptimizerConfig::RAdam(RAdamConfig::default().with_threshold(3.0)),
            "threshold",
        ),
        (
            OptimizerConfig::RAdam(RAdamConfig::default().with_threshold(nan)),
            "threshold",
        ),
        (
            OptimizerConfig::RAdam(RAdamConfig::default().with_weight_decay(-0.01)),
            "weight_decay",
        ),
        // PyTorch: 0 <= rho <= 1.
        (
            OptimizerConfig::Adadelta(AdadeltaConfig::default().with_rho(1.5)),
            "rho",
        ),
        (
            OptimizerConfig::Adadelta(AdadeltaConfig::default().with_rho(-0.1)),
            "rho",
        ),
        (
            OptimizerConfig::Adadelta(AdadeltaConfig::default().with_eps(-1e-6)),
            "eps",
        ),
        (
            OptimizerConfig::Adadelta(AdadeltaConfig::default().with_lr(-1.0)),
            "lr",
        ),
        (
            OptimizerConfig::Adopt(AdoptConfig::default().with_betas(0.9, 1.0)),
            "beta2",
        ),
        (
            OptimizerConfig::Adopt(AdoptConfig::default().with_eps(-1e-6)),
            "eps",
        ),
        (
            OptimizerConfig::Adopt(AdoptConfig::default().with_weight_decay(-0.01)),
            "weight_decay",
        ),
        (LambConfig::default().with_lr(-1e-3).into(), "lr"),
        (LambConfig::default().with_betas(0.9, 1.0).into(), "beta2"),
        (LambConfig::default().with_eps(f64::NAN).into(), "eps"),
        (
            LambConfig::default().with_eps_root(-1e-8).into(),
            "eps_root",
        ),
        (
            LambConfig::default().with_weight_decay(-0.01).into(),
            "weight_decay",
        ),
        (LarsConfig::default().with_lr(f64::INFINITY).into(), "lr"),
        (LarsConfig::default().with_momentum(-0.9).into(), "momentum"),
        (
            LarsConfig::default().with_trust_coefficient(-1e-3).into(),
            "trust_coefficient",
        ),
        (LarsConfig::default().with_eps(-1e-9).into(), "eps"),
        (
            ScheduleFreeAdamWConfig::default()
                .with_betas(0.0, 0.999)
                .into(),
            "beta1",
        ),
        (
            ScheduleFreeAdamWConfig::default()
                .with_betas(0.9, 1.0)
                .into(),
            "beta2",
        ),
        (
            ScheduleFreeAdamWConfig::default()
                .with_warmup_steps(2.5)
                .into(),
            "warmup_steps",
        ),
        (ScheduleFreeAdamWConfig::default().with_r(-1.0).into(), "r"),
        (
            ScheduleFreeAdamWConfig::default()
                .with_weight_lr_power(f64::NAN)
                .into(),
            "weight_lr_power",
        ),
        // The package's own check: momentum in (0, 1) exclusive.
        (
            ScheduleFreeSgdConfig::default().with_momentum(1.0).into(),
            "momentum",
        ),
        (
            ScheduleFreeSgdConfig::default().with_momentum(0.0).into(),
            "momentum",
        ),
        (ScheduleFreeSgdConfig::default().with_lr(-0.1).into(), "lr"),
        (
            ScheduleFreeSgdConfig::default()
                .with_weight_decay(-0.01)
                .into(),
            "weight_decay",
        ),
        (
            ScheduleFreeSgdConfig::default()
                .with_warmup_steps(-1.0)
                .into(),
            "warmup_steps",
        ),
    ];
    let ctx = context();
    let params = [Param::whole(&storage(ctx, 10), &storage(ctx, 10))];
    for (config, name) in cases {
        match config.build(ctx, &params) {
            Err(Error::InvalidHyperparameter { name: got, .. }) => {
                assert_eq!(got, name, "{config:?}")
            }
            other => panic!(
                "{config:?}: expected InvalidHyperparameter({name}), got {:?}",
                other.err()
            ),
        }
        assert!(
            reference::Optimizer::new(&config, &[10]).is_err(),
            "the reference accepted {config:?}"
        );
    }
}

#[test]
fn nesterov_needs_momentum_and_no_dampening() {
    for config in [
        SgdConfig::default().with_nesterov(true),
        SgdConfig::default()
            .with_nesterov(true)
            .with_momentum(0.9)
            .with_dampening(0.1),
    ] {
        assert!(
            matches!(
                OptimizerConfig::Sgd(config.clone()).validate(),
                Err(Error::InvalidOptions(_))
            ),
            "{config:?}"
        );
    }
    OptimizerConfig::Sgd(SgdConfig::default().with_nesterov(true).with_momentum(0.9))
        .validate()
        .unwrap();
}

#[test]
fn a_refused_hyperparameter_change_leaves_the_optimizer_as_it_was() {
    let ctx = context();
    let config = OptimizerConfig::Adam(AdamConfig::default().with_lr(0.01));
    let mut run = Run::new(ctx, &config, &[300], 7);
    run.step(ctx);
    assert!(matches!(
        run.device.set_lr(-1.0),
        Err(Error::InvalidHyperparameter { name: "lr", .. })
    ));
    assert!(matches!(
        run.device.set_config(OptimizerConfig::Adam(
            AdamConfig::default().with_amsgrad(true)
        )),
        Err(Error::StructuralChange(_))
    ));
    assert!(matches!(
        run.device
            .set_config(OptimizerConfig::Sgd(SgdConfig::default())),
        Err(Error::StructuralChange(_))
    ));
    assert_eq!(run.device.config(), &config);
    // The next step still uses lr = 0.01, as the reference does.
    run.step(ctx);
    run.compare(ctx, "after refused changes");
}

#[test]
fn a_learning_rate_change_is_a_buffer_write() {
    let ctx = context();
    let config = OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.1).with_momentum(0.9));
    let mut run = Run::new(ctx, &config, &[1000], 8);
    run.step(ctx);
    run.device.set_lr(0.02).unwrap();
    run.reference.set_config(config.with_lr(0.02)).unwrap();
    run.step(ctx);
    run.compare(ctx, "after set_lr");
}

#[test]
fn unknown_state_and_tensor_are_errors() {
    let ctx = context();
    let params = [Param::whole(&storage(ctx, 10), &storage(ctx, 10))];
    let adam = AdamConfig::default().build(ctx, &params).unwrap();
    assert!(matches!(
        adam.read_state(0, "max_exp_avg_sq"),
        Err(Error::NoSuchState { .. })
    ));
    assert!(matches!(
        adam.read_state(1, "exp_avg"),
        Err(Error::NoSuchTensor {
            index: 1,
            count: 1,
            owner: "optimizer"
        })
    ));
    let range = BufferRange::whole(params[0].param.buffer());
    assert!(matches!(
        ctx.write_f32(&range, &[1.0; 3]),
        Err(Error::WrongLength {
            expected: 10,
            actual: 3,
            ..
        })
    ));
}

#[test]
fn the_reference_refuses_mismatched_host_tensors() {
    let config = OptimizerConfig::Adam(AdamConfig::default());
    let mut adam = reference::Optimizer::new(&config, &[3]).unwrap();
    let mut params = vec![vec![0.0; 3]];
    assert!(matches!(
        adam.step(&mut params, &[vec![0.0; 4]]),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        adam.step(&mut params, &[]),
        Err(Error::WrongLength { .. })
    ));
    assert_eq!(adam.step_count(), 0);
}

#[test]
fn empty_tensors_are_a_no_op() {
    let ctx = context();
    let config = OptimizerConfig::AdamW(AdamWConfig::default());
    let mut run = Run::new(ctx, &config, &[0, 5, 0], 9);
    run.step(ctx);
    run.step(ctx);
    run.compare(ctx, "with empty tensors");
}

#[test]
fn the_no_adapter_error_names_the_fix() {
    let message = Error::NoAdapter("none".into()).to_string();
    assert!(
        message.contains("apt-get install -y mesa-vulkan-drivers libvulkan1"),
        "{message}"
    );
    assert!(message.contains("WGPU_BACKEND"), "{message}");
}

/// Asserts `config` is refused naming `name`, by the optimizer and by the reference, and that
/// the gradient processing in force stays as it was.
fn grad_config_refused(optimizer: &mut Optimizer, config: GradConfig, name: &str) {
    let before = optimizer.grad_processing().cloned();
    let named = |e: &Error| matches!(e, Error::InvalidHyperparameter { name: n, .. } if *n == name);
    match optimizer.set_grad_processing(Some(config.clone())) {
        Err(e) => assert!(named(&e), "{config:?}: unexpected error {e}"),
        Ok(()) => panic!("{config:?} should have been refused"),
    }
    assert_eq!(optimizer.grad_processing().cloned(), before, "{config:?}");
    let mut host = reference::Optimizer::new(optimizer.config(), &[4]).unwrap();
    assert!(host.set_grad_processing(Some(config.clone())).is_err());
    assert!(matches!(config.validate(), Err(e) if named(&e)));
}

#[test]
fn invalid_gradient_processing_is_refused() {
    let ctx = context();
    let params = [Param::whole(&storage(ctx, 4), &storage(ctx, 4))];
    let mut sgd = SgdConfig::default().build(ctx, &params).unwrap();
    let valid = GradConfig::default().with_max_norm(1.0);
    sgd.set_grad_processing(Some(valid.clone())).unwrap();
    for max_norm in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e39, 1e-50, 1e-40] {
        grad_config_refused(&mut sgd, valid.clone().with_max_norm(max_norm), "max_norm");
    }
    // Any p > 0 (a normal f32) or inf is a norm; 1e-50 rounds to 0 in f32.
    for norm_type in [0.0, -0.0, -2.0, 1e-50, f64::NAN, f64::NEG_INFINITY] {
        grad_config_refused(
            &mut sgd,
            valid.clone().with_norm_type(norm_type),
            "norm_type",
        );
    }
    for clip_value in [0.0, -0.5, f64::NAN, f64::INFINITY] {
        grad_config_refused(
            &mut sgd,
            valid.clone().with_clip_value(clip_value),
            "clip_value",
        );
    }
    let scaler = GradScalerConfig::default;
    let bad_scalers = [
        (scaler().with_init_scale(0.0), "init_scale"),
        (scaler().with_init_scale(f64::NAN), "init_scale"),
        (scaler().with_init_scale(1e39), "init_scale"),
        (scaler().with_growth_factor(1.0), "growth_factor"),
        (scaler().with_growth_factor(0.5), "growth_factor"),
        (scaler().with_growth_factor(f64::INFINITY), "growth_factor"),
        (scaler().with_growth_factor(1.0 + 1e-9), "growth_factor"),
        (scaler().with_backoff_factor(1e-50), "backoff_factor"),
        (scaler().with_backoff_factor(1.0), "backoff_factor"),
        (scaler().with_backoff_factor(0.0), "backoff_factor"),
        (scaler().with_backoff_factor(f64::NAN), "backoff_factor"),
        (scaler().with_growth_interval(0), "growth_interval"),
    ];
    for (bad, name) in bad_scalers {
        grad_config_refused(&mut sgd, valid.clone().with_grad_scaler(bad), name);
    }
    // The valid configuration is still the one applied.
    assert_eq!(sgd.grad_processing(), Some(&valid));
}

#[test]
fn data_parallel_calls_without_their_setup_are_refused() {
    let ctx = context();
    let params = [Param::whole(&storage(ctx, 4), &storage(ctx, 4))];
    let mut sgd = SgdConfig::default().build(ctx, &params).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    assert!(matches!(
        sgd.record_grad_stats(&mut encoder),
        Err(Error::NoGradProcessing)
    ));
    let mut host = reference::Optimizer::new(sgd.config(), &[4]).unwrap();
    let stats = NormStats::default();
    assert!(matches!(
        host.step_with_stats(&mut [vec![0.0; 4]], &[vec![0.0; 4]], stats),
        Err(Error::NoGradProcessing)
    ));

    // The norm stats buffer: 2 f32, STORAGE, at an aligned offset.
    let wrong_length = BufferRange::whole(&storage(ctx, 3));
    assert!(matches!(
        sgd.set_norm_stats_buffer(wrong_length),
        Err(Error::WrongLength {
            expected: 2,
            actual: 3,
            ..
        })
    ));
    let plain = without_storage(ctx, 8);
    assert!(matches!(
        sgd.set_norm_stats_buffer(BufferRange::whole(&plain)),
        Err(Error::MissingUsage { .. })
    ));
    let big = storage(ctx, 256);
    assert!(matches!(
        sgd.set_norm_stats_buffer(BufferRange::new(&big, 4, 2)),
        Err(Error::MisalignedOffset { offset: 4, .. })
    ));
    assert!(matches!(
        sgd.set_norm_stats_buffer(BufferRange::new(&big, 1020, 2)),
        Err(Error::MisalignedOffset { .. } | Error::OutOfBounds { .. })
    ));
}

#[test]
fn clip_value_refuses_bad_bounds_and_buffers() {
    let ctx = context();
    let grads = [BufferRange::whole(&storage(ctx, 8))];
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            ClipValue::new(ctx, &grads, bad),
            Err(Error::InvalidHyperparameter {
                name: "clip_value",
                ..
            })
        ));
    }
    let mut clip = ClipValue::new(ctx, &grads, 1.0).unwrap();
    assert!(clip.set_clip_value(-1.0).is_err());
    let plain = without_storage(ctx, 8);
    assert!(matches!(
        ClipValue::new(ctx, &[BufferRange::whole(&plain)], 1.0),
        Err(Error::MissingUsage { .. })
    ));
}

#[test]
fn optax_forms_refuse_options_they_do_not_apply_to() {
    let refused = [
        // The Optax AMSGrad form without AMSGrad.
        OptimizerConfig::Adam(AdamConfig::default().with_amsgrad_bias_corrected(true)),
        // eps_root with PyTorch's AMSGrad would be silently ignored.
        OptimizerConfig::Adam(AdamConfig::default().with_amsgrad(true).with_eps_root(1e-8)),
        // eps_root outside NAdam's and RAdam's Optax forms.
        OptimizerConfig::NAdam(NAdamConfig::default().with_eps_root(1e-8)),
        OptimizerConfig::RAdam(RAdamConfig::default().with_eps_root(1e-8)),
        // Optax's AdaBelief eps_root with adabelief-pytorch's rectification.
        OptimizerConfig::AdaBelief(
            AdaBeliefConfig::default()
                .with_rectify(true)
                .with_eps_root(1e-8),
        ),
    ];
    for config in refused {
        assert!(
            matches!(config.validate(), Err(Error::InvalidOptions(_))),
            "{config:?}"
        );
    }
    let negative = OptimizerConfig::Adam(
        AdamConfig::default()
            .with_amsgrad(true)
            .with_amsgrad_bias_corrected(true)
            .with_eps_root(-1.0),
    );
    let nan_root = OptimizerConfig::AdaBelief(AdaBeliefConfig::default().with_eps_root(f64::NAN));
    for config in [negative, nan_root] {
        assert!(
            matches!(
                config.validate(),
                Err(Error::InvalidHyperparameter {
                    name: "eps_root",
                    ..
                })
            ),
            "{config:?}"
        );
    }
}

/// Issue 12, finding 2: hyperparameters are validated as the device holds them, in f32. A value
/// only f64 holds (1e39) and a derived value that overflows f32 are refused in every optimizer,
/// in configs, `set_lr` and `set_group_lr`, with nothing changed.
#[test]
fn hyperparameters_past_f32_are_refused() {
    let ctx = context();
    let huge = 1e39;
    for config in all_configs() {
        let what = format!("{config:?}");
        match config.with_lr(huge).validate() {
            Err(Error::InvalidHyperparameter { name: "lr", .. }) => {}
            other => panic!("{what}: lr 1e39 gave {other:?}"),
        }
        let mut run = Run::new(ctx, &config, &[64], 3);
        run.step(ctx);
        assert!(
            matches!(
                run.device.set_lr(huge),
                Err(Error::InvalidHyperparameter { name: "lr", .. })
            ),
            "{what}: set_lr(1e39)"
        );
        assert!(
            matches!(
                run.device.set_group_lr(0, huge),
                Err(Error::InvalidHyperparameter { name: "lr", .. })
            ),
            "{what}: set_group_lr(0, 1e39)"
        );
        assert_eq!(
            run.device.config(),
            &config,
            "{what}: a refused lr changed the config"
        );
        run.step(ctx);
        run.compare(ctx, &format!("{what} after refused changes"));
    }
    // Each field at 1e39 (it only fits f64), where the optimizer has it.
    let f32_only = [
        OptimizerConfig::Sgd(SgdConfig::default().with_momentum(huge)),
        OptimizerConfig::Sgd(SgdConfig::default().with_weight_decay(huge)),
        OptimizerConfig::Sgd(SgdConfig {
            dampening: -huge,
            ..SgdConfig::default()
        }),
        OptimizerConfig::Adagrad(AdagradConfig::default().with_eps(huge)),
        OptimizerConfig::Adagrad(AdagradConfig::default().with_lr_decay(huge)),
        OptimizerConfig::Adagrad(AdagradConfig {
            initial_accumulator_value: huge,
            ..AdagradConfig::default()
        }),
        OptimizerConfig::RmsProp(RmsPropConfig::default().with_eps(huge)),
        OptimizerConfig::Adam(AdamConfig::default().with_eps(huge)),
        OptimizerConfig::Adam(AdamConfig::default().with_weight_decay(huge)),
        OptimizerConfig::AdamW(AdamWConfig::default().with_weight_decay(huge)),
        OptimizerConfig::AdaBelief(AdaBeliefConfig::default().with_eps(huge)),
        OptimizerConfig::Lion(LionConfig::default().with_weight_decay(huge)),
        OptimizerConfig::Adamax(AdamaxConfig::default().with_lr(huge)),
        OptimizerConfig::NAdam(NAdamConfig::default().with_momentum_decay(huge)),
        OptimizerConfig::RAdam(RAdamConfig::default().with_threshold(huge)),
        OptimizerConfig::Adadelta(AdadeltaConfig::default().with_lr(huge)),
        OptimizerConfig::Adopt(AdoptConfig::default().with_lr(huge)),
        OptimizerConfig::Lamb(LambConfig::default().with_eps_root(huge)),
        OptimizerConfig::Lars(LarsConfig::default().with_trust_coefficient(huge)),
    ];
    for config in f32_only {
        assert!(
            matches!(config.validate(), Err(Error::InvalidHyperparameter { .. })),
            "{config:?} was accepted"
        );
    }
    // Finite in f32 each, but 1 - lr * weight_decay is -1e40: refused by the derived field.
    let derived =
        OptimizerConfig::AdamW(AdamWConfig::default().with_lr(1e20).with_weight_decay(1e20));
    assert!(
        matches!(
            derived.validate(),
            Err(Error::InvalidHyperparameter { name: "decay", .. })
        ),
        "{:?}",
        derived.validate()
    );
}

/// Issue 12, finding 12: another algorithm is a structural change, even when it runs the same
/// kernel (Adam with decoupled weight decay is AdamW's kernel, but another optimizer).
#[test]
fn set_config_refuses_another_algorithm() {
    let ctx = context();
    let config = OptimizerConfig::AdamW(AdamWConfig::default());
    let mut run = Run::new(ctx, &config, &[64], 5);
    let adam = OptimizerConfig::Adam(AdamWConfig::default().to_adam());
    assert!(matches!(
        run.device.set_config(adam.clone()),
        Err(Error::StructuralChange("AdamW"))
    ));
    assert!(matches!(
        run.device.set_group_config(0, adam),
        Err(Error::StructuralChange("AdamW"))
    ));
    assert_eq!(run.device.config(), &config);
    assert_eq!(run.device.config().name(), "AdamW");
}

/// Issue 12, finding 3: a norm stats range that overlaps a param, a grad, a state or the
/// control block is refused (the stats would be written into it), and the optimizer keeps
/// stepping as before. A range of the same buffers that overlaps nothing is accepted.
#[test]
fn a_norm_stats_range_over_the_optimizers_own_buffers_is_refused() {
    let ctx = context();
    let align = ctx.device().limits().min_storage_buffer_offset_alignment as u64;
    let arena = Arena::new(ctx, &[100, 100]).unwrap();
    let config = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01));
    let mut optimizer = config.build(ctx, &arena.params()).unwrap();
    optimizer
        .set_grad_processing(Some(GradConfig::default().with_max_norm(1.0)))
        .unwrap();
    let two = |range: BufferRange, at: u64| BufferRange::new(range.buffer(), at, 2);
    let param = arena.param(1).unwrap();
    let grad = arena.grad(0).unwrap();
    assert_eq!(param.offset() % align, 0);
    let state = optimizer.state_range(1, "exp_avg_sq").unwrap().clone();
    let cases = [
        (two(param.clone(), param.offset()), "param", Some(1)),
        (two(grad.clone(), grad.offset()), "grad", Some(0)),
        (two(state.clone(), state.offset()), "exp_avg_sq", Some(1)),
        (
            BufferRange::new(optimizer.control_buffer(), 0, 2),
            "control block",
            None,
        ),
    ];
    for (range, with, tensor) in cases {
        match optimizer.set_norm_stats_buffer(range) {
            Err(Error::NormStatsOverlap { with: w, tensor: t }) => {
                assert_eq!((w, t), (with, tensor))
            }
            other => panic!("a range over the {with} gave {other:?}"),
        }
    }
    // A range past the grads, in their buffer, overlaps nothing the optimizer binds.
    let past = 400_u64.next_multiple_of(align);
    let grads = ctx.upload_f32("grads", &vec![0.5; (past / 4 + 2) as usize]);
    let mut sgd = SgdConfig::default()
        .build(ctx, &[Param::new(param, BufferRange::new(&grads, 0, 100))])
        .unwrap();
    sgd.set_norm_stats_buffer(BufferRange::new(&grads, past, 2))
        .unwrap();
    assert!(matches!(
        sgd.set_norm_stats_buffer(BufferRange::new(&grads, 0, 2)),
        Err(Error::NormStatsOverlap {
            with: "grad",
            tensor: Some(0)
        })
    ));
}

/// Issue 12, finding 5: lengths no buffer can hold are refused with `OutOfBounds`, never
/// wrapped back inside the buffer (nor, in debug builds, an overflow panic).
#[test]
fn lengths_past_u64_bytes_are_refused() {
    let ctx = context();
    let small = storage(ctx, 4);
    let huge = BufferRange::new(&small, 0, 1 << 62);
    assert_eq!(huge.end(), u64::MAX);
    let params = [Param::new(
        huge.clone(),
        BufferRange::new(&storage(ctx, 4), 0, 1 << 62),
    )];
    refused(ctx, &params, |e| {
        matches!(
            e,
            Error::OutOfBounds {
                role: "param",
                end: u64::MAX,
                ..
            }
        )
    });
    assert!(matches!(
        ctx.read_f32(&huge),
        Err(Error::OutOfBounds { end: u64::MAX, .. })
    ));
    for lens in [
        vec![1 << 62],
        vec![5, usize::MAX],
        vec![usize::MAX / 2, usize::MAX / 2],
    ] {
        match Arena::new(ctx, &lens) {
            Err(Error::OutOfBounds { role: "arena", .. }) => {}
            Err(other) => panic!("{lens:?}: {other}"),
            Ok(arena) => panic!("{lens:?}: an arena of {} tensors", arena.len()),
        }
    }
}

/// Issue 12, finding 14: errors name the limit and the object they are about.
#[test]
fn errors_name_the_right_limit_and_object() {
    let ctx = context();
    let buffer = storage(ctx, 8);
    let read = ctx.read_f32(&BufferRange::new(&buffer, 2, 2)).unwrap_err();
    assert!(
        matches!(
            read,
            Error::MisalignedOffset {
                alignment: 4,
                limit: "wgpu::COPY_BUFFER_ALIGNMENT",
                ..
            }
        ),
        "{read:?}"
    );
    assert!(read.to_string().contains("COPY_BUFFER_ALIGNMENT"), "{read}");
    let grad = storage(ctx, 64);
    let bind = SgdConfig::default()
        .build(
            ctx,
            &[Param::new(
                BufferRange::new(&storage(ctx, 64), 4, 4),
                BufferRange::new(&grad, 0, 4),
            )],
        )
        .err()
        .unwrap();
    assert!(
        bind.to_string()
            .contains("min_storage_buffer_offset_alignment"),
        "{bind}"
    );
    let arena = Arena::new(ctx, &[4, 4]).unwrap();
    let index = arena.param(5).unwrap_err();
    assert!(
        index.to_string().contains("the arena has 2 tensors"),
        "{index}"
    );
}

/// Issue 12, finding 6 (part): reads and writes of a destroyed or still-mapped buffer return
/// `Error::Wgpu` instead of zeros and a panic in wgpu's default error handler.
#[test]
fn destroyed_and_mapped_buffers_give_errors() {
    let ctx = context();
    let destroyed = storage(ctx, 8);
    destroyed.destroy();
    let range = BufferRange::whole(&destroyed);
    assert!(matches!(ctx.read_f32(&range), Err(Error::Wgpu(_))));
    assert!(matches!(
        ctx.write_f32(&range, &[1.0; 8]),
        Err(Error::Wgpu(_))
    ));
    let mapped = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("mapped"),
        size: 32,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: true,
    });
    let range = BufferRange::whole(&mapped);
    assert!(matches!(ctx.read_f32(&range), Err(Error::Wgpu(_))));
    assert!(matches!(
        ctx.write_f32(&range, &[1.0; 8]),
        Err(Error::Wgpu(_))
    ));
    // The context still works.
    let fine = storage(ctx, 8);
    assert_eq!(ctx.read_f32(&BufferRange::whole(&fine)).unwrap()[7], 7.0);
}

/// Issue 12, finding 6 (part): a control reader refuses an optimizer of another device, whose
/// copy would fail at the caller's submit.
#[test]
fn a_control_reader_refuses_another_devices_optimizer() {
    // Two devices of one adapter (of one instance: wgpu's handles of another instance cannot
    // be told apart from this one's).
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))
        .unwrap_or_else(|e| panic!("the tests need a wgpu adapter: {e}"));
    let device = || {
        let (device, queue) =
            pollster::block_on(adapter.request_device(&Default::default())).unwrap();
        Context::from_device(device, queue)
    };
    let (ctx, other) = (&device(), device());
    let params = [Param::whole(&storage(&other, 4), &storage(&other, 4))];
    let optimizer = SgdConfig::default().build(&other, &params).unwrap();
    let mut reader = ControlReader::new(ctx, 2);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    assert!(matches!(
        reader.record(&mut encoder, &optimizer),
        Err(Error::OtherDevice { what: "optimizer" })
    ));
    assert_eq!(reader.in_flight(), 0);
}

#[test]
fn storage_types_that_do_not_fit_are_refused() {
    let ctx = context();
    let adam = || OptimizerConfig::Adam(AdamConfig::default());
    let build = |params: Vec<Param>, precision: Precision| {
        let group = ParamGroup {
            config: adam(),
            params,
        };
        Optimizer::with_precision(ctx, vec![group], precision)
    };
    let bf16 =
        |len: u64| BufferRange::typed(&zeroed_buffer(ctx, 2 * len + 16), 0, len, Dtype::BF16);
    let f32 = |len: u64| BufferRange::new(&zeroed_buffer(ctx, 4 * len), 0, len);

    // A 16-bit range whose last word runs past its buffer: 3 bf16 elements are bound as 8
    // bytes, the buffer has 6.
    let short = BufferRange::typed(&zeroed_buffer(ctx, 6), 0, 3, Dtype::BF16);
    assert!(matches!(
        build(
            vec![Param::new(short.clone(), bf16(3))],
            Precision::default()
        ),
        Err(Error::OutOfBounds {
            role: "param",
            end: 8,
            size: 6,
            ..
        })
    ));
    assert!(matches!(
        ctx.read_f32(&short),
        Err(Error::OutOfBounds {
            end: 8,
            size: 6,
            ..
        })
    ));
    assert!(matches!(
        ctx.write_f32(&short, &[1.0; 3]),
        Err(Error::OutOfBounds {
            end: 8,
            size: 6,
            ..
        })
    ));

    // Two types of parameters in one optimizer.
    let mixed = vec![Param::new(bf16(8), bf16(8)), Param::new(f32(8), bf16(8))];
    assert!(matches!(
        build(mixed, Precision::default()),
        Err(Error::MixedDtypes {
            index: 1,
            role: "param",
            expected: Dtype::BF16,
            found: Dtype::F32
        })
    ));
    let mixed = vec![Param::new(bf16(8), bf16(8)), Param::new(bf16(8), f32(8))];
    assert!(matches!(
        build(mixed, Precision::default()),
        Err(Error::MixedDtypes {
            index: 1,
            role: "grad",
            ..
        })
    ));

    // Master weights of f32 parameters; stochastic rounding of f16 or f32 parameters, or
    // beside master weights.
    let f32_params = || vec![Param::new(f32(8), f32(8))];
    assert!(matches!(
        build(f32_params(), Precision::default().with_master_weights()),
        Err(Error::InvalidOptions(_))
    ));
    assert!(matches!(
        build(
            f32_params(),
            Precision::default().with_stochastic_rounding(1)
        ),
        Err(Error::UnsupportedDtype {
            what: "stochastic rounding",
            dtype: Dtype::F32,
            ..
        })
    ));
    let f16 = BufferRange::typed(&zeroed_buffer(ctx, 16), 0, 8, Dtype::F16);
    let f16_grad = BufferRange::typed(&zeroed_buffer(ctx, 16), 0, 8, Dtype::F16);
    assert!(matches!(
        build(
            vec![Param::new(f16, f16_grad)],
            Precision::default().with_stochastic_rounding(1)
        ),
        Err(Error::UnsupportedDtype {
            dtype: Dtype::F16,
            ..
        })
    ));
    assert!(matches!(
        build(
            vec![Param::new(bf16(8), bf16(8))],
            Precision::default()
                .with_master_weights()
                .with_stochastic_rounding(1)
        ),
        Err(Error::InvalidOptions(_))
    ));
}

/// `ClipValue` clamps f32 buffers in place: 16-bit ones are refused with a typed error (an
/// optimizer's own clip by value takes them, in registers).
#[test]
fn clip_value_of_16_bit_buffers_is_refused() {
    let ctx = context();
    let arena = Arena::with_dtypes(ctx, &[10, 3], Dtype::BF16, Dtype::BF16).unwrap();
    arena.write_grad(0, &[1.0; 10]).unwrap();
    assert!(matches!(
        ClipValue::new(ctx, &[arena.grad(0).unwrap()], 0.5),
        Err(Error::UnsupportedDtype {
            what: "ClipValue",
            dtype: Dtype::BF16,
            ..
        })
    ));
    assert_eq!(arena.read_grad(0).unwrap(), vec![1.0; 10]);
}

/// Issue 25, finding 15: `wgpu::Device`s compare by an id unique within one instance, so two
/// contexts of `Context::new_blocking` (each on an instance of its own) hold devices that
/// compare equal. The contexts keep their instance: a snapshot and a control reader refuse an
/// optimizer of the other one instead of recording copies that fail at the caller's submit.
#[test]
fn objects_of_another_instance_are_refused() {
    let new = || {
        Context::new_blocking().unwrap_or_else(|e| {
            panic!("the tests need a wgpu adapter (lavapipe: apt install mesa-vulkan-drivers): {e}")
        })
    };
    let (ctx, other) = (new(), new());
    assert!(ctx.same_device(&ctx.clone()));
    assert!(!ctx.same_device(&other));
    let params = [Param::whole(&storage(&other, 4), &storage(&other, 4))];
    let optimizer = SgdConfig::default().build(&other, &params).unwrap();
    assert!(matches!(
        Snapshot::of_optimizer(&ctx, &optimizer, &[]),
        Err(Error::OtherDevice { what: "optimizer" })
    ));
    let mut reader = ControlReader::new(&ctx, 2);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    assert!(matches!(
        reader.record(&mut encoder, &optimizer),
        Err(Error::OtherDevice { what: "optimizer" })
    ));
    assert_eq!(reader.in_flight(), 0);
    // The optimizer's own context is accepted.
    assert!(Snapshot::of_optimizer(&other, &optimizer, &[]).is_ok());
}

/// Issue 25 (the GL backend's limits): a kernel that binds more storage buffers than the
/// device allows one shader stage is refused with a typed error naming the limit, not
/// wgpu's validation error. Under WebGPU's default limits (8): the Adam kernel (three state
/// slots, AMSGrad's among them) with master weights binds 9, and so does LAMB (two states,
/// its trust sums, the master copy); without master weights they bind 8 and build.
#[test]
fn a_kernel_past_the_storage_buffer_limit_is_refused_by_name() {
    let ctx = pollster::block_on(Context::request(&ContextOptions {
        limits: Some(wgpu::Limits::default()),
        ..Default::default()
    }))
    .unwrap_or_else(|e| {
        panic!("the tests need a wgpu adapter (lavapipe: apt install mesa-vulkan-drivers): {e}")
    });
    assert_eq!(
        ctx.device().limits().max_storage_buffers_per_shader_stage,
        8
    );
    let build = |config: OptimizerConfig| {
        let arena = Arena::with_dtypes(&ctx, &[64], Dtype::BF16, Dtype::BF16).unwrap();
        let group = ParamGroup {
            config,
            params: arena.params(),
        };
        let precision = Precision::default()
            .with_states(Dtype::F32)
            .with_master_weights();
        Optimizer::with_precision(&ctx, vec![group], precision)
    };
    let amsgrad = AdamConfig::default().with_amsgrad(true);
    match build(amsgrad.into()) {
        Err(Error::TooManyStorageBuffers {
            needed: 9,
            limit: 8,
            ..
        }) => {}
        other => panic!(
            "expected TooManyStorageBuffers, got {:?}",
            other.map(|_| ())
        ),
    }
    let lamb = build(LambConfig::default().into());
    assert!(matches!(
        lamb,
        Err(Error::TooManyStorageBuffers { needed: 9, .. })
    ));
    let arena = Arena::new(&ctx, &[64]).unwrap();
    AdamWConfig::default().build(&ctx, &arena.params()).unwrap();
    LambConfig::default().build(&ctx, &arena.params()).unwrap();
}

/// State buffers past the device's `max_buffer_size` get a typed error, not wgpu's panic at
/// their creation: f32 states and master weights of bf16 parameters take twice the
/// parameters' bytes, and 8-bit states keep every state's codes in one buffer (AMSGrad's
/// three, a byte each, one and a half times bf16 parameters'; Adam's two fit as they do).
#[test]
fn state_buffers_past_the_largest_buffer_are_refused() {
    let limits = wgpu::Limits {
        max_buffer_size: 40 << 10,
        max_storage_buffer_binding_size: 32 << 10,
        // Adam with master weights binds 9.
        max_storage_buffers_per_shader_stage: 9,
        ..wgpu::Limits::default()
    };
    let options = ContextOptions {
        limits: Some(limits),
        ..Default::default()
    };
    let ctx = pollster::block_on(Context::request(&options)).expect("a device with these limits");
    // 16384 bf16 parameters: 32 KiB, within the limit.
    let buffer = |label| {
        ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: 32 << 10,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let (p, g) = (buffer("params"), buffer("grads"));
    let params = vec![Param::new(
        BufferRange::typed(&p, 0, 16384, Dtype::BF16),
        BufferRange::typed(&g, 0, 16384, Dtype::BF16),
    )];
    let adam = AdamConfig::default();
    let build = |config: AdamConfig, precision: Precision| {
        let groups = vec![ParamGroup {
            config: config.into(),
            params: params.clone(),
        }];
        Optimizer::with_precision(&ctx, groups, precision)
    };
    let eight_bit = Precision::default().with_8bit_states();
    for (what, config, precision) in [
        (
            "states",
            adam.clone(),
            Precision::default().with_states(Dtype::F32),
        ),
        (
            "master weights",
            adam.clone(),
            Precision::default().with_master_weights(),
        ),
        ("8-bit codes", adam.clone().with_amsgrad(true), eight_bit),
    ] {
        match build(config, precision) {
            Err(Error::StateBufferTooLarge {
                what: refused,
                bytes,
                limit,
                ..
            }) => {
                assert_eq!((refused, limit), (what, 40 << 10));
                assert!(bytes > limit, "{what}: {bytes}");
            }
            other => panic!("{what}: {:?}", other.err()),
        }
    }
    // bf16 states and Adam's two 8-bit states take no more than the parameters.
    assert!(build(adam.clone(), Precision::default().with_states(Dtype::BF16)).is_ok());
    assert!(build(adam, eight_bit).is_ok());
}
