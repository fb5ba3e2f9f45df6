//! Data-parallel training and a sharded optimizer (ZeRO-1) over MPI: [`Distributed`]
//! (feature `mpi`).
//!
//! wgpu buffers are not MPI memory, so every collective goes through the host: a copy into a
//! mapped staging buffer, the MPI call on host memory, a queue write back. What each step
//! spends there is measured and returned ([`CommTimings`]).

use std::time::Instant;

use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{capture_errors, Arena, ArenaParts, BufferRange, Context, Param};
use crate::grad::GradConfig;
use crate::optim::OptimizerConfig;
use crate::optimizer::{Optimizer, ParamGroup};
use crate::quant::{quantizes, BLOCK};

use super::agreement::{agree, agree_on, fnv1a, step_hash, Fault, Votes, FNV_OFFSET};

mod collectives;
pub use super::distributed_config::{CommTimings, DistributedConfig, Sharding};

/// An optimizer over an [`Arena`] replicated across MPI ranks, one wgpu device each: data
/// parallel ([`Sharding::Replicated`]) or ZeRO-1 ([`Sharding::Zero1`]).
///
/// Each rank runs its forward and backward passes on its shard of the batch into the arena's
/// gradients and hands the encoder to [`Distributed::step`], which submits it, averages the
/// gradients across ranks and steps. Every rank then holds the same parameters.
///
/// ```no_run
/// # use wgpu_optim::{AdamWConfig, Arena, Context, Distributed, DistributedConfig, Sharding};
/// # fn demo(ctx: &Context, arena: &Arena) -> wgpu_optim::Result<()> {
/// let universe = mpi::initialize().expect("MPI");
/// let config = DistributedConfig::default().with_sharding(Sharding::Zero1);
/// let groups = vec![(AdamWConfig::default().into(), (0..arena.len()).collect())];
/// let mut optimizer = Distributed::new(ctx, universe.world(), arena, groups, config)?;
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// // ... this rank's forward and backward passes into the arena's gradients ...
/// let timings = optimizer.step(encoder)?;
/// # Ok(()) }
/// ```
///
/// The ranks agree before anything is built, then again after (`docs/distributed.md`): ranks
/// whose arena layouts, element counts, parameter groups, configurations, sharding or message
/// sizes (bucket bytes, shard length) differ, or one whose device fails to build its part, give
/// [`Error::DistributedMismatch`] on every rank, never a hang (a rank whose configuration is
/// invalid or whose build failed returns its own error; every rank its own when all fail
/// alike). Each step agrees again on the caller's passes before the gradients' collectives.
///
/// Gradients are averaged as PyTorch's DDP averages them: each rank divides its gradients by
/// the number of ranks, then they are summed (exact for a power of two). With gradient
/// processing ([`Distributed::set_grad_processing`]), replicated ranks hold the same averaged
/// gradients and derive the same norm, clip coefficient and skip; ZeRO-1 ranks each reduce
/// their shard's [`NormStats`](crate::NormStats) and all-reduce them (one message of two
/// floats) before the update, so clipping and the inf/NaN skip agree on every rank. Parameter
/// groups are given by tensor index. Only f32 arenas (MPI sums f32), and with ZeRO-1 no LAMB
/// or LARS (a shard cuts tensors, whose trust ratios need whole norms). With 8-bit states
/// ([`DistributedConfig::precision`]) ZeRO-1's shards end at the edges of a tensor's blocks,
/// and a rank's piece keeps 8-bit states when its tensor would (however short the piece), so
/// every block is stepped as one optimizer steps it.
pub struct Distributed {
    ctx: Context,
    comm: SimpleCommunicator,
    rank: usize,
    ranks: usize,
    config: DistributedConfig,
    optimizer: Optimizer,
    param: wgpu::Buffer,
    grad: wgpu::Buffer,
    // f32 elements of the arena's buffers, and this rank's shard [lo, hi) of them (every
    // element when replicated); ZeRO-1: every rank's shard, rank r's [bounds[r],
    // bounds[r + 1]), and the elements of each rank's message in its collectives (the
    // longest shard: each shorter one is padded).
    elements: u64,
    shard: (u64, u64),
    bounds: Vec<u64>,
    block: u64,
    staging: wgpu::Buffer,
    // Replicated: one staging buffer per bucket, so that each bucket's copy is submitted,
    // mapped and reduced on its own while the later ones are still copying.
    buckets: Vec<wgpu::Buffer>,
    // ZeRO-1: the shard's norm stats (the optimizer's norm stats buffer from the build), which
    // a step with gradient processing all-reduces between the update's halves.
    stats: Option<BufferRange>,
}

/// What [`Distributed::build`] makes on one rank: its optimizer, staging buffer, bucket
/// buffers and norm stats range.
type Built = (
    Optimizer,
    wgpu::Buffer,
    Vec<wgpu::Buffer>,
    Option<BufferRange>,
);

impl Distributed {
    /// Builds this rank's optimizer over `arena` (an f32 arena of the same layout on every
    /// rank): `groups` lists each parameter group's configuration and tensor indices (every
    /// tensor in exactly one group). Collective: every rank of `comm` must call it.
    pub fn new(
        ctx: &Context,
        comm: SimpleCommunicator,
        arena: &Arena,
        groups: Vec<(OptimizerConfig, Vec<usize>)>,
        config: DistributedConfig,
    ) -> Result<Self> {
        let (rank, ranks) = (comm.rank() as usize, comm.size() as usize);
        let ArenaParts {
            param,
            grad,
            layout,
            dtypes,
        } = arena.parts();
        let elements = param.size() / 4;
        let align = u64::from(ctx.device().limits().min_storage_buffer_offset_alignment) / 4;
        let bounds = match config.sharding {
            Sharding::Replicated => vec![0, elements],
            Sharding::Zero1 => {
                let blocks = config.precision.eight_bit_states;
                shard_bounds(elements, ranks, align, layout, blocks)
            }
        };
        let block = bounds.windows(2).map(|b| b[1] - b[0]).max().unwrap_or(0);
        let shard = match config.sharding {
            Sharding::Replicated => (0, elements),
            Sharding::Zero1 => (bounds[rank], bounds[rank + 1]),
        };
        let bucket = 4 * (config.bucket_bytes / 4).max(1);

        // What every rank must agree on, and whether this one's configuration is valid. With
        // the arena and the groups, every size the collectives move: the elements (the arena's
        // padded end, which the device's alignment sets), the buckets or the shards (the
        // alignment again). Collectives of other sizes abort the job or hang.
        let local = Self::check(arena, ctx, &groups, &config);
        let messages = match config.sharding {
            Sharding::Replicated => format!("{bucket}"),
            Sharding::Zero1 => format!("{block} (shards {bounds:?})"),
        };
        let mut hash = fnv1a(
            format!(
                "ranks {ranks}; elements {elements}; {:?} in messages of {messages}; \
                 {dtypes:?}; {layout:?}; {:?};",
                config.sharding, config.precision
            )
            .as_bytes(),
            FNV_OFFSET,
        );
        for (group, tensors) in &groups {
            hash = fnv1a(group.name().as_bytes(), hash);
            for (name, value) in group.hyperparameters() {
                hash = fnv1a(format!("{name}={value};").as_bytes(), hash);
            }
            hash = fnv1a(format!("{tensors:?}").as_bytes(), hash);
        }
        agree_on(
            &comm,
            hash,
            local,
            "its configuration is invalid",
            "its arena layout, parameter groups, configuration, sharding or message sizes \
             (elements, bucket bytes, shard length) differ from the other ranks'",
        )?;

        // Built apart on each rank, then agreed again: a rank whose device refuses its part
        // (a smaller binding limit, say) must not leave the others waiting in the first step.
        let built = Self::build(ctx, arena, &groups, &config, shard, bucket);
        let (optimizer, staging, buckets, stats) = agree(
            &comm,
            built,
            "its optimizer or staging buffers failed to build on its device",
        )?;
        Ok(Distributed {
            ctx: arena.context().clone(),
            comm,
            rank,
            ranks,
            config,
            optimizer,
            param: param.clone(),
            grad: grad.clone(),
            elements,
            shard,
            bounds,
            block,
            staging,
            buckets,
            stats,
        })
    }

    /// This rank's optimizer over its tensors (whole, or their pieces within `shard`), its
    /// staging buffer, replicated one staging buffer per bucket of `bucket` bytes, and with
    /// ZeRO-1 the optimizer's norm stats buffer (so that gradient processing, however it is
    /// set, reduces the shards' norm statistics across ranks).
    fn build(
        ctx: &Context,
        arena: &Arena,
        groups: &[(OptimizerConfig, Vec<usize>)],
        config: &DistributedConfig,
        shard: (u64, u64),
        bucket: u64,
    ) -> Result<Built> {
        let ArenaParts {
            param,
            grad,
            layout,
            ..
        } = arena.parts();
        let elements = param.size() / 4;
        // This rank's tensors: whole, or their pieces within its shard, and the length of the
        // tensor each is a piece of (whether it keeps 8-bit states).
        let mut param_groups = Vec::new();
        let mut whole_lens = Vec::new();
        for (group_config, tensors) in groups {
            let mut params = Vec::new();
            for &i in tensors {
                let (offset, len) = layout[i];
                let (lo, hi) = (offset.max(shard.0), (offset + len).min(shard.1));
                if hi > lo || (config.sharding == Sharding::Replicated) {
                    let (lo, len) = if hi > lo { (lo, hi - lo) } else { (offset, 0) };
                    params.push(Param::new(
                        BufferRange::new(param, 4 * lo, len),
                        BufferRange::new(grad, 4 * lo, len),
                    ));
                    whole_lens.push(layout[i].1);
                }
            }
            // A group with no piece in this shard keeps one empty range, so that every rank's
            // optimizer has every group, in the same order: group indices (`set_group_lr`) and
            // the configurations each step agrees on mean the same on every rank.
            if params.is_empty() {
                let empty = |buffer| BufferRange::new(buffer, 0, 0);
                params.push(Param::new(empty(param), empty(grad)));
                whole_lens.push(0);
            }
            param_groups.push(ParamGroup {
                config: group_config.clone(),
                params,
            });
        }
        let mut optimizer =
            Optimizer::with_precision_of_pieces(ctx, param_groups, config.precision, whole_lens)?;
        let staging_buffer = |label, size: u64| {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let (staging, buckets, stats) = capture_errors(ctx.device(), || {
            let staging = staging_buffer("wgpu-optim distributed staging", 4 * elements.max(1));
            let (buckets, stats) = match config.sharding {
                Sharding::Replicated => {
                    let buckets = (0..4 * elements)
                        .step_by(bucket as usize)
                        .map(|at| {
                            staging_buffer("wgpu-optim bucket", bucket.min(4 * elements - at))
                        })
                        .collect();
                    (buckets, None)
                }
                Sharding::Zero1 => {
                    let stats = ctx.device().create_buffer(&wgpu::BufferDescriptor {
                        label: Some("wgpu-optim distributed norm stats"),
                        size: 8,
                        usage: wgpu::BufferUsages::STORAGE
                            | wgpu::BufferUsages::COPY_SRC
                            | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    (Vec::new(), Some(BufferRange::whole(&stats)))
                }
            };
            (staging, buckets, stats)
        })?;
        if let Some(stats) = &stats {
            optimizer.set_norm_stats_buffer(stats.clone())?;
        }
        Ok((optimizer, staging, buckets, stats))
    }

    /// What this rank alone can refuse before the collective check.
    fn check(
        arena: &Arena,
        ctx: &Context,
        groups: &[(OptimizerConfig, Vec<usize>)],
        config: &DistributedConfig,
    ) -> Result<()> {
        let parts = arena.parts();
        let (layout, (param, grad)) = (parts.layout, parts.dtypes);
        for (role, dtype) in [("param", param), ("grad", grad)] {
            if dtype != Dtype::F32 {
                return Err(Error::UnsupportedDtype {
                    what: if role == "param" {
                        "distributed parameters"
                    } else {
                        "distributed gradients"
                    },
                    dtype,
                    supported: "f32 arenas",
                });
            }
        }
        if !arena.context().same_device(ctx) {
            return Err(Error::OtherDevice { what: "arena" });
        }
        if config.bucket_bytes < 4 {
            return Err(Error::InvalidOptions(
                "a bucket holds at least one f32 (4 bytes)",
            ));
        }
        let mut seen = vec![false; layout.len()];
        for (group, tensors) in groups {
            group.validate()?;
            let trust = matches!(group, OptimizerConfig::Lamb(_) | OptimizerConfig::Lars(_));
            if trust && config.sharding == Sharding::Zero1 {
                return Err(Error::InvalidOptions(
                    "ZeRO-1 shards cut tensors; LAMB's and LARS's trust ratios need whole ones",
                ));
            }
            for &i in tensors {
                match seen.get_mut(i) {
                    Some(s) if !*s => *s = true,
                    _ => {
                        return Err(Error::InvalidOptions(
                            "each tensor of the arena in exactly one parameter group",
                        ))
                    }
                }
            }
        }
        if groups.is_empty() || seen.iter().any(|s| !s) {
            return Err(Error::InvalidOptions(
                "each tensor of the arena in exactly one parameter group",
            ));
        }
        Ok(())
    }

    /// This rank's optimizer: over the whole arena (replicated) or its shard's pieces of the
    /// tensors (ZeRO-1). Its learning-rate setters and schedules work as on one device: call
    /// them alike on every rank (the next [`Distributed::step`] refuses ranks whose
    /// configurations, schedules or gradient processing differ). Turn gradient processing on
    /// with [`Distributed::set_grad_processing`], which the ranks agree on when it is set.
    /// With ZeRO-1 its parameter groups are every group of the build, one without a piece in
    /// this rank's shard holding one empty range (offset 0, length 0), and it moves only its
    /// shard between Schedule-Free's modes: switch them with
    /// [`Distributed::schedule_free_eval`] and [`Distributed::schedule_free_train`].
    pub fn optimizer(&mut self) -> &mut Optimizer {
        &mut self.optimizer
    }

    /// This rank and the number of ranks.
    pub fn rank(&self) -> (usize, usize) {
        (self.rank, self.ranks)
    }

    /// The f32 elements `[lo, hi)` of the arena whose optimizer state this rank keeps.
    pub fn shard(&self) -> (u64, u64) {
        self.shard
    }

    /// Optimizer-state elements this rank keeps, counted from its state buffers' ranges:
    /// the whole arena's times the states per element when replicated, about 1/N of it with
    /// ZeRO-1.
    pub fn state_elements(&self) -> u64 {
        let optimizer = &self.optimizer;
        let mut total = 0;
        for (i, param) in optimizer.params().enumerate() {
            for name in optimizer.state_names() {
                total += match optimizer.state_range(i, name) {
                    Ok(range) => range.len(),
                    // 8-bit states are codes and scales, not one range: an element each.
                    Err(Error::Quantized(_)) => param.len(),
                    Err(_) => 0,
                };
            }
        }
        total
    }

    /// Turns gradient processing on (or off) on every rank, as
    /// [`Optimizer::set_grad_processing`]. With ZeRO-1 the norm statistics travel through a
    /// buffer all-reduced between the halves of the step. Collective: every rank calls it, and
    /// the ranks compare a hash of `config` and whether each could set it up (one all-gather).
    /// Ranks given different configurations (whose steps would run different collectives with
    /// ZeRO-1), or one rank that fails while others succeed, give
    /// [`Error::DistributedMismatch`] on every rank, each left with the gradient processing it
    /// had before, its loss scale and growth tracker untouched (nothing is written before the
    /// ranks agree); when every rank fails, each returns its own error.
    pub fn set_grad_processing(&mut self, config: Option<GradConfig>) -> Result<()> {
        let hash = fnv1a(format!("{config:?}").as_bytes(), FNV_OFFSET);
        // Built first and put in force only once every rank has agreed, so that a refusal
        // writes nothing (a running loss scale carries on).
        let local = self.optimizer.prepare_grad_processing(config);
        let votes = Votes::gather(&self.comm, hash, local.is_ok());
        let what = match (votes.failed, votes.differs) {
            (None, None) => {
                self.optimizer.commit_grad_setup(local?);
                return Ok(());
            }
            // Every rank refused alike: nothing changed anywhere, each returns its own reason.
            (Some(_), _) if votes.all_failed => return local.map(drop),
            (Some(failed), _) => (failed, "its gradient processing failed to set up"),
            (None, Some(other)) => (
                other,
                "its gradient processing differs from the other ranks'",
            ),
        };
        Err(Error::DistributedMismatch {
            rank: what.0,
            what: what.1,
        })
    }

    /// Schedule-Free's `optimizer.eval()` on every rank: [`Optimizer::schedule_free_eval`],
    /// submitted and waited for. With ZeRO-1 each rank moves its shard of the parameters to
    /// `x` and the shards are then all-gathered, so that every rank's arena holds `x`
    /// (`optimizer().schedule_free_eval` alone would move this rank's shard only). Collective:
    /// every rank calls it. [`Error::NotScheduleFree`] on every rank for other optimizers; a
    /// rank whose switch fails returns its error, the others a mismatch naming it, and none
    /// gathers.
    pub fn schedule_free_eval(&mut self) -> Result<CommTimings> {
        self.switch_mode(true)
    }

    /// Schedule-Free's `optimizer.train()` on every rank (the parameters back to `y`), as
    /// [`Distributed::schedule_free_eval`]: call it before the next step.
    pub fn schedule_free_train(&mut self) -> Result<CommTimings> {
        self.switch_mode(false)
    }

    fn switch_mode(&mut self, eval: bool) -> Result<CommTimings> {
        let start = Instant::now();
        let mut timings = CommTimings::default();
        let device = self.ctx.device();
        let mut encoder = device.create_command_encoder(&Default::default());
        let switched = match eval {
            true => self.optimizer.schedule_free_eval(&mut encoder),
            false => self.optimizer.schedule_free_train(&mut encoder),
        }
        .and_then(|()| self.submit_and_wait(encoder));
        // The vote names the operation: a rank in another collective call (a step, the other
        // switch) is refused on every rank rather than paired with this one.
        let operation = if eval {
            "schedule_free_eval"
        } else {
            "schedule_free_train"
        };
        self.vote(
            &mut timings,
            fnv1a(operation.as_bytes(), FNV_OFFSET),
            switched,
            "its switch of Schedule-Free's mode failed (the other ranks have switched)",
            "it called another collective operation than the other ranks",
        )?;
        if self.config.sharding == Sharding::Zero1 {
            let failed = "its download of its shard failed";
            self.all_gather_params(&mut timings, Ok(()), failed)?;
            device.poll(wgpu::PollType::wait_indefinitely())?;
        }
        timings.total = start.elapsed();
        Ok(timings)
    }

    /// Submits `encoder` and waits for it: its validation errors and a lost device as this
    /// rank's error, for the ranks to agree on.
    fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let device = self.ctx.device();
        capture_errors(device, || self.ctx.queue().submit([encoder.finish()]))?;
        Ok(device.poll(wgpu::PollType::wait_indefinitely()).map(drop)?)
    }

    /// [`agree_on`] among the ranks, its time and its 16 bytes counted as communication.
    fn vote<T>(
        &self,
        timings: &mut CommTimings,
        hash: u64,
        local: Result<T>,
        failed: &'static str,
        differs: &'static str,
    ) -> Result<T> {
        let voted = Instant::now();
        let agreed = agree_on(&self.comm, hash, local, failed, differs);
        timings.communicate += voted.elapsed();
        timings.bytes_sent += 16;
        agreed
    }

    /// Whether this rank's step all-reduces the norm statistics between the update's halves
    /// (ZeRO-1 with gradient processing).
    fn reduces_stats(&self) -> bool {
        self.stats.is_some() && self.optimizer.grad_processing().is_some()
    }

    /// One training step: submits `encoder` (this rank's forward and backward passes), then
    /// averages the gradients across ranks and updates the parameters, every rank alike.
    /// Blocking: it waits for the device and for MPI. Collective: every rank calls it. When a
    /// rank's passes fail (a validation error in its encoder, a lost device), no rank steps:
    /// that rank returns its error, the others [`Error::DistributedMismatch`] naming it, and
    /// the ranks can go on stepping alike. Nor when ranks were set apart through
    /// [`Distributed::optimizer`] (a learning rate, a schedule, gradient processing on some
    /// ranks only; a custom schedule's closure is not compared): every rank returns the
    /// mismatch, naming the first rank that differs from most (from rank 0 on a tie). Every
    /// rank then holds an
    /// error: handle it alike on every rank (a rank that stops while the others step again
    /// leaves them waiting in the next step's agreement). A rank whose part of the gradients'
    /// collectives fails (a copy from a destroyed buffer, a staging buffer that cannot be
    /// mapped) sends zeros to the rest of them, and the ranks agree before the update: none
    /// updates, it returns its error and the others the mismatch (the gradients are then
    /// partly reduced: take them again before the next step). A rank whose update then fails
    /// (a lost device) returns its error and the others the mismatch, after they have updated:
    /// replicated, their parameters have stepped; with ZeRO-1 no rank writes the gathered
    /// parameters (each keeps its own shard updated, the others' as before the step), so the
    /// ranks' parameters and step counters differ until a checkpoint is restored.
    pub fn step(&mut self, encoder: wgpu::CommandEncoder) -> Result<CommTimings> {
        let start = Instant::now();
        let mut timings = CommTimings::default();
        // The caller's passes, waited for apart so that the copy's time is the copy's. A rank
        // whose passes fail (a validation error, a lost device) must not leave the others
        // waiting in the gradients' collectives, nor may one whose optimizer was set apart
        // (through `optimizer()`) step otherwise: the ranks agree first, and on a failure or a
        // difference none steps (each returns an error; parameters and states as they were).
        let passes = self.submit_and_wait(encoder);
        timings.backward = start.elapsed();
        self.vote(
            &mut timings,
            step_hash(&self.optimizer),
            passes,
            "its forward and backward passes failed",
            "its groups' configurations, schedule or gradient processing differ from the other \
             ranks' (set through optimizer() on some ranks only)",
        )?;
        // From here every rank runs every collective whatever happens on it: a rank whose part
        // fails (a copy from a destroyed buffer, a staging buffer that cannot be mapped) sends
        // zeros to the rest, and the ranks agree before anything they reduced is used.
        let mut fault = Fault::default();
        match self.config.sharding {
            Sharding::Replicated => self.all_reduce_grads(&mut timings, &mut fault),
            Sharding::Zero1 => self.reduce_scatter_grads(&mut timings, &mut fault),
        }
        if self.reduces_stats() {
            self.all_reduce_stats(&mut timings, &mut fault);
        }
        let failed = "its part of the gradients' collectives failed";
        self.vote(&mut timings, 0, fault.into_result(), failed, failed)?;
        // The update (ZeRO-1's norm stats were reduced between its halves).
        let device = self.ctx.device();
        let mut encoder = device.create_command_encoder(&Default::default());
        if self.reduces_stats() {
            self.optimizer.record_update(&mut encoder);
        } else {
            self.optimizer.step(&mut encoder);
        }
        let updated = self.submit_and_wait(encoder);
        match self.config.sharding {
            // The other ranks have stepped: every rank holds the error all the same.
            Sharding::Replicated => {
                let failed = "its update failed (the other ranks have stepped)";
                self.vote(&mut timings, 0, updated, failed, failed)?;
            }
            Sharding::Zero1 => {
                let failed = "its update or its shard's download failed (every rank keeps its \
                              own shard, and the others' as before the step: restore a \
                              checkpoint before stepping on)";
                self.all_gather_params(&mut timings, updated, failed)?
            }
        }
        device.poll(wgpu::PollType::wait_indefinitely())?;
        timings.total = start.elapsed();
        Ok(timings)
    }
}

/// ZeRO-1's shards of an arena of `elements` f32 elements (tensors at `layout`'s offsets and
/// lengths) over `ranks`: rank r keeps `[bounds[r], bounds[r + 1])`. Equal shards, each a
/// multiple of `align` elements (the device's offset alignment, at least 8) but the last;
/// with `blocks` (8-bit states), a cut inside a tensor of whole blocks that keeps them
/// ([`quantizes`]) moves to the nearest edge of its blocks, so that each piece holds whole
/// blocks of its tensor (its offset stays aligned: a block, 256 elements, is a multiple of
/// any offset alignment up to 1 KiB).
fn shard_bounds(
    elements: u64,
    ranks: usize,
    align: u64,
    layout: &[(u64, u64)],
    blocks: bool,
) -> Vec<u64> {
    let len = elements
        .div_ceil(ranks as u64)
        .next_multiple_of(align.max(8));
    let block = BLOCK as u64;
    let mut bounds = vec![0];
    for r in 1..ranks as u64 {
        let mut cut = (r * len).min(elements);
        let inside = layout
            .iter()
            .find(|&&(offset, n)| offset < cut && cut < offset + n);
        if let Some(&(offset, n)) = inside.filter(|&&(_, n)| blocks && quantizes(n)) {
            let below = offset + (cut - offset) / block * block;
            cut = if cut - below <= block / 2 {
                below
            } else {
                (below + block).min(offset + n)
            };
        }
        let last = *bounds.last().unwrap();
        bounds.push(cut.max(last));
    }
    bounds.push(elements);
    bounds
}

#[cfg(test)]
mod tests {
    use super::shard_bounds;
    use crate::quant::quantizes;

    #[test]
    fn shards_are_equal_without_8bit_states() {
        // The tensors of tests/mpi.rs's arena (offsets aligned to 8 elements).
        let layout = [(0, 300), (304, 1000), (1304, 7), (1312, 2048), (3360, 4096)];
        assert_eq!(shard_bounds(7456, 2, 8, &layout, false), [0, 3728, 7456]);
        assert_eq!(
            shard_bounds(7456, 4, 8, &layout, false),
            [0, 1864, 3728, 5592, 7456]
        );
        assert_eq!(
            shard_bounds(7456, 4, 64, &layout, false),
            [0, 1920, 3840, 5760, 7456]
        );
        // More ranks than elements: empty shards at the end.
        assert_eq!(
            shard_bounds(16, 4, 8, &[(0, 10)], false),
            [0, 8, 16, 16, 16]
        );
        // With 8-bit states a cut inside the 4096-element tensor moves to the nearest edge of
        // its blocks (3728 is 368 past its start: 256 is nearer than 512); one elsewhere stays.
        assert_eq!(shard_bounds(7456, 2, 8, &layout, true), [0, 3616, 7456]);
        assert_eq!(
            shard_bounds(7456, 4, 8, &layout, true),
            [0, 1864, 3616, 5664, 7456]
        );
    }

    /// Over many layouts: the shards cover the arena in order, every cut is aligned, and a
    /// cut inside a tensor that keeps 8-bit states lies on one of its blocks' edges, at most
    /// half a block from the equal cut.
    #[test]
    fn cuts_inside_quantized_tensors_lie_on_block_edges() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..2000 {
            let align = [8, 16, 32, 64][next(4) as usize];
            let mut layout = Vec::new();
            let mut end = 0;
            for _ in 0..1 + next(6) {
                let len = match next(3) {
                    0 => 256 * (16 + next(40)),
                    1 => 1 + next(5000),
                    _ => 4096,
                };
                layout.push((end, len));
                end = (end + len).next_multiple_of(align);
            }
            let ranks = 1 + next(9) as usize;
            let bounds = shard_bounds(end, ranks, align, &layout, true);
            let equal = end.div_ceil(ranks as u64).next_multiple_of(align);
            assert_eq!((bounds[0], bounds[ranks]), (0, end), "{layout:?} {ranks}");
            for (r, w) in bounds.windows(2).enumerate() {
                assert!(w[0] <= w[1], "{layout:?} over {ranks}: {bounds:?}");
                let cut = w[0];
                assert!(cut % align == 0 || cut == end, "{layout:?} {bounds:?}");
                let equal_cut = (r as u64 * equal).min(end);
                for &(offset, len) in &layout {
                    if quantizes(len) && offset < cut && cut < offset + len {
                        assert_eq!((cut - offset) % 256, 0, "{layout:?} {bounds:?}");
                        assert!(cut.abs_diff(equal_cut) <= 128, "{layout:?} {bounds:?}");
                    }
                }
            }
        }
    }
}
