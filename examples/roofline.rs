//! How close each optimizer's step gets to this adapter's memory bus: measures
//! `copy_buffer_to_buffer` bandwidth and each optimizer's step time on one tensor of the given
//! number of elements, and prints kernel, bytes/element, GB/s, % of copy bandwidth, % of a copy
//! kernel's bandwidth and elements/s.
//!
//! Run: `cargo run --release --example roofline -- 16777216` (default 2^22 elements); a second
//! argument keeps only the kernels whose name contains it (`-- 16777216 adamw`).
//! `WGPU_OPTIM_WORKGROUP_SIZE`, `WGPU_OPTIM_VEC4S`, `WGPU_OPTIM_RUNS` and
//! `WGPU_OPTIM_UNIFORM_MAPS` (0 or 1) override the launch settings ([`Tuning`]'s
//! `workgroup_size`, `vec4s_per_invocation`, `runs_per_invocation` and `uniform_maps`).
//! Times come from GPU timestamp queries where the adapter has them (wall time around submit +
//! wait otherwise; the header says which), the median of several runs after a warm-up; the
//! `% kernel` column compares with a vec4 copy kernel (`benches/copy.wgsl`), the streaming
//! ceiling of a compute shader here. Each optimizer's params are then checked against the CPU
//! reference run for the same steps. The `adamw [...]` rows at the end store parameters,
//! gradients and states in 16-bit types (mixed precision; the math is f32), their B/elem the
//! bytes each layout moves.

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::Duration;

use support::{configs, precisions, typed_tensor, values, CopyKernel, Timer};
use wgpu_optim::quant::quantizes;
use wgpu_optim::{
    reference, AdamWConfig, Context, Dtype, GradConfig, Optimizer, OptimizerConfig, Param,
    ParamGroup, Tuning,
};

const RUNS: usize = 9;

/// A launch setting from the environment, for trying others on an adapter.
fn env(variable: &str, default: u32) -> u32 {
    std::env::var(variable)
        .ok()
        .map(|v| v.parse().expect("a whole number"))
        .unwrap_or(default)
}

fn main() -> wgpu_optim::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a number of elements"))
        .unwrap_or(1 << 22);
    let filter = std::env::args().nth(2).unwrap_or_default();
    let ctx = Context::new_blocking()?;
    let tuning = ctx.tuning();
    let ctx = ctx.clone().with_tuning(Tuning {
        workgroup_size: env("WGPU_OPTIM_WORKGROUP_SIZE", tuning.workgroup_size),
        vec4s_per_invocation: env("WGPU_OPTIM_VEC4S", tuning.vec4s_per_invocation),
        runs_per_invocation: env("WGPU_OPTIM_RUNS", tuning.runs_per_invocation.into()) != 0,
        uniform_maps: env("WGPU_OPTIM_UNIFORM_MAPS", tuning.uniform_maps.into()) != 0,
        ..tuning
    });
    if let Some(info) = ctx.adapter_info() {
        println!(
            "adapter: {} ({:?}, {} {})",
            info.name, info.backend, info.driver, info.driver_info
        );
    }
    let timer = Timer::new(&ctx);
    let tuning = ctx.tuning();
    println!(
        "{n} elements, f32 unless a row names other types, one tensor; median of {RUNS} runs after a warm-up; timing: {}",
        timer.clock()
    );
    println!(
        "launch: workgroups of {}, {} vec4s per invocation{}",
        tuning.workgroup_size,
        tuning.vec4s_per_invocation,
        if tuning.runs_per_invocation {
            " (each invocation a run of consecutive vec4s)"
        } else {
            " (consecutive invocations on consecutive vec4s)"
        }
    );
    println!(
        "8-bit states' quantization table in a {} buffer",
        if tuning.uniform_maps {
            "uniform"
        } else {
            "storage"
        }
    );
    println!(
        "check: params after the {} timed and warm-up steps against the CPU reference, \
         max |device - reference| / max |reference|\n",
        RUNS + 1
    );
    let values = values(n);
    let param = ctx.upload_f32("param", &values);
    let grad = ctx.upload_f32("grad", &values);
    let copy = ctx.upload_f32("copy", &values);
    let params = [Param::whole(&param, &grad)];

    // A copy reads and writes every byte.
    let bytes = 8 * n as u64;
    let copy_time = timer.median(RUNS, |e| {
        e.copy_buffer_to_buffer(&param, 0, &copy, 0, 4 * n as u64)
    });
    let copy_gbs = bytes as f64 / copy_time.as_secs_f64() / 1e9;
    let kernel = CopyKernel::new(&ctx, &param, &copy, n);
    let kernel_time = timer.median(RUNS, |e| kernel.record(e));
    let kernel_gbs = bytes as f64 / kernel_time.as_secs_f64() / 1e9;
    println!(
        "{:<30} {:>6} {:>8} {:>7} {:>9} {:>11}  check",
        "kernel", "B/elem", "GB/s", "% copy", "% kernel", "elements/s"
    );
    let row = |name: &str, per_element: u64, time: Duration, check: &str| {
        let gbs = (per_element * n as u64) as f64 / time.as_secs_f64() / 1e9;
        println!(
            "{name:<30} {per_element:>6} {gbs:>8.2} {:>7.1} {:>9.1} {:>11.3e}  {check}",
            100.0 * gbs / copy_gbs,
            100.0 * gbs / kernel_gbs,
            n as f64 / time.as_secs_f64()
        );
    };
    row("copy_buffer_to_buffer", 8, copy_time, "");
    row("copy_kernel (copy.wgsl)", 8, kernel_time, "");

    // Each optimizer on the tensor above (the vec4 layout), AdamW with a global-norm clip, and
    // AdamW once more on buffers of exactly n - 1 elements, which end inside a vec4 (the scalar
    // layout).
    let scalar_values = &values[..n - 1];
    let scalar_params = [Param::whole(
        &ctx.upload_f32("param", scalar_values),
        &ctx.upload_f32("grad", scalar_values),
    )];
    let runs = configs()
        .into_iter()
        .map(|(name, config)| (name, config, None, &params, &values[..]))
        .chain([
            (
                "adamw + clip_grad_norm_",
                OptimizerConfig::AdamW(AdamWConfig::default()),
                Some(GradConfig::default().with_max_norm(1.0)),
                &params,
                &values[..],
            ),
            (
                "adamw (scalar layout, n - 1)",
                OptimizerConfig::AdamW(AdamWConfig::default()),
                None,
                &scalar_params,
                scalar_values,
            ),
        ]);
    for (name, config, grad_config, params, values) in runs {
        if !name.contains(filter.as_str()) {
            continue;
        }
        ctx.write_f32(&params[0].param, values)?;
        let mut optimizer = Optimizer::new(&ctx, config.clone(), params)?;
        optimizer.set_grad_processing(grad_config.clone())?;
        let time = timer.median(RUNS, |e| optimizer.step(e));

        let mut reference = reference::Optimizer::new(&config, &[values.len()])?;
        reference.set_grad_processing(grad_config)?;
        let (mut host, grads) = (vec![values.to_vec()], [values.to_vec()]);
        for _ in 0..=RUNS {
            reference.step(&mut host, &grads)?;
        }
        let device = ctx.read_f32(&params[0].param)?;
        // The largest difference, relative to the largest parameter.
        let scale = host[0].iter().fold(0.0_f32, |m, r| m.max(r.abs()));
        let worst = device
            .iter()
            .zip(&host[0])
            .fold(0.0_f32, |m, (d, r)| m.max((d - r).abs()))
            / scale;
        let check = if worst <= 1e-6 {
            format!("ok ({worst:.1e})")
        } else {
            format!("MISMATCH ({worst:.1e})")
        };
        row(name, optimizer.bytes_per_element(), time, &check);
    }

    // AdamW with 16-bit storage: one tensor of n elements in buffers of each type.
    for (name, param, grad, precision) in precisions().into_iter().skip(1) {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let params = vec![typed_tensor(&ctx, &values, param, grad)];
        let config = OptimizerConfig::AdamW(AdamWConfig::default());
        let group = ParamGroup {
            config: config.clone(),
            params: params.clone(),
        };
        let optimizer = Optimizer::with_precision(&ctx, vec![group], precision)?;
        let time = timer.median(RUNS, |e| optimizer.step(e));

        let storage = optimizer.storage();
        let mut reference = reference::Optimizer::with_storage(&config, &[n], storage)?;
        let (mut host, grads) = (vec![values.clone()], [values.clone()]);
        for _ in 0..=RUNS {
            reference.step(&mut host, &grads)?;
        }
        let device = ctx.read_f32(&params[0].param)?;
        // Within two units in the last place of the parameters' type.
        let ulp = match storage.param {
            Dtype::F32 => 2f32.powi(-23),
            Dtype::F16 => 2f32.powi(-10),
            Dtype::BF16 => 2f32.powi(-7),
        };
        let worst = device.iter().zip(&host[0]).fold(0.0_f32, |m, (d, r)| {
            m.max((d - r).abs() / r.abs().max(1e-3))
        });
        let check = if worst <= 2.0 * ulp {
            format!("ok ({worst:.1e})")
        } else {
            format!("MISMATCH ({worst:.1e})")
        };
        // torchao keeps f32 states for a tensor of fewer than 4096 elements or not in whole
        // blocks: said, so the row is not read as 8-bit states' (its bytes are f32 states').
        let name = match storage.quant8 {
            Some(_) if !quantizes(n as u64) => {
                format!("{name} (kept f32: under 4096 or not whole blocks)")
            }
            _ => name.to_string(),
        };
        row(&name, optimizer.bytes_per_element(), time, &check);
    }
    Ok(())
}
