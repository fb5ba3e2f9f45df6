//! Side by side on one adapter: an optimizer step of a Burn module through
//! `wgpu_optim::burn::FusedOptimizer` against Burn's own AdamW (`ModuleOptimizer`, fused
//! AdamW kernels), on the same parameters and gradients, in interleaved rounds (A B A B ...),
//! medians over rounds. Burn's side is what `../shared/peers/burn-bench` times: K rank-1
//! parameters `Vec<Param<Tensor<1>>>` on an autodiff device totalling N elements, K fixed
//! gradients registered into a fresh `GradientsParams` each step, `optim.step(lr, module,
//! grads)` then `Device::sync()`. Ours is the same loop with our optimizer: every per-step cost
//! of the adapter is inside (walking the module, resolving each gradient through Burn's fusion
//! stream and CubeCL, the copies in and out, the fused update, the submit).
//!
//! `--fresh-grads` makes each step's gradients new tensors (`g * 1`, computed on the device
//! before the step, as a backward pass leaves them), so that CubeCL's pool chooses their ranges
//! anew each step: what a directly bound tensor's rebinding depends on. `--direct-min` sets
//! [`FusedOptimizer::with_direct_binding`] (`0`: copy every tensor).
//!
//! ```text
//! cargo run --release --features burn --example burn_step_time -- --n 1000000 --tensors 1000
//! cargo run --release --features burn --example burn_step_time -- --n 16000000 --tensors 1
//! ```

use std::time::{Duration, Instant};

use burn::module::{Module, Param};
use burn::optim::{AdamWConfig as BurnAdamW, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use clap::Parser;
use wgpu_optim::burn::{FusedOptimizer, SharedDevice};
use wgpu_optim::AdamWConfig;

#[derive(Parser, Debug)]
#[command(about = "Optimizer step time: wgpu-optim's FusedOptimizer vs Burn's AdamW, one adapter")]
struct Cli {
    /// Parameter elements in all.
    #[arg(long, default_value_t = 1_000_000)]
    n: usize,
    /// Tensors they are split into (equal lengths).
    #[arg(long, default_value_t = 1000)]
    tensors: usize,
    /// Timed steps per round and optimizer.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Rounds (each times both, alternating which goes first).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// New gradient tensors each step (`g * 1`), as a backward pass leaves them.
    #[arg(long)]
    fresh_grads: bool,
    /// Bind tensors of at least this many elements in Burn's buffers (0: copy every tensor).
    #[arg(long, default_value_t = wgpu_optim::burn::DIRECT_MIN_ELEMENTS)]
    direct_min: usize,
}

#[derive(Module, Debug)]
struct Params {
    tensors: Vec<Param<Tensor<1>>>,
}

fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn module(lens: &[usize], device: &Device) -> Params {
    let autodiff = device.clone().autodiff();
    Params {
        tensors: lens
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let data = TensorData::new(values(i as u64 + 1, len), [len]);
                Param::from_tensor(Tensor::from_data(data, &autodiff).require_grad())
            })
            .collect(),
    }
}

fn grads(model: &Params, fixed: &[Tensor<1>], fresh: bool) -> GradientsParams {
    let mut grads = GradientsParams::new();
    for (param, grad) in model.tensors.iter().zip(fixed) {
        let grad = if fresh {
            grad.clone() * 1.0
        } else {
            grad.clone()
        };
        grads.register(param.id, grad);
    }
    grads
}

trait Stepper {
    fn step(&mut self, model: Params, grads: GradientsParams) -> Params;
}

struct Burn(burn::optim::ModuleOptimizer);
/// Our optimizer, and how many tensors its steps bound directly and how often it rebuilt.
struct Ours(FusedOptimizer, usize, usize);

impl Stepper for Burn {
    fn step(&mut self, model: Params, grads: GradientsParams) -> Params {
        self.0.step(1e-3, model, grads)
    }
}

impl Stepper for Ours {
    fn step(&mut self, model: Params, grads: GradientsParams) -> Params {
        let model = self.0.step(1e-3, model, grads).expect("a fused step");
        let stats = self.0.last_step().expect("a step was taken");
        self.1 = stats.bound;
        self.2 += stats.rebound;
        model
    }
}

/// Milliseconds per step over `steps` steps, each synchronized; the gradients are made (and
/// synchronized) before each step's clock starts.
fn time(
    stepper: &mut dyn Stepper,
    model: &mut Option<Params>,
    fixed: &[Tensor<1>],
    fresh: bool,
    device: &Device,
    steps: usize,
) -> f64 {
    let mut total = Duration::ZERO;
    for _ in 0..steps {
        let m = model.take().expect("a model");
        let g = grads(&m, fixed, fresh);
        device.sync().expect("sync");
        let start = Instant::now();
        *model = Some(stepper.step(m, g));
        device.sync().expect("sync");
        total += start.elapsed();
    }
    total.as_secs_f64() * 1e3 / steps as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let shared = SharedDevice::new_blocking()?;
    let device = shared.device().clone();
    let info = shared.context().adapter_info().cloned();
    let len = cli.n / cli.tensors;
    let lens = vec![len; cli.tensors];
    let fixed: Vec<Tensor<1>> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            Tensor::from_data(
                TensorData::new(values(1000 + i as u64, len), [len]),
                &device,
            )
        })
        .collect();
    // torch's AdamW settings on both sides (Burn's own defaults: eps 1e-5, weight decay 1e-4).
    let mut burn = Burn(
        BurnAdamW::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(1e-2)
            .init(),
    );
    let direct = (cli.direct_min > 0).then_some(cli.direct_min);
    let optimizer =
        FusedOptimizer::new(&shared, AdamWConfig::default()).with_direct_binding(direct);
    let mut ours = Ours(optimizer, 0, 0);
    let mut burn_model = Some(module(&lens, &device));
    let mut our_model = Some(module(&lens, &device));
    // Warm-up: kernel compilation, autotune, the first step's build.
    time(
        &mut burn,
        &mut burn_model,
        &fixed,
        cli.fresh_grads,
        &device,
        3,
    );
    time(
        &mut ours,
        &mut our_model,
        &fixed,
        cli.fresh_grads,
        &device,
        3,
    );
    let rebuilt_during_warmup = ours.2;
    let (mut theirs, mut mine) = (Vec::new(), Vec::new());
    let mut time_burn = || {
        time(
            &mut burn,
            &mut burn_model,
            &fixed,
            cli.fresh_grads,
            &device,
            cli.steps,
        )
    };
    let mut time_ours = || {
        time(
            &mut ours,
            &mut our_model,
            &fixed,
            cli.fresh_grads,
            &device,
            cli.steps,
        )
    };
    for round in 0..cli.rounds {
        if round % 2 == 0 {
            theirs.push(time_burn());
            mine.push(time_ours());
        } else {
            mine.push(time_ours());
            theirs.push(time_burn());
        }
    }
    let (b, o) = (median(theirs.clone()), median(mine.clone()));
    let timed = cli.rounds * cli.steps;
    println!(
        "adapter {:?} ({:?}); n {} in {} tensors of {}; {} rounds of {} steps, interleaved; {} gradients",
        info.as_ref().map(|i| i.name.as_str()).unwrap_or("?"),
        info.as_ref().map(|i| i.backend),
        cli.n,
        cli.tensors,
        len,
        cli.rounds,
        cli.steps,
        if cli.fresh_grads { "fresh" } else { "the same" }
    );
    println!("burn AdamW          ms/step median {b:.3} (rounds {theirs:.3?})");
    println!("wgpu-optim AdamW    ms/step median {o:.3} (rounds {mine:.3?})");
    println!("speedup {:.2}x", b / o);
    println!(
        "ours: {} of {} tensors bound in Burn's buffers; rebuilt over new ranges {} times in {timed} timed steps",
        ours.1,
        cli.tensors,
        ours.2 - rebuilt_during_warmup
    );
    Ok(())
}
