//! The training log: the learning rate, batch loss and gradient norm at the logged steps,
//! filled in as the non-blocking readbacks arrive.
//!
//! A log point is named by the training loop's step: the steps *attempted* when its copies
//! were recorded. The loss readback carries that step itself; a control block carries the
//! device's counters, `step` (steps taken) and `skipped_steps` (steps skipped for inf or NaN
//! gradients, which do not advance `step`), whose sum is the same number. Keying the control
//! block by `step` alone names the wrong log point, or none, once a step has been skipped.

use wgpu_optim::Control;

/// One log point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    /// Steps attempted when the point was recorded (1-based: the step that just ran).
    pub step: usize,
    /// The learning rate that step ran with.
    pub lr: f64,
    /// The batch loss, once read back.
    pub loss: Option<f32>,
    /// The global gradient norm, once read back (inf or NaN for a skipped step).
    pub grad_norm: Option<f32>,
    /// Whether the optimizer skipped the step: its gradients held an inf or NaN.
    pub skipped: bool,
}

/// A readback of a step that was never logged: a bookkeeping error, reported rather than
/// panicking in the training loop.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error(
    "a readback of step {step} (device counters: {taken} taken, {skipped} skipped), which was \
     not a logged step"
)]
pub struct UnloggedStep {
    pub step: usize,
    pub taken: u32,
    pub skipped: u32,
}

/// The steps attempted by the time `control` was copied: taken plus skipped.
pub fn attempted(control: &Control) -> usize {
    control.step as usize + control.skipped_steps as usize
}

/// The log points in step order, and the skipped steps the readbacks have shown.
#[derive(Debug, Default)]
pub struct TrainLog {
    entries: Vec<Entry>,
    skipped_steps: u32,
}

impl TrainLog {
    /// A log point at `step` (steps attempted, increasing from call to call), run with `lr`.
    pub fn expect(&mut self, step: usize, lr: f64) {
        debug_assert!(self.entries.last().is_none_or(|e| e.step < step));
        self.entries.push(Entry {
            step,
            lr,
            loss: None,
            grad_norm: None,
            skipped: false,
        });
    }

    fn entry(&mut self, step: usize) -> Option<&mut Entry> {
        let at = self.entries.binary_search_by_key(&step, |e| e.step).ok()?;
        Some(&mut self.entries[at])
    }

    /// The batch loss of `step` arrived.
    pub fn loss(&mut self, step: usize, loss: f32) -> Result<Entry, UnloggedStep> {
        let entry = self.entry(step).ok_or(UnloggedStep {
            step,
            taken: 0,
            skipped: 0,
        })?;
        entry.loss = Some(loss);
        Ok(*entry)
    }

    /// A control block arrived: its gradient norm and whether its step was skipped go to
    /// the log point of its attempted steps.
    pub fn control(&mut self, control: &Control) -> Result<Entry, UnloggedStep> {
        let step = attempted(control);
        self.skipped_steps = self.skipped_steps.max(control.skipped_steps);
        let entry = self.entry(step).ok_or(UnloggedStep {
            step,
            taken: control.step,
            skipped: control.skipped_steps,
        })?;
        entry.grad_norm = Some(control.grad_norm);
        entry.skipped = control.found_inf != 0;
        Ok(*entry)
    }

    /// The log points that received a readback, in step order (a point whose copies found
    /// every staging buffer in flight, or arrived after the run, has none).
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|e| e.loss.is_some() || e.grad_norm.is_some())
            .copied()
            .collect()
    }

    /// Steps skipped for inf or NaN gradients, as the readbacks so far have shown.
    pub fn skipped_steps(&self) -> u32 {
        self.skipped_steps
    }
}
