//! The step's command buffer: the copies of the tensors that are not bound, the update, and
//! what the module gets back.

use std::collections::HashMap;

use ::burn::module::ParamId;

use super::{Built, FusionHandle, Held, ParamPlan, Resolved, StepStats};
use crate::gpu::BufferRange;

impl Built {
    /// Records the step in one command buffer and submits it: gradients in, parameters Burn
    /// replaced in, the update, parameters out. Returns the new tensors of shared parameters,
    /// for the module (copy on write).
    /// `was_bound`: which tensors the previous step updated in Burn's buffers (the arena's
    /// copy of their parameter is stale).
    pub(super) fn record_step(
        &mut self,
        grads: &[Resolved],
        plans: Vec<ParamPlan>,
        was_bound: &[bool],
    ) -> HashMap<ParamId, FusionHandle> {
        self.stats = StepStats {
            tensors: plans.len(),
            bound: self.bound.iter().flatten().count(),
            rebound: self.stats.rebound,
            copied_in: (plans.iter().enumerate())
                .filter(|&(i, p)| self.bound[i].is_none() && (p.source.is_some() || was_bound[i]))
                .count(),
            copied_on_write: plans.iter().filter(|p| p.replacement.is_some()).count(),
            widened: plans.iter().filter(|p| p.widened.is_some()).count(),
        };
        let ctx = self.optimizer.context().clone();
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-optim burn step"),
            });
        for (i, (grad, plan)) in grads.iter().zip(&plans).enumerate() {
            if self.bound[i].is_some() {
                continue; // read and written where Burn keeps them
            }
            copy_in(&mut encoder, grad, &self.grad_ranges[i]);
            match &plan.source {
                // The module holds the tensor the optimizer wrote last, in Burn's buffer.
                None if was_bound[i] => {
                    let held = self.slots[i].held.as_ref();
                    let held = held.expect("a bound parameter is held");
                    copy_in(&mut encoder, &held.range, &self.param_ranges[i]);
                }
                None => {}
                Some(Some(other)) => copy_in(&mut encoder, other, &self.param_ranges[i]),
                Some(None) => {
                    let dest = plan.dest.as_ref().expect("a new tensor has a range");
                    copy_in(&mut encoder, dest, &self.param_ranges[i]);
                }
            }
            if let (Some(wide), Some(master)) = (&plan.widened, &self.master_ranges[i]) {
                copy_in(&mut encoder, wide, master);
            }
        }
        self.optimizer.step(&mut encoder);
        for (i, plan) in plans.iter().enumerate() {
            if self.bound[i].is_some() {
                continue;
            }
            let dest = match (&plan.dest, &self.slots[i].held) {
                (Some(dest), _) | (None, Some(Held { range: dest, .. })) => dest,
                (None, None) => unreachable!("a parameter not held has a new range"),
            };
            copy_out(&mut encoder, &self.param_ranges[i], dest);
        }
        ctx.queue().submit([encoder.finish()]);

        // The gradients' ranges go back to Burn's pool as `grads` is dropped (its later work
        // is queued after this submit); the parameters' stay held until replaced.
        let mut replacements = HashMap::new();
        for (slot, plan) in self.slots.iter_mut().zip(plans) {
            if let Some(range) = plan.dest {
                slot.held = Some(Held { id: plan.id, range });
            }
            if let Some(fresh) = plan.replacement {
                replacements.insert(slot.info.id, fresh);
            }
        }
        self.resync_master = true;
        replacements
    }
}

/// Bytes of a copy of `bytes`: rounded up to wgpu's 4-byte copy granularity. The word past an
/// odd-length 16-bit tensor lies in its allocation's padding on both sides: CubeCL pads every
/// allocation to its buffer-offset alignment (at least 4), and the arena pads every tensor.
fn copy_len(bytes: u64) -> u64 {
    bytes.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
}

fn copy_in(encoder: &mut wgpu::CommandEncoder, from: &Resolved, to: &BufferRange) {
    let len = copy_len(from.bytes);
    encoder.copy_buffer_to_buffer(&from.buffer, from.offset, to.buffer(), to.offset(), len);
}

fn copy_out(encoder: &mut wgpu::CommandEncoder, from: &BufferRange, to: &Resolved) {
    let len = copy_len(to.bytes);
    encoder.copy_buffer_to_buffer(from.buffer(), from.offset(), &to.buffer, to.offset, len);
}
