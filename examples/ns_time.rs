//! Batched Newton-Schulz against the same kernels run matrix by matrix, on one adapter, in
//! interleaved rounds (A B A B ...), medians over rounds: `--count` matrices of `--rows` x
//! `--cols`, `--steps` iterations. Batched: one `NewtonSchulz` over every matrix (3 dispatches
//! per iteration whatever the count). Matrix by matrix: one `NewtonSchulz` per matrix, all
//! recorded into the same command buffer (3 dispatches per iteration per matrix), as a loop over
//! `torch.optim.Muon`'s `_zeropower_via_newtonschulz` runs them. Each timed run is one submit
//! and a wait for the device.
//!
//! ```text
//! cargo run --release --example ns_time -- --count 100 --rows 256 --cols 256
//! ```

use std::time::Instant;

use clap::Parser;
use wgpu_optim::matrix::NewtonSchulz;
use wgpu_optim::Context;

#[derive(Parser, Debug)]
#[command(about = "Batched Newton-Schulz vs matrix by matrix, one adapter")]
struct Cli {
    /// Matrices.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Rows of each.
    #[arg(long, default_value_t = 256)]
    rows: usize,
    /// Columns of each.
    #[arg(long, default_value_t = 256)]
    cols: usize,
    /// Newton-Schulz iterations.
    #[arg(long, default_value_t = 5)]
    steps: u32,
    /// Timed runs per round and side.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Rounds (each times both, alternating which goes first).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

const COEFFICIENTS: [f64; 3] = [3.4445, -4.7750, 2.0315];

/// Milliseconds per run of `batches` (each recorded into one command buffer, submitted, waited).
fn time(ctx: &Context, batches: &[NewtonSchulz], runs: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..runs {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        for ns in batches {
            ns.record(&mut encoder);
        }
        ctx.queue().submit([encoder.finish()]);
        ctx.device()
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
    }
    start.elapsed().as_secs_f64() * 1e3 / runs as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let ctx = Context::new_blocking()?;
    let shape = (cli.rows, cli.cols);
    let values: Vec<f32> = (0..cli.rows * cli.cols)
        .map(|i| ((i * 7919 % 1013) as f32 / 1013.0) - 0.5)
        .collect();
    let batched = NewtonSchulz::new(&ctx, &vec![shape; cli.count], COEFFICIENTS, cli.steps, 1e-7)?;
    let mut alone = Vec::with_capacity(cli.count);
    for i in 0..cli.count {
        ctx.write_f32(&batched.input(i)?, &values)?;
        let ns = NewtonSchulz::new(&ctx, &[shape], COEFFICIENTS, cli.steps, 1e-7)?;
        ctx.write_f32(&ns.input(0)?, &values)?;
        alone.push(ns);
    }
    let batched = [batched];
    // Warm-up: pipelines, first-use allocations.
    time(&ctx, &batched, 1);
    time(&ctx, &alone, 1);
    let (mut b, mut a) = (Vec::new(), Vec::new());
    for round in 0..cli.rounds {
        if round % 2 == 0 {
            b.push(time(&ctx, &batched, cli.runs));
            a.push(time(&ctx, &alone, cli.runs));
        } else {
            a.push(time(&ctx, &alone, cli.runs));
            b.push(time(&ctx, &batched, cli.runs));
        }
    }
    let info = ctx.adapter_info();
    println!(
        "adapter {:?}; {} matrices of {} x {}, {} iterations; {} rounds of {} runs, interleaved",
        info.map(|i| i.name.as_str()).unwrap_or("?"),
        cli.count,
        cli.rows,
        cli.cols,
        cli.steps,
        cli.rounds,
        cli.runs
    );
    let dispatches = batched[0].dispatches();
    println!(
        "batched          {dispatches:>6} dispatches  ms median {:.3} (rounds {b:.3?})",
        median(b.clone())
    );
    println!(
        "matrix by matrix {:>6} dispatches  ms median {:.3} (rounds {a:.3?})",
        dispatches * cli.count,
        median(a.clone())
    );
    println!("speedup {:.2}x", median(a) / median(b));
    Ok(())
}
