//! The mission's training job: a credit-default model (150 customer attributes, hidden layers
//! 512, 256, 128 and 64, one output: the default probability; about 2% positives) trained end
//! to end on the device with focal loss, AdamW with warm-up + cosine annealing and global-norm
//! clipping against SGD with momentum, on the same data, initialisation and step budget,
//! beside a logistic regression trained by the same library. Or the same on a bank's own
//! table (`--csv FILE --label COLUMN`).
//!
//! ```text
//! cargo run --release --example credit_risk -- --help
//! cargo run --release --example credit_risk                      # synthetic customers
//! cargo run --release --example credit_risk -- --csv loans.csv --label default --positive Yes
//! cargo run --release --example credit_risk -- --seeds 3          # mean and spread over seeds
//! ```
//!
//! The command line is clap's (`Cli`): every option with its default in `--help`, values typed
//! and checked (learning rates finite and positive, betas in [0, 1)), a later value of an
//! option replacing an earlier one, combinations that cannot be honoured refused (`--records`
//! with `--csv`).
//!
//! **Your own table** (`table.rs`, read with the `csv` crate): a header row; fields quoted or
//! not; `,`, `;`, tab or `|` (sniffed, or `--delimiter`); a byte-order mark. Numeric columns are
//! standardized with the training split's moments; text columns one-hot encoded (the
//! `--max-categories` most frequent values of the training split, the rest "other"); missing
//! values (empty, `NA`, `nan`, `?` and pandas' other spellings) imputed from the training split
//! (median, or the most frequent value) with a 0/1 column marking them; columns constant or
//! all missing in the training split dropped. The label is 0/1, or text with `--positive
//! VALUE` naming the default. The table is split 80/10/10 stratified by the label, shuffled
//! with `--seed` (or by `--split-column`), so a file sorted by outcome splits as a shuffled one;
//! a split without a default or without a non-default is refused. Every refusal names the
//! line, the column and the fix; a summary says what was done to each column.
//!
//! **Defaults that depend on the data** (`plan`): on the synthetic data the swept ones
//! (batches of 1024, 3 epochs, 4 evaluations per epoch, focal loss, AdamW 0.03 and SGD 0.5:
//! BENCHMARKS.md; AdamW 0.01 with `--precision 8bit-states`: README); on a table, batches of
//! the largest power of two up to a sixteenth of the training split (32 to 1024; a batch
//! larger than the split is capped at it), epochs for about 2,000 steps (3 to 200),
//! cross-entropy (focal loss with alpha 0.75 distorts the probabilities a risk modeller reads
//! as PDs), SGD's weight decay 5e-4, and each optimizer's peak learning rate from a
//! learning-rate range test (`lr_find`: Smith's test as fastai runs it, 100 steps from 1e-6
//! to 10, a tenth of the rate of the lowest smoothed loss) unless `--lr`, `--adamw-lr` or
//! `--sgd-lr` gives one (`--no-lr-find`: the synthetic rates).
//!
//! **Early stopping** is on (`--early-stopping 5`: five evaluations without a better validation
//! loss, Lightning's rule; 0 turns it off): the best weights are saved on the device (a
//! `Snapshot`, no host round trip) and restored, and every reported metric, validation and
//! test, is theirs. **The logistic-regression baseline** (`logistic`, `--no-baseline` to skip)
//! is one linear layer trained by the same library, with the first optimizer of `--optim`, the
//! same schedule and its own range-tested rate (unless `--lr`). **The report**: per run the
//! steps and seconds to the target validation loss (the worst of the optimizer runs' bests, or
//! `--target-loss`), the kept step, the test AUC with a bootstrap 95% interval, log loss and
//! Brier score whatever loss trained, the expected calibration error, precision and recall at
//! the F1-optimal threshold, and the time split between forward, backward and optimizer; the
//! base rate's log loss and Brier score (what a model must beat); with `--seeds N` the mean
//! and spread over seeds (`--seed` + 0..N: initialisation and batch order vary, the split
//! stays). Which optimizer reaches the target first is claimed only over several seeds, as the
//! count of seeds where it did, and never when a run of either did not learn (an AUC of 0.5 or
//! less, or a constant predictor: `learned`).
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
//! loss (factor 0.5, patience 1 evaluation) after the warm-up. The progress output shows a
//! `GradNormMonitor`'s events (vanishing, exploding or skipped steps).
//!
//! `--optim` takes any of the library's optimizers: `adamw`, `sgd` (momentum 0.9), `adam`,
//! `amsgrad`, `adabelief`, `adagrad`, `rmsprop`, `lion`, `adamax`, `nadam`, `radam`, `adadelta`,
//! `adopt`, ..., comma-separated, each run on the same data, initialisation and schedule;
//! `muon` is Muon on the hidden layers' weights (Moonshot's `match_rms_adamw` adjustment, so
//! AdamW's rate and weight decay) beside AdamW on the output layer and the biases, one
//! optimizer, one clip. On the synthetic data the others' rates (Adam, AMSGrad, AdaBelief 0.03,
//! Adagrad 0.05, RMSprop and Lion 0.003) are starting points, not tuned.
//!
//! A run whose validation logits stop being finite (too high a learning rate) has diverged:
//! it stops there, the report marks it (skipped steps counted), and the example exits with
//! status 1 after the report.
//!
//! Data: `data.rs` generates the records (deterministic from `--seed`), split 80/10/10 into
//! training, validation and test sets in order (the records are independent draws),
//! standardized with the training set's moments. The network: `mlp.rs` (forward and backward
//! passes as WGSL kernels, the ten tensors in one `Arena`). Each training step is one command
//! encoder (gather the batch, forward, loss, backward, optimizer step) submitted without
//! waiting; the loss and the gradient norm are read back every `--log-every` steps without
//! stalling the queue. At each evaluation the validation logits are read back. Written to
//! `--out`: `curves.csv`, `train_log.csv`, `results.csv` (every run's metrics), `lr_find.csv`,
//! and plots of the losses, learning rates, gradient norms, ROC curves and calibration.

// Public so that tests/credit_risk.rs, which includes this file as a module, reaches them.
pub mod data;
pub mod error;
pub mod metrics;
pub mod mlp;
pub mod plots;
pub mod search;
pub mod table;
pub mod train_log;

use std::time::Instant;

use data::{Dataset, Generator, Rng};
use error::{Error, Result};
use metrics::{Evaluation, Undefined};
use mlp::{DeviceData, Kernels, Loss, Net, Pass};
use train_log::TrainLog;
use wgpu_optim::{
    AdaBeliefConfig, AdamConfig, AdamWConfig, AdjustLr, BufferRange, Context, Control,
    ControlReader, Dtype, EarlyStoppingConfig, GradConfig, GradNormMonitor, LionConfig, LrSchedule,
    MonitorConfig, MuonConfig, MuonGroup, NormEvent, Optimizer, OptimizerConfig, ParamGroup,
    PlateauConfig, Precision, SgdConfig, Snapshot, WarmupCosineDecay,
};

/// The hidden layers' widths (the inputs are the data's attributes, the output one logit).
const HIDDEN: [usize; 4] = [512, 256, 128, 64];

/// The command line, as clap parses it (`--help` prints it); [`Args`] is what the job runs
/// with once the defaults that depend on the data are settled.
#[derive(clap::Parser, Debug)]
#[command(
    name = "credit_risk",
    // A later value of an argument replaces an earlier one.
    args_override_self = true,
    // `--lr -1` is a value to refuse by name, not an unknown flag.
    allow_negative_numbers = true,
    about = "Trains a credit-default network on the device (AdamW + cosine against SGD, \
             beside a logistic regression), on synthetic customers or on your own CSV table.",
    after_help = "Your own table: --csv FILE --label COLUMN [--positive VALUE]. Text columns \
                  are one-hot encoded, missing values (empty, NA, nan, ?) imputed from the \
                  training split with an indicator column, the split stratified by the label \
                  and shuffled with --seed. See README.md, \"Your own data\"."
)]
struct Cli {
    /// Synthetic customers to generate (not with --csv).
    #[arg(long, default_value_t = 100_000, conflicts_with = "csv")]
    records: usize,
    /// Records per training step [default: 1024, capped for a small table at a sixteenth of
    /// its training split, at least 32].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: Option<u32>,
    /// Passes over the training split [default: 3 on synthetic data; on a table, enough for
    /// about 2,000 steps, 3 to 200].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
    /// Optimizers to compare, comma-separated: adamw, sgd, adam, amsgrad, adabelief,
    /// adagrad, rmsprop, lion, adamax, nadam, radam, adadelta, adopt, muon (Muon on the
    /// hidden weights, AdamW on the rest), ...
    #[arg(long = "optim", value_delimiter = ',', default_value = "adamw,sgd")]
    optims: Vec<String>,
    /// The training loss [default: focal on synthetic data; bce on a table, whose predicted
    /// probabilities a risk modeller reads as PDs]. Log loss is reported whatever trains.
    #[arg(long, value_enum)]
    loss: Option<LossArg>,
    /// The validation log loss whose steps and seconds the table reports [default: the worst
    /// of the runs' bests].
    #[arg(long)]
    target_loss: Option<f64>,
    /// Seeds the data, its split and the first run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Runs per optimizer, seeds --seed, --seed + 1, ...: initialisation and batch order vary,
    /// the split stays; the report gives their mean and spread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    seeds: u32,
    /// Where the curves, tables and plots go.
    #[arg(long, default_value = "target/credit_risk")]
    out: std::path::PathBuf,
    /// Validation evaluations per epoch [default: 4 on synthetic data; on a table, 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    evals_per_epoch: Option<u32>,
    /// Steps between readbacks of the batch loss and the gradient norm.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    log_every: u32,
    /// Waited repetitions of each part of a step for the forward / backward / optimizer split.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    timing_repeats: u32,
    /// How the weights are stored (the network computes in f32) and the optimizer's states
    /// (f16 cannot hold AdamW's squared moments).
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    /// A table of your own instead of synthetic customers: a CSV file with a header row.
    #[arg(long, requires = "label")]
    csv: Option<std::path::PathBuf>,
    /// The label column of --csv: 0/1, or text with --positive.
    #[arg(long, requires = "csv")]
    label: Option<String>,
    /// The label value that marks a default, for a text label (e.g. bad, Yes).
    #[arg(long, requires = "csv")]
    positive: Option<String>,
    /// The field delimiter of --csv [default: sniffed from the header among , ; tab |].
    #[arg(long, requires = "csv", value_parser = delimiter)]
    delimiter: Option<u8>,
    /// A column of --csv that names each record's split (train, validation, test) instead of
    /// a stratified shuffle.
    #[arg(long, requires = "csv")]
    split_column: Option<String>,
    /// One-hot columns per text column of --csv; rarer values share "other".
    #[arg(long, default_value_t = 20, requires = "csv", value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_categories: u32,
    /// AdamW's peak learning rate [default: 0.03 on synthetic data (a sweep, BENCHMARKS.md),
    /// 0.01 with 8-bit states (README); on a table, a learning-rate range test's].
    #[arg(long, value_parser = positive)]
    adamw_lr: Option<f64>,
    /// SGD's peak learning rate [default: 0.5 on synthetic data; on a table, the range
    /// test's].
    #[arg(long, value_parser = positive)]
    sgd_lr: Option<f64>,
    /// One peak learning rate for every optimizer run (and the baseline).
    #[arg(long, value_parser = positive)]
    lr: Option<f64>,
    /// Weight decay of the weights [default: 1e-2 where decay is decoupled, else 0 on
    /// synthetic data and 5e-4 on a table].
    #[arg(long, value_parser = non_negative)]
    weight_decay: Option<f64>,
    /// AdamW's beta1.
    #[arg(long, default_value_t = 0.9, value_parser = unit)]
    beta1: f64,
    /// SGD's momentum.
    #[arg(long, default_value_t = 0.9, value_parser = unit)]
    momentum: f64,
    /// ReduceLROnPlateau on the validation loss after the warm-up, instead of cosine decay.
    #[arg(long)]
    plateau: bool,
    /// Evaluations without improvement before a run stops; its best weights are restored and
    /// every metric is theirs. 0 turns early stopping off (the last weights are reported).
    #[arg(long, default_value_t = 5)]
    early_stopping: u32,
    /// No learning-rate range test on a table: the synthetic data's rates instead.
    #[arg(long)]
    no_lr_find: bool,
    /// No logistic-regression baseline.
    #[arg(long)]
    no_baseline: bool,
    /// A hyperparameter search of --optim's first optimizer (adamw or sgd) before training.
    #[arg(long, value_enum)]
    search: Option<SearchDriver>,
    /// Configurations the search tries.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    trials: u32,
    /// Random initialisations per configuration.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    restarts: u32,
    /// Training steps of a trial.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    search_steps: u64,
    /// Records per step of a trial.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    search_batch: u32,
    /// Most replicas trained as one population.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    population: u32,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LossArg {
    /// Focal loss, gamma 2, alpha 0.75 (torchvision's sigmoid_focal_loss).
    Focal,
    /// Binary cross-entropy.
    Bce,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PrecisionArg {
    F32,
    /// The optimizer's states 8-bit block-quantized where torchao's AdamW8bit would.
    #[value(name = "8bit-states")]
    EightBitStates,
    Bf16States,
    Bf16,
    Bf16Master,
    Bf16Sr,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SearchDriver {
    Random,
    Grid,
    Bayes,
    Halving,
}

/// A learning rate: finite and positive.
fn positive(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && (x as f32).is_finite() => Ok(x),
        _ => Err(format!("{text:?} is not a finite positive number")),
    }
}

/// A weight decay: finite, 0 or more.
fn non_negative(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && (x as f32).is_finite() => Ok(x),
        _ => Err(format!("{text:?} is not a finite number of 0 or more")),
    }
}

/// A momentum or beta1: in [0, 1).
fn unit(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..1.0).contains(&x) => Ok(x),
        _ => Err(format!("{text:?} is not in [0, 1)")),
    }
}

/// A delimiter: one ASCII character, or `tab` / `\t`.
fn delimiter(text: &str) -> std::result::Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if text.len() == 1 && text.is_ascii() && text != "\"" => Ok(text.as_bytes()[0]),
        _ => Err(format!("{text:?} is not one ASCII character (or tab)")),
    }
}

/// What the job runs with: the command line, its defaults that depend on the data still
/// `None` until [`run`] has read it.
pub struct Args {
    records: usize,
    batch_size: Option<usize>,
    epochs: Option<usize>,
    optims: Vec<String>,
    loss: Option<Loss>,
    target_loss: Option<f64>,
    seed: u64,
    seeds: usize,
    out: std::path::PathBuf,
    evals_per_epoch: Option<usize>,
    log_every: usize,
    /// Waited repetitions of each part of a step for the table's forward / backward /
    /// optimizer split.
    timing_repeats: usize,
    /// How the weights are stored (the network computes in f32) and how the optimizer keeps
    /// its states: `--precision`.
    precision: (Dtype, Precision),
    /// A user's table and how to read it, instead of the generator.
    csv: Option<(std::path::PathBuf, table::TableOptions)>,
    /// Peak learning rates given on the command line.
    adamw_lr: Option<f64>,
    sgd_lr: Option<f64>,
    lr: Option<f64>,
    /// The weights' weight decay (default: 1e-2 for the optimizers with decoupled decay; for
    /// the others none on synthetic data, 5e-4 on a table), AdamW's beta1 and SGD's momentum.
    weight_decay: Option<f64>,
    beta1: f64,
    momentum: f64,
    /// ReduceLROnPlateau after the warm-up instead of cosine decay.
    plateau: bool,
    /// Early stopping's patience, in evaluations (`None`: off).
    early_stopping: Option<usize>,
    /// A learning-rate range test per optimizer where no rate was given (tables).
    lr_find: bool,
    /// The logistic-regression baseline.
    baseline: bool,
    /// A hyperparameter search before training.
    search: Option<search::SearchArgs>,
}

fn parse_args() -> Args {
    parse_args_from(std::env::args().skip(1).collect())
}

/// The arguments in `argv` (the program's name left out); prints clap's message (the usage,
/// or `--help`) and exits (status 2 on a bad argument, 0 for `--help`).
pub fn parse_args_from(argv: Vec<String>) -> Args {
    try_parse_args_from(argv).unwrap_or_else(|e| e.exit())
}

/// The arguments in `argv`, or clap's error (a bad value names the argument and the rule).
pub fn try_parse_args_from(argv: Vec<String>) -> std::result::Result<Args, clap::Error> {
    use clap::Parser;
    let cli = Cli::try_parse_from(std::iter::once("credit_risk".to_string()).chain(argv))?;
    let invalid = |message: String| {
        use clap::CommandFactory;
        Cli::command().error(clap::error::ErrorKind::ValueValidation, message)
    };
    if cli.csv.is_none() && cli.records < 100 {
        return Err(invalid(format!(
            "--records {}: at least 100 synthetic customers are needed",
            cli.records
        )));
    }
    if let Some(name) = cli.optims.iter().find(|n| !known(n)) {
        return Err(invalid(format!(
            "--optim: unknown optimizer {name} ({})",
            optimizer_names()
        )));
    }
    if cli.optims.iter().any(|n| n == "muon")
        && matches!(
            cli.precision,
            PrecisionArg::Bf16 | PrecisionArg::Bf16Master | PrecisionArg::Bf16Sr
        )
    {
        return Err(invalid(
            "--optim muon steps f32 weights (--precision f32 or bf16-states)".into(),
        ));
    }
    // The optimizers 8-bit states are offered for (torchao's and bitsandbytes' own).
    let eight_bit = ["adamw", "adam", "amsgrad", "sgd", "lion", "muon"];
    if matches!(cli.precision, PrecisionArg::EightBitStates)
        && cli
            .optims
            .iter()
            .any(|n| !eight_bit.contains(&n.to_lowercase().as_str()))
    {
        return Err(invalid(
            "--precision 8bit-states is for adamw, adam, amsgrad, sgd, lion and muon".into(),
        ));
    }
    let search = match cli.search {
        None => None,
        Some(driver) => {
            if !matches!(cli.optims[0].as_str(), "adamw" | "sgd") {
                return Err(invalid(
                    "--search tunes adamw or sgd (--optim adamw or --optim sgd)".into(),
                ));
            }
            Some(search::SearchArgs {
                driver: format!("{driver:?}").to_lowercase(),
                trials: cli.trials as usize,
                restarts: cli.restarts as usize,
                steps: cli.search_steps,
                batch_size: cli.search_batch as usize,
                population: cli.population as usize,
            })
        }
    };
    let mut optims = cli.optims;
    if search.is_some() {
        optims.truncate(1);
    }
    let states = |d| Precision::default().with_states(d);
    let precision = match cli.precision {
        PrecisionArg::F32 => (Dtype::F32, Precision::default()),
        PrecisionArg::EightBitStates => (Dtype::F32, Precision::default().with_8bit_states()),
        PrecisionArg::Bf16States => (Dtype::F32, states(Dtype::BF16)),
        PrecisionArg::Bf16 => (Dtype::BF16, states(Dtype::BF16)),
        PrecisionArg::Bf16Master => (Dtype::BF16, states(Dtype::F32).with_master_weights()),
        PrecisionArg::Bf16Sr => (Dtype::BF16, states(Dtype::BF16).with_stochastic_rounding(1)),
    };
    let csv = match (cli.csv, cli.label) {
        (Some(path), Some(label)) => Some((
            path,
            table::TableOptions {
                label,
                positive: cli.positive,
                delimiter: cli.delimiter,
                split_column: cli.split_column,
                max_categories: cli.max_categories as usize,
                seed: cli.seed,
            },
        )),
        _ => None,
    };
    Ok(Args {
        records: cli.records,
        batch_size: cli.batch_size.map(|b| b as usize),
        epochs: cli.epochs.map(|e| e as usize),
        optims,
        loss: cli.loss.map(|l| match l {
            LossArg::Focal => FOCAL,
            LossArg::Bce => BCE,
        }),
        target_loss: cli.target_loss,
        seed: cli.seed,
        seeds: cli.seeds as usize,
        out: cli.out,
        evals_per_epoch: cli.evals_per_epoch.map(|e| e as usize),
        log_every: cli.log_every as usize,
        timing_repeats: cli.timing_repeats as usize,
        precision,
        lr_find: csv.is_some() && !cli.no_lr_find,
        csv,
        adamw_lr: cli.adamw_lr,
        sgd_lr: cli.sgd_lr,
        lr: cli.lr,
        weight_decay: cli.weight_decay,
        beta1: cli.beta1,
        momentum: cli.momentum,
        plateau: cli.plateau,
        early_stopping: (cli.early_stopping > 0).then_some(cli.early_stopping as usize),
        baseline: !cli.no_baseline,
        search,
    })
}

/// torchvision's focal loss with the example's gamma and alpha.
pub const FOCAL: Loss = Loss {
    gamma: 2.0,
    alpha: Some(0.75),
};

/// Binary cross-entropy.
pub const BCE: Loss = Loss {
    gamma: 0.0,
    alpha: None,
};

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

/// The optimizer `name` of the registry (any case: `rmsprop`, `lamb`, `rprop`), or `amsgrad`
/// for Adam's AMSGrad; `None` for a name it does not hold.
fn registered(name: &str) -> Option<OptimizerConfig> {
    match name {
        "amsgrad" => Some(AdamConfig::default().with_amsgrad(true).into()),
        _ => OptimizerConfig::defaults()
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name)),
    }
}

/// Whether `--optim` takes `name`: the registry's, `amsgrad`, and `muon` (Muon on the hidden
/// layers' weights, AdamW on the rest).
fn known(name: &str) -> bool {
    name == "muon" || registered(name).is_some()
}

/// The names `--optim` takes.
fn optimizer_names() -> String {
    let mut names: Vec<String> = OptimizerConfig::names()
        .iter()
        .map(|n| n.to_lowercase())
        .collect();
    names.push("amsgrad".into());
    names.push("muon".into());
    names.join(", ")
}

/// The peak learning rate of `name` where none is given and none is measured: AdamW's and
/// SGD's from a sweep of the synthetic job (BENCHMARKS.md); the others' untuned starting
/// points.
pub fn default_lr(name: &str, args: &Args) -> f64 {
    match name {
        "sgd" => args.sgd_lr.unwrap_or(0.5),
        // 8-bit states: of 0.01, 0.02 and 0.03, 0.01 kept the best validation loss on two
        // synthetic datasets, 5 seeds each (README, "8-bit optimizer states").
        "adamw" if args.precision.1.eight_bit_states => args.adamw_lr.unwrap_or(1e-2),
        // Muon with Moonshot's adjustment (match_rms_adamw) takes AdamW's rate and decay.
        "adamw" | "muon" => args.adamw_lr.unwrap_or(3e-2),
        "adam" | "amsgrad" | "adabelief" | "adamax" | "nadam" | "radam" | "adopt" => 3e-2,
        "adadelta" => 1.0,
        "adagrad" => 5e-2,
        "rmsprop" | "lion" => 3e-3,
        _ => registered(name).map_or(1e-3, |c| c.lr()),
    }
}

/// The peak learning rate given on the command line for `name`, if any.
fn given_lr(name: &str, args: &Args) -> Option<f64> {
    args.lr.or(match name {
        "sgd" => args.sgd_lr,
        "adamw" | "muon" => args.adamw_lr,
        _ => None,
    })
}

/// One optimizer's configuration at peak learning rate `lr`: its parameter groups (weight
/// decay on weights, not biases). Every run follows the same warm-up + cosine schedule.
fn optimizer(
    ctx: &Context,
    name: &str,
    net: &Net,
    args: &Args,
    lr: f64,
) -> Result<(Optimizer, Option<GradConfig>)> {
    let params = net.params();
    let mut weights: Vec<_> = params.iter().step_by(2).cloned().collect();
    let biases: Vec<_> = params.iter().skip(1).step_by(2).cloned().collect();
    // Muon: the hidden layers' weights (every layer's but the output's), each [inputs,
    // outputs] row-major; AdamW for the output layer and the biases, as Muon users pair them.
    let muon = if name == "muon" {
        let hidden = weights.len() - 1;
        let shapes = net
            .widths
            .windows(2)
            .take(hidden)
            .map(|w| w.to_vec())
            .collect();
        let config = MuonConfig::default()
            .with_lr(lr)
            .with_weight_decay(args.weight_decay.unwrap_or(1e-2))
            // Symmetric in the shape (these weights are PyTorch's transposed), and made to
            // take AdamW's rate and decay.
            .with_adjust_lr(AdjustLr::MatchRmsAdamW);
        let params = weights.drain(..hidden).collect();
        vec![MuonGroup {
            config,
            params,
            shapes,
        }]
    } else {
        Vec::new()
    };
    // The weights' configuration (decoupled weight decay 1e-2 where the optimizer has it)
    // and the biases' (no decay); clipping at a global norm of 1, but for SGD, whose
    // gradient processing only measures the norm for the log.
    let registered = registered(if name == "muon" { "adamw" } else { name });
    let registered = registered.ok_or_else(|| Error::UnknownOptimizer {
        name: name.to_string(),
        known: optimizer_names(),
    })?;
    let decay = args.weight_decay.unwrap_or(1e-2);
    // Coupled (L2) decay for SGD: none on the synthetic data, whose 80,000 records do not
    // overfit in three epochs; 5e-4 on a table (the usual SGD setting), which may be small.
    let coupled_decay = if args.csv.is_some() { 5e-4 } else { 0.0 };
    let (decayed, plain) = match name {
        "adamw" | "muon" => {
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
                    .with_weight_decay(args.weight_decay.unwrap_or(coupled_decay))
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
    let groups = vec![
        ParamGroup {
            config: decayed,
            params: weights,
        },
        ParamGroup {
            config: plain,
            params: biases,
        },
    ];
    let mut optimizer = Optimizer::with_muon(ctx, groups, muon, args.precision.1)?;
    optimizer.set_grad_processing(clip.clone())?;
    Ok((optimizer, clip))
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
    /// The run's seed (initialisation and batch order).
    pub seed: u64,
    /// The validation and test metrics of the weights kept (the best validation loss's under
    /// early stopping), or why there are none (a diverged run's logits are not finite).
    pub val: std::result::Result<Evaluation, Undefined>,
    pub test: std::result::Result<Evaluation, Undefined>,
    /// The kept weights' test logits, for the bootstrap interval and the calibration.
    pub test_logits: Vec<f32>,
    /// The step whose weights were kept.
    pub kept_step: usize,
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

/// The settings of every run that depend on the data: set once it is read.
pub struct Plan {
    pub batch_size: usize,
    pub epochs: usize,
    pub evals_per_epoch: usize,
    /// The training loss (early stopping and the target watch its validation value).
    pub loss: Loss,
}

/// One run: an optimizer, or the logistic-regression baseline, from one seed.
#[derive(Clone)]
pub struct RunSpec {
    /// As the report shows it: `adamw`, `sgd`, `logistic`.
    pub name: String,
    /// The optimizer (the baseline's: the first of `--optim`).
    pub optim: String,
    /// The initialisation's and the batch order's.
    pub seed: u64,
    /// The peak learning rate.
    pub lr: f64,
    /// The hidden layers' widths: `HIDDEN`, or none for the baseline.
    pub hidden: Vec<usize>,
}

fn train(
    ctx: &Context,
    kernels: &Kernels,
    (args, plan, spec): (&Args, &Plan, &RunSpec),
    (source, val, test): (&Source<'_>, &DeviceData, &DeviceData),
    (val_labels, test_labels): (&[f32], &[f32]),
    prior: f64,
) -> Result<RunResult> {
    let name = spec.name.as_str();
    let train = source.device();
    let widths: Vec<usize> = std::iter::once(train.features)
        .chain(spec.hidden.iter().copied())
        .chain([1])
        .collect();
    let net = Net::new(ctx, &widths, prior, spec.seed, args.precision.0)?;
    let peak_lr = spec.lr;
    let (mut optimizer, _) = optimizer(ctx, &spec.optim, &net, args, peak_lr)?;
    let pass = Pass::new(ctx, kernels, &net, train, plan.batch_size, Some(plan.loss))?;
    let eval_rows = 4096.min(val.n).min(test.n);
    let val_pass = Pass::new(ctx, kernels, &net, val, eval_rows, None)?;
    let test_pass = Pass::new(ctx, kernels, &net, test, eval_rows, None)?;
    let logits_buffer = ctx.upload_f32(
        "logits",
        &vec![0.0; val.n.max(test.n).next_multiple_of(eval_rows)],
    );
    // The validation split's metrics of the weights on the device.
    let validate = || {
        evaluate(
            ctx,
            kernels,
            &val_pass,
            val,
            val_labels,
            &logits_buffer,
            plan.loss,
        )
    };
    let steps_per_epoch: usize = source
        .chunk_lens()
        .iter()
        .map(|len| len / plan.batch_size)
        .sum();
    let total = steps_per_epoch * plan.epochs;
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
    let mut rng = Rng::new(spec.seed ^ 0x5EED);
    let mut curve: Vec<Point> = Vec::new();
    // Keyed by the loop's step: a control block names it as steps taken plus skipped.
    let mut log = TrainLog::default();
    let mut diverged_at = None;
    let eval_every = (steps_per_epoch / plan.evals_per_epoch).max(1);
    let progress = progress_bar(name);
    progress.set_length(total as u64);
    let start = Instant::now();
    let (mut last_loss, mut last_norm) = (None, None);
    let mut step: usize = 0;
    for _ in 0..plan.epochs {
        if stopped {
            break;
        }
        source.for_each_chunk(ctx, |len| {
        train.set_order(ctx, &rng.permutation(len));
        for s in 0..len / plan.batch_size {
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
            pass.train_step(ctx, kernels, &optimizer, s * plan.batch_size, |encoder| {
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
                let evaluation = match validate()?
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
    // Every reported metric is of the weights kept: the best step's where early stopping
    // restored them, the last step's otherwise.
    let (val_eval, _) = validate()?;
    let (test_eval, test_logits) = evaluate(
        ctx,
        kernels,
        &test_pass,
        test,
        test_labels,
        &logits_buffer,
        plan.loss,
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
        seed: spec.seed,
        curve,
        log: log.entries(),
        val: val_eval,
        test: test_eval,
        test_logits,
        kept_step: best_step.unwrap_or(step),
        test_roc,
        split,
        seconds,
        lr: peak_lr,
        attempted: train_log::attempted(&counters),
        skipped: counters.skipped_steps,
        diverged_at,
    })
}

/// The range test's (learning rate, smoothed loss) points.
type LrCurve = Vec<(f64, f64)>;

/// Steps of the learning-rate range test, and the rates it sweeps.
const LR_FIND_STEPS: usize = 100;
const LR_FIND_RANGE: (f64, f64) = (1e-6, 10.0);
/// Steps of the range test whose smoothed loss is not yet a candidate.
const LR_FIND_SKIP: usize = 10;

/// The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural
/// Networks", 2017; fastai's `lr_find`): a fresh network of `spec` trained [`LR_FIND_STEPS`]
/// steps on `data` at rates growing geometrically over [`LR_FIND_RANGE`], the batch loss read
/// back once at the end, smoothed (an exponential moving average, 0.98, bias-corrected) and cut
/// where it passes 4 times its minimum. The suggestion is fastai's `minimum`: the rate of the
/// lowest smoothed loss past the first [`LR_FIND_SKIP`] steps divided by 10, where the loss
/// still falls steadily; `None` where the loss was not finite past them. Returns it and the
/// curve (rate, smoothed loss), for `lr_find.csv`.
fn lr_find(
    ctx: &Context,
    kernels: &Kernels,
    (args, plan, spec): (&Args, &Plan, &RunSpec),
    data: &DeviceData,
    prior: f64,
) -> Result<(Option<f64>, LrCurve)> {
    let widths: Vec<usize> = std::iter::once(data.features)
        .chain(spec.hidden.iter().copied())
        .chain([1])
        .collect();
    let (from, to) = LR_FIND_RANGE;
    let net = Net::new(ctx, &widths, prior, spec.seed, args.precision.0)?;
    let (mut optimizer, _) = optimizer(ctx, &spec.optim, &net, args, from)?;
    let pass = Pass::new(ctx, kernels, &net, data, plan.batch_size, Some(plan.loss))?;
    let history = ctx.upload_f32("lr_find losses", &[0.0; LR_FIND_STEPS]);
    let per_epoch = (data.n / plan.batch_size).max(1);
    let mut rng = Rng::new(spec.seed ^ 0x1F_F1D);
    let rate = |k: usize| from * (to / from).powf(k as f64 / (LR_FIND_STEPS - 1) as f64);
    for k in 0..LR_FIND_STEPS {
        if k % per_epoch == 0 {
            data.set_order(ctx, &rng.permutation(data.n));
        }
        optimizer.set_lr(rate(k))?;
        let start = (k % per_epoch) * plan.batch_size;
        pass.train_step(ctx, kernels, &optimizer, start, |encoder| {
            encoder.copy_buffer_to_buffer(&pass.loss_value, 0, &history, 4 * k as u64, 4);
        });
    }
    let losses = ctx.read_f32(&BufferRange::new(&history, 0, LR_FIND_STEPS as u64))?;
    let (mut average, mut curve) = (0.0, Vec::new());
    let mut lowest = (f64::INFINITY, 0);
    let first = losses.first().map_or(f64::INFINITY, |&l| f64::from(l));
    for (k, &loss) in losses.iter().enumerate() {
        if !loss.is_finite() {
            break;
        }
        average = 0.98 * average + 0.02 * f64::from(loss);
        let smoothed = average / (1.0 - 0.98_f64.powi(k as i32 + 1));
        if smoothed > 4.0 * lowest.0.min(first) {
            break;
        }
        // The first steps' average stands on a few noisy batches (fastai skips them too).
        if k >= LR_FIND_SKIP && smoothed < lowest.0 {
            lowest = (smoothed, k);
        }
        curve.push((rate(k), smoothed));
    }
    Ok((lowest.0.is_finite().then(|| rate(lowest.1) / 10.0), curve))
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

/// Mesa's Vulkan device-selection layer (an implicit layer of `mesa-vulkan-drivers`, 22.x)
/// asks Wayland for the display's GPU on every start, and without a session (no
/// `XDG_RUNTIME_DIR`, as on a server or in CI) libwayland prints "error: XDG_RUNTIME_DIR is
/// invalid or not set in the environment." twice: harmless, and alarming before a training
/// run. With no display to select by and no `MESA_VK_DEVICE_SELECT` asking for a device,
/// the layer has nothing to do: it is turned off (`NODEVICE_SELECT=1`, its own switch) before
/// any thread starts.
fn quiet_device_select() {
    let unset = |name| std::env::var_os(name).is_none();
    if unset("XDG_RUNTIME_DIR")
        && unset("WAYLAND_DISPLAY")
        && unset("DISPLAY")
        && unset("MESA_VK_DEVICE_SELECT")
        && unset("NODEVICE_SELECT")
    {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

fn main() {
    let args = parse_args();
    quiet_device_select();
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
        match &args.csv {
            Some((path, options)) => {
                let csv = |source| Error::Csv {
                    path: path.clone(),
                    source,
                };
                let table = table::read_table(path, options).map_err(csv)?;
                println!(
                    "data: {} records of {} ({} delimited), label {:?} (default: {:?}), \
                     split {}; {} attributes after encoding ({:.1} s)\n{}",
                    table.records,
                    path.display(),
                    match table.delimiter {
                        b'\t' => "tab".to_string(),
                        d => format!("{:?}", char::from(d)),
                    },
                    options.label,
                    table.positive,
                    table.split_by,
                    table.splits[0].features,
                    t0.elapsed().as_secs_f64(),
                    table.summary()
                );
                [train_set, val_set, test_set] = table.splits;
            }
            None => {
                // The generator's records are independent draws: split in order.
                let all = generator.generate(args.records);
                let (n_train, n_val) = (all.len() * 8 / 10, all.len() / 10);
                train_set = all.slice(0..n_train);
                val_set = all.slice(n_train..n_train + n_val);
                test_set = all.slice(n_train + n_val..all.len());
                println!(
                    "data: {} synthetic customers, {} attributes ({:.1} s)",
                    all.len(),
                    all.features,
                    t0.elapsed().as_secs_f64()
                );
            }
        };
        n_train = train_set.len();
        println!(
            "splits: training {} ({:.2}% defaults), validation {} ({:.2}%), test {} ({:.2}%)",
            train_set.len(),
            100.0 * rate(&train_set),
            val_set.len(),
            100.0 * rate(&val_set),
            test_set.len(),
            100.0 * rate(&test_set),
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
    let plan = plan(&args, n_train.min(train_set.len()));
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
    let steps_per_epoch = source
        .chunk_lens()
        .iter()
        .map(|len| len / plan.batch_size)
        .sum::<usize>();
    println!(
        "model: {} -> {} (ReLU) -> 1, {} loss; batches of {}, {} epochs of {} steps, {} \
         evaluation(s) per epoch, {}",
        train_set.features,
        HIDDEN
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" -> "),
        if plan.loss.gamma > 0.0 {
            "focal (gamma 2, alpha 0.75)"
        } else {
            "cross-entropy"
        },
        plan.batch_size,
        plan.epochs,
        steps_per_epoch,
        plan.evals_per_epoch,
        match args.early_stopping {
            Some(p) => format!(
                "early stopping after {p} evaluations without improvement (the best weights \
                 are kept and reported)"
            ),
            None => "no early stopping (the last weights are reported)".to_string(),
        }
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
            (rate(&train_set), &optim, plan.loss),
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
        // The searched optimizer's rate (the baseline keeps its own).
        match optim.as_str() {
            "sgd" => args.sgd_lr = value("lr"),
            _ => args.adamw_lr = value("lr"),
        }
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

    // ---- learning rates ------------------------------------------------------------------
    // Given on the command line, else measured by a range test on a table (and for the
    // baseline wherever the training records are on the device), else the swept defaults.
    let prior = rate(&train_set);
    let mut specs: Vec<RunSpec> = args
        .optims
        .iter()
        .map(|name| RunSpec {
            name: name.clone(),
            optim: name.clone(),
            seed: args.seed,
            lr: default_lr(name, &args),
            hidden: HIDDEN.to_vec(),
        })
        .collect();
    if args.baseline {
        specs.push(RunSpec {
            name: "logistic".into(),
            optim: args.optims[0].clone(),
            seed: args.seed,
            lr: args.lr.unwrap_or(1e-2),
            hidden: Vec::new(),
        });
    }
    let mut found = String::from("lr,loss,run\n");
    for spec in &mut specs {
        let given = if spec.hidden.is_empty() {
            args.lr
        } else {
            given_lr(&spec.optim, &args)
        };
        let measure = given.is_none() && (args.lr_find || spec.hidden.is_empty());
        if let (true, Source::Resident(train_data)) = (measure, &source) {
            let (lr, curve) = lr_find(ctx, &kernels, (&args, &plan, spec), train_data, prior)?;
            for (r, l) in &curve {
                found += &format!("{r:e},{l},{}\n", spec.name);
            }
            let Some(lr) = lr else {
                write_output(&args.out, "lr_find.csv", &found)?;
                return Err(Error::LrFind {
                    optimizer: spec.name.clone(),
                    from: LR_FIND_RANGE.0,
                    to: LR_FIND_RANGE.1,
                });
            };
            println!(
                "learning-rate range test, {}: {} steps from {:e} to {:e}, lowest smoothed loss \
                 at {:.2e}: peak learning rate {lr:.2e}",
                spec.name,
                LR_FIND_STEPS,
                LR_FIND_RANGE.0,
                LR_FIND_RANGE.1,
                lr * 10.0
            );
            spec.lr = lr;
        } else if let Some(lr) = given {
            spec.lr = lr;
        }
    }
    if found.lines().count() > 1 {
        write_output(&args.out, "lr_find.csv", &found)?;
    }

    // ---- training -------------------------------------------------------------------------
    let mut results = Vec::new();
    for seed in (0..args.seeds as u64).map(|k| args.seed + k) {
        for spec in &specs {
            let spec = RunSpec {
                seed,
                ..spec.clone()
            };
            results.push(train(
                ctx,
                &kernels,
                (&args, &plan, &spec),
                (&source, &val_data, &test_data),
                (&val_set.labels, &test_set.labels),
                prior,
            )?);
        }
    }
    report(&args, &plan, &results, &test_set.labels)?;
    Ok(results)
}

/// The settings that depend on the data, where the command line leaves them: on synthetic
/// data the swept defaults (batches of 1024, 3 epochs, 4 evaluations per epoch, focal loss);
/// on a table, sizes that hold from a thousand records to millions: batches of the largest
/// power of two up to a sixteenth of the training split (32 to 1024), epochs for about 2,000
/// steps (3 to 200), an evaluation per 25 steps (1 to 4 per epoch), cross-entropy. A batch
/// larger than the training split is capped at it.
fn plan(args: &Args, n_train: usize) -> Plan {
    let table = args.csv.is_some();
    let batch_size = match args.batch_size {
        Some(b) if b > n_train => {
            println!(
                "note: --batch-size {b} is more than the {n_train} training records: batches \
                 of {n_train}"
            );
            n_train
        }
        Some(b) => b,
        None if table => {
            let sixteenth = (n_train / 16).max(1);
            (1usize << sixteenth.ilog2()).clamp(32, 1024).min(n_train)
        }
        None => 1024.min(n_train),
    };
    let steps_per_epoch = (n_train / batch_size).max(1);
    let epochs = args.epochs.unwrap_or(if table {
        2000usize.div_ceil(steps_per_epoch).clamp(3, 200)
    } else {
        3
    });
    let evals_per_epoch = args.evals_per_epoch.unwrap_or(if table {
        (steps_per_epoch / 25).clamp(1, 4)
    } else {
        4
    });
    let loss = args.loss.unwrap_or(if table { BCE } else { FOCAL });
    Plan {
        batch_size,
        epochs,
        evals_per_epoch,
        loss,
    }
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

/// Whether a run learned: finite test metrics, an AUC above chance and logits that are not
/// all equal (a constant predictor). A run that did not learn takes part in no comparison.
pub fn learned(r: &RunResult) -> bool {
    let constant = r
        .test_logits
        .iter()
        .all(|&z| (z - r.test_logits[0]).abs() <= 1e-6 * z.abs().max(1.0));
    r.test.is_ok_and(|t| t.auc > 0.5) && !constant
}

/// What the runs support, as sentences: which of the first two optimizers reached the target
/// validation loss first, over how many of the seeds `(first, count)` (nothing from one
/// seed, and nothing when a run of either did not learn: see [`learned`]); and each
/// optimizer's test AUC beside the logistic-regression baseline's, over the runs that learned.
pub fn claims(
    results: &[RunResult],
    (first_seed, seeds): (u64, usize),
    target: Option<f64>,
    loss_name: &str,
) -> Vec<String> {
    let runs =
        |name: &str| -> Vec<&RunResult> { results.iter().filter(|r| r.name == name).collect() };
    let steps = |r: &RunResult| first_reaching(r, target).map(|p| p.step);
    let names = run_names(results);
    let optimizers: Vec<&str> = names.iter().copied().filter(|&n| n != "logistic").collect();
    let mut lines = Vec::new();
    if let [a, b, ..] = optimizers[..] {
        let all_learned = |name: &str| runs(name).into_iter().all(learned);
        if seeds < 2 {
            lines.push(format!(
                "one seed: no claim that {a} or {b} reaches the target first (--seeds 3 or \
                 more for one, with the spread)"
            ));
        } else if !all_learned(a) || !all_learned(b) {
            lines.push(format!(
                "not every run of {a} and {b} learned (test AUC above 0.5, not a constant \
                 predictor): no comparison of their steps"
            ));
        } else {
            let of_seed = |name: &str, seed: u64| {
                runs(name)
                    .into_iter()
                    .find(|r| r.seed == seed)
                    .and_then(steps)
            };
            let first = (0..seeds as u64)
                .filter(|&k| {
                    let seed = first_seed + k;
                    match (of_seed(a, seed), of_seed(b, seed)) {
                        (Some(x), Some(y)) => x < y,
                        (Some(_), None) => true,
                        _ => false,
                    }
                })
                .count();
            let mean_steps = |name: &str| {
                let v: Vec<f64> = runs(name)
                    .into_iter()
                    .filter_map(|r| steps(r).map(|s| s as f64))
                    .collect();
                if v.is_empty() {
                    "never".to_string()
                } else {
                    let (m, sd) = mean_sd(&v);
                    format!("{m:.0} ± {sd:.0}")
                }
            };
            lines.push(format!(
                "{a} reached the target validation {loss_name} in fewer steps than {b} in \
                 {first} of {seeds} seeds (steps: {} against {})",
                mean_steps(a),
                mean_steps(b)
            ));
        }
    }
    let auc = |name: &str| {
        let v: Vec<f64> = runs(name)
            .into_iter()
            .filter(|r| learned(r))
            .filter_map(|r| r.test.as_ref().ok().map(|t| t.auc))
            .collect();
        (!v.is_empty()).then(|| (mean_sd(&v), v.len()))
    };
    let spread = |((m, sd), n): ((f64, f64), usize)| {
        if n > 1 {
            format!("{m:.4} ± {sd:.4}")
        } else {
            format!("{m:.4}")
        }
    };
    if names.contains(&"logistic") {
        match auc("logistic") {
            Some(base) => {
                for &name in &optimizers {
                    lines.push(match auc(name) {
                        Some(net) => format!(
                            "{name} against the logistic-regression baseline: test AUC {} \
                             against {} ({:+.4})",
                            spread(net),
                            spread(base),
                            net.0 .0 - base.0 .0
                        ),
                        None => format!(
                            "{name}: no run learned; the logistic-regression baseline's test \
                             AUC {}",
                            spread(base)
                        ),
                    });
                }
            }
            None => lines.push("the logistic-regression baseline did not learn".to_string()),
        }
    }
    lines
}

/// The test metrics the report shows of a run: its evaluation, the bootstrap 95% interval of
/// its AUC (1,000 stratified resamples, seeded by the run) and its expected calibration error
/// over ten bins of equal count; `None` where the test metrics are undefined.
struct TestSummary {
    t: Evaluation,
    interval: (f64, f64),
    calibration_error: f64,
}

fn test_summary(r: &RunResult, labels: &[f32]) -> Option<TestSummary> {
    let t = *r.test.as_ref().ok()?;
    let bins = metrics::calibration(&r.test_logits, labels, 10);
    Some(TestSummary {
        t,
        interval: metrics::auc_interval(&r.test_logits, labels, 1000, r.seed),
        calibration_error: metrics::expected_calibration_error(&bins),
    })
}

/// The first point of `r`'s curve whose validation loss is at most `target`.
fn first_reaching(r: &RunResult, target: Option<f64>) -> Option<&Point> {
    let target = target?;
    r.curve
        .iter()
        .find(|p| p.val.is_some_and(|v| v.loss <= target))
}

/// The runs' names, each once, in the order they ran.
fn run_names(results: &[RunResult]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    names
}

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// The table of every run, the summary over seeds, the comparisons the runs support, the
/// curves and results as CSV and the plots. A diverged run's metrics are not numbers: its
/// cells say so. Every metric is of the weights kept (the best validation loss's under early
/// stopping).
fn report(args: &Args, plan: &Plan, results: &[RunResult], test_labels: &[f32]) -> Result<()> {
    let loss_name = if plan.loss.gamma > 0.0 {
        "focal loss"
    } else {
        "log loss"
    };
    // The target: the validation loss every optimizer run reaches (the worst of their
    // bests), unless given; the baseline and runs without a finite validation loss take no
    // part.
    let best = |r: &RunResult| {
        r.curve
            .iter()
            .filter_map(|p| p.val.map(|v| v.loss))
            .reduce(f64::min)
    };
    let target = args.target_loss.or_else(|| {
        results
            .iter()
            .filter(|r| r.name != "logistic")
            .filter_map(best)
            .reduce(f64::max)
    });
    match target {
        Some(target) => println!("\ntarget validation {loss_name}: {target:.5}"),
        None => println!("\ntarget validation {loss_name}: none (no run had a finite one)"),
    }
    let reached = |r: &RunResult| first_reaching(r, target).map(|p| (p.step, p.seconds));
    println!(
        "| run | seed | peak lr | steps to target | seconds to target | kept step | val {loss_name} | test AUC (95% CI) | test log loss | test Brier | calibration error | threshold | test precision | test recall | forward / backward / optimizer per step |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|");
    // Each run's test summary once: its bootstrap draws 1,000 resamples.
    let summaries: Vec<Option<TestSummary>> = results
        .iter()
        .map(|r| test_summary(r, test_labels))
        .collect();
    for (r, summary) in results.iter().zip(&summaries) {
        let hit = reached(r);
        let (f, b, o) = r.split;
        let total = f + b + o;
        let val = match &r.val {
            Ok(v) => format!("{:.5}", v.loss),
            Err(_) => "diverged".to_string(),
        };
        let test = match summary {
            Some(TestSummary {
                t,
                interval: (low, high),
                calibration_error,
            }) => format!(
                "{:.4} ({low:.3}-{high:.3}) | {:.4} | {:.4} | {calibration_error:.4} | {:.3} | \
                 {:.3} | {:.3}",
                t.auc, t.log_loss, t.brier, t.threshold, t.precision, t.recall
            ),
            None => "diverged | - | - | - | - | - | -".to_string(),
        };
        println!(
            "| {} | {} | {:.2e} | {} | {} | {} | {val} | {test} | {:.1} / {:.1} / {:.1} ms ({:.0}% / {:.0}% / {:.0}%) |",
            r.name,
            r.seed,
            r.lr,
            hit.map_or("not reached".into(), |(step, _)| step.to_string()),
            hit.map_or("-".into(), |(_, seconds)| format!("{seconds:.1}")),
            r.kept_step,
            1e3 * f,
            1e3 * b,
            1e3 * o,
            100.0 * f / total,
            100.0 * b / total,
            100.0 * o / total,
        );
    }
    let rate = test_labels.iter().filter(|&&y| y > 0.5).count() as f64 / test_labels.len() as f64;
    println!(
        "predicting the test split's default rate ({:.2}%) for everyone: log loss {:.4}, Brier \
         {:.4}, AUC 0.5",
        100.0 * rate,
        metrics::base_rate_log_loss(test_labels),
        metrics::base_rate_brier(test_labels)
    );

    // ---- over seeds ------------------------------------------------------------------------
    let names = run_names(results);
    fn runs<'a>(results: &'a [RunResult], name: &'a str) -> impl Iterator<Item = &'a RunResult> {
        results.iter().filter(move |r| r.name == name)
    }
    let seeds = args.seeds;
    if seeds > 1 {
        println!(
            "\nover {seeds} seeds (mean ± standard deviation of the runs that learned: an AUC \
             above 0.5 and not a constant predictor):"
        );
        println!("| run | learned | test AUC | test log loss | test Brier | steps to target |");
        println!("|---|---:|---|---|---|---|");
    }
    for &name in &names {
        let kept: Vec<&RunResult> = runs(results, name).filter(|r| learned(r)).collect();
        let metric = |f: &dyn Fn(&Evaluation) -> f64| -> Vec<f64> {
            kept.iter()
                .filter_map(|r| r.test.as_ref().ok().map(f))
                .collect()
        };
        let auc = metric(&|t| t.auc);
        let steps: Vec<f64> = runs(results, name)
            .filter_map(|r| reached(r).map(|(step, _)| step as f64))
            .collect();
        if seeds > 1 {
            let cell = |v: &[f64], digits: usize| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    let (m, sd) = mean_sd(v);
                    format!("{m:.digits$} ± {sd:.digits$}")
                }
            };
            println!(
                "| {name} | {} of {seeds} | {} | {} | {} | {} (reached in {} of {seeds}) |",
                kept.len(),
                cell(&auc, 4),
                cell(&metric(&|t| t.log_loss), 4),
                cell(&metric(&|t| t.brier), 4),
                cell(&steps, 0),
                steps.len()
            );
        }
    }

    // ---- what the runs support -------------------------------------------------------------
    println!();
    for line in claims(results, (args.seed, seeds), target, loss_name) {
        println!("{line}");
    }
    for r in results {
        let mut line = format!(
            "{} (seed {}): {:.1} s of training, {} steps",
            r.name, r.seed, r.seconds, r.attempted
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

    // ---- curves, results and plots ----------------------------------------------------------
    let mut csv = String::from("run,seed,step,epoch,seconds,lr,val_loss,val_auc\n");
    let mut log_csv = String::from("run,seed,step,lr,train_loss,grad_norm,skipped\n");
    let mut results_csv = String::from(
        "run,seed,peak_lr,kept_step,steps_to_target,val_loss,val_log_loss,test_auc,\
         test_auc_low,test_auc_high,test_log_loss,test_brier,calibration_error,threshold,\
         test_precision,test_recall,learned\n",
    );
    let text = |v: Option<f32>| v.map_or(String::new(), |v| v.to_string());
    for (r, summary) in results.iter().zip(&summaries) {
        for p in &r.curve {
            // Empty where the validation logits were not finite.
            let (loss, auc) = p.val.map_or((String::new(), String::new()), |v| {
                (v.loss.to_string(), v.auc.to_string())
            });
            csv += &format!(
                "{},{},{},{:.4},{:.2},{:e},{loss},{auc}\n",
                r.name, r.seed, p.step, p.epoch, p.seconds, p.lr
            );
        }
        for e in &r.log {
            log_csv += &format!(
                "{},{},{},{:e},{},{},{}\n",
                r.name,
                r.seed,
                e.step,
                e.lr,
                text(e.loss),
                text(e.grad_norm),
                u8::from(e.skipped)
            );
        }
        let metrics_cells = match (&r.val, summary) {
            (
                Ok(v),
                Some(TestSummary {
                    t,
                    interval: (low, high),
                    calibration_error,
                }),
            ) => format!(
                "{},{},{},{low},{high},{},{},{calibration_error},{},{},{}",
                v.loss, v.log_loss, t.auc, t.log_loss, t.brier, t.threshold, t.precision, t.recall
            ),
            _ => ",,,,,,,,,,".to_string(),
        };
        results_csv += &format!(
            "{},{},{:e},{},{},{metrics_cells},{}\n",
            r.name,
            r.seed,
            r.lr,
            r.kept_step,
            reached(r).map_or(String::new(), |(step, _)| step.to_string()),
            u8::from(learned(r))
        );
    }
    write_output(&args.out, "curves.csv", &csv)?;
    write_output(&args.out, "train_log.csv", &log_csv)?;
    write_output(&args.out, "results.csv", &results_csv)?;
    // The plots show the first seed's runs.
    let series: Vec<plots::Series<'_>> = results
        .iter()
        .filter(|r| r.seed == args.seed)
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
            calibration: if r.test.is_ok() {
                metrics::calibration(&r.test_logits, test_labels, 10)
            } else {
                Vec::new()
            },
        })
        .collect();
    let written = plots::write(&args.out, &series).map_err(|e| Error::Output {
        path: args.out.clone(),
        message: e.to_string(),
    })?;
    println!(
        "curves: {}, {}; every run's metrics: {}; plots: {}",
        args.out.join("curves.csv").display(),
        args.out.join("train_log.csv").display(),
        args.out.join("results.csv").display(),
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
