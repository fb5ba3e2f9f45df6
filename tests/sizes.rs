//! Sizes past one binding and past one dispatch: chunking through offset/size bindings and
//! the grid-stride loop, on real sizes and on small limits that exercise the same paths.

mod common;
use common::*;
use wgpu_optim::*;

/// More than 2^25 f32 elements: past the default 128 MiB binding, so the tensor is updated in
/// two chunks; with 64-invocation workgroups the first chunk spans 131072 tiles, past the
/// 65535 workgroups one dispatch may launch.
#[test]
fn a_tensor_past_the_128_mib_binding_limit() {
    let len = (1usize << 25) + 1027;
    let ctx = pollster::block_on(Context::request(&ContextOptions {
        limits: Some(wgpu::Limits {
            max_buffer_size: 1 << 30,
            ..wgpu::Limits::default()
        }),
        ..Default::default()
    }))
    .unwrap()
    .with_tuning(Tuning {
        workgroup_size: 64,
        ..Tuning::default()
    });
    assert_eq!(ctx.max_chunk_len(), 1 << 25);
    let config = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01).with_amsgrad(true));
    let mut run = Run::new(&ctx, &config, &[len], 11);
    // The norm reduction also runs over both chunks (its stats are checked against f64).
    run.set_grad_processing(Some(GradConfig::default().with_max_norm(100.0)));
    for _ in 0..10 {
        run.step(&ctx);
    }
    run.compare(&ctx, "2^25 + 1027 elements");
}

/// Gradient processing that clips, by norm (2 or inf) and for some by value.
fn clipping(n: usize) -> GradConfig {
    let config = GradConfig::default().with_max_norm(2.0);
    match n % 3 {
        0 => config,
        1 => config.with_norm_type(f64::INFINITY),
        _ => config.with_clip_value(0.5),
    }
}

/// A 4 KiB binding limit splits tensors into chunks of 1024 elements, for the update and the
/// norm reduction.
#[test]
fn chunk_boundaries_are_exact_for_every_optimizer() {
    let ctx = context_with_binding_limit(4096);
    assert_eq!(ctx.max_chunk_len(), 1024);
    let lens = [1, 1023, 1024, 1025, 2048, 5001];
    for (n, config) in all_configs().iter().enumerate().step_by(3) {
        let mut run = Run::new(&ctx, config, &lens, 100 + n as u64);
        run.set_grad_processing(Some(clipping(n)));
        for _ in 0..4 {
            run.step(&ctx);
        }
        run.compare(&ctx, &format!("{config:?} in 4 KiB chunks"));
    }
}

/// Few workgroups per dimension: the update's segment grid goes 2-D, the norm reduction's
/// workgroups loop over many tiles; both ways of dealing vec4s to invocations.
#[test]
fn few_workgroups_per_dimension_cover_every_tile() {
    for tuning in [
        Tuning {
            workgroup_size: 64,
            vec4s_per_invocation: 1,
            max_workgroups_per_dispatch: 3,
            ..Tuning::default()
        },
        Tuning {
            workgroup_size: 1,
            vec4s_per_invocation: 3,
            max_workgroups_per_dispatch: 7,
            ..Tuning::default()
        },
        Tuning {
            workgroup_size: 32,
            vec4s_per_invocation: 5,
            max_workgroups_per_dispatch: 4,
            runs_per_invocation: true,
            ..Tuning::default()
        },
    ] {
        let ctx = context().clone().with_tuning(tuning);
        let lens = [1, 3, 255, 256, 257, 1000, 4099];
        for (n, config) in all_configs().iter().enumerate().step_by(5) {
            let mut run = Run::new(&ctx, config, &lens, 200 + n as u64);
            run.set_grad_processing(Some(clipping(n)));
            for _ in 0..3 {
                run.step(&ctx);
            }
            run.compare(&ctx, &format!("{config:?} with {tuning:?}"));
        }
    }
}

/// The vec4 layout binds whole vec4s past a tensor's end where its buffer has room: it must
/// store only the tensor's own elements. Buffers that end inside a vec4 take the scalar layout.
#[test]
fn partial_vec4s_store_only_their_tensors_elements() {
    let ctx = context();
    let align = ctx.device().limits().min_storage_buffer_offset_alignment as usize / 4;
    // Two tensors of 7 and 5 elements at offsets 0 and `align` of one param buffer and one grad
    // buffer, with room after each: one span, one vec4 dispatch.
    let total = 2 * align + 16;
    let mut rng = Rng::new(5);
    let before = rng.vector(total);
    let param = ctx.upload_f32("param", &before);
    let grad = ctx.upload_f32("grad", &rng.vector(total));
    let tensors = [(0, 7), (align, 5)];
    let params: Vec<Param> = tensors
        .iter()
        .map(|&(at, len)| {
            Param::new(
                BufferRange::new(&param, at as u64 * 4, len),
                BufferRange::new(&grad, at as u64 * 4, len),
            )
        })
        .collect();
    let config = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.1));
    let optimizer = config.build(ctx, &params).unwrap();
    assert_eq!(optimizer.update_dispatches(), 1);
    assert_eq!(optimizer.vec4_dispatches(), 1);
    // Two tensors in one dispatch: each workgroup loads its segment.
    assert_eq!(optimizer.regular_dispatches(), 0);
    // Both end inside a vec4: their last elements go to the one tail dispatch.
    assert_eq!(optimizer.tail_dispatches(), 1);
    let host: Vec<Vec<f32>> = tensors
        .iter()
        .map(|&(at, len)| before[at..at + len as usize].to_vec())
        .collect();
    let host = three_steps_beside_the_reference(ctx, &optimizer, &config, &params, host);
    let after = ctx.read_f32(&BufferRange::whole(&param)).unwrap();
    for (&(at, len), expected) in tensors.iter().zip(&host) {
        assert_close("tensor", &after[at..at + len as usize], expected);
    }
    let ranges: Vec<(usize, usize)> = tensors
        .iter()
        .map(|&(at, len)| (at, len as usize))
        .collect();
    assert_eq!(
        bits_outside(&after, &ranges),
        bits_outside(&before, &ranges),
        "bytes outside the tensors changed"
    );

    // Buffers of exactly 7 elements end inside the second vec4: scalar layout, same result.
    let exact = [Param::whole(
        &ctx.upload_f32("param", &before[..7]),
        &ctx.upload_f32("grad", &ctx.read_f32(&params[0].grad).unwrap()),
    )];
    let optimizer = config.build(ctx, &exact).unwrap();
    assert_eq!(optimizer.vec4_dispatches(), 0);
    for _ in 0..3 {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }
    let scalar = ctx.read_f32(&exact[0].param).unwrap();
    assert_eq!(bits(&scalar), bits(&after[..7]), "the two layouts differ");
}

/// Two optimizers of the same configuration share pipelines; stepping one leaves the other.
#[test]
fn optimizers_are_independent() {
    let ctx = context();
    let config = OptimizerConfig::Adam(AdamConfig::default());
    let mut a = Run::new(ctx, &config, &[100], 1);
    let b = Run::new(ctx, &config, &[100], 2);
    a.step(ctx);
    a.step(ctx);
    a.compare(ctx, "stepped");
    b.compare(ctx, "not stepped");
    assert_eq!(b.device.read_step().unwrap(), 0);
}

/// Dealing a workgroup's vec4s to invocations in runs or in rows changes which invocation
/// updates an element, never its value: the two give the same bits.
#[test]
fn runs_and_rows_give_the_same_bits() {
    let lens = [1, 7, 1000, 4096 + 5, 3 * 4096];
    let snapshots: Vec<Vec<Vec<u32>>> = [true, false]
        .into_iter()
        .map(|runs| {
            let ctx = context().clone().with_tuning(Tuning {
                runs_per_invocation: runs,
                ..context().tuning()
            });
            let config = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01));
            let mut run = Run::new(&ctx, &config, &lens, 31);
            for _ in 0..3 {
                run.step(&ctx);
            }
            run.snapshot(&ctx)
        })
        .collect();
    assert_eq!(snapshots[0], snapshots[1]);
}

/// Three steps of `optimizer` over `params` and of the reference over `host` (the parameters'
/// values before), with the gradients the device's buffers hold: the reference's parameters
/// after.
fn three_steps_beside_the_reference(
    ctx: &Context,
    optimizer: &Optimizer,
    config: &OptimizerConfig,
    params: &[Param],
    mut host: Vec<Vec<f32>>,
) -> Vec<Vec<f32>> {
    let lens: Vec<usize> = host.iter().map(Vec::len).collect();
    let mut reference = reference::Optimizer::new(config, &lens).unwrap();
    let grads: Vec<Vec<f32>> = params
        .iter()
        .map(|p| ctx.read_f32(&p.grad).unwrap())
        .collect();
    for _ in 0..3 {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        reference.step(&mut host, &grads).unwrap();
    }
    host
}

/// A dispatch of one tensor's tiles derives each workgroup's segment from its first and last
/// (`Optimizer::regular_dispatches`): tiles from the tensor's offset in its buffer, the last
/// one shorter, ending where the tensor's whole vec4s end. The elements around the tensor in
/// the same buffer are never written, in either layout.
#[test]
fn derived_segments_cover_the_tensor_alone() {
    let ctx = context();
    let tuning = ctx.tuning();
    let tile = 4 * tuning.workgroup_size as usize * tuning.vec4s_per_invocation as usize;
    let align = ctx.device().limits().min_storage_buffer_offset_alignment as usize / 4;
    let config = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.1));
    // Two tiles, a short third and a tail of 2 with room after them (the vec4 layout); the
    // same ending with the buffer, inside a vec4 (the scalar layout, no tail).
    for (at, len, room) in [
        (align, 2 * tile + 102, tile + 8),
        (align, 2 * tile + 102, 0),
    ] {
        let total = at + len + room;
        let mut rng = Rng::new(at as u64);
        let before = rng.vector(total);
        let param = ctx.upload_f32("param", &before);
        let grad = ctx.upload_f32("grad", &rng.vector(total));
        let range = |buffer| BufferRange::new(buffer, at as u64 * 4, len as u64);
        let params = [Param::new(range(&param), range(&grad))];
        let optimizer = config.build(ctx, &params).unwrap();
        assert_eq!(optimizer.update_dispatches(), 1);
        assert_eq!(optimizer.vec4_dispatches(), usize::from(room > 0));
        assert_eq!(optimizer.regular_dispatches(), 1);
        let host = vec![before[at..at + len].to_vec()];
        let host = three_steps_beside_the_reference(ctx, &optimizer, &config, &params, host);
        let after = ctx.read_f32(&BufferRange::whole(&param)).unwrap();
        assert_close("tensor", &after[at..at + len], &host[0]);
        assert_eq!(
            bits_outside(&after, &[(at, len)]),
            bits_outside(&before, &[(at, len)]),
            "bytes outside the tensor changed ({room} after it)"
        );
    }
}

/// Issue 12, finding 7: a chunk with more segments than one dispatch's grid holds (the
/// device's `max_compute_workgroups_per_dimension` squared) is updated by several dispatches,
/// each within the limit in both dimensions, rather than one invalid dispatch that fails at
/// submit.
#[test]
fn a_small_workgroup_limit_splits_the_update() {
    let options = ContextOptions {
        limits: Some(wgpu::Limits {
            max_compute_workgroups_per_dimension: 3,
            ..wgpu::Limits::default()
        }),
        ..Default::default()
    };
    let ctx = pollster::block_on(Context::request(&options))
        .unwrap_or_else(|e| panic!("the tests need a wgpu adapter: {e}"));
    let tile =
        4 * ctx.tuning().workgroup_size as usize * ctx.tuning().vec4s_per_invocation as usize;
    // Ten tiles and a tail in one tensor: ten segments, one more than a 3 x 3 grid.
    let lens = [10 * tile + 3, 5];
    for (n, config) in all_configs().iter().enumerate().step_by(9) {
        let mut run = Run::new(&ctx, config, &lens, 300 + n as u64);
        // Tensor 0: 9 + 1 segments; tensor 1 (its own buffers): 1.
        assert_eq!(run.device.update_dispatches(), 3, "{config:?}");
        // Each dispatch one tensor's tiles (the second a single segment): all derived.
        assert_eq!(run.device.regular_dispatches(), 3, "{config:?}");
        run.set_grad_processing(Some(clipping(n)));
        for _ in 0..3 {
            run.step(&ctx);
        }
        run.compare(&ctx, &format!("{config:?} under a 3-workgroup limit"));
    }
}

/// Issue 12, finding 11: the gradient-norm reduction keeps every chunk's partials in one
/// binding however many chunks there are. Under a 4 KiB binding limit (1024 elements a chunk,
/// 512 partials a binding) tensors of 20,000 and 600,000 elements are 606 chunks: the partials
/// wrap around the binding and combine, and the norm still matches f64.
#[test]
fn the_norm_reduction_fits_one_binding_past_hundreds_of_chunks() {
    let ctx = context_with_binding_limit(4096);
    let lens = [20_000, 600_000];
    for (n, config) in [
        OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.01)),
        OptimizerConfig::AdamW(AdamWConfig::default()),
    ]
    .iter()
    .enumerate()
    {
        let mut run = Run::new(&ctx, config, &lens, 400 + n as u64);
        run.set_grad_processing(Some(GradConfig::default().with_max_norm(1.0)));
        for _ in 0..2 {
            let grads = run.gradients();
            run.step_with(&ctx, &grads);
            let control = run.device.read_control().unwrap();
            let exact = reference::global_norm(&grads, 2.0);
            let error = ((f64::from(control.grad_norm) - exact) / exact).abs();
            assert!(
                error < 1e-6,
                "{config:?}: norm {} vs {exact}",
                control.grad_norm
            );
        }
        run.compare(&ctx, &format!("{config:?} under a 4 KiB binding limit"));
    }
}

/// Issue 25, finding 3: launch settings out of the device's range (a workgroup of 0 or of
/// u32::MAX invocations, 0 or u32::MAX vec4s per invocation, 0 workgroups per dispatch) are
/// clamped to it by `with_tuning`, and optimizers built on it step as the reference does. (A
/// workgroup of 0 sent the planner into an endless loop of empty segments.)
#[test]
fn launch_settings_out_of_range_are_clamped() {
    let limits = context().device().limits();
    for (workgroup_size, vec4s, workgroups) in [(0, 0, 0), (u32::MAX, u32::MAX, u32::MAX)] {
        let ctx = context().clone().with_tuning(Tuning {
            workgroup_size,
            vec4s_per_invocation: vec4s,
            max_workgroups_per_dispatch: workgroups,
            ..Tuning::default()
        });
        let tuning = ctx.tuning();
        assert!(tuning.workgroup_size >= 1);
        assert!(tuning.workgroup_size <= limits.max_compute_invocations_per_workgroup);
        assert!(tuning.workgroup_size <= limits.max_compute_workgroup_size_x);
        assert!((1..=MAX_VEC4S_PER_INVOCATION).contains(&tuning.vec4s_per_invocation));
        assert!(tuning.max_workgroups_per_dispatch >= 1);
        assert!(tuning.max_workgroups_per_dispatch <= limits.max_compute_workgroups_per_dimension);
        let config = &all_configs()[3];
        let mut run = Run::new(&ctx, config, &[1, 257, 5000], 7);
        run.set_grad_processing(Some(clipping(3)));
        for _ in 0..2 {
            run.step(&ctx);
        }
        run.compare(&ctx, &format!("{config:?} with {tuning:?}"));
    }
}
