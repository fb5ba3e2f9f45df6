//! A Muon step against an AdamW step on the credit-risk network's parameters (150 -> 512 ->
//! 256 -> 128 -> 64 -> 1, ten tensors in one arena), on one adapter, in interleaved rounds
//! (A B A B ...), medians over rounds. AdamW: every tensor, as `credit_risk --optim adamw`
//! steps them (decay on the weights, global-norm clip at 1). Muon: the four hidden weights by
//! Muon (`match_rms_adamw`, 5 Newton-Schulz iterations), the output weight and the biases by
//! AdamW, one optimizer and one clip, as `credit_risk --optim muon`. Each timed run is `--steps`
//! steps in one command buffer, one submit and a wait for the device. Also prints the
//! iteration's arithmetic (multiply-adds of the products) and the rate it ran at.
//!
//! ```text
//! cargo run --release --example muon_time -- --steps 5 --rounds 7
//! ```

use std::time::Instant;

use clap::Parser;
use wgpu_optim::{
    AdamWConfig, AdjustLr, Arena, Context, GradConfig, MuonConfig, MuonGroup, Optimizer,
    ParamGroup, Precision,
};

#[derive(Parser, Debug)]
#[command(about = "A Muon step against an AdamW step on the credit-risk weights, one adapter")]
struct Cli {
    /// Steps per timed run.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Rounds (each times both, alternating which goes first).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Newton-Schulz iterations.
    #[arg(long, default_value_t = 5)]
    ns_steps: u32,
}

const WIDTHS: [usize; 6] = [150, 512, 256, 128, 64, 1];

/// Milliseconds per step of `optimizer` (`steps` recorded into one command buffer, submitted,
/// waited).
fn time(ctx: &Context, optimizer: &Optimizer, steps: usize) -> f64 {
    let start = Instant::now();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    for _ in 0..steps {
        optimizer.step(&mut encoder);
    }
    ctx.queue().submit([encoder.finish()]);
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
    start.elapsed().as_secs_f64() * 1e3 / steps as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let ctx = Context::new_blocking()?;
    let lens: Vec<usize> = WIDTHS
        .windows(2)
        .flat_map(|w| [w[0] * w[1], w[1]])
        .collect();
    let arena = Arena::new(&ctx, &lens)?;
    for (i, &len) in lens.iter().enumerate() {
        let values: Vec<f32> = (0..len)
            .map(|k| (((k + i) * 7919 % 1013) as f32 / 1013.0 - 0.5) * 1e-2)
            .collect();
        arena.write_param(i, &values)?;
        arena.write_grad(i, &values)?;
    }
    let params = arena.params();
    let adamw = AdamWConfig::default().with_lr(3e-2);
    let group = |config: AdamWConfig, params: Vec<_>| ParamGroup {
        config: config.into(),
        params,
    };
    let weights: Vec<_> = params.iter().step_by(2).cloned().collect();
    let biases: Vec<_> = params.iter().skip(1).step_by(2).cloned().collect();
    let clip = Some(GradConfig::default().with_max_norm(1.0));
    let mut plain = Optimizer::with_groups(
        &ctx,
        vec![
            group(adamw.clone().with_weight_decay(1e-2), weights.clone()),
            group(adamw.clone().with_weight_decay(0.0), biases.clone()),
        ],
    )?;
    plain.set_grad_processing(clip.clone())?;
    let hidden = weights.len() - 1;
    let muon = MuonGroup {
        config: MuonConfig::default()
            .with_lr(3e-2)
            .with_weight_decay(1e-2)
            .with_ns_steps(cli.ns_steps)
            .with_adjust_lr(AdjustLr::MatchRmsAdamW),
        params: weights[..hidden].to_vec(),
        shapes: WIDTHS.windows(2).take(hidden).map(|w| w.to_vec()).collect(),
    };
    let mut mixed = Optimizer::with_muon(
        &ctx,
        vec![
            group(
                adamw.clone().with_weight_decay(1e-2),
                weights[hidden..].to_vec(),
            ),
            group(adamw.with_weight_decay(0.0), biases),
        ],
        vec![muon],
        Precision::default(),
    )?;
    mixed.set_grad_processing(clip)?;
    // Warm-up: pipelines, first-use allocations.
    time(&ctx, &plain, 1);
    time(&ctx, &mixed, 1);
    let (mut a, mut m) = (Vec::new(), Vec::new());
    for round in 0..cli.rounds {
        if round % 2 == 0 {
            a.push(time(&ctx, &plain, cli.steps));
            m.push(time(&ctx, &mixed, cli.steps));
        } else {
            m.push(time(&ctx, &mixed, cli.steps));
            a.push(time(&ctx, &plain, cli.steps));
        }
    }
    let info = ctx.adapter_info();
    println!(
        "adapter {:?}; credit-risk network {WIDTHS:?}; {} rounds of {} steps, interleaved",
        info.map(|i| i.name.as_str()).unwrap_or("?"),
        cli.rounds,
        cli.steps
    );
    let (a_ms, m_ms) = (median(a.clone()), median(m.clone()));
    println!("adamw  ms/step median {a_ms:.3} (rounds {a:.3?})");
    println!("muon   ms/step median {m_ms:.3} (rounds {m:.3?})");
    println!("muon / adamw {:.1}x", m_ms / a_ms);
    // Each iteration of an m x n matrix (m <= n): G = X X^T (m^2 n), H = b G + c G G (m^3),
    // X <- a X + H X (m^2 n) multiply-adds.
    let macs: f64 = WIDTHS
        .windows(2)
        .take(hidden)
        .map(|w| {
            let (m, n) = (w[0].min(w[1]) as f64, w[0].max(w[1]) as f64);
            2.0 * m * m * n + m * m * m
        })
        .sum::<f64>()
        * f64::from(cli.ns_steps);
    println!(
        "Newton-Schulz: {:.0} M multiply-adds a step; at the Muon step's time {:.1} GFLOP/s",
        macs / 1e6,
        2.0 * macs / (m_ms * 1e-3) / 1e9
    );
    Ok(())
}
