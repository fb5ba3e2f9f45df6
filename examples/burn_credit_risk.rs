//! The credit-default network of the main job (`examples/credit_risk`) written in Burn: 150
//! attributes -> 512 -> 256 -> 128 -> 64 -> 1 with ReLU, focal loss (gamma 2, alpha 0.75), on the
//! same synthetic customers (2% default), trained twice from the same initialisation on the
//! same batches: with Burn's own AdamW, and with this crate's AdamW through
//! `wgpu_optim::burn::FusedOptimizer` (global-norm clipping, the learning rate of the same
//! warm-up + cosine schedule), on one wgpu device. Several seeds, side by side.
//!
//! ```text
//! cargo run --release --features burn --example burn_credit_risk
//! cargo run --release --features burn --example burn_credit_risk -- --seeds 5 --epochs 4
//! ```
//!
//! Both runs get the same peak learning rate, schedule, betas, eps (1e-8, torch's: Burn's own
//! default is 1e-5) and weight decay (1e-2 on every tensor: Burn's `ModuleOptimizer` takes a
//! group per `ParamGroup`, kept out here so that both decay the same tensors). Clipping differs
//! by design: Burn clips each tensor's gradient by its own norm (its only norm clipping), this
//! crate clips by the global norm, as `torch.nn.utils.clip_grad_norm_` does. The report gives,
//! per run, the steps to the target validation loss (the worse of the two runs' best, unless
//! `--target-loss`), the final validation loss, the test AUC with a bootstrap 95% interval and
//! the test log loss of the final weights, the optimizer's milliseconds per step (the `step`
//! call between two `Device::sync`s: Burn's launches, or our resolving, copying and fused
//! update) and the whole step's (batch upload, forward, backward, optimizer, sync); then the
//! mean and spread over seeds.

#[path = "credit_risk/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "credit_risk/metrics.rs"]
#[allow(dead_code)]
mod metrics;

use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig as BurnAdamW, GradientsParams};
use burn::tensor::{activation, Device, Tensor, TensorData};
use clap::Parser;
use wgpu_optim::burn::{FusedOptimizer, SharedDevice};
use wgpu_optim::{AdamWConfig, GradConfig, LrSchedule, WarmupCosineDecay};

use data::{stratified_rows, Dataset, Generator, Rng};

#[derive(Parser, Debug)]
#[command(
    about = "The credit-default network in Burn, trained with Burn's AdamW and with \
             wgpu-optim's fused AdamW on one wgpu device, side by side"
)]
struct Cli {
    /// Synthetic customers (80% train, 10% validation, 10% test, stratified).
    #[arg(long, default_value_t = 40_000)]
    records: usize,
    /// Epochs over the training split.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Peak learning rate of the warm-up (5% of the steps) + cosine schedule, for both.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// Global-norm clip of ours; Burn's per-tensor clip norm.
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Seeds (initialisation and batch order; the data and split stay): --seed + 0..N.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Validation evaluations per epoch.
    #[arg(long, default_value_t = 4)]
    evals: usize,
    /// The validation focal loss to reach [default: the worse of the two runs' best].
    #[arg(long)]
    target_loss: Option<f64>,
}

/// 150 -> 512 -> 256 -> 128 -> 64 -> 1.
#[derive(Module, Debug)]
struct Net {
    layers: Vec<Linear>,
}

const WIDTHS: [usize; 6] = [150, 512, 256, 128, 64, 1];
const GAMMA: f64 = 2.0;
const ALPHA: f64 = 0.75;

impl Net {
    fn new(device: &Device) -> Net {
        Net {
            layers: WIDTHS
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
        }
    }

    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = activation::relu(x);
            }
        }
        x
    }
}

/// torchvision's `sigmoid_focal_loss`, mean over the batch, in Burn's tensor ops.
fn focal_loss(logits: Tensor<2>, labels: Tensor<2>) -> Tensor<1> {
    let p = activation::sigmoid(logits.clone());
    // Binary cross-entropy with logits, stable: max(z, 0) - z y + log(1 + exp(-|z|)).
    let ce = logits.clone().clamp_min(0.0) - logits.clone() * labels.clone()
        + (logits.abs().neg().exp() + 1.0).log();
    let p_t = p.clone() * labels.clone() + (p.neg() + 1.0) * (labels.clone().neg() + 1.0);
    let alpha_t = labels.clone() * ALPHA + (labels.neg() + 1.0) * (1.0 - ALPHA);
    (alpha_t * (p_t.neg() + 1.0).powf_scalar(GAMMA) * ce).mean()
}

fn upload(set: &Dataset, rows: &[usize], device: &Device) -> (Tensor<2>, Tensor<2>) {
    let f = set.features;
    let mut x = Vec::with_capacity(rows.len() * f);
    let mut y = Vec::with_capacity(rows.len());
    for &r in rows {
        x.extend_from_slice(&set.records[r * f..(r + 1) * f]);
        y.push(set.labels[r]);
    }
    (
        Tensor::from_data(TensorData::new(x, [rows.len(), f]), device),
        Tensor::from_data(TensorData::new(y, [rows.len(), 1]), device),
    )
}

/// The logits of every record of `set` (no autodiff), read back.
fn logits(net: &Net, set: &Dataset, device: &Device) -> Vec<f32> {
    let net = net.valid();
    let rows: Vec<usize> = (0..set.len()).collect();
    let mut out = Vec::with_capacity(set.len());
    for chunk in rows.chunks(4096) {
        let (x, _) = upload(set, chunk, device);
        out.extend(
            net.forward(x)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 logits"),
        );
    }
    out
}

/// Which optimizer a run steps with.
enum Optim {
    Burn(burn::optim::ModuleOptimizer),
    Fused(Box<FusedOptimizer>),
}

impl Optim {
    fn name(&self) -> &'static str {
        match self {
            Optim::Burn(_) => "Burn AdamW, per-tensor clip",
            Optim::Fused(_) => "wgpu-optim AdamW, global clip",
        }
    }

    fn step(&mut self, lr: f64, net: Net, grads: GradientsParams) -> Net {
        match self {
            Optim::Burn(optim) => optim.step(lr, net, grads),
            Optim::Fused(optim) => optim.step(lr, net, grads).expect("a fused step"),
        }
    }
}

struct Run {
    name: &'static str,
    /// (step, validation loss) at each evaluation.
    curve: Vec<(usize, f64)>,
    final_val_loss: f64,
    test_auc: f64,
    test_auc_interval: (f64, f64),
    test_log_loss: f64,
    optimizer_ms: f64,
    step_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Splits {
    train: Dataset,
    val: Dataset,
    test: Dataset,
}

fn train(
    cli: &Cli,
    splits: &Splits,
    device: &Device,
    init: &Net,
    mut optim: Optim,
    seed: u64,
) -> Run {
    let autodiff = device.clone().autodiff();
    // The same initial tensors for both runs: each optimizer's first step writes new ones
    // (neither updates a tensor another module shares).
    let mut net = init.clone();
    let steps_per_epoch = splits.train.len() / cli.batch;
    let total = steps_per_epoch * cli.epochs;
    let schedule = LrSchedule::WarmupCosineDecay(WarmupCosineDecay {
        init_value: 0.0,
        peak_value: cli.lr,
        warmup_steps: (total / 20).max(1) as u64,
        decay_steps: total as u64,
        end_value: 0.0,
        exponent: 1.0,
    });
    let eval_every = (steps_per_epoch / cli.evals.max(1)).max(1);
    let mut rng = Rng::new(seed ^ 0x0BA7_C4E5);
    let (mut optimizer_ms, mut step_ms, mut curve) = (Vec::new(), Vec::new(), Vec::new());
    let mut step = 0;
    for _ in 0..cli.epochs {
        let order = rng.permutation(splits.train.len());
        for batch in order.chunks_exact(cli.batch) {
            let rows: Vec<usize> = batch.iter().map(|&r| r as usize).collect();
            device.sync().expect("sync");
            let start = Instant::now();
            let (x, y) = upload(&splits.train, &rows, &autodiff);
            let loss = focal_loss(net.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            device.sync().expect("sync");
            let before = Instant::now();
            net = optim.step(schedule.lr(cli.lr, step as u64), net, grads);
            device.sync().expect("sync");
            let end = Instant::now();
            optimizer_ms.push((end - before).as_secs_f64() * 1e3);
            step_ms.push((end - start).as_secs_f64() * 1e3);
            step += 1;
            if step % eval_every == 0 || step == total {
                let val = logits(&net, &splits.val, device);
                let loss = metrics::mean_loss(&val, &splits.val.labels, GAMMA, Some(ALPHA));
                curve.push((step, loss));
            }
        }
    }
    let final_val_loss = curve.last().map_or(f64::NAN, |&(_, l)| l);
    let test = logits(&net, &splits.test, device);
    let evaluation = metrics::evaluate(&test, &splits.test.labels, GAMMA, Some(ALPHA));
    Run {
        name: optim.name(),
        curve,
        final_val_loss,
        test_auc: evaluation.auc,
        test_auc_interval: metrics::auc_interval(&test, &splits.test.labels, 1000, seed),
        test_log_loss: evaluation.log_loss,
        optimizer_ms: median(optimizer_ms),
        step_ms: median(step_ms),
    }
}

fn first_reaching(curve: &[(usize, f64)], target: f64) -> Option<usize> {
    curve.iter().find(|&&(_, l)| l <= target).map(|&(s, _)| s)
}

fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let shared = SharedDevice::new_blocking()?;
    let device = shared.device().clone();
    let info = shared
        .context()
        .adapter_info()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    println!("adapter: {info}");

    let all = Generator::new(7).generate(cli.records);
    let [train_rows, val_rows, test_rows] = stratified_rows(&all.labels, 7);
    let mut splits = Splits {
        train: all.select(&train_rows),
        val: all.select(&val_rows),
        test: all.select(&test_rows),
    };
    let moments = splits.train.moments();
    for set in [&mut splits.train, &mut splits.val, &mut splits.test] {
        set.standardize(&moments);
    }
    println!(
        "{} training records ({} defaults), {} validation, {} test; batches of {}, {} epochs, \
         peak lr {}, clip {}",
        splits.train.len(),
        splits.train.positives(),
        splits.val.len(),
        splits.test.len(),
        cli.batch,
        cli.epochs,
        cli.lr,
        cli.clip
    );

    let mut runs: Vec<[Run; 2]> = Vec::new();
    for seed in cli.seed..cli.seed + cli.seeds {
        device.seed(seed);
        let init = Net::new(&device.clone().autodiff());
        let burn_adamw = BurnAdamW::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(1e-2)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(cli.clip as f32)))
            .init();
        let fused = FusedOptimizer::new(
            &shared,
            AdamWConfig::default()
                .with_eps(1e-8)
                .with_weight_decay(1e-2),
        )
        .with_grad(GradConfig::default().with_max_norm(cli.clip));
        let theirs = train(&cli, &splits, &device, &init, Optim::Burn(burn_adamw), seed);
        let ours = train(
            &cli,
            &splits,
            &device,
            &init,
            Optim::Fused(Box::new(fused)),
            seed,
        );
        println!(
            "seed {seed}: final validation loss {:.5} (Burn) vs {:.5} (ours); optimizer {:.2} vs \
             {:.2} ms/step",
            theirs.final_val_loss, ours.final_val_loss, theirs.optimizer_ms, ours.optimizer_ms
        );
        runs.push([theirs, ours]);
    }

    let target = cli.target_loss.unwrap_or_else(|| {
        runs.iter()
            .flatten()
            .map(|r| {
                r.curve
                    .iter()
                    .map(|&(_, l)| l)
                    .fold(f64::INFINITY, f64::min)
            })
            .fold(f64::NEG_INFINITY, f64::max)
    });
    println!("\ntarget validation loss {target:.5} (focal, gamma {GAMMA}, alpha {ALPHA})\n");
    println!(
        "{:<32} {:>5} {:>14} {:>10} {:>9} {:>17} {:>9} {:>12} {:>11}",
        "run",
        "seed",
        "steps to target",
        "val loss",
        "test AUC",
        "95% interval",
        "log loss",
        "optim ms",
        "step ms"
    );
    for (k, pair) in runs.iter().enumerate() {
        for run in pair {
            let steps = first_reaching(&run.curve, target)
                .map_or("not reached".to_string(), |s| s.to_string());
            println!(
                "{:<32} {:>5} {:>14} {:>10.5} {:>9.4} {:>8.4}..{:<8.4} {:>9.5} {:>12.2} {:>11.2}",
                run.name,
                cli.seed + k as u64,
                steps,
                run.final_val_loss,
                run.test_auc,
                run.test_auc_interval.0,
                run.test_auc_interval.1,
                run.test_log_loss,
                run.optimizer_ms,
                run.step_ms
            );
        }
    }
    println!("\nmean ± sd over {} seeds:", runs.len());
    for (i, name) in [
        "Burn AdamW, per-tensor clip",
        "wgpu-optim AdamW, global clip",
    ]
    .iter()
    .enumerate()
    {
        let column =
            |f: &dyn Fn(&Run) -> f64| mean_sd(&runs.iter().map(|p| f(&p[i])).collect::<Vec<_>>());
        let reached = runs
            .iter()
            .filter(|p| first_reaching(&p[i].curve, target).is_some())
            .count();
        let (loss, loss_sd) = column(&|r| r.final_val_loss);
        let (auc, auc_sd) = column(&|r| r.test_auc);
        let (opt, opt_sd) = column(&|r| r.optimizer_ms);
        let (whole, whole_sd) = column(&|r| r.step_ms);
        println!(
            "{name:<32} reached {reached}/{}  val loss {loss:.5} ± {loss_sd:.5}  test AUC \
             {auc:.4} ± {auc_sd:.4}  optimizer {opt:.2} ± {opt_sd:.2} ms  step {whole:.2} ± \
             {whole_sd:.2} ms",
            runs.len()
        );
    }
    Ok(())
}
