//! Throughput of every optimizer's fused step, in the bytes it must move per second, beside
//! the adapter's copy bandwidth (`copy_buffer_to_buffer`, and a vec4 copy kernel: the ceiling
//! of a compute shader); the fused step against an unfused chain of one-operation kernels;
//! gradient processing against the step alone; many tensors in an arena against one tensor;
//! and the host time to record a step.
//!
//! GPU work is timed with timestamp queries where the adapter has them, wall time around
//! submit + wait otherwise (the first line printed says which). Run `cargo bench --bench
//! optimizers`, or one group: `-- step_16M`, `-- precision`, `-- fusion`, `-- clip`, `-- arena`,
//! `-- many_small`, `-- record_step`, `-- population`. `WGPU_OPTIM_BENCH_SIZES` lists the sizes of the `step_*` groups (default
//! `1M,16M,64M`; a size whose buffers exceed the device's `max_buffer_size` is skipped, and
//! said so).

mod support;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;
use support::{configs, precisions, typed_tensor, values, CopyKernel, Timer};
use wgpu_optim::*;

fn context() -> (Context, Timer) {
    let ctx = Context::new_blocking()
        .expect("a wgpu adapter (on Linux: apt-get install mesa-vulkan-drivers libvulkan1)");
    let timer = Timer::new(&ctx);
    if let Some(info) = ctx.adapter_info() {
        eprintln!(
            "adapter: {} ({:?}, {}); timing: {}",
            info.name,
            info.backend,
            info.driver_info,
            timer.clock()
        );
    }
    (ctx, timer)
}

/// `16M`-style sizes from `variable`, or `default`.
fn sizes(variable: &str, default: &str) -> Vec<usize> {
    let list = std::env::var(variable).unwrap_or_else(|_| default.to_string());
    list.split(',')
        .map(|s| {
            let s = s.trim();
            let (digits, scale) = match s.strip_suffix('M') {
                Some(d) => (d, 1 << 20),
                None => match s.strip_suffix('K') {
                    Some(d) => (d, 1 << 10),
                    None => (s, 1),
                },
            };
            digits.parse::<usize>().expect("sizes like 1M,16M,4096") * scale
        })
        .collect()
}

/// `n` as the group names write it: 1M, 16M, 1000.
fn size_name(n: usize) -> String {
    if n.is_multiple_of(1 << 20) {
        format!("{}M", n >> 20)
    } else {
        n.to_string()
    }
}

/// One tensor of `n` parameters and its gradient.
fn tensor(ctx: &Context, n: usize) -> (wgpu::Buffer, wgpu::Buffer) {
    let values = values(n);
    (
        ctx.upload_f32("param", &values),
        ctx.upload_f32("grad", &values),
    )
}

/// Times the GPU work `work` records, each iteration submitted and waited for.
fn time_work(
    b: &mut criterion::Bencher<'_>,
    timer: &Timer,
    mut work: impl FnMut(&mut wgpu::CommandEncoder),
) {
    b.iter_custom(|iters| (0..iters).map(|_| timer.time(&mut work)).sum())
}

/// Times `optimizer.step`.
fn time_steps(b: &mut criterion::Bencher<'_>, timer: &Timer, optimizer: &Optimizer) {
    time_work(b, timer, |e| optimizer.step(e))
}

/// A group for steps of hundreds of milliseconds on a software adapter: ten samples of equal
/// iteration counts.
fn slow_group<'a>(
    c: &'a mut Criterion,
    name: String,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group
}

/// Every optimizer at each size, beside the two copies. Throughput: the bytes each must move
/// (`Optimizer::bytes_per_element`; a copy reads and writes each byte).
fn bench_steps(c: &mut Criterion) {
    let (ctx, timer) = context();
    for n in sizes("WGPU_OPTIM_BENCH_SIZES", "1M,16M,64M") {
        if 4 * n as u64 > ctx.device().limits().max_buffer_size {
            eprintln!("step_{}: skipped, past max_buffer_size", size_name(n));
            continue;
        }
        let (param, grad) = tensor(&ctx, n);
        let params = [Param::whole(&param, &grad)];
        let mut group = slow_group(c, format!("step_{}", size_name(n)));

        let copy_dst = ctx.upload_f32("copy", &vec![0.0; n]);
        group.throughput(Throughput::Bytes(8 * n as u64));
        group.bench_function("copy_buffer_to_buffer", |b| {
            time_work(b, &timer, |e| {
                e.copy_buffer_to_buffer(&param, 0, &copy_dst, 0, 4 * n as u64)
            })
        });
        let copy = CopyKernel::new(&ctx, &param, &copy_dst, n);
        group.bench_function("copy_kernel", |b| time_work(b, &timer, |e| copy.record(e)));

        for (name, config) in configs() {
            let optimizer = config.build(&ctx, &params).expect("build");
            group.throughput(Throughput::Bytes(optimizer.bytes_per_element() * n as u64));
            group.bench_function(name, |b| time_steps(b, &timer, &optimizer));
        }
        group.finish();
    }
}

/// AdamW alone, with a global-norm clip, and with clip and loss scaling, over one 16M-element
/// tensor: the target is clip + step at most 1.2x the step alone (the bytes moved give
/// 32 / 28 = 1.14x). Throughput counts the bytes each variant must move.
fn bench_clip(c: &mut Criterion) {
    let (ctx, timer) = context();
    let n = 1 << 24;
    let (param, grad) = tensor(&ctx, n);
    let params = [Param::whole(&param, &grad)];
    let mut group = slow_group(c, format!("clip_{}", size_name(n)));
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
        group.bench_function(name, |b| time_steps(b, &timer, &optimizer));
    }
    group.finish();
}

/// `count` tensors of `len` elements, AdamW: in an arena (one dispatch), in buffers of their
/// own (a dispatch each), and as one tensor of `count * len` elements.
fn bench_many(c: &mut Criterion, group: &str, count: usize, len: usize) {
    let (ctx, timer) = context();
    let mut group = slow_group(c, format!("{group}_{count}x{len}"));
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
        group.bench_function(*name, |b| time_steps(b, &timer, &optimizer));
    }
    group.finish();
}

/// 1000 tensors of 16K elements: the target is the arena within 1.2x of one 16M tensor.
fn bench_arena(c: &mut Criterion) {
    bench_many(c, "arena", 1000, 1 << 14);
}

/// 1000 tensors of 1K elements: the target is the arena within 1.5x of one 1M tensor
/// (frameworks that launch per tensor pay about 25x here).
fn bench_many_small(c: &mut Criterion) {
    bench_many(c, "many_small", 1000, 1 << 10);
}

/// Host time to record one AdamW step of an arena of 1, 100 and 10,000 tensors into an encoder
/// and finish it (no submit). The target: at most 50 microseconds at 10,000 tensors.
fn bench_record(c: &mut Criterion) {
    let (ctx, _) = context();
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
    let (ctx, timer) = context();
    let n = 1 << 24;
    let (param, grad) = tensor(&ctx, n);
    let mut group = slow_group(c, format!("fusion_{}", size_name(n)));
    group.throughput(Throughput::Bytes(28 * n as u64));

    let adamw = AdamWConfig::default()
        .build(&ctx, &[Param::whole(&param, &grad)])
        .expect("build");
    group.bench_function("fused_adamw", |b| time_steps(b, &timer, &adamw));

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
    let chain = |encoder: &mut wgpu::CommandEncoder| {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for (pipeline, bind_group) in &steps {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(groups_x, groups_y, 1);
        }
    };
    group.bench_function("unfused_adamw_chain", |b| time_work(b, &timer, chain));
    group.finish();
}

/// AdamW over one 16M-element tensor in each mixed-precision layout (`support::precisions`).
/// Throughput: the bytes each layout must move (`Optimizer::bytes_per_element`: 28 in f32, 20
/// with bf16 states, 14 in bf16, 16 with 8-bit states). The targets on lavapipe: all-bf16 at least 1.5x f32, f32
/// parameters with bf16 states at least 1.2x.
fn bench_precision(c: &mut Criterion) {
    let (ctx, timer) = context();
    let n = 1 << 24;
    let values = values(n);
    let mut group = slow_group(c, format!("precision_{}", size_name(n)));
    for (name, param, grad, precision) in precisions() {
        let group_config = ParamGroup {
            config: OptimizerConfig::AdamW(AdamWConfig::default()),
            params: vec![typed_tensor(&ctx, &values, param, grad)],
        };
        let optimizer =
            Optimizer::with_precision(&ctx, vec![group_config], precision).expect("build");
        group.throughput(Throughput::Bytes(optimizer.bytes_per_element() * n as u64));
        group.bench_function(name, |b| time_steps(b, &timer, &optimizer));
    }
    group.finish();
}

/// K = 8 replicas of a 1M-parameter model (six tensors) under AdamW, each clipped by its own
/// global norm: one population, K optimizers, and one optimizer over all K x 1M elements (the
/// floor; target: the population within 1.2x of it). `examples/population_time.rs` runs the
/// same comparison interleaved, at K = 8 and 64.
fn bench_population(c: &mut Criterion) {
    const MODEL: [usize; 6] = [784 * 1024, 1024, 1024 * 192, 192, 192 * 10, 10];
    const K: usize = 8;
    let (ctx, timer) = context();
    let mut group = slow_group(c, format!("population_{K}x1M"));
    let elements: usize = MODEL.iter().sum::<usize>() * K;
    group.throughput(Throughput::Bytes(32 * elements as u64));
    let clip = || Some(GradConfig::default().with_max_norm(1.0));
    let config = |r: usize| AdamWConfig::default().with_lr(1e-4 * (r + 1) as f64);
    let shared = Arena::new(&ctx, &MODEL.repeat(K)).expect("arena");
    let replicas = shared
        .params()
        .chunks(MODEL.len())
        .enumerate()
        .map(|(r, params)| ParamGroup {
            config: config(r).into(),
            params: params.to_vec(),
        })
        .collect();
    let mut population =
        Optimizer::population(&ctx, replicas, Precision::default()).expect("population");
    population.set_grad_processing(clip()).expect("clip");
    group.bench_function("population", |b| time_steps(b, &timer, &population));
    let arenas: Vec<Arena> = (0..K)
        .map(|_| Arena::new(&ctx, &MODEL).expect("arena"))
        .collect();
    let separate: Vec<Optimizer> = arenas
        .iter()
        .enumerate()
        .map(|(r, arena)| {
            let mut optimizer = config(r).build(&ctx, &arena.params()).expect("build");
            optimizer.set_grad_processing(clip()).expect("clip");
            optimizer
        })
        .collect();
    group.bench_function("separate", |b| {
        time_work(b, &timer, |e| separate.iter().for_each(|o| o.step(e)))
    });
    let mut one = config(0).build(&ctx, &shared.params()).expect("build");
    one.set_grad_processing(clip()).expect("clip");
    group.bench_function("one_optimizer", |b| time_steps(b, &timer, &one));
    group.finish();
}

criterion_group!(
    benches,
    bench_population,
    bench_steps,
    bench_precision,
    bench_clip,
    bench_arena,
    bench_many_small,
    bench_record,
    bench_fusion
);
criterion_main!(benches);
