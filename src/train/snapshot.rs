//! [`Snapshot`]: device-side copies of buffer ranges, saved and restored by copies recorded
//! into the caller's encoder: the best weights of an early-stopped run come back without a
//! host round trip.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::{capture_errors, Context};
use crate::gpu::{BufferRange, COPY_ALIGNMENT};
use crate::kernel::ControlOwners;
use crate::optimizer::Optimizer;

/// What a range of a snapshot is, for errors.
#[derive(Clone, Copy, Debug)]
enum Label {
    /// Position in the list given to [`Snapshot::new`].
    Range(usize),
    /// Tensor `index`'s param or state `name`.
    Tensor(usize, &'static str),
    /// The optimizer's control block.
    Control,
    /// Parameter group `g`'s running values (Schedule-Free's, NAdam's).
    Running(usize),
    /// Position in the `extra` list of [`Snapshot::of_optimizer`].
    Extra(usize),
}

impl Label {
    /// `(index, role)` for the errors of [`BufferRange::check`].
    fn index_role(self) -> (usize, &'static str) {
        match self {
            Label::Range(i) => (i, "snapshot"),
            Label::Tensor(i, role) => (i, role),
            Label::Control => (0, "control block"),
            Label::Running(g) => (g, "running values"),
            Label::Extra(i) => (i, "extra snapshot"),
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Range(i) => write!(f, "range {i}"),
            Label::Tensor(i, role) => write!(f, "tensor {i}'s {role}"),
            Label::Control => write!(f, "the control block"),
            Label::Running(g) => write!(f, "group {g}'s running values"),
            Label::Extra(i) => write!(f, "extra range {i}"),
        }
    }
}

/// One range's copy: `size` bytes at `offset` of `source`, kept at `backup_offset` of backup
/// buffer `backup`.
#[derive(Debug)]
struct Copy {
    source: wgpu::Buffer,
    offset: u64,
    size: u64,
    backup: usize,
    backup_offset: u64,
}

/// Device-side copies of a list of buffer ranges, allocated once:
/// [`record_save`](Snapshot::record_save) copies the ranges into the backups and
/// [`record_restore`](Snapshot::record_restore) copies them back, each by
/// `copy_buffer_to_buffer` recorded into the caller's encoder (no submit, no wait). Keras'
/// `EarlyStopping(restore_best_weights=True)` and Lightning's `ModelCheckpoint` +
/// `load_from_checkpoint`, without the host round trip.
///
/// [`Snapshot::of_optimizer`] covers everything a step changes: every tensor's parameters,
/// every state (`exp_avg`, ..., `master_param`, Muon's `momentum_buffer`), the control block
/// (step counter, loss scale, skipped steps) and each group's running values (Schedule-Free's `lr_max`,
/// `weight_sum` and `train_mode`, NAdam's running `mu_product`), so a restore rewinds the
/// optimizer as a whole, as loading a checkpoint would: Schedule-Free's mode, kept on the
/// device, comes back with the parameters saved in it (x or y), when the restore runs. The configuration is not restored: the learning rate a
/// [`ReduceLrOnPlateau`](crate::ReduceLrOnPlateau) lowered stays low, and the control words
/// that belong to the gradient processing in force when the restore is recorded stay as they
/// are (see [`Snapshot::record_restore`]).
///
/// Each range needs `COPY_SRC` and `COPY_DST` ([`Error::MissingUsage`] names the range), a
/// 4-byte aligned offset ([`Error::MisalignedOffset`]) and to lie in its buffer
/// ([`Error::OutOfBounds`]); copies are of whole 32-bit words (a 16-bit range of odd length
/// takes the 2 bytes after its last element, as [`BufferRange::word_end`] says), and no two
/// ranges may share a word ([`Error::SnapshotOverlap`]). Empty ranges are kept and copy
/// nothing. Backups are packed into as few buffers as the device's `max_buffer_size` allows.
///
/// ```no_run
/// # use wgpu_optim::{Context, Optimizer, Snapshot};
/// # fn demo(ctx: &Context, optimizer: &Optimizer) -> wgpu_optim::Result<()> {
/// let best = Snapshot::of_optimizer(ctx, optimizer, &[])?;
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// optimizer.step(&mut encoder);
/// best.record_save(&mut encoder); // the weights after this step
/// // ... later steps, then, in some encoder:
/// best.record_restore(&mut encoder);
/// ctx.queue().submit([encoder.finish()]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Snapshot {
    copies: Vec<Copy>,
    backups: Vec<wgpu::Buffer>,
    // Of a snapshot of an optimizer: the copy of its control buffer, and which words of each
    // block its gradient processing owns when a restore is recorded.
    control: Option<(usize, Arc<Mutex<Vec<ControlOwners>>>)>,
}

impl Snapshot {
    /// A snapshot of `ranges`, with its backup buffers allocated (their contents are
    /// undefined until a save is submitted).
    pub fn new(ctx: &Context, ranges: &[BufferRange]) -> Result<Self> {
        let labelled: Vec<(Label, BufferRange)> = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| (Label::Range(i), r.clone()))
            .collect();
        Self::create(ctx, &labelled)
    }

    /// A snapshot of everything `optimizer`'s step changes (see the type's documentation),
    /// plus `extra` ranges of the caller's (a model's buffers that the optimizer does not
    /// own, say). [`Error::OtherDevice`] for an optimizer of another device than `ctx`'s.
    pub fn of_optimizer(
        ctx: &Context,
        optimizer: &Optimizer,
        extra: &[BufferRange],
    ) -> Result<Self> {
        if !optimizer.context().same_device(ctx) {
            return Err(Error::OtherDevice { what: "optimizer" });
        }
        let names = optimizer.state_names();
        let mut labelled = Vec::new();
        for (index, param) in optimizer.params().enumerate() {
            labelled.push((Label::Tensor(index, "param"), param.param.clone()));
            for &name in &names {
                for range in optimizer.state_copy_ranges(index, name)? {
                    labelled.push((Label::Tensor(index, name), range));
                }
            }
        }
        // Muon's tensors, numbered after the others: the parameter and its momentum.
        let first = optimizer.params().count();
        for (j, param) in optimizer.muon_params().enumerate() {
            let index = first + j;
            labelled.push((Label::Tensor(index, "param"), param.param.clone()));
            let momentum = optimizer.state_range(index, "momentum_buffer")?;
            labelled.push((Label::Tensor(index, "momentum_buffer"), momentum.clone()));
        }
        labelled.push((
            Label::Control,
            BufferRange::whole(optimizer.control_buffer()),
        ));
        labelled.extend(
            optimizer
                .running_ranges()
                .into_iter()
                .enumerate()
                .map(|(g, r)| (Label::Running(g), r)),
        );
        labelled.extend(
            extra
                .iter()
                .enumerate()
                .map(|(i, r)| (Label::Extra(i), r.clone())),
        );
        let mut snapshot = Self::create(ctx, &labelled)?;
        let control = optimizer.control_buffer();
        snapshot.control = snapshot
            .copies
            .iter()
            .position(|c| &c.source == control)
            .map(|copy| (copy, optimizer.control_owners()));
        Ok(snapshot)
    }

    fn create(ctx: &Context, ranges: &[(Label, BufferRange)]) -> Result<Self> {
        let usage = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        for (label, range) in ranges {
            let (index, role) = label.index_role();
            range.check(index, role, COPY_ALIGNMENT, usage)?;
        }
        check_disjoint_words(ranges)?;

        // Pack the copies into backup buffers of at most `max_buffer_size` bytes each.
        let max = ctx.device().limits().max_buffer_size;
        let mut copies = Vec::new();
        let mut sizes: Vec<u64> = Vec::new();
        for (_, range) in ranges.iter().filter(|(_, r)| !r.is_empty()) {
            let size = range.word_end() - range.offset();
            if sizes.last().is_none_or(|&used| used + size > max) {
                sizes.push(0);
            }
            let backup = sizes.len() - 1;
            copies.push(Copy {
                source: range.buffer().clone(),
                offset: range.offset(),
                size,
                backup,
                backup_offset: sizes[backup],
            });
            sizes[backup] += size;
        }
        let device = ctx.device();
        let backups = capture_errors(device, || {
            sizes
                .iter()
                .map(|&size| {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("wgpu-optim snapshot"),
                        size,
                        usage,
                        mapped_at_creation: false,
                    })
                })
                .collect()
        })?;
        Ok(Snapshot {
            copies,
            backups,
            control: None,
        })
    }

    /// Records copies of the ranges into the backups, as they stand after everything
    /// recorded before in `encoder`.
    pub fn record_save(&self, encoder: &mut wgpu::CommandEncoder) {
        for c in &self.copies {
            let backup = &self.backups[c.backup];
            encoder.copy_buffer_to_buffer(&c.source, c.offset, backup, c.backup_offset, c.size);
        }
    }

    /// Records copies of the backups back into the ranges: what the last save submitted
    /// before them left there. Of an optimizer's control block, the words that belong to the
    /// gradient processing in force when the restore is recorded stay as they are, as
    /// loading a checkpoint leaves them: `clip_value` (configuration), the loss scale and
    /// growth tracker without a GradScaler (1 and 0), a halt without `error_if_nonfinite`
    /// (none); `inv_grad_scale` is derived again by the next step.
    pub fn record_restore(&self, encoder: &mut wgpu::CommandEncoder) {
        for (i, c) in self.copies.iter().enumerate() {
            let backup = &self.backups[c.backup];
            match &self.control {
                Some((copy, owners)) if *copy == i => {
                    let owners = owners.lock().unwrap_or_else(|e| e.into_inner());
                    for (k, owned) in owners.iter().enumerate() {
                        for words in owned.restored_ranges(k) {
                            let (from, to) =
                                (c.backup_offset + words.start, c.offset + words.start);
                            let size = words.end - words.start;
                            encoder.copy_buffer_to_buffer(backup, from, &c.source, to, size);
                        }
                    }
                }
                _ => encoder.copy_buffer_to_buffer(
                    backup,
                    c.backup_offset,
                    &c.source,
                    c.offset,
                    c.size,
                ),
            }
        }
    }

    /// Bytes one save (or restore) copies: the device memory the backups hold.
    pub fn bytes(&self) -> u64 {
        self.copies.iter().map(|c| c.size).sum()
    }

    /// Copies one save records: one per non-empty range.
    pub fn copies(&self) -> usize {
        self.copies.len()
    }
}

/// Refuses two non-empty ranges of one buffer that share a 32-bit word: a restore would write
/// that word twice, from two copies.
fn check_disjoint_words(ranges: &[(Label, BufferRange)]) -> Result<()> {
    let mut order: Vec<usize> = (0..ranges.len())
        .filter(|&i| !ranges[i].1.is_empty())
        .collect();
    order.sort_by_key(|&i| ranges[i].1.offset());
    for (n, &i) in order.iter().enumerate() {
        for &j in &order[n + 1..] {
            let (a, b) = (&ranges[i].1, &ranges[j].1);
            if b.offset() >= a.word_end() {
                break;
            }
            if a.buffer() == b.buffer() {
                let (first, second) = (i.min(j), i.max(j));
                return Err(Error::SnapshotOverlap {
                    first: ranges[first].0.to_string(),
                    second: ranges[second].0.to_string(),
                });
            }
        }
    }
    Ok(())
}
