//! Reading an optimizer's control block back without stalling the queue: for logging the
//! gradient norm, the loss scale and skipped steps from a training loop.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernel::Control;
use crate::optimizer::Optimizer;

/// A ring of staging buffers that copies an optimizer's [`Control`] block at chosen steps and
/// hands the copies back once the device has produced them, never waiting for it.
///
/// [`ControlReader::record`] adds a copy to the caller's encoder (and maps it when that encoder
/// is submitted); [`ControlReader::try_read`] polls the device without blocking and returns the
/// copies that have arrived, oldest first. With `depth` slots, up to `depth` copies can be in
/// flight; `record` returns `Ok(false)` (and records nothing) when all are.
///
/// ```no_run
/// # use wgpu_optim::{Context, ControlReader, Optimizer};
/// # fn demo(ctx: &Context, optimizer: &Optimizer) -> wgpu_optim::Result<()> {
/// let mut reader = ControlReader::new(ctx, 4);
/// for step in 0..10_000 {
///     let mut encoder = ctx.device().create_command_encoder(&Default::default());
///     // ... forward and backward ...
///     optimizer.step(&mut encoder);
///     if step % 100 == 0 {
///         reader.record(&mut encoder, optimizer)?;
///     }
///     ctx.queue().submit([encoder.finish()]);
///     for control in reader.try_read()? {
///         println!("step {}: grad norm {}", control.step, control.grad_norm);
///     }
/// }
/// # Ok(()) }
/// ```
///
/// A copy recorded into an encoder that is dropped unsubmitted frees its slot again. When a
/// call fails (a halted optimizer, a failed mapping), the copies that arrived with it are
/// dropped; their slots are free.
///
/// A [population](Optimizer::population) has a control block per replica: read it with a
/// reader made by [`ControlReader::for_optimizer`], whose copies hold every block
/// ([`ControlReader::try_read_blocks`]).
pub struct ControlReader {
    ctx: Context,
    slots: Vec<Slot>,
    recorded: u64,
    // Control blocks per copy.
    blocks: usize,
}

struct Slot {
    buffer: wgpu::Buffer,
    state: Arc<Mutex<SlotState>>,
}

#[derive(Debug)]
enum SlotState {
    Free,
    InFlight,
    Mapped(u64, std::result::Result<(), wgpu::BufferAsyncError>),
}

const SIZE: u64 = std::mem::size_of::<Control>() as u64;

impl ControlReader {
    /// A reader with `depth` staging buffers (at least 1) of one control block each.
    pub fn new(ctx: &Context, depth: usize) -> Self {
        Self::with_blocks(ctx, depth, 1)
    }

    /// A reader of `optimizer`'s control blocks (one per replica of a population), with
    /// `depth` staging buffers.
    pub fn for_optimizer(optimizer: &Optimizer, depth: usize) -> Self {
        Self::with_blocks(optimizer.context(), depth, optimizer.control_blocks())
    }

    fn with_blocks(ctx: &Context, depth: usize, blocks: usize) -> Self {
        let slots = (0..depth.max(1))
            .map(|_| Slot {
                buffer: ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgpu-optim control readback"),
                    size: SIZE * blocks as u64,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                state: Arc::new(Mutex::new(SlotState::Free)),
            })
            .collect();
        ControlReader {
            ctx: ctx.clone(),
            slots,
            recorded: 0,
            blocks,
        }
    }

    /// Records a copy of `optimizer`'s control blocks, as they stand after everything
    /// recorded before it in `encoder`. Returns `Ok(false)` and records nothing when every
    /// slot is in flight, [`Error::OtherDevice`] for an optimizer of another device than the
    /// reader's (the copy would fail at the caller's submit), and [`Error::WrongLength`] for
    /// one with another number of control blocks than the reader's.
    pub fn record(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        optimizer: &Optimizer,
    ) -> Result<bool> {
        if !optimizer.context().same_device(&self.ctx) {
            return Err(Error::OtherDevice { what: "optimizer" });
        }
        if optimizer.control_blocks() != self.blocks {
            return Err(Error::WrongLength {
                what: "control blocks (ControlReader::for_optimizer sizes a reader)",
                expected: self.blocks,
                actual: optimizer.control_blocks(),
            });
        }
        let Some(slot) = self
            .slots
            .iter()
            .find(|s| matches!(*lock(&s.state), SlotState::Free))
        else {
            return Ok(false);
        };
        let size = SIZE * self.blocks as u64;
        encoder.copy_buffer_to_buffer(optimizer.control_buffer(), 0, &slot.buffer, 0, size);
        *lock(&slot.state) = SlotState::InFlight;
        let state = slot.state.clone();
        let sequence = self.recorded;
        encoder.map_buffer_on_submit(&slot.buffer, wgpu::MapMode::Read, .., move |result| {
            *lock(&state) = SlotState::Mapped(sequence, result);
        });
        self.recorded += 1;
        Ok(true)
    }

    /// The copies that have arrived since the last call, oldest first, without blocking (for
    /// a reader of several control blocks, each copy's blocks in order: see
    /// [`ControlReader::try_read_blocks`]).
    ///
    /// Fails with [`Error::NonFiniteGradients`] when one of them shows an optimizer halted by
    /// `error_if_nonfinite` (the error carries that copy), or when a mapping failed.
    pub fn try_read(&mut self) -> Result<Vec<Control>> {
        let blocks = self.try_read_blocks()?.into_iter().flatten();
        blocks.map(Control::checked).collect()
    }

    /// The copies that have arrived since the last call, oldest first, each as its control
    /// blocks (one per replica of a population), without blocking. The blocks come as they
    /// are: a replica halted by `error_if_nonfinite` does not hide the others; check each
    /// with [`Control::checked`]. Fails when a mapping failed.
    pub fn try_read_blocks(&mut self) -> Result<Vec<Vec<Control>>> {
        self.ctx.device().poll(wgpu::PollType::Poll)?;
        let mut arrived = Vec::new();
        for slot in &self.slots {
            let mut state = lock(&slot.state);
            // The callback's clone of `state` is gone without running: the copy was recorded
            // into an encoder that was dropped, or never submitted. The slot is free again.
            if matches!(*state, SlotState::InFlight) && Arc::strong_count(&slot.state) == 1 {
                *state = SlotState::Free;
            }
            if let SlotState::Mapped(sequence, result) = &*state {
                let sequence = *sequence;
                let read = result.clone().map_err(Error::from).and_then(|()| {
                    let view = slot
                        .buffer
                        .slice(..)
                        .get_mapped_range()
                        .map_err(|e| Error::Wgpu(e.to_string()))?;
                    Ok(view
                        .chunks_exact(SIZE as usize)
                        .map(bytemuck::pod_read_unaligned::<Control>)
                        .collect::<Vec<Control>>())
                });
                if result.is_ok() {
                    slot.buffer.unmap();
                }
                *state = SlotState::Free;
                arrived.push((sequence, read));
            }
        }
        arrived.sort_by_key(|(sequence, _)| *sequence);
        arrived.into_iter().map(|(_, blocks)| blocks).collect()
    }

    /// Control blocks per copy: 1, or a population's replicas.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Copies recorded and not yet returned by [`ControlReader::try_read`].
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !matches!(*lock(&s.state), SlotState::Free))
            .count()
    }
}

fn lock(state: &Mutex<SlotState>) -> std::sync::MutexGuard<'_, SlotState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
