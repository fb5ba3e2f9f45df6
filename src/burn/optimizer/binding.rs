//! Direct binding: large tensors updated in Burn's own buffers (see
//! [`FusedOptimizer::with_direct_binding`](super::FusedOptimizer::with_direct_binding)), and
//! building the optimizer again when Burn hands them in other ranges.

use ::burn::tensor::DType;

use super::{Built, Held, ParamGroup, ParamPlan, Resolved};
use crate::error::Result;
use crate::gpu::{BufferRange, Param};
use crate::grad::GradConfig;
use crate::optimizer::{Optimizer, Precision, MASTER_PARAM};

/// The default of
/// [`FusedOptimizer::with_direct_binding`](super::FusedOptimizer::with_direct_binding): tensors of 131072 elements or more
/// (512 KiB in f32). Measured on lavapipe (BENCHMARKS.md, "Burn adapter"): binding saves the
/// copies' time above about 100k elements a tensor; below, a dispatch of its own per tensor
/// (a bound tensor is a span alone, where the arena updates its tensors together) costs more
/// than the copies it saves.
pub const DIRECT_MIN_ELEMENTS: usize = 1 << 17;

/// Whether two pairs are the same ranges of the same buffers.
fn same_pair(a: &Option<Param>, b: &Option<Param>) -> bool {
    let same = |a: &BufferRange, b: &BufferRange| {
        a.buffer() == b.buffer() && a.offset() == b.offset() && a.len() == b.len()
    };
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same(&a.param, &b.param) && same(&a.grad, &b.grad),
        _ => false,
    }
}

impl Built {
    /// The pairs this step would bind: Burn's own ranges for each f32 tensor of at least `min`
    /// elements that is written in place, whose ranges the device can bind (aligned, parameter
    /// and gradient in different buffers); `None` for the others, copied through the arena.
    pub(super) fn wanted_bindings(
        &self,
        grads: &[Resolved],
        plans: &[ParamPlan],
        min: Option<usize>,
        device: &wgpu::Device,
    ) -> Vec<Option<Param>> {
        let plain = self.param_dtype == DType::F32 && self.grad_dtype == DType::F32;
        let min = match min {
            Some(min) if plain && !self.direct_failed => min.max(1),
            _ => return vec![None; self.slots.len()],
        };
        let mut wanted: Vec<Option<Param>> = (0..self.slots.len())
            .map(|i| {
                let (plan, len) = (&plans[i], self.slots[i].info.len());
                if len < min || plan.replacement.is_some() || plan.widened.is_some() {
                    return None;
                }
                let param = match (&plan.dest, &self.slots[i].held) {
                    (Some(dest), _) | (None, Some(Held { range: dest, .. })) => dest,
                    (None, None) => return None,
                };
                let range = |r: &Resolved| BufferRange::new(&r.buffer, r.offset, len as u64);
                let pair = Param::new(range(param), range(&grads[i]));
                pair.check(i, device).is_ok().then_some(pair)
            })
            .collect();
        // A buffer holding one tensor's parameter and another's gradient would be bound
        // read-write and read-only in one dispatch, which wgpu refuses: such a parameter is
        // copied instead.
        let grad_buffers: Vec<wgpu::Buffer> = wanted
            .iter()
            .flatten()
            .map(|p| p.grad.buffer().clone())
            .collect();
        for pair in &mut wanted {
            if pair
                .as_ref()
                .is_some_and(|p| grad_buffers.contains(p.param.buffer()))
            {
                *pair = None;
            }
        }
        wanted
    }

    /// Builds the optimizer again over `wanted` (the arena's pair where `None`) when it differs
    /// from the pairs in force, and copies the state over on the device (submitted at once, so
    /// the learning rates written after it land in the new optimizer). Should a build over
    /// Burn's ranges fail, every tensor goes back to the arena, for good.
    pub(super) fn rebind(
        &mut self,
        wanted: Vec<Option<Param>>,
        precision: Precision,
        grad: &Option<GradConfig>,
    ) -> Result<()> {
        self.stats.rebound = 0;
        if wanted.iter().zip(&self.bound).all(|(a, b)| same_pair(a, b)) {
            return Ok(());
        }
        let direct = wanted.iter().any(Option::is_some);
        match self.build_over(&wanted, precision, grad) {
            Ok(optimizer) => {
                self.install(optimizer, wanted);
                Ok(())
            }
            Err(_) if direct => {
                self.direct_failed = true;
                let arena = vec![None; self.slots.len()];
                self.rebind(arena, precision, grad)
            }
            Err(error) => Err(error),
        }
    }

    /// An optimizer like this one over `pairs` (the arena's where `None`), holding this one's
    /// state.
    fn build_over(
        &self,
        pairs: &[Option<Param>],
        precision: Precision,
        grad: &Option<GradConfig>,
    ) -> Result<Optimizer> {
        let groups = self
            .group_configs
            .iter()
            .enumerate()
            .map(|(g, config)| ParamGroup {
                config: config.clone(),
                params: (0..self.slots.len())
                    .filter(|&i| self.slots[i].group == g)
                    .map(|i| {
                        pairs[i]
                            .clone()
                            .unwrap_or_else(|| self.arena_params[i].clone())
                    })
                    .collect(),
            })
            .collect();
        let ctx = self.optimizer.context();
        // The spans that keep their layout (the arena's, a bound tensor whose ranges did not
        // change) keep their state buffers; the others' state is copied below.
        let mut optimizer =
            Optimizer::with_precision_reusing(ctx, groups, precision, &self.optimizer)?;
        optimizer.set_grad_processing(grad.clone())?;
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-optim burn rebind"),
            });
        optimizer.copy_state_from(&self.optimizer, &mut encoder)?;
        ctx.queue().submit([encoder.finish()]);
        Ok(optimizer)
    }

    pub(super) fn install(&mut self, optimizer: Optimizer, pairs: Vec<Option<Param>>) {
        self.master_ranges = (0..self.slots.len())
            .map(|i| optimizer.state_range(i, MASTER_PARAM).ok().cloned())
            .collect();
        self.optimizer = optimizer;
        self.bound = pairs;
        self.stats.rebound = 1;
    }
}
