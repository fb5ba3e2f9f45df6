//! The example's errors: each names the bad input and the rule it broke, and `main` prints it
//! and exits with status 1 (bad arguments: usage and status 2).

use super::data::DataError;
use super::metrics::Undefined;
use super::train_log::UnloggedStep;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The table of `--csv` is refused.
    #[error("--csv {}: {source}", path.display())]
    Csv {
        path: std::path::PathBuf,
        source: DataError,
    },
    /// The data, a user's table or the generator's records, cannot be split or standardized.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A batch larger than the training set.
    #[error("a batch of {batch} is more than the {records} training records")]
    BatchTooLarge { batch: usize, records: usize },
    /// `--optim` names an optimizer the library does not have.
    #[error("unknown optimizer {name} (--optim takes {known})")]
    UnknownOptimizer { name: String, known: String },
    /// The learning-rate range test found no rate at which the loss fell.
    #[error(
        "{optimizer}: the learning-rate range test ({from:e} to {to:e}) found no rate at which \
         the training loss fell; give one with --lr"
    )]
    LrFind {
        optimizer: String,
        from: f64,
        to: f64,
    },
    /// `--search` with streamed training records.
    #[error("--search keeps its training records on the device: at most 250,000 records, not {0}")]
    SearchStreamed(usize),
    /// Every configuration of a search diverged: there is none to retrain.
    #[error(
        "every configuration of the search diverged ({trials} trials, no finite validation \
         loss): nothing to retrain; try more --trials or another --seed"
    )]
    SearchDiverged { trials: usize },
    /// Metrics undefined on a set that was checked to hold both labels (no run reaches it).
    #[error("the {split} set: {source}")]
    Metrics {
        split: &'static str,
        source: Undefined,
    },
    /// The training log's bookkeeping.
    #[error(transparent)]
    Log(#[from] UnloggedStep),
    /// A run diverged: its parameters are no longer finite. The report is printed first.
    #[error(
        "{optimizer} diverged: the validation logits were not finite at step {step} ({skipped} \
         of {attempted} steps skipped for inf or NaN gradients); lower its learning rate (peak \
         {lr:e}: --lr)"
    )]
    Diverged {
        optimizer: String,
        step: usize,
        skipped: u32,
        attempted: usize,
        lr: f64,
    },
    /// Writing the curves, the plots or the search's tables.
    #[error("{}: {message}", path.display())]
    Output {
        path: std::path::PathBuf,
        message: String,
    },
    /// The library: the device, an optimizer, a readback.
    #[error(transparent)]
    Device(#[from] wgpu_optim::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
