//! Least squares trained with AdamW entirely on the device: a small WGSL kernel computes the
//! gradient, wgpu-optim clips it by global norm and its fused AdamW updates the weights, all
//! recorded into one encoder per step. The gradient norm is logged every 50 steps through a
//! non-blocking readback. The CPU reference trains the same problem beside it.
//!
//! Run: `cargo run --release --example quickstart`

use wgpu_optim::{
    reference, AdamWConfig, Context, ControlReader, GradConfig, OptimizerConfig, Param,
};

const M: usize = 512; // observations
const D: usize = 64; // features
const STEPS: usize = 300;

/// A deterministic stream of values in [-1, 1).
fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// 1/(2m) |A x - b|^2 in f64.
fn loss(a: &[f32], b: &[f32], x: &[f32]) -> f64 {
    let mut total = 0.0;
    for i in 0..M {
        let ax: f64 = (0..D)
            .map(|j| f64::from(a[i * D + j]) * f64::from(x[j]))
            .sum();
        total += (ax - f64::from(b[i])).powi(2);
    }
    total / (2.0 * M as f64)
}

/// The same gradient as quickstart.wgsl, in the same order, on the host.
fn gradient(a: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
    let r: Vec<f32> = (0..M)
        .map(|i| (0..D).fold(0.0_f32, |s, j| s + a[i * D + j] * x[j]) - b[i])
        .collect();
    (0..D)
        .map(|j| (0..M).fold(0.0_f32, |s, i| s + a[i * D + j] * r[i]) / M as f32)
        .collect()
}

fn main() -> wgpu_optim::Result<()> {
    let ctx = Context::new_blocking()?;
    if let Some(info) = ctx.adapter_info() {
        println!(
            "adapter: {} ({:?}, {} {})",
            info.name, info.backend, info.driver, info.driver_info
        );
    }

    // The problem: b = A x_true + noise.
    let mut seed = 42;
    let a: Vec<f32> = (0..M * D).map(|_| lcg(&mut seed)).collect();
    let x_true: Vec<f32> = (0..D).map(|_| lcg(&mut seed)).collect();
    let b: Vec<f32> = (0..M)
        .map(|i| (0..D).map(|j| a[i * D + j] * x_true[j]).sum::<f32>() + 0.01 * lcg(&mut seed))
        .collect();
    let x0 = vec![0.0_f32; D];

    let device = ctx.device();
    let a_buf = ctx.upload_f32("A", &a);
    let b_buf = ctx.upload_f32("b", &b);
    let x_buf = ctx.upload_f32("x", &x0);
    let r_buf = ctx.upload_f32("r", &vec![0.0; M]);
    let g_buf = ctx.upload_f32("grad", &x0);

    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("least squares"),
        source: wgpu::ShaderSource::Wgsl(include_str!("quickstart.wgsl").into()),
    });
    let constants = [("M", M as f64), ("D", D as f64)];
    let pipeline = |entry: &str| {
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            cache: None,
        })
    };
    let (residual, grad) = (pipeline("residual"), pipeline("gradient"));
    let bind = |p: &wgpu::ComputePipeline, buffers: &[(u32, &wgpu::Buffer)]| {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .map(|&(binding, buffer)| wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &p.get_bind_group_layout(0),
            entries: &entries,
        })
    };
    let residual_bg = bind(
        &residual,
        &[(0, &a_buf), (1, &b_buf), (2, &x_buf), (3, &r_buf)],
    );
    let grad_bg = bind(&grad, &[(0, &a_buf), (3, &r_buf), (4, &g_buf)]);

    let config = AdamWConfig::default().with_lr(0.05).with_weight_decay(1e-4);
    let params = [Param::whole(&x_buf, &g_buf)];
    let mut adamw = config.build(&ctx, &params)?;
    // clip_grad_norm_(max_norm=0.5): the first gradients are larger and get scaled down.
    let clip = GradConfig::default().with_max_norm(0.5);
    adamw.set_grad_processing(Some(clip.clone()))?;
    let mut reader = ControlReader::new(&ctx, 2);

    let mut host = reference::Optimizer::new(&OptimizerConfig::AdamW(config.clone()), &[D])?;
    host.set_grad_processing(Some(clip))?;
    let mut host_x = vec![x0.clone()];

    println!(
        "{:>5}  {:>14}  {:>14}  {:>10}  {:>9}",
        "step", "device loss", "reference loss", "grad norm", "clip coef"
    );
    println!(
        "{:>5}  {:>14.6e}  {:>14.6e}",
        0,
        loss(&a, &b, &x0),
        loss(&a, &b, &x0)
    );
    for step in 1..=STEPS {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&residual);
            pass.set_bind_group(0, &residual_bg, &[]);
            pass.dispatch_workgroups(M.div_ceil(64) as u32, 1, 1);
            pass.set_pipeline(&grad);
            pass.set_bind_group(0, &grad_bg, &[]);
            pass.dispatch_workgroups(D.div_ceil(64) as u32, 1, 1);
        }
        adamw.step(&mut encoder);
        if step % 50 == 1 {
            reader.record(&mut encoder, &adamw)?;
        }
        ctx.queue().submit([encoder.finish()]);
        // Copies of the control block arrive a step or more later; nothing waits for them.
        for control in reader.try_read()? {
            println!(
                "{:>5}  {:>14}  {:>14}  {:>10.4e}  {:>9.4}",
                control.step, "", "", control.grad_norm, control.clip_coef
            );
        }

        let host_grad = gradient(&a, &b, &host_x[0]);
        host.step(&mut host_x, &[host_grad])?;

        if step % 50 == 0 {
            let x = ctx.read_f32(&params[0].param)?;
            println!(
                "{step:>5}  {:>14.6e}  {:>14.6e}",
                loss(&a, &b, &x),
                loss(&a, &b, &host_x[0])
            );
        }
    }
    let x = ctx.read_f32(&params[0].param)?;
    let max_diff = x
        .iter()
        .zip(&host_x[0])
        .map(|(d, h)| (d - h).abs())
        .fold(0.0_f32, f32::max);
    println!("steps on the device: {}", adamw.read_step()?);
    println!("largest |device - reference| weight difference: {max_diff:.3e}");
    Ok(())
}
