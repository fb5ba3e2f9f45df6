//! Throughput of one fused step per optimizer, in bytes the step must move per second, beside
//! a buffer copy of the same adapter; and the cost of gradient processing (global-norm clip,
//! loss scaling) against the step alone.
//!
//! Timing is wall time around submit + wait (`Device::poll`), so it includes the submit and
//! wake-up overhead; sizes are large enough for it to be small. Run:
//! `cargo bench --bench optimizers` (set `WGPU_OPTIM_BENCH_LEN` to change the 1M elements of
//! the `step_*` group, `WGPU_OPTIM_CLIP_BENCH_LEN` the 16M of the `clip_*` group; pass
//! `-- clip` to run only the latter; `-- arena` and `-- record_step` for the arena groups).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgpu_optim::*;

fn len(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn context() -> Context {
    let ctx = Context::new_blocking()
        .expect("a wgpu adapter (on Linux: apt-get install mesa-vulkan-drivers libvulkan1)");
    if let Some(info) = ctx.adapter_info() {
        eprintln!(
            "adapter: {} ({:?}, {})",
            info.name, info.backend, info.driver_info
        );
    }
    ctx
}

/// One tensor of `n` parameters and its gradient, with values in [-0.5, 0.5).
fn tensor(ctx: &Context, n: usize) -> (wgpu::Buffer, wgpu::Buffer) {
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    (
        ctx.upload_f32("param", &values),
        ctx.upload_f32("grad", &values),
    )
}

/// Times `optimizer.step` alone, submit to completion.
fn time_steps(b: &mut criterion::Bencher<'_>, ctx: &Context, optimizer: &Optimizer) {
    b.iter(|| {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        wait(ctx);
    })
}

fn wait(ctx: &Context) {
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
}

fn configs() -> Vec<(&'static str, OptimizerConfig)> {
    vec![
        (
            "sgd_momentum",
            OptimizerConfig::Sgd(SgdConfig::default().with_momentum(0.9)),
        ),
        (
            "adagrad",
            OptimizerConfig::Adagrad(AdagradConfig::default()),
        ),
        (
            "rmsprop",
            OptimizerConfig::RmsProp(RmsPropConfig::default()),
        ),
        ("adam", OptimizerConfig::Adam(AdamConfig::default())),
        ("adamw", OptimizerConfig::AdamW(AdamWConfig::default())),
        (
            "amsgrad",
            OptimizerConfig::Adam(AdamConfig::default().with_amsgrad(true)),
        ),
        (
            "adabelief",
            OptimizerConfig::AdaBelief(AdaBeliefConfig::default()),
        ),
        ("lion", OptimizerConfig::Lion(LionConfig::default())),
    ]
}

fn bench(c: &mut Criterion) {
    let ctx = context();
    let n = len("WGPU_OPTIM_BENCH_LEN", 1 << 20);
    let (param, grad) = tensor(&ctx, n);
    let params = [Param::whole(&param, &grad)];

    let mut group = c.benchmark_group(format!("step_{n}"));
    group.sample_size(20);

    let copy_dst = ctx.upload_f32("copy", &vec![0.0; n]);
    group.throughput(Throughput::Bytes(8 * n as u64));
    group.bench_function("copy_buffer_to_buffer", |b| {
        b.iter(|| {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&param, 0, &copy_dst, 0, 4 * n as u64);
            ctx.queue().submit([encoder.finish()]);
            wait(&ctx);
        })
    });

    for (name, config) in configs() {
        let optimizer = config.build(&ctx, &params).expect("build");
        group.throughput(Throughput::Bytes(optimizer.bytes_per_element() * n as u64));
        group.bench_function(name, |b| time_steps(b, &ctx, &optimizer));
    }
    group.finish();
}

/// AdamW alone, with a global-norm clip, and with clip and loss scaling, over one 16M-element
/// tensor: the target is clip + step at most 1.2x the step alone (the bytes moved
/// give 32 / 28 = 1.14x). Throughput counts the bytes each variant must move.
fn bench_clip(c: &mut Criterion) {
    let ctx = context();
    let n = len("WGPU_OPTIM_CLIP_BENCH_LEN", 1 << 24);
    let (param, grad) = tensor(&ctx, n);
    let params = [Param::whole(&param, &grad)];
    let mut group = c.benchmark_group(format!("clip_{n}"));
    group.sample_size(10);
    let variants = [
        ("adamw", None),
        ("clip_adamw", Some(GradConfig::default().with_max_norm(1.0))),
        (
            "clip_scaler_adamw",
            Some(
                GradConfig::default()
                    .with_max_norm(1.0)
                    .with_grad_scaler(GradScalerConfig::default().with_init_scale(1.0)),
            ),
        ),
    ];
    for (name, grad_config) in variants {
        let mut optimizer = AdamWConfig::default().build(&ctx, &params).expect("build");
        optimizer.set_grad_processing(grad_config).expect("valid");
        group.throughput(Throughput::Bytes(optimizer.bytes_per_element() * n as u64));
        group.bench_function(name, |b| time_steps(b, &ctx, &optimizer));
    }
    group.finish();
}

/// 1000 tensors of 16K elements, AdamW: in an arena (one dispatch), in 1000 buffers of their
/// own (1000 dispatches), and one 16M-element tensor. The target: the arena within
/// 1.2x of the single tensor.
fn bench_arena(c: &mut Criterion) {
    let ctx = context();
    let (count, len) = (1000, 1 << 14);
    let mut group = c.benchmark_group(format!("arena_{count}x{len}"));
    group.sample_size(10);
    group.throughput(Throughput::Bytes(28 * (count * len) as u64));

    let arena = Arena::new(&ctx, &vec![len; count]).expect("arena");
    let separate: Vec<(wgpu::Buffer, wgpu::Buffer)> =
        (0..count).map(|_| tensor(&ctx, len)).collect();
    let (param, grad) = tensor(&ctx, count * len);
    let variants: [(&str, Vec<Param>); 3] = [
        ("arena", arena.params()),
        (
            "separate_buffers",
            separate.iter().map(|(p, g)| Param::whole(p, g)).collect(),
        ),
        ("one_tensor", vec![Param::whole(&param, &grad)]),
    ];
    for (name, params) in &variants {
        let optimizer = AdamWConfig::default().build(&ctx, params).expect("build");
        group.bench_function(*name, |b| time_steps(b, &ctx, &optimizer));
    }
    group.finish();
}

/// Host time to record one AdamW step of an arena of 1, 100 and 10,000 tensors into an encoder
/// and finish it (no submit). The target: at most 50 microseconds at 10,000 tensors.
fn bench_record(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("record_step");
    for count in [1, 100, 10_000] {
        let arena = Arena::new(&ctx, &vec![256; count]).expect("arena");
        let optimizer = AdamWConfig::default()
            .build(&ctx, &arena.params())
            .expect("build");
        group.bench_function(format!("arena_{count}_tensors"), |b| {
            b.iter_batched(
                || ctx.device().create_command_encoder(&Default::default()),
                |mut encoder| {
                    optimizer.step(&mut encoder);
                    // wgpu validates and tracks a pass's resources here: part of the cost.
                    encoder.finish()
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_clip, bench_arena, bench_record);
criterion_main!(benches);
