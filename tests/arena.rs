//! The arena: many tensors in one buffer per role, updated in one dispatch per binding chunk,
//! in parameter groups with their own hyperparameters, against the reference per tensor.

mod common;
use common::*;
use wgpu_optim::*;

const LENS: [usize; 7] = [1, 3, 255, 256, 257, 4099, 65537];
/// Tensors 0-2 in group 0, 3-4 in group 1, 5-6 in group 2.
const GROUPS: [std::ops::Range<usize>; 3] = [0..3, 3..5, 5..7];

/// Group `g`'s configuration: another learning rate, no weight decay for group 1 (biases and
/// norm weights, classically), another beta2 or alpha for group 2 where the optimizer has one.
fn group_config(config: &OptimizerConfig, g: usize) -> OptimizerConfig {
    let mut config = config.with_lr(config.lr() * [1.0, 0.5, 2.0][g]);
    if g == 1 {
        config = config.with_weight_decay(0.0);
    }
    if g == 2 {
        config.set_hyperparameter("beta2", "0.99");
        config.set_hyperparameter("alpha", "0.9");
    }
    config
}

/// An arena of LENS in three groups, stepped `steps` times beside one reference per group;
/// returns the optimizer's number of update dispatches.
fn arena_run(ctx: &Context, config: &OptimizerConfig, seed: u64, steps: usize) -> usize {
    let arena = Arena::new(ctx, &LENS).unwrap();
    let mut rng = Rng::new(seed);
    let mut host: Vec<Vec<f32>> = LENS.iter().map(|&n| rng.vector(n)).collect();
    for (i, values) in host.iter().enumerate() {
        arena.write_param(i, values).unwrap();
    }
    let params = arena.params();
    let groups: Vec<ParamGroup> = GROUPS
        .iter()
        .enumerate()
        .map(|(g, range)| ParamGroup {
            config: group_config(config, g),
            params: params[range.clone()].to_vec(),
        })
        .collect();
    let optimizer = Optimizer::with_groups(ctx, groups).unwrap();
    let mut references: Vec<reference::Optimizer> = GROUPS
        .iter()
        .enumerate()
        .map(|(g, range)| {
            reference::Optimizer::new(&group_config(config, g), &LENS[range.clone()]).unwrap()
        })
        .collect();
    for _ in 0..steps {
        let grads: Vec<Vec<f32>> = LENS.iter().map(|&n| rng.gradient(n)).collect();
        for (i, g) in grads.iter().enumerate() {
            arena.write_grad(i, g).unwrap();
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        for (range, reference) in GROUPS.iter().zip(&mut references) {
            reference
                .step(&mut host[range.clone()], &grads[range.clone()])
                .unwrap();
        }
    }
    for (g, range) in GROUPS.iter().enumerate() {
        for i in range.clone() {
            let what = format!("{config:?}, group {g}, tensor {i}");
            assert_close(&what, &arena.read_param(i).unwrap(), &host[i]);
            for state in optimizer.state_specs() {
                let local = i - range.start;
                assert_close(
                    &format!("{what}: {}", state.name),
                    &optimizer.read_state(i, state.name).unwrap(),
                    references[g].state(local, state.name).unwrap(),
                );
            }
            assert_eq!(optimizer.group_of(i), Some(g));
        }
    }
    assert_eq!(optimizer.read_step().unwrap(), steps as u32);
    optimizer.update_dispatches()
}

#[test]
fn an_arena_in_three_groups_matches_the_reference_for_every_optimizer() {
    let ctx = context();
    for (n, config) in all_configs().iter().enumerate() {
        let dispatches = arena_run(ctx, config, n as u64, 4);
        assert_eq!(dispatches, 1, "{config:?}: every tensor in one dispatch");
    }
}

/// A 4 KiB binding limit: the arena's span is bound in chunks of 1024 elements, tensors
/// crossing chunk boundaries.
#[test]
fn an_arena_past_one_binding_is_chunked_across_tensor_boundaries() {
    let ctx = context_with_binding_limit(4096);
    for (n, config) in all_configs().iter().enumerate().step_by(7) {
        let dispatches = arena_run(&ctx, config, 100 + n as u64, 3);
        let elements: usize = LENS.iter().map(|&n| n.next_multiple_of(8)).sum();
        assert!(
            dispatches >= elements / 1024,
            "{config:?}: {dispatches} dispatches"
        );
    }
}

#[test]
fn arena_tensors_and_separate_buffers_mix_in_one_optimizer() {
    let ctx = context();
    let arena = Arena::new(ctx, &[100, 200]).unwrap();
    let alone = Param::whole(
        &ctx.upload_f32("p", &[0.5; 50]),
        &ctx.upload_f32("g", &[0.25; 50]),
    );
    let mut params = arena.params();
    params.insert(1, alone);
    arena.write_grad(0, &[0.25; 100]).unwrap();
    arena.write_grad(1, &[0.25; 200]).unwrap();
    assert_eq!(arena.read_grad(1).unwrap(), [0.25; 200]);
    assert!(matches!(
        arena.param(2),
        Err(Error::NoSuchTensor {
            index: 2,
            count: 2,
            owner: "arena"
        })
    ));
    let optimizer = SgdConfig::default()
        .with_lr(0.1)
        .build(ctx, &params)
        .unwrap();
    assert_eq!(optimizer.update_dispatches(), 2);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    optimizer.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    // p -= 0.1 * 0.25 everywhere.
    assert!(arena.read_param(0).unwrap().iter().all(|&p| p == -0.025));
    assert!(arena.read_param(1).unwrap().iter().all(|&p| p == -0.025));
    assert!(ctx
        .read_f32(&params[1].param)
        .unwrap()
        .iter()
        .all(|&p| p == 0.475));
}

#[test]
fn a_group_learning_rate_change_is_a_buffer_write_for_that_group_only() {
    let ctx = context();
    let arena = Arena::new(ctx, &[8, 8]).unwrap();
    let params = arena.params();
    let sgd = OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.5));
    let groups = vec![
        ParamGroup {
            config: sgd.clone(),
            params: params[..1].to_vec(),
        },
        ParamGroup {
            config: sgd.clone(),
            params: params[1..].to_vec(),
        },
    ];
    let mut optimizer = Optimizer::with_groups(ctx, groups).unwrap();
    optimizer.set_group_lr(1, 0.25).unwrap();
    arena.write_grad(0, &[1.0; 8]).unwrap();
    arena.write_grad(1, &[1.0; 8]).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    optimizer.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    assert_eq!(arena.read_param(0).unwrap(), [-0.5; 8]);
    assert_eq!(arena.read_param(1).unwrap(), [-0.25; 8]);
    assert_eq!(optimizer.group_configs()[1].lr(), 0.25);
    assert!(matches!(
        optimizer.set_group_lr(2, 0.1),
        Err(Error::NoSuchGroup { group: 2, count: 2 })
    ));
}

#[test]
fn groups_must_share_the_algorithm_and_options() {
    let ctx = context();
    let arena = Arena::new(ctx, &[8, 8]).unwrap();
    let params = arena.params();
    let group = |config: OptimizerConfig, params: &[Param]| ParamGroup {
        config,
        params: params.to_vec(),
    };
    let adam = OptimizerConfig::Adam(AdamConfig::default());
    let amsgrad = OptimizerConfig::Adam(AdamConfig::default().with_amsgrad(true));
    let adamw = OptimizerConfig::AdamW(AdamWConfig::default());
    for other in [amsgrad, adamw] {
        assert!(matches!(
            Optimizer::with_groups(
                ctx,
                vec![
                    group(adam.clone(), &params[..1]),
                    group(other, &params[1..])
                ]
            ),
            Err(Error::StructuralChange(_))
        ));
    }
    assert!(matches!(
        Optimizer::with_groups(ctx, vec![]),
        Err(Error::InvalidOptions(_))
    ));
}

#[test]
fn overlapping_tensors_are_refused() {
    let ctx = context();
    let buffer = ctx.upload_f32("params", &[0.0; 512]);
    let grads = ctx.upload_f32("grads", &[0.0; 512]);
    let align = ctx.device().limits().min_storage_buffer_offset_alignment as u64;
    let params = [
        Param::new(
            BufferRange::new(&buffer, 0, 100),
            BufferRange::new(&grads, 0, 100),
        ),
        Param::new(
            BufferRange::new(&buffer, align, 100),
            BufferRange::new(&grads, align, 100),
        ),
    ];
    // align / 4 < 100 elements: the second tensor starts inside the first.
    assert!(align / 4 < 100);
    assert!(matches!(
        SgdConfig::default().build(ctx, &params),
        Err(Error::Overlapping {
            first: 0,
            second: 1
        })
    ));
}
