//! How the ranks of a [`Distributed`](super::Distributed) agree before they act: a hash of
//! what must be equal and each rank's success, gathered by every rank, so that all take the
//! same branch and none is left waiting in a collective.

use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

/// FNV-1a, 64-bit: the same hash on every rank for the same bytes.
pub(super) fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

/// FNV-1a's offset basis: where every hash starts.
pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Every rank's hash of what must be equal and whether its own part succeeded (one
/// all-gather): all learn the same, so all take the same branch.
pub(super) struct Votes {
    /// The first rank whose part failed.
    pub failed: Option<usize>,
    /// Whether every rank's part failed.
    pub all_failed: bool,
    /// The first rank whose hash differs from the one most ranks hold (rank 0's on a tie), so
    /// that the odd one out is named, rank 0 included.
    pub differs: Option<usize>,
}

impl Votes {
    /// Collective: every rank of `comm` must call it.
    pub fn gather(comm: &SimpleCommunicator, hash: u64, ok: bool) -> Votes {
        let ranks = comm.size() as usize;
        let mine = [hash, u64::from(ok)];
        let mut all = vec![0_u64; 2 * ranks];
        comm.all_gather_into(&mine[..], &mut all[..]);
        let (hashes, oks): (Vec<u64>, Vec<u64>) = all.chunks(2).map(|v| (v[0], v[1])).unzip();
        let held_by = |h: u64| hashes.iter().filter(|&&other| other == h).count();
        // The first of the most held hashes: max_by_key keeps the last maximum, so from the end.
        let most = hashes.iter().rev().max_by_key(|&&h| held_by(h)).copied();
        Votes {
            failed: oks.iter().position(|&ok| ok == 0),
            all_failed: oks.iter().all(|&ok| ok == 0),
            differs: hashes.iter().position(|&h| Some(h) != most),
        }
    }
}

/// Whether every rank's part succeeded (collective: one all-gather). `Ok` with this rank's
/// value when all did; each rank's own error when all failed alike (nothing differs between
/// them); else its own error on a rank that failed, and on every other rank
/// [`Error::DistributedMismatch`] naming the first that failed, `what` saying what failed
/// there.
pub(super) fn agree<T>(
    comm: &SimpleCommunicator,
    local: Result<T>,
    what: &'static str,
) -> Result<T> {
    agree_on(comm, 0, local, what, what)
}

/// [`agree`], and on `hash` too: when every rank succeeded but one's hash differs from the
/// one most ranks hold (rank 0's on a tie), [`Error::DistributedMismatch`] naming it on every
/// rank, `differs` saying what.
pub(super) fn agree_on<T>(
    comm: &SimpleCommunicator,
    hash: u64,
    local: Result<T>,
    failed: &'static str,
    differs: &'static str,
) -> Result<T> {
    let votes = Votes::gather(comm, hash, local.is_ok());
    let mismatch = |rank, what| Err(Error::DistributedMismatch { rank, what });
    match (votes.failed, local) {
        (Some(_), Err(own)) => Err(own),
        (Some(rank), Ok(_)) => mismatch(rank, failed),
        (None, local) => match votes.differs {
            Some(rank) => mismatch(rank, differs),
            None => local,
        },
    }
}

/// A hash of what a rank may change between steps through `Distributed::optimizer` and must
/// change alike on every rank: its groups' configurations (learning rates and every other
/// hyperparameter), its device schedule (a custom schedule's closure prints as `..`, so two
/// closures compare equal) and its gradient processing (with ZeRO-1, whether the step
/// all-reduces the norm statistics: one more collective).
pub(super) fn step_hash(optimizer: &Optimizer) -> u64 {
    let settings = format!(
        "{:?}; {:?}; {:?}",
        optimizer.group_configs(),
        optimizer.schedule(),
        optimizer.grad_processing()
    );
    fnv1a(settings.as_bytes(), FNV_OFFSET)
}

/// The first error of this rank's part of a step's collectives. Once it is set the rank does
/// no more device work and sends zeros to the collectives left, so that no other rank waits
/// for it; the ranks then [`agree`] on it before the update (or, for the gathered
/// parameters, before they are written).
#[derive(Default)]
pub(super) struct Fault(Option<Error>);

impl Fault {
    /// A fault already set when `result` is an error.
    pub fn from_result(result: Result<()>) -> Fault {
        Fault(result.err())
    }

    /// `f`'s value, or `None` when this rank has failed already (`f` is not run) or `f` fails
    /// now (its error kept).
    pub fn attempt<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Option<T> {
        if self.0.is_some() {
            return None;
        }
        f().map_err(|e| self.0 = Some(e)).ok()
    }

    /// Whether this rank's part has gone well so far.
    pub fn is_clear(&self) -> bool {
        self.0.is_none()
    }

    /// What the ranks vote on: `Ok`, or the first error.
    pub fn into_result(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
