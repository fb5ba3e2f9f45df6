//! Schedules on the device (`Optimizer::set_schedule`): every optimizer's run equals the run
//! of a host loop writing the same configuration before each step, bit for bit, with either
//! counter when steps are skipped, in populations, across setters and removal; bad schedules
//! are refused with nothing changed; with 8-bit states too (codes and scales bit for bit).

mod common;
use common::*;
use wgpu_optim::*;

/// A multiplicative warm-up, then cosine annealing, with a seasonal swing: every step moves.
fn warmup_cosine() -> LrSchedule {
    LrSchedule::Sequential {
        schedules: vec![
            LrSchedule::Linear {
                start_factor: 0.25,
                end_factor: 1.0,
                total_iters: 3,
            },
            LrSchedule::CosineAnnealing {
                t_max: 4,
                eta_min: 1e-5,
            },
        ],
        milestones: vec![3],
    }
    .with_seasonal(Seasonal {
        amplitude: 0.2,
        period: 5.0,
        phase: 0.3,
    })
}

/// Poisons tensor 0's gradient with a NaN (a step gradient processing skips).
fn poison(grads: &mut [Vec<f32>]) {
    grads[0][0] = f32::NAN;
}

/// Two runs of `config` from the same parameters and gradients: one follows `schedule` on the
/// device, the other writes `schedule.config_at(base, t)` before each step, `t` counted on the
/// host as `counter` says. Steps listed in `poisoned` get a NaN gradient (skipped, with
/// gradient processing on). Returns the two runs after `steps` steps, compared bit for bit
/// after each.
fn follow(
    config: &OptimizerConfig,
    schedule: DeviceSchedule,
    steps: u64,
    poisoned: &[u64],
) -> (Run, Run) {
    let ctx = context();
    let lens = [1, 5, 300];
    let mut device = Run::new(ctx, config, &lens, 11);
    let mut host = Run::new(ctx, config, &lens, 11);
    if !poisoned.is_empty() {
        for run in [&mut device, &mut host] {
            run.device
                .set_grad_processing(Some(GradConfig::default()))
                .unwrap();
        }
    }
    device.device.set_schedule(Some(schedule.clone())).unwrap();
    let (mut taken, mut iteration) = (0, 0);
    for step in 0..steps {
        let mut grads = device.gradients();
        let skip = poisoned.contains(&step);
        if skip {
            poison(&mut grads);
        }
        let t = match schedule.counter {
            ScheduleCounter::Steps => taken,
            ScheduleCounter::Iterations => iteration,
        };
        let scheduled = schedule
            .config_at(config, t.min(schedule.steps - 1))
            .unwrap();
        host.device.set_config(scheduled).unwrap();
        device.step_device(ctx, &grads);
        host.step_device(ctx, &grads);
        assert_eq!(
            device.snapshot(ctx),
            host.snapshot(ctx),
            "{config:?}: step {step}"
        );
        iteration += 1;
        taken += u64::from(!skip);
    }
    assert_eq!(device.device.read_step().unwrap(), taken as u32);
    (device, host)
}

/// Every optimizer in every option combination: past the horizon too (the last value holds).
#[test]
fn every_optimizer_follows_the_schedule_as_a_host_loop_would() {
    let configs = all_configs();
    assert!(configs.len() > 100);
    for config in &configs {
        let (device, _) = follow(config, DeviceSchedule::new(warmup_cosine(), 6), 8, &[]);
        // The optimizer's own configuration stays the base.
        assert_eq!(device.device.config(), config);
    }
}

/// OneCycle and CyclicLR move the momentum (or beta1) with the learning rate.
#[test]
fn cycles_move_the_momentum_too() {
    let one_cycle = LrSchedule::OneCycle(OneCycle::new(0.05, 8));
    let cyclic = LrSchedule::Cyclic(Cyclic::new(0.001, 0.05, 3));
    let sgd: OptimizerConfig = SgdConfig::default().with_momentum(0.9).into();
    let adamw: OptimizerConfig = AdamWConfig::default().with_weight_decay(0.1).into();
    for config in [&sgd, &adamw] {
        for schedule in [&one_cycle, &cyclic] {
            let schedule = DeviceSchedule::new(schedule.clone(), 8);
            // The momentum does move: the host side below would differ if the device's
            // did not.
            assert_ne!(
                schedule.config_at(config, 1).unwrap().with_lr(1.0),
                schedule.config_at(config, 4).unwrap().with_lr(1.0),
            );
            follow(config, schedule, 9, &[]);
        }
    }
}

/// A skipped step advances the iterations, not the steps taken: each counter as documented,
/// and the two runs differ.
#[test]
fn skipped_steps_follow_the_chosen_counter() {
    let config: OptimizerConfig = AdamWConfig::default().with_lr(1e-2).into();
    let schedule = DeviceSchedule::new(LrSchedule::Exponential { gamma: 0.5 }, 10);
    let poisoned = [1, 4];
    let (steps, _) = follow(&config, schedule.clone(), 8, &poisoned);
    let (iterations, _) = follow(
        &config,
        schedule.with_counter(ScheduleCounter::Iterations),
        8,
        &poisoned,
    );
    let ctx = context();
    assert_ne!(steps.snapshot(ctx), iterations.snapshot(ctx));
    let control = steps.device.read_control().unwrap();
    assert_eq!((control.step, control.skipped_steps), (6, 2));
}

/// Writes `grads` into each twin's arena and steps its optimizer.
fn step_alike(ctx: &Context, twins: [(&Arena, &Optimizer); 2], grads: &[Vec<f32>]) {
    for (arena, optimizer) in twins {
        for (i, grad) in grads.iter().enumerate() {
            arena.write_grad(i, grad).unwrap();
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }
}

/// In a population each replica follows the schedule from its own learning rate, by its own
/// counter (replica 1 skips a step alone).
#[test]
fn replicas_follow_their_own_base_and_counter() {
    let ctx = context();
    let lens = [3, 64];
    let replicas = 3;
    let schedule = DeviceSchedule::new(warmup_cosine(), 7);
    let base = |r: usize| -> OptimizerConfig {
        AdamWConfig::default()
            .with_lr(1e-3 * (r + 1) as f64)
            .with_weight_decay(0.05)
            .into()
    };
    let build = || {
        let arena = Arena::new(ctx, &lens.repeat(replicas)).unwrap();
        for i in 0..arena.len() {
            let values: Vec<f32> = (0..lens[i % 2]).map(|k| 0.1 * k as f32 - 0.5).collect();
            arena.write_param(i, &values).unwrap();
        }
        let groups = arena
            .params()
            .chunks(lens.len())
            .enumerate()
            .map(|(r, params)| ParamGroup {
                config: base(r),
                params: params.to_vec(),
            })
            .collect();
        let mut population = Optimizer::population(ctx, groups, Precision::default()).unwrap();
        population
            .set_grad_processing(Some(GradConfig::default()))
            .unwrap();
        (arena, population)
    };
    let (device_arena, mut device) = build();
    let (host_arena, mut host) = build();
    device.set_schedule(Some(schedule.clone())).unwrap();
    let mut taken = [0_u64; 3];
    let mut rng = Rng::new(5);
    for step in 0..9 {
        for (r, taken) in taken.iter().enumerate() {
            let t = (*taken).min(schedule.steps - 1);
            host.set_group_config(r, schedule.config_at(&base(r), t).unwrap())
                .unwrap();
        }
        let mut grads: Vec<Vec<f32>> = (0..device_arena.len())
            .map(|i| rng.gradient(lens[i % 2]))
            .collect();
        if step == 2 {
            grads[lens.len()][0] = f32::INFINITY;
        }
        step_alike(
            ctx,
            [(&device_arena, &device), (&host_arena, &host)],
            &grads,
        );
        for i in 0..device_arena.len() {
            assert_eq!(
                bits(&device_arena.read_param(i).unwrap()),
                bits(&host_arena.read_param(i).unwrap()),
                "step {step}, tensor {i}"
            );
        }
        for (r, taken) in taken.iter_mut().enumerate() {
            *taken += u64::from(!(step == 2 && r == 1));
        }
    }
    let steps: Vec<u32> = device
        .read_controls()
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [9, 8, 9]);
}

/// With a schedule in force, `set_lr` sets the base it scales; `set_schedule(None)` returns
/// every group to its own configuration.
#[test]
fn setters_change_the_base_and_removal_restores_it() {
    let ctx = context();
    let config: OptimizerConfig = AdamWConfig::default().with_weight_decay(0.1).into();
    let schedule = DeviceSchedule::new(warmup_cosine(), 8);
    let mut device = Run::new(ctx, &config, &[7, 40], 3);
    let mut host = Run::new(ctx, &config, &[7, 40], 3);
    device.device.set_schedule(Some(schedule.clone())).unwrap();
    let mut base = config.clone();
    for step in 0..9_u64 {
        if step == 3 {
            device.device.set_lr(5e-3).unwrap();
            base = base.with_lr(5e-3);
        }
        if step == 6 {
            device.device.set_schedule(None).unwrap();
            assert!(device.device.schedule().is_none());
        }
        let scheduled = if step < 6 {
            schedule.config_at(&base, step).unwrap()
        } else {
            base.clone()
        };
        host.device.set_config(scheduled).unwrap();
        let grads = device.gradients();
        device.step_device(ctx, &grads);
        host.step_device(ctx, &grads);
        assert_eq!(device.snapshot(ctx), host.snapshot(ctx), "step {step}");
    }
    assert_eq!(device.device.config(), &base);
}

/// Refused with a typed error and nothing changed: an invalid schedule, 0 steps, a table too
/// large to bind, a step whose configuration is invalid, and a setter whose new base makes
/// one invalid.
#[test]
fn bad_schedules_are_refused_and_change_nothing() {
    let ctx = context();
    let config: OptimizerConfig = AdamWConfig::default().into();
    let mut run = Run::new(ctx, &config, &[9], 4);
    let plain = Run::new(ctx, &config, &[9], 4);
    let cases = [
        (
            DeviceSchedule::new(
                LrSchedule::Step {
                    step_size: 0,
                    gamma: 0.5,
                },
                4,
            ),
            "an invalid schedule",
        ),
        (DeviceSchedule::new(LrSchedule::Constant, 0), "no step"),
        (
            DeviceSchedule::new(LrSchedule::Constant, 1 << 40),
            "too long",
        ),
        (
            DeviceSchedule::new(
                LrSchedule::custom(|base, step| if step == 3 { -base } else { base }),
                5,
            ),
            "a negative learning rate at step 3",
        ),
    ];
    for (schedule, what) in cases {
        let error = run.device.set_schedule(Some(schedule)).unwrap_err();
        match what {
            "an invalid schedule" => {
                assert!(
                    matches!(error, Error::InvalidHyperparameter { .. }),
                    "{error}"
                )
            }
            "no step" | "too long" => {
                assert!(matches!(error, Error::InvalidOptions(_)), "{what}: {error}")
            }
            _ => assert!(
                matches!(
                    error,
                    Error::InvalidScheduleStep {
                        group: 0,
                        step: 3,
                        ..
                    }
                ),
                "{error}"
            ),
        }
        assert!(run.device.schedule().is_none(), "{what}");
    }
    // 1e37 times the base overflows f32 once the base exceeds 34: refused at set_lr.
    let overflow = LrSchedule::custom(|base, step| if step == 2 { base * 1e37 } else { base });
    run.device
        .set_schedule(Some(DeviceSchedule::new(overflow, 4)))
        .unwrap();
    let error = run.device.set_lr(100.0).unwrap_err();
    assert!(
        matches!(error, Error::InvalidScheduleStep { step: 2, .. }),
        "{error}"
    );
    assert_eq!(run.device.config(), &config);
    run.device.set_schedule(None).unwrap();
    // Nothing changed: the steps equal an optimizer's that never saw a schedule.
    for _ in 0..3 {
        let grads = run.gradients();
        run.step_device(ctx, &grads);
        plain.step_device(ctx, &grads);
    }
    assert_eq!(run.snapshot(ctx), plain.snapshot(ctx));
}

/// Issue 25: chains with a cosine follow on the device as a host loop calling `config_at`
/// would, past T_max too, where the recursive cosine climbs back from its zero (eta_min 0 and
/// not): the table takes the chain's rates in order (`LrSchedule::rates`), the loop each step
/// afresh.
#[test]
fn chains_with_a_cosine_follow_on_the_device() {
    let chains = [
        LrSchedule::Chained(vec![
            LrSchedule::Linear {
                start_factor: 0.25,
                end_factor: 1.0,
                total_iters: 2,
            },
            LrSchedule::CosineAnnealing {
                t_max: 3,
                eta_min: 0.0,
            },
        ]),
        LrSchedule::Chained(vec![
            LrSchedule::Exponential { gamma: 0.9 },
            LrSchedule::CosineAnnealing {
                t_max: 2,
                eta_min: 1e-4,
            },
        ]),
    ];
    let sgd: OptimizerConfig = SgdConfig::default().with_momentum(0.9).into();
    let adamw: OptimizerConfig = AdamWConfig::default().with_weight_decay(0.1).into();
    for config in [&sgd, &adamw] {
        for chain in &chains {
            let schedule = DeviceSchedule::new(chain.clone(), 9);
            let lr = |step| schedule.config_at(config, step).unwrap().lr();
            assert!(lr(4) > lr(3), "{chain:?}: {} then {}", lr(3), lr(4));
            follow(config, schedule, 10, &[]);
        }
    }
}

/// Issue 25, cause 18: a schedule whose table could not be stored even at its least, the
/// words a change of the learning rate moves (AdamW's lr and 1 − lr · weight_decay: 8 bytes a
/// step), is refused before any step is evaluated; a 30M-step schedule spent seconds
/// tabulating before its refusal. The steps here fit one word a step but not two, so the old
/// check let them through; the schedule counts its evaluations, and gives NaN if evaluated,
/// which the first step's configuration refuses at once.
#[test]
fn a_table_too_long_is_refused_before_the_schedule_is_evaluated() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let ctx = context();
    let limits = ctx.device().limits();
    let max_bytes = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let steps = max_bytes / 8 + 1;
    assert!(4 * steps <= max_bytes);
    let config: OptimizerConfig = AdamWConfig::default().with_weight_decay(0.1).into();
    let mut run = Run::new(ctx, &config, &[9], 4);
    // The 30M steps too, where they do not fit two words (lavapipe's 128 MiB).
    for steps in [steps, 30_000_000]
        .into_iter()
        .filter(|&s| 8 * s > max_bytes)
    {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        let schedule = LrSchedule::custom(move |_, _| {
            counted.fetch_add(1, Ordering::Relaxed);
            f64::NAN
        });
        let error = (run.device)
            .set_schedule(Some(DeviceSchedule::new(schedule, steps)))
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidOptions(_)),
            "{steps}: {error}"
        );
        assert_eq!(calls.load(Ordering::Relaxed), 0, "{steps}");
        assert!(run.device.schedule().is_none());
    }
}

/// 8-bit states (issue 29) under a device schedule, two parameter groups of their own learning
/// rates (a tensor of 17 blocks and one of 16, each beside a small one of f32 states), a step
/// skipped: the same parameters, states, codes and scales as a host loop writing each group's
/// scheduled configuration, for each kernel that offers 8-bit states.
#[test]
fn eight_bit_states_follow_the_schedule_as_a_host_loop_would() {
    let ctx = context();
    let lens = [17 * 256, 37, 4096, 3];
    let schedule = DeviceSchedule::new(warmup_cosine(), 6);
    let precision = Precision::default().with_8bit_states();
    let families: [OptimizerConfig; 3] = [
        AdamWConfig::default().with_weight_decay(0.1).into(),
        SgdConfig::default().with_momentum(0.9).into(),
        LionConfig::default().with_weight_decay(0.1).into(),
    ];
    for family in families {
        let base = |g: usize| family.clone().with_lr(1e-3 * (g + 1) as f64);
        let build = || {
            let arena = Arena::new(ctx, &lens).unwrap();
            let mut rng = Rng::new(21);
            for (i, &len) in lens.iter().enumerate() {
                arena.write_param(i, &rng.vector(len)).unwrap();
            }
            let groups = (arena.params().chunks(2).enumerate())
                .map(|(g, params)| ParamGroup {
                    config: base(g),
                    params: params.to_vec(),
                })
                .collect();
            let mut optimizer = Optimizer::with_precision(ctx, groups, precision).unwrap();
            optimizer
                .set_grad_processing(Some(GradConfig::default()))
                .unwrap();
            (arena, optimizer)
        };
        let (device_arena, mut device) = build();
        let (host_arena, mut host) = build();
        device.set_schedule(Some(schedule.clone())).unwrap();
        let mut rng = Rng::new(22);
        let mut taken = 0;
        for step in 0..8 {
            for g in 0..2 {
                let t = (taken as u64).min(schedule.steps - 1);
                host.set_group_config(g, schedule.config_at(&base(g), t).unwrap())
                    .unwrap();
            }
            let mut grads: Vec<Vec<f32>> = lens.iter().map(|&len| rng.gradient(len)).collect();
            if step == 3 {
                grads[1][0] = f32::NAN;
            }
            step_alike(
                ctx,
                [(&device_arena, &device), (&host_arena, &host)],
                &grads,
            );
            taken += u32::from(step != 3);
            let what = format!("{}: step {step}", family.name());
            for (i, &len) in lens.iter().enumerate() {
                assert_eq!(
                    bits(&device_arena.read_param(i).unwrap()),
                    bits(&host_arena.read_param(i).unwrap()),
                    "{what}, tensor {i}"
                );
                for name in device.state_names() {
                    let quantized = device.read_quantized_state(i, name);
                    assert_eq!(
                        quantized.is_ok(),
                        quant::quantizes(len as u64),
                        "{what}, {i}"
                    );
                    match quantized {
                        Ok(q) => {
                            let expected = host.read_quantized_state(i, name).unwrap();
                            assert_eq!(q, expected, "{what}, tensor {i} {name}");
                        }
                        Err(_) => assert_eq!(
                            bits(&device.read_state(i, name).unwrap()),
                            bits(&host.read_state(i, name).unwrap()),
                            "{what}, tensor {i} {name}"
                        ),
                    }
                }
            }
        }
        assert_eq!(device.read_step().unwrap(), taken, "{}", family.name());
    }
}
