//! A population of K replicas against K separate optimizers and against one optimizer over the
//! same number of elements: time per step and dispatches per step, interleaved.
//!
//! ```text
//! cargo run --release --example population_time -- [--replicas 8,64] [--rounds 5] [--steps 10]
//!     [--optim adamw|sgd] [--clip-norm X]
//! ```
//!
//! Each replica is a 1M-parameter model (an MLP's 784x1024, 1024, 1024x192, 192, 192x10 and 10
//! tensors: 1,004,234 elements). For each K it builds three setups over the same K models:
//!
//! * `population`: one [`Optimizer::population`] over one arena of every replica's tensors,
//!   each replica a parameter group with its own learning rate (and, with `--clip-norm`, its own
//!   global-norm clip and inf/NaN skip);
//! * `separate`: K optimizers, one per replica, each over an arena of its own (what a search
//!   runs without populations): K times the dispatches;
//! * `one`: one optimizer, one parameter group, over one arena of all K x 1M elements (the
//!   floor: the same bytes, no per-replica anything; with `--clip-norm`, one global norm).
//!
//! Rounds run the three in turn (A B C A B C ...), each timing `--steps` steps of a fresh
//! encoder, submit and wait; the printed figure is the median over rounds of each round's mean
//! step. `population / one` is the population's overhead over the floor (target: at most 1.2).

use std::time::Instant;

use wgpu_optim::{
    AdamWConfig, Arena, Context, GradConfig, Optimizer, OptimizerConfig, ParamGroup, Precision,
    SgdConfig,
};

/// One replica: an MLP for 28x28 inputs, 1M parameters.
const MODEL: [usize; 6] = [784 * 1024, 1024, 1024 * 192, 192, 192 * 10, 10];

struct Args {
    replicas: Vec<usize>,
    rounds: usize,
    steps: usize,
    optim: String,
    clip_norm: Option<f64>,
}

fn parse_args() -> Args {
    let mut a = Args {
        replicas: vec![8, 64],
        rounds: 5,
        steps: 10,
        optim: "adamw".into(),
        clip_norm: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let number = |v: &str| -> usize {
            v.parse()
                .unwrap_or_else(|_| panic!("bad number {v:?} for {}", args[i]))
        };
        match args[i].as_str() {
            "--replicas" => a.replicas = value.split(',').map(number).collect(),
            "--rounds" => a.rounds = number(&value),
            "--steps" => a.steps = number(&value),
            "--optim" => a.optim = value,
            "--clip-norm" => a.clip_norm = Some(value.parse().expect("--clip-norm takes a number")),
            other => panic!("unknown option {other}; see the file's header"),
        }
        i += 2;
    }
    a
}

/// Replica `r`'s configuration: learning rates spread over a decade.
fn config(optim: &str, r: usize) -> OptimizerConfig {
    let lr = 1e-4 * 10f64.powf(r as f64 / 64.0);
    match optim {
        "adamw" => AdamWConfig::default().with_lr(lr).into(),
        "sgd" => SgdConfig::default().with_lr(lr).with_momentum(0.9).into(),
        other => panic!("--optim takes adamw or sgd, not {other}"),
    }
}

/// An arena of `replicas` models with gradients written (values barely matter to the time;
/// they are finite and nonzero).
fn arena(ctx: &Context, replicas: usize) -> wgpu_optim::Result<Arena> {
    let lens = MODEL.repeat(replicas);
    let arena = Arena::new(ctx, &lens)?;
    for (i, &len) in lens.iter().enumerate() {
        let values: Vec<f32> = (0..len).map(|j| ((j % 97) as f32 - 48.0) * 1e-3).collect();
        arena.write_param(i, &values)?;
        arena.write_grad(i, &values)?;
    }
    Ok(arena)
}

/// A setup's optimizers (one, or one per replica) and the arenas they update.
struct Setup {
    name: &'static str,
    optimizers: Vec<Optimizer>,
    _arenas: Vec<Arena>,
}

impl Setup {
    fn dispatches(&self) -> usize {
        self.optimizers
            .iter()
            .map(|o| o.update_dispatches() + o.tail_dispatches())
            .sum()
    }

    /// Mean wall time of `steps` steps, each recorded, submitted and waited for.
    fn time(&self, ctx: &Context, steps: usize) -> wgpu_optim::Result<f64> {
        let start = Instant::now();
        for _ in 0..steps {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            for optimizer in &self.optimizers {
                optimizer.step(&mut encoder);
            }
            ctx.queue().submit([encoder.finish()]);
            ctx.device().poll(wgpu::PollType::wait_indefinitely())?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e3 / steps as f64)
    }
}

fn setups(ctx: &Context, a: &Args, k: usize) -> wgpu_optim::Result<Vec<Setup>> {
    let grad = a.clip_norm.map(|c| GradConfig::default().with_max_norm(c));
    // The population.
    let shared = arena(ctx, k)?;
    let groups = shared
        .params()
        .chunks(MODEL.len())
        .enumerate()
        .map(|(r, params)| ParamGroup {
            config: config(&a.optim, r),
            params: params.to_vec(),
        })
        .collect();
    let mut population = Optimizer::population(ctx, groups, Precision::default())?;
    population.set_grad_processing(grad.clone())?;
    // K optimizers alone.
    let mut separate = Vec::new();
    let mut arenas = Vec::new();
    for r in 0..k {
        let arena = arena(ctx, 1)?;
        let mut optimizer = config(&a.optim, r).build(ctx, &arena.params())?;
        optimizer.set_grad_processing(grad.clone())?;
        separate.push(optimizer);
        arenas.push(arena);
    }
    // One optimizer over every element.
    let all = arena(ctx, k)?;
    let mut one = config(&a.optim, 0).build(ctx, &all.params())?;
    one.set_grad_processing(grad)?;
    Ok(vec![
        Setup {
            name: "population",
            optimizers: vec![population],
            _arenas: vec![shared],
        },
        Setup {
            name: "separate",
            optimizers: separate,
            _arenas: arenas,
        },
        Setup {
            name: "one",
            optimizers: vec![one],
            _arenas: vec![all],
        },
    ])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn main() -> wgpu_optim::Result<()> {
    let a = parse_args();
    let ctx = Context::new_blocking()?;
    if let Some(info) = ctx.adapter_info() {
        println!(
            "adapter: {} ({:?}, {})",
            info.name, info.backend, info.driver_info
        );
    }
    let model: usize = MODEL.iter().sum();
    let clip = a.clip_norm.map_or("none".into(), |c| c.to_string());
    println!(
        "{}: replicas of {model} parameters, clip_norm {clip}; median over {} rounds of {} steps",
        a.optim, a.rounds, a.steps
    );
    println!(
        "{:>4} {:>11} {:>10} {:>11} {:>10} {:>9} {:>10}",
        "K", "setup", "ms/step", "dispatches", "x one", "x alone", "Melem/s"
    );
    for &k in &a.replicas {
        let setups = setups(&ctx, &a, k)?;
        for setup in &setups {
            setup.time(&ctx, 2)?; // warm-up
        }
        let mut times = vec![Vec::new(); setups.len()];
        for _ in 0..a.rounds {
            for (setup, times) in setups.iter().zip(&mut times) {
                times.push(setup.time(&ctx, a.steps)?);
            }
        }
        let medians: Vec<f64> = times.into_iter().map(median).collect();
        let (one, separate) = (medians[2], medians[1]);
        for (setup, ms) in setups.iter().zip(&medians) {
            println!(
                "{k:>4} {:>11} {ms:>10.2} {:>11} {:>10.3} {:>9.3} {:>10.1}",
                setup.name,
                setup.dispatches(),
                ms / one,
                ms / separate,
                (k * model) as f64 / ms / 1e3,
            );
        }
    }
    Ok(())
}
