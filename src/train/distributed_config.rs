//! What a [`Distributed`](super::Distributed) optimizer is built with ([`DistributedConfig`],
//! [`Sharding`]) and what its steps report ([`CommTimings`]).

use std::time::Duration;

use crate::optimizer::Precision;

/// How the ranks share the optimizer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Sharding {
    /// Data parallel (PyTorch's DDP): every rank keeps the whole optimizer state and takes the
    /// same step on the all-reduced (averaged) gradients.
    #[default]
    Replicated,
    /// ZeRO-1 (Rajbhandari et al. 2020, stage 1): the gradients are reduce-scattered, each
    /// rank keeps the optimizer state of its contiguous shard of the arena only (1/N of it)
    /// and updates that shard with the same kernels, and the parameters are all-gathered.
    Zero1,
}

/// What a [`Distributed`](super::Distributed) optimizer is built with.
#[derive(Clone, Debug)]
pub struct DistributedConfig {
    /// How the ranks share the optimizer (default [`Sharding::Replicated`]).
    pub sharding: Sharding,
    /// Bytes of gradients per all-reduce (default 4 MiB, "a few MB" as PyTorch DDP's buckets;
    /// DDP's default cap is 25 MB). Each bucket is written back to the device as soon as it is
    /// reduced, while the next one is on the wire.
    pub bucket_bytes: u64,
    /// How each rank's optimizer stores its states (default f32, the arena's type): bf16 or
    /// f16 states, or 8-bit states under either sharding (replicated, each rank keeps the
    /// whole tensors torchao quantizes; with ZeRO-1 the shards end at the edges of such a
    /// tensor's blocks, and each rank's piece of it keeps 8-bit states however short). Master
    /// weights and stochastic rounding are for 16-bit parameters, and arenas here are f32:
    /// refused by the optimizer's build.
    pub precision: Precision,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        DistributedConfig {
            sharding: Sharding::Replicated,
            bucket_bytes: 4 << 20,
            precision: Precision::default(),
        }
    }
}

impl DistributedConfig {
    /// With `sharding`.
    pub fn with_sharding(mut self, sharding: Sharding) -> Self {
        self.sharding = sharding;
        self
    }

    /// With buckets of `bytes` (at least 4).
    pub fn with_bucket_bytes(mut self, bytes: u64) -> Self {
        self.bucket_bytes = bytes;
        self
    }

    /// With the optimizer's states stored as `precision` says.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }
}

/// Where one step's time (or one switch of Schedule-Free's mode) went outside the kernels, on
/// this rank.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommTimings {
    /// Running the caller's encoder (the forward and backward passes) to completion. (The
    /// ranks' agreement that every rank's passes ran, which waits for the slowest, counts as
    /// communication.)
    pub backward: Duration,
    /// Copying the gradients (and, with ZeRO-1, the norm statistics and the updated shard of
    /// parameters) from the device to the host.
    pub download: Duration,
    /// In MPI calls: the gradients' all-reduce or reduce-scatter, the norm statistics, the
    /// parameters' all-gather, and the ranks' votes (16 bytes each: on the passes, on the
    /// gradients' collectives, on the update or the gathered shards).
    pub communicate: Duration,
    /// Writing reduced gradients and gathered parameters back through the queue.
    pub upload: Duration,
    /// The whole step, the caller's passes and the optimizer's kernels included.
    pub total: Duration,
    /// Bytes this rank sent into collectives.
    pub bytes_sent: u64,
}

impl CommTimings {
    /// The time spent moving data rather than in the kernels: download, communicate, upload.
    pub fn communication(&self) -> Duration {
        self.download + self.communicate + self.upload
    }
}
