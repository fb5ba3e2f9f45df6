//! Recording a step into the caller's encoder (nothing submitted, polled or read back), and
//! Schedule-Free's eval/train switch.

use super::dispatch::UpdatePipelines;
use super::Optimizer;
use crate::error::{Error, Result};
use crate::optim::ScheduleFreeRunning;

impl Optimizer {
    /// Records, in one compute pass, the whole step: gradient processing when it is on (the
    /// norm reduction and its finalize), then the prologue and the update. Nothing is
    /// submitted, polled or read back.
    pub fn step(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = Self::begin(encoder);
        self.record_stats_into(&mut pass);
        self.record_update_into(&mut pass);
    }

    // Every gradient's norm stats, Muon's added to the others', when processing is on.
    fn record_stats_into(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Some(grad) = &self.grad {
            grad.record_stats(pass);
            if let Some(muon) = &self.muon {
                muon.record_stats(pass);
            }
        }
    }

    /// The first half of a data-parallel step: reduces this device's gradients into its
    /// [`NormStats`](crate::NormStats) buffer (see [`Optimizer::set_norm_stats_buffer`]), for
    /// the caller to all-reduce across devices before [`Optimizer::record_update`].
    pub fn record_grad_stats(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        if self.grad.is_none() {
            return Err(Error::NoGradProcessing);
        }
        self.record_stats_into(&mut Self::begin(encoder));
        Ok(())
    }

    /// The second half of a data-parallel step: derives the global norm, clip coefficient,
    /// skip flag and loss scale from the (all-reduced) [`NormStats`](crate::NormStats)
    /// buffer, then records the prologue and the update. Without gradient processing it is
    /// the whole step.
    pub fn record_update(&self, encoder: &mut wgpu::CommandEncoder) {
        self.record_update_into(&mut Self::begin(encoder));
    }

    fn begin(encoder: &mut wgpu::CommandEncoder) -> wgpu::ComputePass<'_> {
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-optim step"),
            timestamp_writes: None,
        })
    }

    // The finalize (with gradient processing), the prologue (advance the step counter, derive
    // per-step scalars) and the update dispatches of each chunk.
    fn record_update_into(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Some(grad) = &self.grad {
            grad.record_finalize(pass);
        }
        if let Some(schedule) = &self.schedule {
            schedule.record(pass);
        }
        let pipelines = &self.pipelines;
        pass.set_pipeline(&pipelines.prologue);
        pass.set_bind_group(0, &self.prologue, &[]);
        pass.dispatch_workgroups(self.plan.plan.controls.div_ceil(64), 1, 1);
        if let (Some((norms, fold)), Some(trust)) = (&pipelines.trust, &self.trust_fold) {
            // LAMB, LARS: the first pass (states, each segment's sums), each tensor's ratio.
            self.record_dispatches(pass, norms);
            pass.set_pipeline(fold);
            trust.fold.record(pass);
        }
        self.record_dispatches(pass, &pipelines.update);
        if let Some(muon) = &self.muon {
            muon.record_step(pass);
        }
    }

    // The dispatches of one pass over each chunk with `pipelines`, then the tails.
    fn record_dispatches(&self, pass: &mut wgpu::ComputePass<'_>, pipelines: &UpdatePipelines) {
        // One pipeline switch per change of layout, not per chunk.
        let mut layout = None;
        for chunk in &self.dispatches {
            if layout != Some((chunk.layout, chunk.quantized)) {
                pass.set_pipeline(pipelines.of(chunk.layout, chunk.quantized));
                layout = Some((chunk.layout, chunk.quantized));
            }
            for dispatch in &chunk.main {
                dispatch.record(pass);
            }
        }
        // The tails touch no element of any main segment: they go after every chunk's update,
        // with one pipeline switch.
        if let Some(tail) = &pipelines.tail {
            pass.set_pipeline(tail);
            for dispatch in self.dispatches.iter().flat_map(|d| &d.tail) {
                dispatch.record(pass);
            }
        }
    }

    /// Schedule-Free's `optimizer.eval()`: records the dispatches that move every parameter
    /// from `y`, where gradients are taken, to the averaged iterate `x`, where the model is
    /// evaluated, `p = lerp(p, z, 1 - 1 / beta1)` (Schedule-Free SGD's `momentum` in the place
    /// of `beta1`; see [`ScheduleFreeAdamWConfig`](crate::ScheduleFreeAdamWConfig) and
    /// [`ScheduleFreeSgdConfig`](crate::ScheduleFreeSgdConfig)). The mode is kept on the
    /// device, in each group's record (`train_mode`), so it follows the work submitted: the
    /// dispatches are recorded whatever the mode, and move nothing when the parameters are x
    /// already (or before the first step, when z does not exist yet); an encoder recorded and
    /// dropped changes nothing. Call [`Optimizer::schedule_free_train`] before the next step:
    /// the package refuses a step in eval mode, and here a step taken in eval mode moves the
    /// parameters back to `y` first, as `train()` would. Other optimizers:
    /// [`Error::NotScheduleFree`].
    pub fn schedule_free_eval(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        self.switch_mode(encoder, true)
    }

    /// Schedule-Free's `optimizer.train()`: records the dispatches that move every parameter
    /// from `x` back to `y`, `p = lerp(p, z, 1 - beta1)` (or `1 - momentum`); they move
    /// nothing when the parameters are y already (as the optimizer starts). Other optimizers:
    /// [`Error::NotScheduleFree`].
    pub fn schedule_free_train(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        self.switch_mode(encoder, false)
    }

    /// Whether a Schedule-Free optimizer's parameters are `x` (eval mode), as the work
    /// submitted so far leaves them: read back from the device (blocking); false for other
    /// optimizers.
    pub fn is_schedule_free_eval(&self) -> Result<bool> {
        if self.modes.is_none() {
            return Ok(false);
        }
        let running = self.read_running()?;
        Ok(running.first().is_some_and(|values| {
            bytemuck::pod_read_unaligned::<ScheduleFreeRunning>(bytemuck::cast_slice(values))
                .is_eval()
        }))
    }

    // The switch's prologue (each group's mode and whether it moves; the step counter left
    // alone), then its update dispatches.
    fn switch_mode(&self, encoder: &mut wgpu::CommandEncoder, eval: bool) -> Result<()> {
        let modes = self
            .modes
            .as_ref()
            .ok_or(Error::NotScheduleFree(self.config().name()))?;
        let pipelines = &modes[usize::from(!eval)];
        let mut pass = Self::begin(encoder);
        pass.set_pipeline(&pipelines.prologue);
        pass.set_bind_group(0, &self.prologue, &[]);
        pass.dispatch_workgroups(self.plan.plan.controls.div_ceil(64), 1, 1);
        self.record_dispatches(&mut pass, &pipelines.update);
        Ok(())
    }

    /// Whether the optimizer has Schedule-Free's eval/train switch.
    pub(crate) fn has_switch(&self) -> bool {
        self.modes.is_some()
    }
}
