//! Populations (`Optimizer::population`): K replicas, each a parameter group with its own
//! hyperparameters, control block, gradient norm, clip and skip, stepped in one dispatch per
//! binding chunk, with any storage (16-bit, stochastic rounding, master weights, 8-bit
//! states). The oracle is each replica run alone: an optimizer over the same tensors,
//! gradients and configuration must produce the same bits, step after step.

mod common;
use common::*;
use wgpu_optim::*;

/// One replica's model: tensors of these lengths (two end inside a vec4, one spans several
/// update tiles, one is shorter than a vec4).
const LENS: [usize; 4] = [1000, 37, 5 * 1024 + 5, 3];

/// Everything that differs between two runs of one experiment: the optimizer of each replica
/// and its gradient processing.
struct Experiment {
    lens: &'static [usize],
    configs: Vec<OptimizerConfig>,
    grad: Option<Vec<GradConfig>>,
    dtypes: (Dtype, Dtype),
    precision: Precision,
    steps: usize,
    // (replica, step): that replica's gradients hold a NaN at that step.
    poison: Option<(usize, usize)>,
}

impl Experiment {
    /// Eight replicas of `family` over LENS in f32, each with its own gradient processing
    /// (`eight_grad_configs`), `steps` steps, `poison` as the field says.
    fn eight(family: &str, steps: usize, poison: Option<(usize, usize)>) -> Self {
        Experiment {
            lens: &LENS,
            configs: eight(family),
            grad: Some(eight_grad_configs()),
            dtypes: (Dtype::F32, Dtype::F32),
            precision: Precision::default(),
            steps,
            poison,
        }
    }

    fn replicas(&self) -> usize {
        self.configs.len()
    }

    /// Replica `r`'s initial parameters.
    fn initial(&self, r: usize) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(1000 + r as u64);
        self.lens.iter().map(|&len| rng.vector(len)).collect()
    }

    /// Replica `r`'s gradients at `step`, large enough that norms of 0.5 to 4 clip.
    fn gradients(&self, r: usize, step: usize) -> Vec<Vec<f32>> {
        let mut rng = Rng::new((r as u64) << 32 | step as u64);
        let mut grads: Vec<Vec<f32>> = self.lens.iter().map(|&len| rng.gradient(len)).collect();
        if self.poison == Some((r, step)) {
            grads[2][17] = f32::NAN;
        }
        grads
    }
}

/// What a replica is after a run, as bits: every parameter and state, then its control block.
#[derive(Debug)]
struct Outcome {
    tensors: Vec<Vec<u32>>,
    control: Control,
}

/// Control blocks as bits (a skipped step leaves a NaN norm).
fn control_bits(controls: &[Control]) -> Vec<u32> {
    bytemuck::cast_slice(controls).to_vec()
}

fn outcome(
    ctx: &Context,
    optimizer: &Optimizer,
    params: &[Param],
    first: usize,
    control: Control,
) -> Outcome {
    let mut tensors = Vec::new();
    for (i, param) in params.iter().enumerate() {
        tensors.push(bits(&ctx.read_f32(&param.param).unwrap()));
        for name in optimizer.state_names() {
            tensors.push(bits(&optimizer.read_state(first + i, name).unwrap()));
            // 8-bit states as stored: codes, then block scales.
            if let Ok(q) = optimizer.read_quantized_state(first + i, name) {
                tensors.push(q.codes.iter().map(|&c| u32::from(c)).collect());
                tensors.push(bits(&q.scales));
            }
        }
    }
    Outcome { tensors, control }
}

fn step(ctx: &Context, optimizer: &Optimizer) {
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    optimizer.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
}

/// The experiment as one population over one arena of every replica's tensors.
fn population(ctx: &Context, e: &Experiment) -> (Optimizer, Vec<Outcome>) {
    let lens = e.lens.repeat(e.replicas());
    let arena = Arena::with_dtypes(ctx, &lens, e.dtypes.0, e.dtypes.1).unwrap();
    let params = arena.params();
    let groups = params
        .chunks(e.lens.len())
        .zip(&e.configs)
        .map(|(params, config)| ParamGroup {
            config: config.clone(),
            params: params.to_vec(),
        })
        .collect();
    let mut optimizer = Optimizer::population(ctx, groups, e.precision).unwrap();
    optimizer
        .set_grad_processing_per_group(e.grad.clone())
        .unwrap();
    for r in 0..e.replicas() {
        for (t, values) in e.initial(r).iter().enumerate() {
            arena.write_param(r * e.lens.len() + t, values).unwrap();
        }
    }
    for s in 0..e.steps {
        for r in 0..e.replicas() {
            for (t, grad) in e.gradients(r, s).iter().enumerate() {
                arena.write_grad(r * e.lens.len() + t, grad).unwrap();
            }
        }
        step(ctx, &optimizer);
    }
    let controls = optimizer.read_controls().unwrap();
    assert_eq!(controls.len(), e.replicas(), "a control block per replica");
    let outcomes = (0..e.replicas())
        .map(|r| {
            let first = r * e.lens.len();
            let params = &params[first..first + e.lens.len()];
            outcome(ctx, &optimizer, params, first, controls[r])
        })
        .collect();
    (optimizer, outcomes)
}

/// Replica `r` of the experiment alone: an optimizer over an arena of its own tensors.
fn alone(ctx: &Context, e: &Experiment, r: usize) -> Outcome {
    let arena = Arena::with_dtypes(ctx, e.lens, e.dtypes.0, e.dtypes.1).unwrap();
    let params = arena.params();
    let group = ParamGroup {
        config: e.configs[r].clone(),
        params: params.clone(),
    };
    let mut optimizer = Optimizer::with_precision(ctx, vec![group], e.precision).unwrap();
    optimizer
        .set_grad_processing(e.grad.as_ref().map(|g| g[r].clone()))
        .unwrap();
    for (t, values) in e.initial(r).iter().enumerate() {
        arena.write_param(t, values).unwrap();
    }
    for s in 0..e.steps {
        for (t, grad) in e.gradients(r, s).iter().enumerate() {
            arena.write_grad(t, grad).unwrap();
        }
        step(ctx, &optimizer);
    }
    let control = optimizer.read_control_unchecked().unwrap();
    outcome(ctx, &optimizer, &params, 0, control)
}

/// Eight configurations of one optimizer family, differing in every hyperparameter it has.
fn eight(family: &str) -> Vec<OptimizerConfig> {
    (0..8)
        .map(|r| {
            let x = r as f64;
            match family {
                "adamw" => AdamWConfig::default()
                    .with_lr(1e-3 * (1.0 + x))
                    .with_betas(0.8 + 0.02 * x, 0.99 + 0.001 * x)
                    .with_eps(1e-8 * (1.0 + x))
                    .with_weight_decay(0.01 * x)
                    .into(),
                "sgd" => SgdConfig::default()
                    .with_lr(0.01 * (1.0 + x))
                    .with_momentum(0.1 + 0.1 * x)
                    .with_dampening(0.05 * x)
                    .with_weight_decay(1e-3 * x)
                    .into(),
                "adagrad" => AdagradConfig::default()
                    .with_lr(0.01 * (1.0 + x))
                    .with_lr_decay(1e-3 * (1.0 + x))
                    // The states' initial value is structure: one per population.
                    .with_initial_accumulator_value(0.1)
                    .into(),
                "rmsprop" => RmsPropConfig::default()
                    .with_centered(true)
                    .with_momentum(0.5)
                    .with_lr(1e-3 * (1.0 + x))
                    .with_alpha(0.9 + 0.01 * x)
                    .into(),
                "lion" => LionConfig::default()
                    .with_lr(1e-4 * (1.0 + x))
                    .with_betas(0.9 - 0.01 * x, 0.99)
                    .with_weight_decay(0.1 * x)
                    .into(),
                "adam_amsgrad" => AdamConfig::default()
                    .with_amsgrad(true)
                    .with_lr(1e-3 * (1.0 + x))
                    .with_weight_decay(1e-3 * x)
                    .into(),
                other => panic!("no family {other}"),
            }
        })
        .collect()
}

/// Each replica's gradient processing: no clip, clips by norm from 0.5 to 4 in PyTorch's and
/// Optax's forms and the inf-norm, a clip by value, and a loss scaler.
fn eight_grad_configs() -> Vec<GradConfig> {
    let base = GradConfig::default();
    vec![
        base.clone(),
        base.clone().with_max_norm(0.5),
        base.clone().with_max_norm(1.0),
        base.clone()
            .with_max_norm(2.0)
            .with_clip_mode(ClipMode::Optax),
        base.clone().with_max_norm(4.0),
        base.clone()
            .with_max_norm(0.05)
            .with_norm_type(f64::INFINITY),
        base.clone().with_clip_value(0.25).with_max_norm(3.0),
        base.with_grad_scaler(GradScalerConfig::default().with_init_scale(8.0)),
    ]
}

/// Runs the experiment as a population and each replica alone, asserts they end equal, and
/// returns the population and its outcomes.
fn assert_population_equals_alone(
    ctx: &Context,
    what: &str,
    e: &Experiment,
) -> (Optimizer, Vec<Outcome>) {
    let (optimizer, outcomes) = population(ctx, e);
    for (r, outcome) in outcomes.iter().enumerate() {
        let alone = alone(ctx, e, r);
        assert_eq!(
            control_bits(&[outcome.control]),
            control_bits(&[alone.control]),
            "{what}: replica {r}'s control block"
        );
        for (t, (a, b)) in outcome.tensors.iter().zip(&alone.tensors).enumerate() {
            assert!(
                a == b,
                "{what}: replica {r}, buffer {t} differs from its run alone"
            );
        }
    }
    (optimizer, outcomes)
}

#[test]
fn eight_replicas_equal_eight_optimizers_alone_bit_for_bit() {
    let ctx = context();
    for family in ["adamw", "sgd", "adagrad", "rmsprop", "lion", "adam_amsgrad"] {
        let e = Experiment::eight(family, 20, None);
        let (_, outcomes) = assert_population_equals_alone(ctx, family, &e);
        for (r, outcome) in outcomes.iter().enumerate() {
            assert_eq!(outcome.control.step, 20, "{family}: replica {r} stepped");
        }
        // The clips differ, so the replicas' coefficients do: each used its own norm.
        let coefs: Vec<u32> = outcomes
            .iter()
            .map(|o| o.control.clip_coef.to_bits())
            .collect();
        assert!(
            coefs[0] == 1.0f32.to_bits() && coefs[1] != coefs[2],
            "{family}: {coefs:?}"
        );
    }
}

#[test]
fn a_nan_in_one_replica_skips_only_that_replica() {
    let ctx = context();
    let e = Experiment::eight("adamw", 20, Some((3, 7)));
    let (_, outcomes) = assert_population_equals_alone(ctx, "poisoned", &e);
    for (r, outcome) in outcomes.iter().enumerate() {
        let skipped = u32::from(r == 3);
        assert_eq!(outcome.control.skipped_steps, skipped, "replica {r}");
        assert_eq!(
            outcome.control.step,
            20 - skipped,
            "replica {r}'s step counter"
        );
    }
    // Replica 7 has a scaler: only a skip would have backed its scale off.
    assert_eq!(outcomes[7].control.grad_scale, 8.0);
}

#[test]
fn sixteen_bit_replicas_with_stochastic_rounding_equal_their_runs_alone() {
    let ctx = context();
    for (dtypes, precision) in [
        (
            (Dtype::BF16, Dtype::BF16),
            Precision::default().with_stochastic_rounding(7),
        ),
        (
            (Dtype::BF16, Dtype::F32),
            Precision::default()
                .with_master_weights()
                .with_states(Dtype::F32),
        ),
        (
            (Dtype::F32, Dtype::F32),
            Precision::default().with_states(Dtype::BF16),
        ),
    ] {
        let e = Experiment {
            dtypes,
            precision,
            ..Experiment::eight("adamw", 8, Some((5, 2)))
        };
        assert_population_equals_alone(ctx, &format!("{dtypes:?} {precision:?}"), &e);
    }
}

/// 8-bit states (issue 29) in a population: each replica's tensor of 17 blocks keeps codes and
/// scales of its own, its smaller tensors f32 states, and its own skip (replica 5's NaN at
/// step 2 leaves its codes and scales as they were) and clip.
#[test]
fn eight_bit_replicas_equal_their_runs_alone() {
    let ctx = context();
    for family in ["adamw", "adam_amsgrad", "sgd", "lion"] {
        let e = Experiment {
            lens: &[17 * 256, 1000, 37],
            precision: Precision::default().with_8bit_states(),
            ..Experiment::eight(family, 6, Some((5, 2)))
        };
        let (optimizer, outcomes) = assert_population_equals_alone(ctx, family, &e);
        let quantized =
            optimizer.read_quantized_state(3 * e.lens.len(), optimizer.state_names()[0]);
        assert!(quantized.is_ok_and(|q| q.scales.len() == 17), "{family}");
        for (r, outcome) in outcomes.iter().enumerate() {
            assert_eq!(outcome.control.step, 6 - u32::from(r == 5), "{family}: {r}");
        }
    }
}

/// A population's checkpoint with 8-bit states: every replica's codes and scales (torchao's
/// names, per tensor) and control block come back in a fresh population of the same shape.
#[test]
fn an_eight_bit_population_checkpoint_restores_every_replica() {
    let ctx = context();
    let mut e = Experiment {
        lens: &[17 * 256, 1000, 37],
        precision: Precision::default().with_8bit_states(),
        ..Experiment::eight("adamw", 4, Some((5, 2)))
    };
    let (saved, _) = population(ctx, &e);
    let checkpoint = saved.checkpoint().unwrap();
    let file = safetensors::SafeTensors::deserialize(&checkpoint).unwrap();
    assert_eq!(file.tensor("state.15.exp_avg.scale").unwrap().shape(), [17]);
    e.steps = 0;
    let (mut loaded, _) = population(ctx, &e);
    loaded.load_checkpoint(&checkpoint).unwrap();
    let steps: Vec<u32> = (loaded.read_controls().unwrap().iter())
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [4, 4, 4, 4, 4, 3, 4, 4]);
    let mut quantized = 0;
    for i in 0..saved.params().count() {
        for name in saved.state_names() {
            let what = format!("tensor {i} {name}");
            match saved.read_quantized_state(i, name) {
                Ok(q) => {
                    assert!(q.scales.iter().any(|&s| s > 0.0), "{what} stepped");
                    assert_eq!(loaded.read_quantized_state(i, name).unwrap(), q, "{what}");
                    quantized += 1;
                }
                Err(_) => assert_eq!(
                    bits(&loaded.read_state(i, name).unwrap()),
                    bits(&saved.read_state(i, name).unwrap()),
                    "{what}"
                ),
            }
        }
    }
    assert_eq!(
        quantized, 16,
        "two 8-bit states of each replica's first tensor"
    );
}

#[test]
fn chunks_are_cut_between_replicas_so_each_reduces_as_alone() {
    // A binding of 64 KiB holds 16384 f32: about two replicas of 6,373 elements (with the
    // arena's alignment), so the population's eight replicas span several chunks.
    let ctx = context_with_binding_limit(64 << 10);
    let e = Experiment::eight("sgd", 6, Some((6, 1)));
    let (optimizer, _) = population(&ctx, &e);
    assert!(
        optimizer.update_dispatches() >= 4,
        "chunked: {} dispatches",
        optimizer.update_dispatches()
    );
    assert_population_equals_alone(&ctx, "chunked", &e);
    // With 8-bit states a replica's tensors lie in two spans (its tensor of 17 blocks with the
    // other replicas' 8-bit tensors, its small ones with theirs), each cut between replicas.
    // (The span of small tensors was once cut at the binding's end, inside a replica, whose
    // norm then reduced in another order than alone.)
    let e = Experiment {
        lens: &[17 * 256, 1000, 37],
        precision: Precision::default().with_8bit_states(),
        ..Experiment::eight("adamw", 6, Some((6, 1)))
    };
    let (optimizer, _) = assert_population_equals_alone(&ctx, "chunked, 8-bit states", &e);
    // Three chunks of each span (the 8-bit tensors' span, about 35,000 elements; the small
    // tensors' span, from the first replica's small tensors to the last's, about 39,000).
    assert_eq!(optimizer.update_dispatches(), 6, "chunked, 8-bit states");
}

#[test]
fn one_population_steps_in_one_update_dispatch() {
    let ctx = context();
    let lens = [1 << 16, 256, 1 << 12].repeat(64);
    let arena = Arena::new(ctx, &lens).unwrap();
    let groups = arena
        .params()
        .chunks(3)
        .enumerate()
        .map(|(r, params)| ParamGroup {
            config: AdamWConfig::default().with_lr(1e-4 * (r + 1) as f64).into(),
            params: params.to_vec(),
        })
        .collect();
    let population = Optimizer::population(ctx, groups, Precision::default()).unwrap();
    assert_eq!(population.update_dispatches(), 1);
    assert_eq!(population.tail_dispatches(), 0);
    assert_eq!(population.control_blocks(), 64);
    assert!(population.is_population());
}

#[test]
fn a_population_checkpoint_restores_every_replica() {
    let ctx = context();
    let mut e = Experiment::eight("adamw", 5, Some((2, 3)));
    let (saved, _) = population(ctx, &e);
    let checkpoint = saved.checkpoint().unwrap();
    // A fresh population of the same shape, before any step, takes the checkpoint.
    e.steps = 0;
    let (mut loaded, _) = population(ctx, &e);
    loaded.load_checkpoint(&checkpoint).unwrap();
    // Everything but what each step recomputes before use (src/optimizer/checkpoint.rs: clip_coef,
    // found_inf and inv_grad_scale start fresh).
    let kept = |c: Control| Control {
        clip_coef: 1.0,
        found_inf: 0,
        inv_grad_scale: 1.0 / c.grad_scale,
        ..c
    };
    let saved_controls: Vec<Control> = saved
        .read_controls()
        .unwrap()
        .into_iter()
        .map(kept)
        .collect();
    assert_eq!(
        control_bits(&loaded.read_controls().unwrap()),
        control_bits(&saved_controls),
        "every replica's control block"
    );
    for i in 0..saved.params().count() {
        for name in saved.state_names() {
            assert_eq!(
                bits(&loaded.read_state(i, name).unwrap()),
                bits(&saved.read_state(i, name).unwrap()),
                "tensor {i} {name}"
            );
        }
    }
    // The skipped replica's tensors record its own step count.
    let steps: Vec<u32> = loaded
        .read_controls()
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [5, 5, 4, 5, 5, 5, 5, 5]);
    // A checkpoint of one optimizer (one control block) is another shape.
    let (single, _) = {
        let arena = Arena::new(ctx, &LENS.repeat(8)).unwrap();
        let config: OptimizerConfig = AdamWConfig::default().into();
        let groups = arena
            .params()
            .chunks(LENS.len())
            .map(|p| ParamGroup {
                config: config.clone(),
                params: p.to_vec(),
            })
            .collect();
        (Optimizer::with_groups(ctx, groups).unwrap(), arena)
    };
    let other = single.checkpoint().unwrap();
    assert!(matches!(
        loaded.load_checkpoint(&other),
        Err(Error::CheckpointMismatch(_))
    ));
}

#[test]
fn a_reader_returns_every_replica_without_blocking() {
    let ctx = context();
    let e = Experiment::eight("sgd", 3, Some((4, 2)));
    let (optimizer, _) = population(ctx, &e);
    let mut reader = ControlReader::for_optimizer(&optimizer, 2);
    let mut single = ControlReader::new(ctx, 1);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    assert!(matches!(
        single.record(&mut encoder, &optimizer),
        Err(Error::WrongLength { .. })
    ));
    assert!(reader.record(&mut encoder, &optimizer).unwrap());
    ctx.queue().submit([encoder.finish()]);
    let mut arrived = Vec::new();
    while arrived.is_empty() {
        arrived = reader.try_read_blocks().unwrap();
    }
    assert_eq!(arrived.len(), 1);
    assert_eq!(
        control_bits(&arrived[0]),
        control_bits(&optimizer.read_controls().unwrap())
    );
    assert_eq!(arrived[0][4].skipped_steps, 1);
    // One monitor per replica: a monitor refuses a reader of several blocks.
    let mut monitor = GradNormMonitor::new(MonitorConfig::default()).unwrap();
    assert!(matches!(
        monitor.poll(&mut reader),
        Err(Error::InvalidOptions(_))
    ));
    let events: Vec<NormEvent> = arrived[0].iter().flat_map(monitor_of_one).collect();
    assert_eq!(events.len(), 1, "only replica 4 skipped: {events:?}");
    assert!(matches!(events[0], NormEvent::NonFinite { skipped: 1, .. }));
}

/// The events of a fresh monitor's first reading.
fn monitor_of_one(control: &Control) -> Vec<NormEvent> {
    let mut monitor = GradNormMonitor::new(MonitorConfig::default()).unwrap();
    monitor.observe(control)
}

#[test]
fn bad_population_input_gets_typed_errors() {
    let ctx = context();
    let arena = Arena::new(ctx, &LENS.repeat(2)).unwrap();
    let params = arena.params();
    let group = |config: OptimizerConfig, r: usize| ParamGroup {
        config,
        params: params[r * LENS.len()..(r + 1) * LENS.len()].to_vec(),
    };
    // Replicas of two algorithms are two populations.
    let mixed = vec![
        group(AdamWConfig::default().into(), 0),
        group(SgdConfig::default().into(), 1),
    ];
    assert!(matches!(
        Optimizer::population(ctx, mixed, Precision::default()),
        Err(Error::StructuralChange(_))
    ));
    assert!(matches!(
        Optimizer::population(ctx, Vec::new(), Precision::default()),
        Err(Error::InvalidOptions(_))
    ));
    let replicas = vec![
        group(AdamWConfig::default().into(), 0),
        group(AdamWConfig::default().with_lr(0.1).into(), 1),
    ];
    let mut population =
        Optimizer::population(ctx, replicas.clone(), Precision::default()).unwrap();
    // One gradient configuration per replica.
    assert!(matches!(
        population.set_grad_processing_per_group(Some(vec![GradConfig::default()])),
        Err(Error::WrongLength {
            expected: 2,
            actual: 1,
            ..
        })
    ));
    let invalid = vec![
        GradConfig::default(),
        GradConfig::default().with_max_norm(-1.0),
    ];
    assert!(matches!(
        population.set_grad_processing_per_group(Some(invalid)),
        Err(Error::InvalidHyperparameter { .. })
    ));
    assert!(
        population.grad_processing().is_none(),
        "nothing half-applied"
    );
    // The norm stats of a population: two f32 per replica.
    let stats = BufferRange::whole(&ctx.upload_f32("stats", &[0.0; 2]));
    assert!(matches!(
        population.set_norm_stats_buffer(stats),
        Err(Error::WrongLength { expected: 4, .. })
    ));
    let stats = BufferRange::whole(&ctx.upload_f32("stats", &[0.0; 4]));
    population.set_norm_stats_buffer(stats).unwrap();
    // Per-group gradient processing belongs to populations.
    let mut groups = Optimizer::with_groups(ctx, replicas).unwrap();
    assert!(matches!(
        groups.set_grad_processing_per_group(None),
        Err(Error::InvalidOptions(_))
    ));
    assert_eq!(groups.control_blocks(), 1);
}

/// A replica stride (6,184 f32 elements) that is a multiple of the parameters' alignment but
/// not of bf16 states': a chunk cut at such a replica's start would bind the states at a
/// misaligned offset. The plan cuts there only where every role can start, elsewhere at the
/// binding limit; the replicas that then straddle a chunk are reduced in another order than
/// alone, so they agree with their runs alone to rounding, not bit for bit.
#[test]
fn cuts_keep_sixteen_bit_state_bindings_aligned() {
    const ODD: [usize; 4] = [1000, 37, 5 * 1024 + 5, 11];
    let ctx = context_with_binding_limit(40 << 10);
    let e = Experiment {
        lens: &ODD,
        precision: Precision::default().with_states(Dtype::BF16),
        ..Experiment::eight("adamw", 4, None)
    };
    let (optimizer, outcomes) = population(&ctx, &e);
    assert!(optimizer.update_dispatches() >= 4);
    for (r, outcome) in outcomes.iter().enumerate() {
        let alone = alone(&ctx, &e, r);
        assert_eq!(outcome.control.step, alone.control.step, "replica {r}");
        for (t, (a, b)) in outcome.tensors.iter().zip(&alone.tensors).enumerate() {
            for (&a, &b) in a.iter().zip(b) {
                let (a, b) = (f32::from_bits(a), f32::from_bits(b));
                let close = (a - b).abs() <= 1e-6 + 1e-4 * b.abs();
                assert!(close, "replica {r}, buffer {t}: {a} against {b} alone");
            }
        }
    }
}

/// A replica halted by `error_if_nonfinite` shows in its own block; the others' blocks still
/// arrive (the flattened `try_read` of a single optimizer's reader reports the halt).
#[test]
fn a_halted_replica_does_not_hide_the_others() {
    let ctx = context();
    let e = Experiment {
        configs: eight("sgd")[..2].to_vec(),
        grad: Some(vec![
            GradConfig::default(),
            GradConfig::default().with_error_if_nonfinite(true),
        ]),
        ..Experiment::eight("sgd", 2, Some((1, 0)))
    };
    let (optimizer, _) = population(ctx, &e);
    let mut reader = ControlReader::for_optimizer(&optimizer, 1);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    assert!(reader.record(&mut encoder, &optimizer).unwrap());
    ctx.queue().submit([encoder.finish()]);
    let mut arrived = Vec::new();
    while arrived.is_empty() {
        arrived = reader.try_read_blocks().unwrap();
    }
    let blocks = &arrived[0];
    assert_eq!(blocks[0].checked().unwrap().step, 2);
    assert!(matches!(
        blocks[1].checked(),
        Err(Error::NonFiniteGradients { step: 1, .. })
    ));
    assert!(optimizer.read_control().is_ok(), "replica 0 is not halted");
}
