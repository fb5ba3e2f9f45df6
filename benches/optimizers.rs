//! Throughput of one fused step per optimizer, in bytes the step must move per second, beside
//! a buffer copy of the same adapter; and the cost of gradient processing (global-norm clip,
//! loss scaling) against the step alone.
//!
//! Timing is wall time around submit + wait (`Device::poll`), so it includes the submit and
//! wake-up overhead; sizes are large enough for it to be small. Run:
//! `cargo bench --bench optimizers` (set `WGPU_OPTIM_BENCH_LEN` to change the 1M elements of
//! the `step_*` group, `WGPU_OPTIM_CLIP_BENCH_LEN` the 16M of the `clip_*` group; pass
//! `-- clip` to run only the latter; `-- arena` and `-- record_step` for the arena groups;
//! `-- fusion` for fused AdamW against the unfused chain, `WGPU_OPTIM_FUSION_BENCH_LEN`).

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

/// Fused AdamW against the same step as a chain of one-operation kernels (`unfused.wgsl`):
/// p *= 1 - lr wd; m = b1 m + (1 - b1) g; t = g g; v = b2 v + (1 - b2) t;
/// d = sqrt(v) / sqrt(bc2) + eps; u = m / d; p -= lr / bc1 u: seven dispatches, each reading
/// and writing whole buffers. Throughput counts the 28 bytes per element the step needs.
fn bench_fusion(c: &mut Criterion) {
    let ctx = context();
    let n = len("WGPU_OPTIM_FUSION_BENCH_LEN", 1 << 24);
    let (param, grad) = tensor(&ctx, n);
    let mut group = c.benchmark_group(format!("fusion_{n}"));
    group.sample_size(10);
    group.throughput(Throughput::Bytes(28 * n as u64));

    let adamw = AdamWConfig::default()
        .build(&ctx, &[Param::whole(&param, &grad)])
        .expect("build");
    group.bench_function("fused_adamw", |b| time_steps(b, &ctx, &adamw));

    let device = ctx.device();
    let zeros = vec![0.0_f32; n];
    let [m, v, t, d, u] = ["m", "v", "t", "d", "u"].map(|label| ctx.upload_f32(label, &zeros));
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("unfused"),
        source: wgpu::ShaderSource::Wgsl(include_str!("unfused.wgsl").into()),
    });
    let (lr, wd, b1, b2, eps, step) = (1e-3_f64, 1e-2, 0.9_f64, 0.999_f64, 1e-8, 10);
    let (bc1, bc2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
    // (entry, A, B, out, x, y)
    let ops: [(&str, f64, f64, &wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer); 7] = [
        ("axpby", 1.0 - lr * wd, 0.0, &param, &grad, &grad),
        ("axpby", b1, 1.0 - b1, &m, &grad, &grad),
        ("mul", 1.0, 0.0, &t, &grad, &grad),
        ("axpby", b2, 1.0 - b2, &v, &t, &t),
        ("sqrt_affine", 1.0 / bc2.sqrt(), eps, &d, &v, &v),
        ("div", 1.0, 0.0, &u, &m, &d),
        ("axpby", 1.0, -lr / bc1, &param, &u, &u),
    ];
    let groups_x = (n as u32).div_ceil(256).min(65535);
    let groups_y = (n as u32).div_ceil(256 * groups_x);
    let steps: Vec<(wgpu::ComputePipeline, wgpu::BindGroup)> = ops
        .iter()
        .map(|&(entry, a, b, out, x, y)| {
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[("A", a), ("B", b)],
                    ..Default::default()
                },
                cache: None,
            });
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: out.as_entire_binding(),
            }];
            // Each entry point binds only what it reads.
            let reads: &[(u32, &wgpu::Buffer)] = match entry {
                "mul" | "div" => &[(1, x), (2, y)],
                _ => &[(1, x)],
            };
            entries.extend(reads.iter().map(|&(binding, buffer)| wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            }));
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            (pipeline, bind_group)
        })
        .collect();
    group.bench_function("unfused_adamw_chain", |bench| {
        bench.iter(|| {
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for (pipeline, bind_group) in &steps {
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, bind_group, &[]);
                    pass.dispatch_workgroups(groups_x, groups_y, 1);
                }
            }
            ctx.queue().submit([encoder.finish()]);
            wait(&ctx);
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench,
    bench_clip,
    bench_arena,
    bench_record,
    bench_fusion
);
criterion_main!(benches);
