//! How close each optimizer's step gets to this adapter's memory bus: measures
//! `copy_buffer_to_buffer` bandwidth and each optimizer's step time on one tensor of the given
//! number of elements, and prints kernel, bytes/element, GB/s, % of copy bandwidth and
//! elements/s.
//!
//! Run: `cargo run --release --example roofline -- 16777216` (default 2^22 elements); a second
//! argument keeps only the kernels whose name contains it (`-- 16777216 adamw`).
//! `WGPU_OPTIM_WORKGROUP_SIZE` and `WGPU_OPTIM_VEC4S` override the launch settings
//! ([`Tuning`]'s `workgroup_size` and `vec4s_per_invocation`).
//! Time is wall time around submit + `Device::poll` (wait), the median of several runs after a
//! warm-up, so it includes submission overhead; at millions of elements that is small.

use std::time::{Duration, Instant};

use wgpu_optim::{
    AdaBeliefConfig, AdagradConfig, AdamConfig, AdamWConfig, Context, GradConfig, LionConfig,
    Optimizer, OptimizerConfig, Param, RmsPropConfig, SgdConfig, Tuning,
};

const RUNS: usize = 9;

/// A launch setting from the environment, for trying others on an adapter.
fn env(variable: &str, default: u32) -> u32 {
    std::env::var(variable)
        .ok()
        .map(|v| v.parse().expect("a whole number"))
        .unwrap_or(default)
}

/// The median wall time of `record` + submit + wait.
fn time(ctx: &Context, mut record: impl FnMut(&mut wgpu::CommandEncoder)) -> Duration {
    let mut once = || {
        let start = Instant::now();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        record(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        ctx.device()
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
        start.elapsed()
    };
    once(); // warm-up: first use of the pipelines and buffers
    let mut times: Vec<Duration> = (0..RUNS).map(|_| once()).collect();
    times.sort();
    times[RUNS / 2]
}

fn main() -> wgpu_optim::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a number of elements"))
        .unwrap_or(1 << 22);
    let filter = std::env::args().nth(2).unwrap_or_default();
    let ctx = Context::new_blocking()?;
    let ctx = ctx.clone().with_tuning(Tuning {
        workgroup_size: env("WGPU_OPTIM_WORKGROUP_SIZE", ctx.tuning().workgroup_size),
        vec4s_per_invocation: env("WGPU_OPTIM_VEC4S", ctx.tuning().vec4s_per_invocation),
        ..ctx.tuning()
    });
    if let Some(info) = ctx.adapter_info() {
        println!(
            "adapter: {} ({:?}, {} {})",
            info.name, info.backend, info.driver, info.driver_info
        );
    }
    println!("{n} elements, f32, one tensor; median of {RUNS} runs, wall time\n");
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let param = ctx.upload_f32("param", &values);
    let grad = ctx.upload_f32("grad", &values);
    let copy = ctx.upload_f32("copy", &values);
    let params = [Param::whole(&param, &grad)];

    let bytes = 4 * n as u64;
    let copy_time = time(&ctx, |e| {
        e.copy_buffer_to_buffer(&param, 0, &copy, 0, bytes)
    });
    // A copy reads and writes every byte.
    let copy_gbs = 2.0 * bytes as f64 / copy_time.as_secs_f64() / 1e9;
    println!(
        "{:<28} {:>8} {:>10} {:>8} {:>14}",
        "kernel", "B/elem", "GB/s", "% copy", "elements/s"
    );
    println!(
        "{:<28} {:>8} {:>10.2} {:>8} {:>14.3e}",
        "copy_buffer_to_buffer",
        8,
        copy_gbs,
        "100",
        n as f64 / copy_time.as_secs_f64()
    );

    let configs: Vec<(&str, OptimizerConfig, Option<GradConfig>)> = vec![
        ("sgd", OptimizerConfig::Sgd(SgdConfig::default()), None),
        (
            "sgd_momentum",
            OptimizerConfig::Sgd(SgdConfig::default().with_momentum(0.9)),
            None,
        ),
        (
            "adagrad",
            OptimizerConfig::Adagrad(AdagradConfig::default()),
            None,
        ),
        (
            "rmsprop",
            OptimizerConfig::RmsProp(RmsPropConfig::default()),
            None,
        ),
        ("adam", OptimizerConfig::Adam(AdamConfig::default()), None),
        (
            "adamw",
            OptimizerConfig::AdamW(AdamWConfig::default()),
            None,
        ),
        (
            "amsgrad",
            OptimizerConfig::Adam(AdamConfig::default().with_amsgrad(true)),
            None,
        ),
        (
            "adabelief",
            OptimizerConfig::AdaBelief(AdaBeliefConfig::default()),
            None,
        ),
        ("lion", OptimizerConfig::Lion(LionConfig::default()), None),
        (
            "adamw + clip_grad_norm_",
            OptimizerConfig::AdamW(AdamWConfig::default()),
            Some(GradConfig::default().with_max_norm(1.0)),
        ),
    ];
    for (name, config, grad_config) in configs {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let mut optimizer = Optimizer::new(&ctx, config, &params)?;
        optimizer.set_grad_processing(grad_config)?;
        let step = time(&ctx, |e| optimizer.step(e));
        let per_element = optimizer.bytes_per_element();
        let gbs = (per_element * n as u64) as f64 / step.as_secs_f64() / 1e9;
        println!(
            "{name:<28} {per_element:>8} {gbs:>10.2} {:>8.1} {:>14.3e}",
            100.0 * gbs / copy_gbs,
            n as f64 / step.as_secs_f64()
        );
    }
    Ok(())
}
