//! The matrix multiplies of a Newton-Schulz iteration, ours against Burn's `matmul`, on one
//! adapter (feature `burn`), in interleaved rounds, medians over rounds.
//!
//! One iteration on an `n x n` matrix is three products: `G = X X^T`, `G G` and `H X`. Ours:
//! a `NewtonSchulz` of one matrix with `--steps` iterations against one with 1 iteration, the
//! difference divided by `steps - 1` (the norm, load and store cancel out). Burn's: the same
//! three `matmul`s of `n x n` f32 tensors (with the two scalings and additions the iteration
//! needs, as Burn fuses them) on Burn's wgpu backend, then `Device::sync()`.
//!
//! ```text
//! cargo run --release --features burn --example burn_matmul_time -- --n 512
//! ```

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use clap::Parser;
use wgpu_optim::burn::SharedDevice;
use wgpu_optim::matrix::NewtonSchulz;
use wgpu_optim::Context;

#[derive(Parser, Debug)]
#[command(about = "Newton-Schulz's matrix multiplies: ours vs Burn's matmul, one adapter")]
struct Cli {
    /// Side of the square matrix.
    #[arg(long, default_value_t = 512)]
    n: usize,
    /// Iterations of the longer of our two runs.
    #[arg(long, default_value_t = 3)]
    steps: u32,
    /// Rounds (each times both, alternating which goes first).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

const COEFFICIENTS: [f64; 3] = [3.4445, -4.7750, 2.0315];

fn run(ctx: &Context, ns: &NewtonSchulz) -> f64 {
    let start = Instant::now();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ns.record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
    start.elapsed().as_secs_f64() * 1e3
}

/// Ours: milliseconds of one iteration's three products.
fn ours(ctx: &Context, long: &NewtonSchulz, short: &NewtonSchulz, steps: u32) -> f64 {
    (run(ctx, long) - run(ctx, short)) / f64::from(steps - 1)
}

/// Burn's: milliseconds of `G = X X^T; H = b G + c G G; X' = a X + H X`.
fn burns(x: &Tensor<2>, device: &Device) -> f64 {
    let [a, b, c] = COEFFICIENTS.map(|v| v as f32);
    device.sync().expect("sync");
    let start = Instant::now();
    let gram = x.clone().matmul(x.clone().transpose());
    let poly = gram.clone() * b + gram.clone().matmul(gram) * c;
    let next = x.clone() * a + poly.matmul(x.clone());
    device.sync().expect("sync");
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    drop(next);
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    assert!(cli.steps >= 2, "--steps must be at least 2");
    let shared = SharedDevice::new_blocking()?;
    let ctx = shared.context().clone();
    let device = shared.device().clone();
    let n = cli.n;
    let values: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) / n as f32)
        .collect();
    let long = NewtonSchulz::new(&ctx, &[(n, n)], COEFFICIENTS, cli.steps, 1e-7)?;
    let short = NewtonSchulz::new(&ctx, &[(n, n)], COEFFICIENTS, 1, 1e-7)?;
    for ns in [&long, &short] {
        ctx.write_f32(&ns.input(0)?, &values)?;
    }
    let x = Tensor::<2>::from_data(TensorData::new(values, [n, n]), &device);
    // Warm-up: pipelines, Burn's autotune.
    ours(&ctx, &long, &short, cli.steps);
    for _ in 0..3 {
        burns(&x, &device);
    }
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..cli.rounds {
        if round % 2 == 0 {
            theirs.push(burns(&x, &device));
            mine.push(ours(&ctx, &long, &short, cli.steps));
        } else {
            mine.push(ours(&ctx, &long, &short, cli.steps));
            theirs.push(burns(&x, &device));
        }
    }
    let info = ctx.adapter_info();
    println!(
        "adapter {:?}; one Newton-Schulz iteration's products on {n} x {n} f32; {} rounds, interleaved",
        info.map(|i| i.name.as_str()).unwrap_or("?"),
        cli.rounds
    );
    println!(
        "burn matmul   ms median {:.3} (rounds {theirs:.3?})",
        median(theirs.clone())
    );
    println!(
        "wgpu-optim    ms median {:.3} (rounds {mine:.3?})",
        median(mine.clone())
    );
    println!("speedup {:.2}x", median(theirs) / median(mine));
    Ok(())
}
