//! LAMB and LARS: per-tensor trust ratios in a many-tensor dispatch.

mod common;
use common::*;
use wgpu_optim::*;

fn trust_configs() -> Vec<OptimizerConfig> {
    all_configs()
        .into_iter()
        .filter(|c| matches!(c, OptimizerConfig::Lamb(_) | OptimizerConfig::Lars(_)))
        .collect()
}

/// Every LAMB and LARS configuration against the reference over lengths that straddle the
/// vec4 lanes, the workgroup tile and the tails.
#[test]
fn lamb_and_lars_match_the_reference() {
    let ctx = context();
    let configs = trust_configs();
    assert_eq!(configs.len(), 12);
    for (n, config) in configs.iter().enumerate() {
        let mut run = Run::new(ctx, config, &[1, 3, 255, 256, 257, 1000, 5000], n as u64);
        for step in 1..=6 {
            run.step(ctx);
            run.compare(ctx, &format!("{config:?} after step {step}"));
            let ratios = run.device.read_trust_ratios().unwrap();
            assert_trust_ratios_close(&ratios, run.reference.trust_ratios());
            // The ratios are not all 1 where the configuration scales by them.
            let trust_on = match config {
                OptimizerConfig::Lamb(c) => c.trust_ratio,
                OptimizerConfig::Lars(c) => c.trust_ratio,
                _ => unreachable!(),
            };
            assert_eq!(ratios.iter().any(|&r| r != 1.0), trust_on, "{config:?}");
        }
    }
}

/// A tensor's norm is its whole: under a 4 KiB binding limit tensors cross chunk boundaries
/// (a 5000-element tensor spans several chunks, its segments in each), and LAMB and LARS
/// still match the reference, whose norms are per tensor by construction.
#[test]
fn tensors_cut_into_chunks_keep_one_norm() {
    let ctx = &context_with_binding_limit(4096);
    for config in [
        OptimizerConfig::Lamb(LambConfig::default().with_lr(0.01).with_weight_decay(0.01)),
        OptimizerConfig::Lars(LarsConfig::default().with_lr(1.0)),
    ] {
        let mut run = Run::new(ctx, &config, &[300, 5000, 7, 2100], 9);
        assert!(
            run.device.update_dispatches() > 4,
            "the tensors should cross chunk boundaries"
        );
        for step in 1..=4 {
            run.step(ctx);
            run.compare(ctx, &format!("{config:?} (4 KiB chunks) after step {step}"));
        }
    }
}

/// Replicas of a population each get their own tensors' ratios: eight LAMB replicas with
/// different learning rates and weight decays equal eight optimizers run alone, bit for bit.
#[test]
fn a_population_of_lamb_replicas_equals_each_alone() {
    let ctx = context();
    let lens = [33, 1000, 5];
    let configs: Vec<OptimizerConfig> = (0..8)
        .map(|r| {
            LambConfig::default()
                .with_lr(1e-3 * (r + 1) as f64)
                .with_weight_decay(0.01 * r as f64)
                .with_trust_ratio(r != 3)
                .into()
        })
        .collect();
    let arena = Arena::new(ctx, &lens.repeat(configs.len())).unwrap();
    let alone: Vec<Arena> = configs
        .iter()
        .map(|_| Arena::new(ctx, &lens).unwrap())
        .collect();
    let mut rng = Rng::new(17);
    for (i, len) in lens.repeat(configs.len()).into_iter().enumerate() {
        let values = rng.vector(len);
        arena.write_param(i, &values).unwrap();
        alone[i / lens.len()]
            .write_param(i % lens.len(), &values)
            .unwrap();
    }
    let replicas = arena
        .params()
        .chunks(lens.len())
        .zip(&configs)
        .map(|(params, config)| ParamGroup {
            config: config.clone(),
            params: params.to_vec(),
        })
        .collect();
    let population = Optimizer::population(ctx, replicas, Precision::default()).unwrap();
    let singles: Vec<Optimizer> = alone
        .iter()
        .zip(&configs)
        .map(|(arena, config)| config.build(ctx, &arena.params()).unwrap())
        .collect();
    for _ in 0..5 {
        for (i, len) in lens.repeat(configs.len()).into_iter().enumerate() {
            let grad = rng.gradient(len);
            arena.write_grad(i, &grad).unwrap();
            alone[i / lens.len()]
                .write_grad(i % lens.len(), &grad)
                .unwrap();
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        population.step(&mut encoder);
        for single in &singles {
            single.step(&mut encoder);
        }
        ctx.queue().submit([encoder.finish()]);
    }
    for i in 0..arena.len() {
        let (r, t) = (i / lens.len(), i % lens.len());
        assert_eq!(
            bits(&arena.read_param(i).unwrap()),
            bits(&alone[r].read_param(t).unwrap()),
            "replica {r}, tensor {t}"
        );
    }
    // Each replica's ratios are its own: replica 3 has the ratio off, the others' differ.
    let ratios = population.read_trust_ratios().unwrap();
    assert_eq!(ratios.len(), arena.len());
    assert!(ratios[9..12].iter().all(|&r| r == 1.0));
    assert_ne!(ratios[0..3], ratios[3..6]);
}

/// A skipped step (non-finite gradients) changes nothing, the ratios included; the next
/// step matches the reference. Other optimizers have no ratios to read.
#[test]
fn a_skipped_step_keeps_the_ratios() {
    let ctx = context();
    for config in [
        OptimizerConfig::Lamb(LambConfig::default().with_lr(0.01)),
        OptimizerConfig::Lars(LarsConfig::default().with_lr(1.0)),
    ] {
        let mut run = Run::new(ctx, &config, &[40, 300], 21);
        assert_eq!(run.device.read_trust_ratios().unwrap(), [1.0, 1.0]);
        run.set_grad_processing(Some(GradConfig::default().with_max_norm(1.0)));
        run.step(ctx);
        let (ratios, before) = (run.device.read_trust_ratios().unwrap(), run.snapshot(ctx));
        let mut grads = run.gradients();
        grads[1][7] = f32::NAN;
        run.step_with(ctx, &grads);
        assert_eq!(
            run.snapshot(ctx),
            before,
            "{config:?}: the skipped step moved something"
        );
        assert_eq!(run.device.read_trust_ratios().unwrap(), ratios);
        run.step(ctx);
        run.compare(ctx, &format!("{config:?} after a skipped step"));
    }
    let adamw = OptimizerConfig::AdamW(AdamWConfig::default());
    let run = Run::new(ctx, &adamw, &[4], 1);
    assert!(matches!(
        run.device.read_trust_ratios(),
        Err(Error::InvalidOptions(_))
    ));
}

/// The reductions' trees take any workgroup size: 96 invocations (not a power of two) and 64,
/// LAMB and LARS against the reference.
#[test]
fn any_workgroup_size_reduces_every_lane() {
    for workgroup_size in [96, 64] {
        let ctx = &context().clone().with_tuning(Tuning {
            workgroup_size,
            ..context().tuning()
        });
        for config in [
            OptimizerConfig::Lamb(LambConfig::default().with_lr(0.01)),
            OptimizerConfig::Lars(LarsConfig::default().with_lr(1.0)),
        ] {
            let mut run = Run::new(ctx, &config, &[3000, 17, 1], 5);
            for step in 1..=3 {
                run.step(ctx);
                let what = format!("{config:?}, {workgroup_size} invocations, step {step}");
                run.compare(ctx, &what);
                let ratios = run.device.read_trust_ratios().unwrap();
                assert_trust_ratios_close(&ratios, run.reference.trust_ratios());
            }
        }
    }
}
