//! The mission's training job: a credit-default model (150 customer attributes, hidden layers
//! 512, 256, 128 and 64, one output: the default probability; about 2% positives) trained end
//! to end on the device with focal loss, AdamW with warm-up + cosine annealing and global-norm
//! clipping against SGD with momentum, on the same data, initialisation and step budget.
//!
//! ```text
//! cargo run --release --example credit_risk -- [--records 100000] [--batch-size 1024]
//!     [--epochs 3] [--optim adamw,sgd] [--loss focal|bce] [--target-loss X] [--seed 7]
//!     [--out target/credit_risk] [--evals-per-epoch 4] [--log-every 10] [--timing-repeats 20]
//!     [--precision f32|bf16-states|bf16|bf16-master|bf16-sr]
//!     [--csv FILE --label COLUMN]
//!     [--adamw-lr 0.03] [--sgd-lr 0.5] [--lr X] [--weight-decay X] [--beta1 X] [--momentum X]
//!     [--plateau] [--early-stopping PATIENCE]
//!     [--search random|grid|bayes|halving --trials 16 --restarts 3 [--search-steps 60]
//!      [--search-batch 256] [--population 64]]
//! ```
//!
//! `--search` first searches AdamW's (or, with `--optim sgd`, SGD's) learning rate, weight
//! decay and beta1 (momentum) over `--trials` configurations, each trained from `--restarts`
//! random initialisations for `--search-steps` steps as replicas of one population
//! (`search.rs`): random search, a grid, Bayesian optimisation with expected improvement, or
//! successive halving (rungs 3 times longer, a third of the configurations each). It prints the
//! configurations ranked by mean validation loss over restarts (with the spread), writes every
//! trial to `search.csv` and the ranking to `search_summary.csv`, then retrains the best
//! configuration as below.
//!
//! `--plateau` replaces the cosine decay by PyTorch's `ReduceLROnPlateau` on the validation
//! loss (factor 0.5, patience 1 evaluation) after the warm-up; `--early-stopping P` stops once
//! the validation loss has not improved for P evaluations (Lightning's rule) and restores the
//! best parameters (a device-side snapshot, no host round trip) for the test metrics. The
//! progress output shows a `GradNormMonitor`'s events (vanishing, exploding or skipped steps).
//!
//! `--optim` takes any of the library's optimizers: `adamw`, `sgd` (momentum 0.9), `adam`,
//! `amsgrad`, `adabelief`, `adagrad`, `rmsprop`, `lion`, `adamax`, `nadam`, `radam`, `adadelta`,
//! `adopt`,
//! comma-separated, each run on the same
//! data, initialisation and schedule. AdamW's and SGD's default learning rates come from a
//! sweep (BENCHMARKS.md); the others' (Adam, AMSGrad, AdaBelief 0.03, Adagrad 0.05, RMSprop
//! and Lion 0.003) are starting points, not tuned: `--lr X` sets one for every optimizer run.
//!
//! `--csv FILE --label COLUMN` trains on a table of your own instead: a header row, numeric
//! columns, the label 0 or 1; every other column is an attribute, standardized with the
//! training split's moments (`data::read_csv`; a column constant there is only centred). The
//! table is split 80/10/10 stratified by label, shuffled with `--seed`, so a file sorted by
//! label splits as a shuffled one; a label with fewer than 3 records is refused, as is any
//! split left with a single label (its ROC AUC and precision would be undefined), and every
//! cell must be a finite number in f32, the device's type.
//!
//! A run whose validation logits stop being finite (too high a learning rate) has diverged:
//! it stops there, the report marks it (skipped steps counted, no metrics printed for it), and
//! the example exits with status 1 after the report.
//!
//! Data: `data.rs` generates the records (deterministic from `--seed`), split 80/10/10 into
//! training, validation and test sets in order (the records are independent draws),
//! standardized with the training set's moments. The
//! network: `mlp.rs` (forward and backward passes as WGSL kernels, the ten tensors in one
//! `Arena`). Each training step is one command encoder (gather the batch, forward, loss,
//! backward, optimizer step) submitted without waiting; the loss and the gradient norm are read
//! back every `--log-every` steps without stalling the queue. At each evaluation (four per
//! epoch) the validation logits are read back: loss, ROC AUC, and accuracy, precision and
//! recall at the F1-optimal threshold. At the end: a table per optimizer (steps and seconds to
//! reach the target validation loss, final metrics, the time split between forward, backward
//! and optimizer) and the curves as CSV in `--out`.

// Public so that tests/credit_risk.rs, which includes this file as a module, reaches them.
pub mod data;
pub mod error;
pub mod metrics;
pub mod mlp;
pub mod plots;
pub mod search;
pub mod train_log;

use std::time::Instant;

use data::{Dataset, Generator, Rng};
use error::{Error, Result};
use metrics::{Evaluation, Undefined};
use mlp::{DeviceData, Kernels, Loss, Net, Pass};
use train_log::TrainLog;
use wgpu_optim::{
    AdaBeliefConfig, AdamConfig, AdamWConfig, BufferRange, Context, Control, ControlReader, Dtype,
    EarlyStoppingConfig, GradConfig, GradNormMonitor, LionConfig, LrSchedule, MonitorConfig,
    NormEvent, Optimizer, OptimizerConfig, ParamGroup, PlateauConfig, Precision, SgdConfig,
    Snapshot, WarmupCosineDecay,
};

/// The hidden layers' widths (the inputs are the data's attributes, the output one logit).
const HIDDEN: [usize; 4] = [512, 256, 128, 64];

pub struct Args {
    records: usize,
    batch_size: usize,
    epochs: usize,
    optims: Vec<String>,
    loss: Loss,
    target_loss: Option<f64>,
    seed: u64,
    out: std::path::PathBuf,
    evals_per_epoch: usize,
    log_every: usize,
    /// Waited repetitions of each part of a step for the table's forward / backward /
    /// optimizer split.
    timing_repeats: usize,
    /// How the weights are stored (the network computes in f32) and how the optimizer keeps
    /// its states: `--precision`.
    precision: (Dtype, Precision),
    /// A user's table and its label column, instead of the generator.
    csv: Option<(std::path::PathBuf, String)>,
    /// Peak learning rates.
    adamw_lr: f64,
    sgd_lr: f64,
    /// A peak learning rate for every optimizer run, overriding the defaults.
    lr: Option<f64>,
    /// The weights' weight decay (default: 1e-2 for the optimizers with decoupled decay, none
    /// for the others), AdamW's beta1 and SGD's momentum.
    weight_decay: Option<f64>,
    beta1: f64,
    momentum: f64,
    /// ReduceLROnPlateau after the warm-up instead of cosine decay.
    plateau: bool,
    /// Early stopping's patience, in evaluations.
    early_stopping: Option<usize>,
    /// A hyperparameter search before training.
    search: Option<search::SearchArgs>,
}

fn usage(message: &str) -> ! {
    eprintln!(
        "error: {message}\nusage: credit_risk [--records N] [--batch-size B] [--epochs E] \
         [--optim adamw,sgd] [--loss focal|bce] [--target-loss X] [--seed S] [--out DIR] \
         [--evals-per-epoch K] [--log-every N] [--timing-repeats N] \
         [--precision f32|bf16-states|bf16|bf16-master|bf16-sr] \
         [--csv FILE --label COLUMN] [--adamw-lr X] [--sgd-lr X] [--lr X] \
         [--weight-decay X] [--beta1 X] [--momentum X] [--plateau] [--early-stopping P] \
         [--search random|grid|bayes|halving] [--trials N] [--restarts R] [--search-steps S] \
         [--search-batch B] [--population K]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    parse_args_from(std::env::args().skip(1).collect())
}

/// The arguments in `argv` (the program's name left out); prints the usage and exits with
/// status 2 on a bad one.
pub fn parse_args_from(argv: Vec<String>) -> Args {
    let mut args = Args {
        records: 100_000,
        batch_size: 1024,
        epochs: 3,
        optims: vec!["adamw".into(), "sgd".into()],
        loss: Loss {
            gamma: 2.0,
            alpha: Some(0.75),
        },
        target_loss: None,
        seed: 7,
        out: "target/credit_risk".into(),
        evals_per_epoch: 4,
        log_every: 10,
        timing_repeats: 20,
        precision: (Dtype::F32, Precision::default()),
        csv: None,
        // Each the best of a sweep of the default run (BENCHMARKS.md): AdamW over 1e-3, 3e-3,
        // 1e-2, 3e-2 and 0.1 (diverges), SGD over 0.01 to 1.0.
        adamw_lr: 3e-2,
        sgd_lr: 0.5,
        lr: None,
        weight_decay: None,
        beta1: 0.9,
        momentum: 0.9,
        plateau: false,
        early_stopping: None,
        search: None,
    };
    let mut search = search::SearchArgs {
        driver: String::new(),
        trials: 16,
        restarts: 3,
        steps: 60,
        batch_size: 256,
        population: 64,
    };
    let mut label = None;
    let mut i = 0;
    while i < argv.len() {
        if argv[i] == "--plateau" {
            args.plateau = true;
            i += 1;
            continue;
        }
        let value = argv
            .get(i + 1)
            .unwrap_or_else(|| usage(&format!("{} needs a value", argv[i])));
        let number = |v: &str| -> usize {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("bad number {v}")))
        };
        match argv[i].as_str() {
            "--records" => args.records = number(value),
            "--batch-size" => args.batch_size = number(value),
            "--epochs" => args.epochs = number(value),
            "--evals-per-epoch" => args.evals_per_epoch = number(value).max(1),
            "--log-every" => args.log_every = number(value).max(1),
            "--timing-repeats" => args.timing_repeats = number(value).max(1),
            "--seed" => args.seed = number(value) as u64,
            "--out" => args.out = value.into(),
            "--optim" => args.optims = value.split(',').map(str::to_string).collect(),
            "--csv" => args.csv = Some((value.into(), String::new())),
            "--label" => label = Some(value.clone()),
            "--early-stopping" => args.early_stopping = Some(number(value)),
            "--search" => match value.as_str() {
                "random" | "grid" | "bayes" | "halving" => search.driver = value.clone(),
                other => usage(&format!(
                    "--search takes random, grid, bayes or halving, not {other}"
                )),
            },
            "--trials" => search.trials = number(value).max(1),
            "--restarts" => search.restarts = number(value).max(1),
            "--search-steps" => search.steps = number(value).max(1) as u64,
            "--search-batch" => search.batch_size = number(value).max(1),
            "--population" => search.population = number(value).max(1),
            "--weight-decay" | "--beta1" | "--momentum" => {
                let x: f64 = value.parse().unwrap_or_else(|_| usage("bad number"));
                match argv[i].as_str() {
                    "--weight-decay" => args.weight_decay = Some(x),
                    "--beta1" => args.beta1 = x,
                    _ => args.momentum = x,
                }
            }
            "--adamw-lr" | "--sgd-lr" | "--lr" => {
                let lr: f64 = value.parse().unwrap_or_else(|_| usage("bad learning rate"));
                if !(lr.is_finite() && lr > 0.0) {
                    usage("learning rates are finite and positive");
                }
                match argv[i].as_str() {
                    "--adamw-lr" => args.adamw_lr = lr,
                    "--sgd-lr" => args.sgd_lr = lr,
                    _ => args.lr = Some(lr),
                }
            }
            "--precision" => {
                let states = |d| Precision::default().with_states(d);
                args.precision = match value.as_str() {
                    "f32" => (Dtype::F32, Precision::default()),
                    "bf16-states" => (Dtype::F32, states(Dtype::BF16)),
                    "bf16" => (Dtype::BF16, states(Dtype::BF16)),
                    "bf16-master" => (Dtype::BF16, states(Dtype::F32).with_master_weights()),
                    "bf16-sr" => (Dtype::BF16, states(Dtype::BF16).with_stochastic_rounding(1)),
                    other => usage(&format!(
                        "unknown precision {other} (f32, bf16-states, bf16, bf16-master, \
                         bf16-sr; f16 cannot hold AdamW's squared moments)"
                    )),
                }
            }
            "--target-loss" => {
                args.target_loss =
                    Some(value.parse().unwrap_or_else(|_| usage("bad --target-loss")))
            }
            "--loss" => {
                args.loss = match value.as_str() {
                    "focal" => args.loss,
                    "bce" => Loss {
                        gamma: 0.0,
                        alpha: None,
                    },
                    other => usage(&format!("unknown loss {other}")),
                }
            }
            other => usage(&format!("unknown argument {other}")),
        }
        i += 2;
    }
    match (&mut args.csv, label) {
        (Some((_, column)), Some(label)) => *column = label,
        (Some(_), None) => usage("--csv needs --label COLUMN"),
        (None, Some(_)) => usage("--label goes with --csv"),
        (None, None) => {}
    }
    if args.records < 100 || args.batch_size == 0 {
        usage("need at least 100 records and a batch of at least 1");
    }
    if !search.driver.is_empty() {
        if !matches!(args.optims[0].as_str(), "adamw" | "sgd") {
            usage("--search tunes adamw or sgd (--optim adamw or --optim sgd)");
        }
        args.optims.truncate(1);
        args.search = Some(search);
    }
    args
}

/// Training records resident on the device at once at most; past it they are streamed.
const CHUNK: usize = 200_000;

/// Where the training records come from: all on the device, or regenerated each epoch from
/// the generator's stream and written through a device buffer of `CHUNK` records, so that
/// memory stays bounded whatever `--records` (records are shuffled within each chunk).
enum Source<'a> {
    Resident(&'a DeviceData),
    Streamed {
        generator: &'a Generator,
        /// Records of the stream before the training ones (validation and test).
        skip: usize,
        /// Training records.
        n: usize,
        moments: &'a [(f64, f64)],
        buffer: &'a DeviceData,
    },
}

impl Source<'_> {
    /// The device data a training pass binds.
    fn device(&self) -> &DeviceData {
        match self {
            Source::Resident(data) => data,
            Source::Streamed { buffer, .. } => buffer,
        }
    }

    /// The chunks' lengths, in order.
    fn chunk_lens(&self) -> Vec<usize> {
        match self {
            Source::Resident(data) => vec![data.n],
            Source::Streamed { n, .. } => (0..n.div_ceil(CHUNK))
                .map(|c| CHUNK.min(n - c * CHUNK))
                .collect(),
        }
    }

    /// Calls `chunk(len)` once per chunk of an epoch, each on the device when it is called.
    fn for_each_chunk(
        &self,
        ctx: &Context,
        mut chunk: impl FnMut(usize) -> Result<()>,
    ) -> Result<()> {
        match self {
            Source::Resident(data) => chunk(data.n),
            Source::Streamed {
                generator,
                skip,
                moments,
                buffer,
                ..
            } => {
                let mut stream = generator.stream();
                let _ = stream.take(*skip);
                for len in self.chunk_lens() {
                    let mut records = stream.take(len);
                    records.standardize(moments);
                    buffer.write(ctx, &records.records, &records.labels);
                    chunk(len)?;
                }
                Ok(())
            }
        }
    }
}

/// One optimizer's configuration: its parameter groups (weight decay on weights, not biases)
/// and peak learning rate. Both follow the same warm-up + cosine schedule.
fn optimizer(
    ctx: &Context,
    name: &str,
    net: &Net,
    args: &Args,
) -> Result<(Optimizer, f64, Option<GradConfig>)> {
    let params = net.params();
    let weights: Vec<_> = params.iter().step_by(2).cloned().collect();
    let biases: Vec<_> = params.iter().skip(1).step_by(2).cloned().collect();
    // The weights' configuration (decoupled weight decay 1e-2 where the optimizer has it)
    // and the biases' (no decay); the peak learning rate; clipping at a global norm of 1,
    // but for SGD, whose gradient processing only measures the norm for the log.
    // Any optimizer of the registry by its name in any case (`rmsprop`, `lamb`, `rprop`),
    // and `amsgrad` for Adam's AMSGrad.
    let registered = match name {
        "amsgrad" => AdamConfig::default().with_amsgrad(true).into(),
        _ => OptimizerConfig::defaults()
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| {
                let names: Vec<String> = OptimizerConfig::names()
                    .iter()
                    .map(|n| n.to_lowercase())
                    .collect();
                usage(&format!(
                    "unknown optimizer {name} ({}, amsgrad)",
                    names.join(", ")
                ))
            }),
    };
    // Untuned starting rates but for AdamW's and SGD's (BENCHMARKS.md has their sweep).
    let lr = args.lr.unwrap_or(match name {
        "sgd" => args.sgd_lr,
        "adamw" => args.adamw_lr,
        "adam" | "amsgrad" | "adabelief" | "adamax" | "nadam" | "radam" | "adopt" => 3e-2,
        "adadelta" => 1.0,
        "adagrad" => 5e-2,
        "rmsprop" | "lion" => 3e-3,
        _ => registered.lr(),
    });
    let decay = args.weight_decay.unwrap_or(1e-2);
    let (decayed, plain) = match name {
        "adamw" => {
            let config = AdamWConfig::default()
                .with_lr(lr)
                .with_betas(args.beta1, 0.999);
            (
                config.clone().with_weight_decay(decay).into(),
                config.with_weight_decay(0.0).into(),
            )
        }
        "sgd" => {
            let config = SgdConfig::default()
                .with_lr(lr)
                .with_momentum(args.momentum);
            (
                config
                    .clone()
                    .with_weight_decay(args.weight_decay.unwrap_or(0.0))
                    .into(),
                config.into(),
            )
        }
        "adabelief" => {
            let config = AdaBeliefConfig::default().with_lr(lr);
            (
                OptimizerConfig::AdaBelief(config.clone().with_weight_decay(decay)),
                OptimizerConfig::AdaBelief(config.with_weight_decay(0.0)),
            )
        }
        "lion" => {
            let config = LionConfig::default().with_lr(lr);
            (
                OptimizerConfig::Lion(config.clone().with_weight_decay(decay)),
                OptimizerConfig::Lion(config.with_weight_decay(0.0)),
            )
        }
        _ => {
            let config = registered.with_lr(lr);
            (config.clone(), config)
        }
    };
    let clip = if name == "sgd" {
        Some(GradConfig::default())
    } else {
        Some(GradConfig::default().with_max_norm(1.0))
    };
    let mut optimizer = Optimizer::with_precision(
        ctx,
        vec![
            ParamGroup {
                config: decayed,
                params: weights,
            },
            ParamGroup {
                config: plain,
                params: biases,
            },
        ],
        args.precision.1,
    )?;
    optimizer.set_grad_processing(clip.clone())?;
    Ok((optimizer, lr, clip))
}

/// Reads the batch loss back every few steps without waiting for the device: a ring of
/// staging buffers, each mapped once its copy has run.
struct LossReader {
    slots: Vec<LossSlot>,
}

/// A staging buffer, whether its copy has been mapped (`None`: free; `Some(false)`: in
/// flight), and the step it holds.
type LossSlot = (
    wgpu::Buffer,
    std::sync::Arc<std::sync::Mutex<Option<bool>>>,
    usize,
);

impl LossReader {
    fn new(ctx: &Context, depth: usize) -> LossReader {
        let slots = (0..depth)
            .map(|_| {
                let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("loss readback"),
                    size: 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (buffer, Default::default(), 0)
            })
            .collect();
        LossReader { slots }
    }

    /// Copies `loss` (step `step`'s) into a free slot, mapped once `encoder` has run; false
    /// when every slot is in flight.
    fn record(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        loss: &wgpu::Buffer,
        step: usize,
    ) -> bool {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|(_, state, _)| state.lock().unwrap().is_none())
        else {
            return false;
        };
        encoder.copy_buffer_to_buffer(loss, 0, &slot.0, 0, 16);
        *slot.1.lock().unwrap() = Some(false);
        let state = slot.1.clone();
        slot.2 = step;
        encoder.map_buffer_on_submit(&slot.0, wgpu::MapMode::Read, .., move |result| {
            *state.lock().unwrap() = Some(result.is_ok());
        });
        true
    }

    /// The losses that have arrived: (step, loss).
    fn try_read(&mut self, ctx: &Context) -> Vec<(usize, f32)> {
        let _ = ctx.device().poll(wgpu::PollType::Poll);
        let mut out = Vec::new();
        for (buffer, state, step) in &mut self.slots {
            let mut state = state.lock().unwrap();
            if *state == Some(true) {
                let bytes = buffer
                    .slice(..)
                    .get_mapped_range()
                    .expect("mapped")
                    .to_vec();
                out.push((
                    *step,
                    f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                ));
                buffer.unmap();
                *state = None;
            }
        }
        out.sort_by_key(|&(step, _)| step);
        out
    }
}

/// A progress bar of steps, prefixed with `name`.
fn progress_bar(name: &str) -> indicatif::ProgressBar {
    let progress = indicatif::ProgressBar::new(0);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>5} [{bar:30}] {pos}/{len} steps {msg} ({elapsed}, ETA {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    progress.set_prefix(name.to_string());
    progress
}

/// Prints `line` above the progress bar, or plainly where the bar is hidden (output not a
/// terminal).
fn say(progress: &indicatif::ProgressBar, line: String) {
    if progress.is_hidden() {
        println!("{line}");
    } else {
        progress.println(line);
    }
}

/// One point of the curves.
pub struct Point {
    pub step: usize,
    pub epoch: f64,
    pub seconds: f64,
    pub lr: f64,
    #[allow(dead_code)] // In the log and the progress line.
    pub train_loss: Option<f32>,
    #[allow(dead_code)]
    pub grad_norm: Option<f32>,
    /// `None` where the validation logits were not finite.
    pub val: Option<Evaluation>,
}

/// One optimizer's run, as the report shows it.
pub struct RunResult {
    pub name: String,
    pub curve: Vec<Point>,
    /// Every log point that received a readback, in step order.
    pub log: Vec<train_log::Entry>,
    /// The test metrics, or why there are none (a diverged run's logits are not finite).
    pub test: std::result::Result<Evaluation, Undefined>,
    /// Empty where the test metrics are undefined.
    pub test_roc: Vec<(f64, f64)>,
    /// Seconds per step of forward, backward (with the loss) and optimizer.
    pub split: (f64, f64, f64),
    pub seconds: f64,
    /// The peak learning rate.
    pub lr: f64,
    /// Steps the training loop ran, and of them the steps the optimizer skipped for inf or
    /// NaN gradients (the device's counts at the end).
    pub attempted: usize,
    pub skipped: u32,
    /// The step at which the validation logits stopped being finite: the run stopped there.
    pub diverged_at: Option<usize>,
}

/// Evaluates the network on `data` (all of its records): reads the logits back (blocking);
/// the metrics, or why they are undefined (non-finite logits: the network diverged).
fn evaluate(
    ctx: &Context,
    kernels: &Kernels,
    pass: &Pass,
    data: &DeviceData,
    labels: &[f32],
    all_logits: &wgpu::Buffer,
    loss: Loss,
) -> wgpu_optim::Result<(std::result::Result<Evaluation, Undefined>, Vec<f32>)> {
    let chunks = data.n.div_ceil(pass.rows);
    for chunk in 0..chunks {
        pass.set_batch(ctx, chunk * pass.rows);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut compute = encoder.begin_compute_pass(&Default::default());
            pass.record_forward(kernels, &mut compute);
        }
        let bytes = (pass.rows * 4) as u64;
        encoder.copy_buffer_to_buffer(&pass.logits, 0, all_logits, chunk as u64 * bytes, bytes);
        ctx.queue().submit([encoder.finish()]);
    }
    let logits = ctx.read_f32(&BufferRange::new(all_logits, 0, data.n as u64))?;
    let evaluation = metrics::try_evaluate(
        &logits,
        labels,
        f64::from(loss.gamma),
        loss.alpha.map(f64::from),
    );
    Ok((evaluation, logits))
}

#[allow(clippy::too_many_arguments)]
fn train(
    ctx: &Context,
    kernels: &Kernels,
    args: &Args,
    name: &str,
    (source, val, test): (&Source<'_>, &DeviceData, &DeviceData),
    (val_labels, test_labels): (&[f32], &[f32]),
    prior: f64,
) -> Result<RunResult> {
    let train = source.device();
    let widths: Vec<usize> = std::iter::once(train.features)
        .chain(HIDDEN)
        .chain([1])
        .collect();
    let net = Net::new(ctx, &widths, prior, args.seed, args.precision.0)?;
    let (mut optimizer, peak_lr, _) = optimizer(ctx, name, &net, args)?;
    let pass = Pass::new(ctx, kernels, &net, train, args.batch_size, Some(args.loss))?;
    let eval_rows = 4096.min(val.n).min(test.n);
    let val_pass = Pass::new(ctx, kernels, &net, val, eval_rows, None)?;
    let test_pass = Pass::new(ctx, kernels, &net, test, eval_rows, None)?;
    let logits_buffer = ctx.upload_f32(
        "logits",
        &vec![0.0; val.n.max(test.n).next_multiple_of(eval_rows)],
    );
    let steps_per_epoch: usize = source
        .chunk_lens()
        .iter()
        .map(|len| len / args.batch_size)
        .sum();
    let total = steps_per_epoch * args.epochs;
    let schedule = LrSchedule::WarmupCosineDecay(WarmupCosineDecay {
        init_value: 0.0,
        peak_value: peak_lr,
        warmup_steps: (total / 20).max(1) as u64,
        decay_steps: total as u64,
        end_value: 0.0,
        exponent: 1.0,
    });
    // With --plateau: linear warm-up, then ReduceLROnPlateau owns the learning rate.
    let warmup = (total / 20).max(1);
    let mut plateau = args
        .plateau
        .then(|| {
            PlateauConfig::default()
                .with_factor(0.5)
                .with_patience(1)
                .build()
        })
        .transpose()?;
    // With --early-stopping: the best parameters and optimizer state, saved on the device.
    let mut stopping = args
        .early_stopping
        .map(|patience| {
            EarlyStoppingConfig::default()
                .with_patience(patience)
                .build()
        })
        .transpose()?;
    let snapshot = stopping
        .is_some()
        .then(|| Snapshot::of_optimizer(ctx, &optimizer, &[]))
        .transpose()?;
    let (mut best_step, mut stopped) = (None, false);
    let mut monitor = GradNormMonitor::new(MonitorConfig::default())?;
    let mut control = ControlReader::new(ctx, 4);
    let mut losses = LossReader::new(ctx, 4);
    let mut rng = Rng::new(args.seed ^ 0x5EED);
    let mut curve: Vec<Point> = Vec::new();
    // Keyed by the loop's step: a control block names it as steps taken plus skipped.
    let mut log = TrainLog::default();
    let mut diverged_at = None;
    let eval_every = (steps_per_epoch / args.evals_per_epoch).max(1);
    let progress = progress_bar(name);
    progress.set_length(total as u64);
    let start = Instant::now();
    let (mut last_loss, mut last_norm) = (None, None);
    let mut step: usize = 0;
    for _ in 0..args.epochs {
        if stopped {
            break;
        }
        source.for_each_chunk(ctx, |len| {
        train.set_order(ctx, &rng.permutation(len));
        for s in 0..len / args.batch_size {
            if stopped {
                break;
            }
            let lr = match plateau {
                None => schedule.lr(peak_lr, step as u64),
                Some(_) if step < warmup => peak_lr * (step + 1) as f64 / warmup as f64,
                Some(_) => optimizer.config().lr(),
            };
            if plateau.is_none() || step < warmup {
                optimizer.set_lr(lr)?;
            }
            let logging = step.is_multiple_of(args.log_every);
            // A full ring skips a log point: the readers never wait for the device.
            let mut recorded = Ok(false);
            pass.train_step(ctx, kernels, &optimizer, s * args.batch_size, |encoder| {
                if logging {
                    losses.record(encoder, &pass.loss_value, step + 1);
                    recorded = control.record(encoder, &optimizer);
                    log.expect(step + 1, lr);
                }
            });
            recorded?;
            let arrived = (losses.try_read(ctx), control.try_read()?);
            let any = file_readbacks(
                (name, &progress),
                &mut monitor,
                &mut log,
                arrived,
                (&mut last_loss, &mut last_norm),
            )?;
            progress.set_position((step + 1) as u64);
            if any {
                progress.set_message(format!(
                    "epoch {:.2}  loss {}  lr {lr:.2e}  grad norm {}",
                    (step + 1) as f64 / steps_per_epoch as f64,
                    last_loss.map_or("-".into(), |l| format!("{l:.5}")),
                    last_norm.map_or("-".into(), |n| format!("{n:.3}")),
                ));
            }
            if (step + 1).is_multiple_of(eval_every) || step + 1 == total {
                let evaluation = match evaluate(
                    ctx,
                    kernels,
                    &val_pass,
                    val,
                    val_labels,
                    &logits_buffer,
                    args.loss,
                )?
                .0
                {
                    Ok(evaluation) => Some(evaluation),
                    Err(Undefined::NonFinite { .. }) => None,
                    Err(source) => {
                        return Err(Error::Metrics {
                            split: "validation",
                            source,
                        })
                    }
                };
                let point = Point {
                    step: step + 1,
                    epoch: (step + 1) as f64 / steps_per_epoch as f64,
                    seconds: start.elapsed().as_secs_f64(),
                    lr,
                    train_loss: last_loss,
                    grad_norm: last_norm,
                    val: evaluation,
                };
                say(&progress, format!(
                    "[{name:>5}] epoch {:5.2}  step {:6}  lr {:.2e}  train loss {}  grad norm {}  {}  {:6.1} s",
                    point.epoch,
                    point.step,
                    lr,
                    last_loss.map_or("-".into(), |l| format!("{l:.5}")),
                    last_norm.map_or("-".into(), |n| format!("{n:.3}")),
                    evaluation.map_or("val logits not finite".into(), |e| format!(
                        "val loss {:.5}  val AUC {:.4}",
                        e.loss, e.auc
                    )),
                    point.seconds
                ));
                curve.push(point);
                let Some(evaluation) = evaluation else {
                    say(&progress, format!(
                        "[{name:>5}] diverged at step {}: the validation logits are not finite \
                         ({} steps skipped for inf or NaN gradients so far); stopping this run",
                        step + 1,
                        log.skipped_steps()
                    ));
                    diverged_at = Some(step + 1);
                    stopped = true;
                    step += 1;
                    break;
                };
                if let Some(plateau) = &mut plateau {
                    if step + 1 >= warmup {
                        let changes = plateau.step_optimizer(evaluation.loss, &mut optimizer)?;
                        if let Some(c) = changes.first() {
                            say(&progress, format!(
                                "[{name:>5}] plateau: learning rate {:.2e} -> {:.2e}",
                                c.old, c.new
                            ));
                        }
                    }
                }
                if let (Some(stopping), Some(snapshot)) = (&mut stopping, &snapshot) {
                    let check = stopping.check(evaluation.loss);
                    if check.improved {
                        let mut encoder = ctx.device().create_command_encoder(&Default::default());
                        snapshot.record_save(&mut encoder);
                        ctx.queue().submit([encoder.finish()]);
                        best_step = Some(step + 1);
                    }
                    if check.should_stop {
                        say(&progress, format!(
                            "[{name:>5}] early stopping at step {}: no improvement in {} evaluations",
                            step + 1,
                            stopping.wait_count()
                        ));
                        stopped = true;
                    }
                }
            }
            step += 1;
        }
        Ok(())
        })?;
    }
    let seconds = start.elapsed().as_secs_f64();
    // The readbacks still in flight, waited for now that the loop is over: the log ends at
    // its last recorded step, a diverged run's skipped steps included.
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(wgpu_optim::Error::from)?;
    let arrived = (losses.try_read(ctx), control.try_read()?);
    file_readbacks(
        (name, &progress),
        &mut monitor,
        &mut log,
        arrived,
        (&mut last_loss, &mut last_norm),
    )?;
    progress.finish_and_clear();
    // The device's counts, before a restore puts back the best step's.
    let counters = optimizer.read_control_unchecked()?;
    if let (Some(snapshot), Some(at)) = (&snapshot, best_step) {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        snapshot.record_restore(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        println!("[{name:>5}] restored the parameters of step {at}, the best validation loss");
    }
    let (test_eval, test_logits) = evaluate(
        ctx,
        kernels,
        &test_pass,
        test,
        test_labels,
        &logits_buffer,
        args.loss,
    )?;
    let test_roc = match test_eval {
        Ok(_) => {
            let mut order: Vec<usize> = (0..test_logits.len()).collect();
            order.sort_by(|&a, &b| test_logits[b].total_cmp(&test_logits[a]));
            metrics::roc(&test_logits, test_labels, &order)
        }
        Err(Undefined::NonFinite { .. }) => Vec::new(),
        Err(source) => {
            return Err(Error::Metrics {
                split: "test",
                source,
            })
        }
    };
    let split = time_split(ctx, kernels, &pass, &optimizer, args.timing_repeats)?;
    Ok(RunResult {
        name: name.to_string(),
        curve,
        log: log.entries(),
        test: test_eval,
        test_roc,
        split,
        seconds,
        lr: peak_lr,
        attempted: train_log::attempted(&counters),
        skipped: counters.skipped_steps,
        diverged_at,
    })
}

/// Files the readbacks that have arrived, batch losses (with their steps) and control blocks,
/// into `log` and the last loss and norm, printing the monitor's events; whether any arrived.
fn file_readbacks(
    (name, progress): (&str, &indicatif::ProgressBar),
    monitor: &mut GradNormMonitor,
    log: &mut TrainLog,
    (losses, controls): (Vec<(usize, f32)>, Vec<Control>),
    (last_loss, last_norm): (&mut Option<f32>, &mut Option<f32>),
) -> Result<bool> {
    for &(at, loss) in &losses {
        *last_loss = Some(loss);
        log.loss(at, loss)?;
    }
    for c in &controls {
        for event in monitor.observe(c) {
            // The event names the device's counter, which skipped steps do not advance: name
            // the loop's step, as the log does.
            let line = match event {
                NormEvent::NonFinite {
                    grad_norm,
                    skipped,
                    total_skipped,
                    ..
                } => format!(
                    "step {}: non-finite gradients: {skipped} step(s) skipped since the last \
                     reading ({total_skipped} in all, {} taken; norm {grad_norm})",
                    train_log::attempted(c),
                    c.step
                ),
                other => other.to_string(),
            };
            say(progress, format!("[{name:>5}] {line}"));
        }
        *last_norm = Some(c.grad_norm);
        log.control(c)?;
    }
    Ok(!losses.is_empty() || !controls.is_empty())
}

/// Seconds per step of the forward pass (with the gather), the loss and backward pass, and
/// the optimizer step: `repeats` of each (`--timing-repeats`, default 20), waited for, after
/// the run (wall time on this adapter).
fn time_split(
    ctx: &Context,
    kernels: &Kernels,
    pass: &Pass,
    optimizer: &Optimizer,
    repeats: usize,
) -> wgpu_optim::Result<(f64, f64, f64)> {
    let time = |f: &dyn Fn(&mut wgpu::CommandEncoder)| -> wgpu_optim::Result<f64> {
        let start = Instant::now();
        for _ in 0..repeats {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            f(&mut encoder);
            ctx.queue().submit([encoder.finish()]);
            ctx.device().poll(wgpu::PollType::wait_indefinitely())?;
        }
        Ok(start.elapsed().as_secs_f64() / repeats as f64)
    };
    pass.set_batch(ctx, 0);
    let forward = time(&|e| {
        let mut c = e.begin_compute_pass(&Default::default());
        pass.record_forward(kernels, &mut c);
    })?;
    let both = time(&|e| {
        let mut c = e.begin_compute_pass(&Default::default());
        pass.record_forward(kernels, &mut c);
        pass.record_backward(kernels, &mut c);
    })?;
    let step = time(&|e| optimizer.step(e))?;
    Ok((forward, (both - forward).max(0.0), step))
}

fn main() {
    let args = parse_args();
    let outcome = Context::new_blocking()
        .map_err(Error::from)
        .and_then(|ctx| {
            if let Some(info) = ctx.adapter_info() {
                println!(
                    "adapter: {} ({:?}, {})",
                    info.name, info.backend, info.driver_info
                );
            }
            run(&ctx, args)
        })
        .and_then(|results| verdict(&results));
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// `Err(Error::Diverged)` for the first run that diverged: the report is printed, and the
/// example exits with status 1 rather than pass a diverged run off as a result.
pub fn verdict(results: &[RunResult]) -> Result<()> {
    match results.iter().find(|r| r.diverged_at.is_some()) {
        Some(r) => Err(Error::Diverged {
            optimizer: r.name.clone(),
            step: r.diverged_at.unwrap_or_default(),
            skipped: r.skipped,
            attempted: r.attempted,
            lr: r.lr,
        }),
        None => Ok(()),
    }
}

/// The whole job on `ctx`: data, search, training, report, curves and plots in `args.out`;
/// each optimizer's run. A diverged run is in the report and the results, not an error (see
/// [`verdict`]); a table or a split that cannot give defined metrics is, before any device
/// work.
pub fn run(ctx: &Context, mut args: Args) -> Result<Vec<RunResult>> {
    // ---- data -----------------------------------------------------------------------------
    let t0 = Instant::now();
    let generator = Generator::new(args.seed);
    let streamed = args.csv.is_none() && args.records * 8 / 10 > CHUNK;
    let rate = |d: &Dataset| d.positives() as f64 / d.len() as f64;
    let (mut train_set, mut val_set, mut test_set, n_train);
    if streamed {
        // Validation and test first (at most 100,000 each), then the training records, which
        // are regenerated each epoch and streamed: memory stays bounded. The first training
        // chunk's moments standardize everything.
        let n_eval = (args.records / 10).min(100_000);
        let mut stream = generator.stream();
        val_set = stream.take(n_eval);
        test_set = stream.take(n_eval);
        n_train = args.records - 2 * n_eval;
        train_set = stream.take(CHUNK);
        println!(
            "data: {} synthetic customers, {} attributes; validation {} and test {} ({:.2}% and {:.2}% defaults), then {n_train} training records streamed in chunks of {CHUNK} ({:.2}% defaults in the first)",
            args.records,
            train_set.features,
            val_set.len(),
            test_set.len(),
            100.0 * rate(&val_set),
            100.0 * rate(&test_set),
            100.0 * rate(&train_set),
        );
    } else {
        let all = match &args.csv {
            Some((path, label)) => {
                let csv = |source| Error::Csv {
                    path: path.clone(),
                    source,
                };
                let all = data::read_csv(path, label).map_err(csv)?;
                if all.len() < 100 {
                    return Err(csv(data::DataError::TooFewRecords {
                        records: all.len(),
                        minimum: 100,
                    }));
                }
                // Stratified: a file sorted by label cannot leave a split with one label.
                [train_set, val_set, test_set] = all.split_stratified(args.seed).map_err(csv)?;
                all
            }
            None => {
                // The generator's records are independent draws: split in order.
                let all = generator.generate(args.records);
                let (n_train, n_val) = (all.len() * 8 / 10, all.len() / 10);
                train_set = all.slice(0..n_train);
                val_set = all.slice(n_train..n_train + n_val);
                test_set = all.slice(n_train + n_val..all.len());
                all
            }
        };
        n_train = train_set.len();
        let source = match &args.csv {
            Some((path, _)) => format!("records of {} (split stratified by label)", path.display()),
            None => "synthetic customers".to_string(),
        };
        println!(
            "data: {} {source}, {} attributes, {:.2}% defaults (train {} / validation {} / test {}; {:.1} s)",
            all.len(),
            all.features,
            100.0 * rate(&all),
            train_set.len(),
            val_set.len(),
            test_set.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    // Every split holds both labels, or ROC AUC and precision would be undefined.
    for (set, split) in [
        (&train_set, "training"),
        (&val_set, "validation"),
        (&test_set, "test"),
    ] {
        set.check_labels(split)?;
    }
    if args.batch_size > train_set.len() {
        return Err(Error::BatchTooLarge {
            batch: args.batch_size,
            records: train_set.len(),
        });
    }
    let moments = train_set.moments();
    let constant: Vec<String> = (0..moments.len())
        .filter(|&c| moments[c].1 == 0.0)
        .map(|c| train_set.name(c))
        .collect();
    if !constant.is_empty() {
        println!(
            "note: constant in the training split, so only centred (no information for the \
             model): {}",
            constant.join(", ")
        );
    }
    for (set, split) in [
        (&mut train_set, "training"),
        (&mut val_set, "validation"),
        (&mut test_set, "test"),
    ] {
        set.try_standardize(&moments, split)?;
    }
    let eval_rows = 4096.min(val_set.len()).min(test_set.len());
    let upload =
        |d: &Dataset, pad: usize| DeviceData::upload(ctx, &d.records, &d.labels, d.features, pad);
    let train_data = if streamed {
        DeviceData::with_capacity(ctx, CHUNK, train_set.features)
    } else {
        upload(&train_set, 1)
    };
    let val_data = upload(&val_set, eval_rows);
    let test_data = upload(&test_set, eval_rows);
    let source = if streamed {
        Source::Streamed {
            generator: &generator,
            skip: val_set.len() + test_set.len(),
            n: n_train,
            moments: &moments,
            buffer: &train_data,
        }
    } else {
        Source::Resident(&train_data)
    };
    let kernels = Kernels::new(ctx, args.precision.0);
    println!(
        "model: {} -> {} (ReLU) -> 1, {} loss; batches of {}, {} epochs of {} steps",
        train_set.features,
        HIDDEN
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" -> "),
        if args.loss.gamma > 0.0 {
            "focal (gamma 2, alpha 0.75)"
        } else {
            "cross-entropy"
        },
        args.batch_size,
        args.epochs,
        source
            .chunk_lens()
            .iter()
            .map(|len| len / args.batch_size)
            .sum::<usize>()
    );

    // ---- search ---------------------------------------------------------------------------
    if let Some(search_args) = args.search.take() {
        let Source::Resident(train_data) = &source else {
            return Err(Error::SearchStreamed(args.records));
        };
        let optim = args.optims[0].clone();
        let widths: Vec<usize> = std::iter::once(train_set.features)
            .chain(HIDDEN)
            .chain([1])
            .collect();
        println!(
            "search: {} over {} (lr, weight decay, {}), {} configurations x {} restarts, {} steps of {} records each, populations of up to {} replicas",
            search_args.driver,
            optim,
            if optim == "sgd" { "momentum" } else { "beta1" },
            search_args.trials,
            search_args.restarts,
            search_args.steps,
            search_args.batch_size,
            search_args.population
        );
        let mut objective = search::Replicas::new(
            ctx,
            &kernels,
            train_data,
            (&val_data, &val_set.labels),
            widths,
            (rate(&train_set), &optim, args.loss),
            (args.seed, args.log_every),
            &search_args,
        );
        let results = search::run(&search_args, &optim, args.seed, &mut objective)?;
        objective.finish();
        println!(
            "\nsearch: {} trials, {} replica steps in {:.1} s ({:.1} replica steps/s)\n{}",
            results.trials().len(),
            objective.replica_steps,
            objective.seconds,
            objective.replica_steps as f64 / objective.seconds,
            results.table(10)
        );
        for (file, contents) in [
            ("search.csv", results.to_csv()),
            ("search_summary.csv", results.summary_csv()),
        ] {
            write_output(&args.out, file, &contents)?;
        }
        let best = results.best().ok_or(Error::SearchDiverged {
            trials: results.trials().len(),
        })?;
        let value = |name: &str| {
            let at = results.names().iter().position(|n| n == name);
            at.map(|i| best.values[i])
        };
        args.lr = value("lr");
        args.weight_decay = value("weight_decay");
        args.beta1 = value("beta1").unwrap_or(args.beta1);
        args.momentum = value("momentum").unwrap_or(args.momentum);
        println!(
            "retraining the best configuration (mean validation loss {:.5} over {} restarts): {}\n",
            best.mean,
            best.count,
            results
                .names()
                .iter()
                .zip(&best.values)
                .map(|(n, v)| format!("{n} {v:.4e}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // ---- training -------------------------------------------------------------------------
    let mut results = Vec::new();
    for name in &args.optims {
        results.push(train(
            ctx,
            &kernels,
            &args,
            name,
            (&source, &val_data, &test_data),
            (&val_set.labels, &test_set.labels),
            rate(&train_set),
        )?);
    }
    report(&args, &results)?;
    Ok(results)
}

/// Writes `contents` to `dir/file`, creating `dir`.
fn write_output(dir: &std::path::Path, file: &str, contents: &str) -> Result<()> {
    let failed = |path: &std::path::Path, e: std::io::Error| Error::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let path = dir.join(file);
    std::fs::write(&path, contents).map_err(|e| failed(&path, e))
}

/// The table per optimizer, the curves as CSV and the plots. A diverged run's metrics are
/// not numbers: its cells say so.
fn report(args: &Args, results: &[RunResult]) -> Result<()> {
    // The target: the validation loss every optimizer reaches (the worst of their bests),
    // unless given; runs that never had a finite validation loss take no part.
    let best = |r: &RunResult| {
        r.curve
            .iter()
            .filter_map(|p| p.val.map(|v| v.loss))
            .reduce(f64::min)
    };
    let target = args
        .target_loss
        .or_else(|| results.iter().filter_map(best).reduce(f64::max));
    match target {
        Some(target) => println!("\ntarget validation loss: {target:.5}"),
        None => println!("\ntarget validation loss: none (no run had a finite one)"),
    }
    println!(
        "| optimizer | steps to target | seconds to target | final val loss | val AUC | test AUC | threshold | test accuracy | test precision | test recall | forward / backward / optimizer per step |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut reached = Vec::new();
    for r in results {
        let hit = target.and_then(|target| {
            r.curve
                .iter()
                .find(|p| p.val.is_some_and(|v| v.loss <= target))
        });
        reached.push(hit.map(|p| p.step));
        let (f, b, o) = r.split;
        let total = f + b + o;
        let val = match r.curve.last().and_then(|p| p.val) {
            Some(v) => format!("{:.5} | {:.4}", v.loss, v.auc),
            None if r.diverged_at.is_some() => "diverged | -".to_string(),
            None => "- | -".to_string(),
        };
        let test = match &r.test {
            Ok(t) => format!(
                "{:.4} | {:.3} | {:.4} | {:.3} | {:.3}",
                t.auc, t.threshold, t.accuracy, t.precision, t.recall
            ),
            Err(_) => "diverged | - | - | - | -".to_string(),
        };
        println!(
            "| {} | {} | {} | {val} | {test} | {:.1} / {:.1} / {:.1} ms ({:.0}% / {:.0}% / {:.0}%) |",
            r.name,
            hit.map_or("not reached".into(), |p| p.step.to_string()),
            hit.map_or("-".into(), |p| format!("{:.1}", p.seconds)),
            1e3 * f,
            1e3 * b,
            1e3 * o,
            100.0 * f / total,
            100.0 * b / total,
            100.0 * o / total,
        );
    }
    if let [Some(a), Some(s)] = reached[..] {
        println!(
            "\n{} reached the target in {a} steps, {} in {s}: {:.0}% {} steps.",
            results[0].name,
            results[1].name,
            100.0 * (1.0 - a as f64 / s as f64).abs(),
            if a <= s { "fewer" } else { "more" }
        );
    }
    for r in results {
        let mut line = format!(
            "{}: {:.1} s of training, {} steps",
            r.name, r.seconds, r.attempted
        );
        if r.skipped > 0 {
            line += &format!(", {} skipped for inf or NaN gradients", r.skipped);
        }
        if let Some(at) = r.diverged_at {
            line += &format!(
                "; diverged at step {at} (validation logits not finite) and stopped: lower \
                 the learning rate (peak {:e})",
                r.lr
            );
        }
        println!("{line}");
    }

    // ---- curves and plots ----------------------------------------------------------------
    let mut csv = String::from("optimizer,step,epoch,seconds,lr,val_loss,val_auc\n");
    let mut log_csv = String::from("optimizer,step,lr,train_loss,grad_norm,skipped\n");
    let text = |v: Option<f32>| v.map_or(String::new(), |v| v.to_string());
    for r in results {
        for p in &r.curve {
            // Empty where the validation logits were not finite.
            let (loss, auc) = p.val.map_or((String::new(), String::new()), |v| {
                (v.loss.to_string(), v.auc.to_string())
            });
            csv += &format!(
                "{},{},{:.4},{:.2},{:e},{loss},{auc}\n",
                r.name, p.step, p.epoch, p.seconds, p.lr
            );
        }
        for e in &r.log {
            log_csv += &format!(
                "{},{},{:e},{},{},{}\n",
                r.name,
                e.step,
                e.lr,
                text(e.loss),
                text(e.grad_norm),
                u8::from(e.skipped)
            );
        }
    }
    write_output(&args.out, "curves.csv", &csv)?;
    write_output(&args.out, "train_log.csv", &log_csv)?;
    let series: Vec<plots::Series<'_>> = results
        .iter()
        .map(|r| plots::Series {
            name: &r.name,
            train_loss: r
                .log
                .iter()
                .filter_map(|e| e.loss.map(|l| (e.step as f64, f64::from(l))))
                .collect(),
            val_loss: r
                .curve
                .iter()
                .filter_map(|p| p.val.map(|v| (p.step as f64, v.loss)))
                .collect(),
            lr: r.log.iter().map(|e| (e.step as f64, e.lr)).collect(),
            grad_norm: r
                .log
                .iter()
                .filter_map(|e| e.grad_norm.map(|n| (e.step as f64, f64::from(n))))
                .collect(),
            roc: r.test_roc.clone(),
            auc: r.test.as_ref().ok().map(|t| t.auc),
        })
        .collect();
    let written = plots::write(&args.out, &series).map_err(|e| Error::Output {
        path: args.out.clone(),
        message: e.to_string(),
    })?;
    println!(
        "curves: {}, {}; plots: {}",
        args.out.join("curves.csv").display(),
        args.out.join("train_log.csv").display(),
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
