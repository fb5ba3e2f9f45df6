//! Throughput of one fused step per optimizer, in bytes the step must move per second, beside
//! a buffer copy of the same adapter.
//!
//! Timing is wall time around submit + wait (`Device::poll`), so it includes the submit and
//! wake-up overhead; sizes are large enough for it to be small. Run:
//! `cargo bench --bench optimizers` (set `WGPU_OPTIM_BENCH_LEN` to change the 1M elements).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgpu_optim::*;

fn len() -> usize {
    std::env::var("WGPU_OPTIM_BENCH_LEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20)
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
    let ctx = Context::new_blocking()
        .expect("a wgpu adapter (on Linux: apt-get install mesa-vulkan-drivers libvulkan1)");
    if let Some(info) = ctx.adapter_info() {
        eprintln!(
            "adapter: {} ({:?}, {})",
            info.name, info.backend, info.driver_info
        );
    }
    let n = len();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let param = ctx.upload_f32("param", &values);
    let grad = ctx.upload_f32("grad", &values);
    let params = [Param::whole(&param, &grad)];

    let mut group = c.benchmark_group(format!("step_{n}"));
    group.sample_size(20);

    let copy_dst = ctx.upload_f32("copy", &values);
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
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut encoder = ctx.device().create_command_encoder(&Default::default());
                optimizer.step(&mut encoder);
                ctx.queue().submit([encoder.finish()]);
                wait(&ctx);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
