//! Parameter groups over an arena: a linear model `y = W x + b` trained with AdamW, its weight
//! matrix in one group with weight decay and its bias in another without (the classic use of
//! PyTorch's `param_groups`), under a warm-up + cosine schedule, with a checkpoint taken
//! halfway and resumed by a fresh optimizer.
//!
//! Gradients are computed on the host here for brevity; a real model writes them into
//! `arena.grad(i)` from its backward kernels. Both tensors are updated in one dispatch.
//!
//! Run: `cargo run --release --example param_groups`

use wgpu_optim::{
    AdamWConfig, Arena, Context, LrSchedule, Optimizer, OptimizerConfig, ParamGroup,
    WarmupCosineDecay,
};

const IN: usize = 16;
const OUT: usize = 4;
const SAMPLES: usize = 256;
const STEPS: u64 = 400;

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// Mean squared error and its gradients with respect to W (OUT x IN) and b (OUT).
fn loss_and_grads(x: &[f32], y: &[f32], w: &[f32], b: &[f32]) -> (f64, Vec<f32>, Vec<f32>) {
    let (mut loss, mut gw, mut gb) = (0.0, vec![0.0; OUT * IN], vec![0.0; OUT]);
    for s in 0..SAMPLES {
        let xs = &x[s * IN..(s + 1) * IN];
        for o in 0..OUT {
            let pred: f32 = b[o] + (0..IN).map(|i| w[o * IN + i] * xs[i]).sum::<f32>();
            let err = pred - y[s * OUT + o];
            loss += f64::from(err * err);
            gb[o] += 2.0 * err / SAMPLES as f32;
            for i in 0..IN {
                gw[o * IN + i] += 2.0 * err * xs[i] / SAMPLES as f32;
            }
        }
    }
    (loss / (SAMPLES * OUT) as f64, gw, gb)
}

fn main() -> wgpu_optim::Result<()> {
    let ctx = Context::new_blocking()?;
    if let Some(info) = ctx.adapter_info() {
        println!("adapter: {} ({:?})", info.name, info.backend);
    }
    // Data from a known model plus noise.
    let mut seed = 7;
    let x: Vec<f32> = (0..SAMPLES * IN).map(|_| lcg(&mut seed)).collect();
    let true_w: Vec<f32> = (0..OUT * IN).map(|_| lcg(&mut seed)).collect();
    let true_b: Vec<f32> = (0..OUT).map(|_| 3.0 * lcg(&mut seed)).collect();
    let y: Vec<f32> = (0..SAMPLES * OUT)
        .map(|k| {
            let (s, o) = (k / OUT, k % OUT);
            let dot: f32 = (0..IN).map(|i| true_w[o * IN + i] * x[s * IN + i]).sum();
            dot + true_b[o] + 0.01 * lcg(&mut seed)
        })
        .collect();

    // Tensor 0: W, tensor 1: b, in one arena.
    let arena = Arena::new(&ctx, &[OUT * IN, OUT])?;
    let params = arena.params();
    let adamw = OptimizerConfig::AdamW(AdamWConfig::default().with_weight_decay(0.05));
    let no_decay = adamw.with_weight_decay(0.0);
    let groups = vec![
        ParamGroup {
            config: adamw,
            params: params[..1].to_vec(),
        },
        ParamGroup {
            config: no_decay,
            params: params[1..].to_vec(),
        },
    ];
    let mut optimizer = Optimizer::with_groups(&ctx, groups.clone())?;
    println!(
        "update dispatches per step: {}",
        optimizer.update_dispatches()
    );

    let schedule = LrSchedule::WarmupCosineDecay(WarmupCosineDecay {
        init_value: 0.0,
        peak_value: 0.05,
        warmup_steps: 40,
        decay_steps: STEPS,
        end_value: 1e-3,
        exponent: 1.0,
    });
    schedule.validate()?;

    let mut checkpoint = None;
    for step in 0..STEPS {
        if step == STEPS / 2 {
            // Save, then carry on with a fresh optimizer that loads it.
            let path = std::env::temp_dir().join("wgpu-optim-param-groups.safetensors");
            optimizer.save_checkpoint(&path)?;
            optimizer = Optimizer::with_groups(&ctx, groups.clone())?;
            optimizer.load_checkpoint_file(&path)?;
            std::fs::remove_file(&path).ok();
            checkpoint = Some(step);
        }
        let (w, b) = (arena.read_param(0)?, arena.read_param(1)?);
        let (loss, gw, gb) = loss_and_grads(&x, &y, &w, &b);
        arena.write_grad(0, &gw)?;
        arena.write_grad(1, &gb)?;
        optimizer.set_lr(schedule.lr(0.0, step))?;
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        if step % 50 == 0 {
            println!(
                "step {step:>4}  lr {:.4}  loss {loss:.6}",
                schedule.lr(0.0, step)
            );
        }
    }
    let b = arena.read_param(1)?;
    println!(
        "resumed from a checkpoint at step {}; step counter now {}",
        checkpoint.unwrap_or(0),
        optimizer.read_step()?
    );
    println!("bias learned {b:.3?}\nbias true    {true_b:.3?}");
    Ok(())
}
