//! What a built optimizer can tell: its dispatches, storage and bytes per element, its state
//! buffers, and readbacks of states, control blocks and trust ratios (blocking: for tests,
//! tools and checkpoints, never the training loop).

use super::{Optimizer, TensorState, MASTER_PARAM};
use crate::error::{Error, Result};
use crate::gpu::{BufferRange, Param};
use crate::kernel::plan::ControlMode;
use crate::kernel::{control_field, Control, ElementLayout, StateSpec, Storage};

impl Optimizer {
    /// Each tensor's trust ratio at the last step taken, read back from the device (blocking;
    /// for logging and tests): LAMB's `||p|| / ||u||`, LARS's `trust_coefficient * ||p|| /
    /// (||u|| + eps)`, 1 where a norm is 0 or the group has the ratio off, and 1 for a tensor
    /// of length 0 and before this optimizer's first step (checkpoints do not carry ratios).
    /// Other optimizers: [`Error::InvalidOptions`].
    pub fn read_trust_ratios(&self) -> Result<Vec<f32>> {
        if !self.spec.kernel.trust_ratio {
            return Err(Error::InvalidOptions(
                "trust ratios are LAMB's and LARS's (per-tensor norms)",
            ));
        }
        let Some(trust) = &self.trust_fold else {
            return Ok(vec![1.0; self.tensors.len()]);
        };
        let bytes = self.ctx.read_bytes(&trust.sums, 0, trust.sums.size())?;
        let slots: &[[f32; 2]] = bytemuck::cast_slice(&bytes);
        Ok(self
            .plan
            .plan
            .tensor_slots
            .iter()
            .map(|&[first, end]| {
                if first == end {
                    1.0
                } else {
                    slots[first as usize][0]
                }
            })
            .collect())
    }

    /// Update dispatches one step records: one per binding-size chunk of each span of tensors
    /// sharing buffers (an [`Arena`](crate::Arena) of any size under one binding limit: 1),
    /// more only where a chunk has more segments than one dispatch's grid holds
    /// (`max_workgroups_per_dispatch` squared). Chunks of the vec4 layout whose tensors end
    /// inside a vec4 add small dispatches for those last partial vec4s
    /// ([`Optimizer::tail_dispatches`]).
    pub fn update_dispatches(&self) -> usize {
        self.dispatches.iter().map(|d| d.main.len()).sum()
    }

    /// How many of the update dispatches derive each workgroup's segment from two table
    /// entries instead of loading it: all of them when every dispatch covers one tensor's
    /// tiles in a row (a tensor in buffers of its own), none otherwise (an
    /// [`Arena`](crate::Arena) of several tensors). Same results either way; on lavapipe,
    /// whose per-workgroup table loads loop over the lanes, the derived segments are 5-6%
    /// faster (BENCHMARKS.md).
    pub fn regular_dispatches(&self) -> usize {
        if self.plan.plan.regular {
            self.update_dispatches()
        } else {
            0
        }
    }

    /// Tail dispatches one step records: one per vec4-layout chunk in which some tensor's
    /// length is not a multiple of 4. Each stores those tensors' last 1 to 3 elements lane by
    /// lane, one invocation per tensor, so the update's loop stores only whole vec4s.
    pub fn tail_dispatches(&self) -> usize {
        self.dispatches.iter().map(|d| d.tail.len()).sum()
    }

    /// How many of the update dispatches load and store whole vec4s
    /// ([`ElementLayout::Vec4`]); the others use scalar loads, because a tensor's buffer ends
    /// inside the chunk's last vec4 (a buffer of `len * 4` bytes with `len % 4 != 0`) or a
    /// tensor starts inside a vec4. An [`Arena`](crate::Arena) is all vec4.
    pub fn vec4_dispatches(&self) -> usize {
        self.dispatches
            .iter()
            .filter(|d| d.layout == ElementLayout::Vec4)
            .map(|d| d.main.len())
            .sum()
    }

    /// The parameters, in the order given.
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.tensors.iter().map(|t| &t.param)
    }

    /// Bytes a step must move per element at the least: read and write the parameter and
    /// each state, read the gradient, and read the gradient once more with gradient
    /// processing on, each in its storage type (Adam: 28 in f32, 20 with bf16 states, 14 in
    /// bf16, 28 with bf16 parameters and gradients, f32 states and master weights; 32 in f32
    /// with gradient processing; 16 with 8-bit states, where the tensors too small or not in
    /// whole blocks to keep them count their f32 states, averaged over the elements). LAMB and
    /// LARS take two passes over the elements (see
    /// [`LambConfig`](crate::LambConfig)), each reading what one update reads: counted as
    /// twice the figure (an upper bound: each pass writes only what it changes). Benchmarks
    /// divide by this.
    pub fn bytes_per_element(&self) -> u64 {
        let grad_reads = if self.grad.is_some() { 2 } else { 1 };
        let Storage {
            param,
            grad,
            states,
            master,
            ..
        } = self.storage;
        // With master weights, the f32 copy is read and written and the parameters only
        // written (the kernel reads them too, for the first step's copy).
        let (param_bytes, master) = if master {
            (param.size(), 2 * 4)
        } else {
            (2 * param.size(), 0)
        };
        let state_reads = 2 * self.spec.states.len() as u64;
        let state_bytes = if self.storage.quant8.is_some() {
            // 8-bit states: a byte read and one written for the tensors that keep them (the
            // block scales, 8 bytes a block of 256, are left out); the others (torchao's rule:
            // `quant::quantizes`) keep f32 states. Averaged over the elements, to the nearest
            // byte.
            let all: u64 = self.tensors.iter().map(|t| t.param.len()).sum();
            let quantized: u64 = self
                .tensors
                .iter()
                .filter(|t| !t.quant.is_empty())
                .map(|t| t.param.len())
                .sum();
            let total = state_reads * (quantized + (all - quantized) * states.size());
            match all {
                0 => state_reads,
                _ => (total + all / 2) / all,
            }
        } else {
            state_reads * states.size()
        };
        let pass = param_bytes + grad_reads * grad.size() + state_bytes + master;
        if self.spec.kernel.trust_ratio {
            2 * pass
        } else {
            pass
        }
    }

    /// Bytes of device memory the element-wise tensors' states take (`exp_avg`,
    /// `momentum_buffer`, ...; with 8-bit states their codes and block scales), without the
    /// master copy, Muon's momentum or the padding between tensors: what a memory table
    /// divides by the parameters.
    pub fn state_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| {
                let parts = t.quant.iter().flatten();
                let quant: u64 = parts.map(|q| q.len + 4 * q.scales.len()).sum();
                let states: u64 = t.states.iter().map(|s| s.len() * s.dtype().size()).sum();
                quant + states
            })
            .sum()
    }

    /// The storage types of the parameters, gradients and states.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The state buffers kept per tensor, in slot order.
    pub fn state_specs(&self) -> &[StateSpec] {
        &self.spec.states
    }

    /// The device buffer holding the [`Control`] block (step counter, skip flag, gradient
    /// norm, loss scale). A loss kernel multiplies by the loss scale by binding its first 4
    /// bytes (`grad_scale`) as `var<storage, read> grad_scale: f32`.
    pub fn control_buffer(&self) -> &wgpu::Buffer {
        &self.control
    }

    /// Control blocks: one per replica of a [population](Optimizer::population), else 1.
    pub fn control_blocks(&self) -> usize {
        self.plan.plan.controls as usize
    }

    /// Whether this is a [population](Optimizer::population): a control block per group.
    pub fn is_population(&self) -> bool {
        self.control_mode == ControlMode::PerGroup
    }

    /// Where the state `name` (PyTorch's name, or `master_param` for the f32 master copy of
    /// 16-bit parameters) of tensor `index` lives: a range of a state buffer the optimizer
    /// shares among the tensors of one span. A [Muon](Optimizer::with_muon) tensor (numbered
    /// after the others) keeps `momentum_buffer`.
    pub fn state_range(&self, index: usize, name: &str) -> Result<&BufferRange> {
        if let Some(muon) = self.muon_state(index, name) {
            return muon;
        }
        let tensor = self.tensor_state(index)?;
        if let (MASTER_PARAM, Some(master)) = (name, &tensor.master) {
            return Ok(master);
        }
        let position = self.state_position(index, name)?;
        if !tensor.quant.is_empty() {
            return Err(super::quant8::not_a_range());
        }
        Ok(&tensor.states[position])
    }

    /// Tensor `index`'s element-wise state.
    fn tensor_state(&self, index: usize) -> Result<&TensorState> {
        self.tensors.get(index).ok_or(Error::NoSuchTensor {
            owner: "optimizer",
            index,
            count: self.tensors.len() + self.muon_shapes().len(),
        })
    }

    /// The position of state `name` among the kernel's states, for element-wise tensor
    /// `index`.
    pub(super) fn state_position(&self, index: usize, name: &str) -> Result<usize> {
        self.tensor_state(index)?;
        self.spec
            .states
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| Error::NoSuchState {
                optimizer: self.config().name(),
                name: name.to_string(),
                available: self.state_names(),
            })
    }

    /// The names of the states kept per tensor: [`Optimizer::state_specs`]'s, then
    /// `master_param` with master weights.
    pub fn state_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.spec.states.iter().map(|s| s.name).collect();
        if self.storage.master {
            names.push(MASTER_PARAM);
        }
        names
    }

    /// Reads the state `name` of tensor `index` back to the host, widened to f32 from its
    /// storage type (blocking; not for the training loop).
    pub fn read_state(&self, index: usize, name: &str) -> Result<Vec<f32>> {
        let quantized = self.tensors.get(index).is_some_and(|t| !t.quant.is_empty());
        if quantized && name != MASTER_PARAM {
            return Ok(self.read_quantized_state(index, name)?.dequantize());
        }
        let range = self.state_range(index, name)?;
        self.ctx.read_f32(range)
    }

    /// Reads the control block back (blocking; for tests and tools: a training loop logs
    /// with a [`ControlReader`](crate::ControlReader) instead); replica 0's in a population
    /// (see [`Optimizer::read_controls`] for every replica's). With `error_if_nonfinite`, a
    /// halted optimizer (replica 0) gives
    /// [`Error::NonFiniteGradients`].
    pub fn read_control(&self) -> Result<Control> {
        self.read_control_unchecked()?.checked()
    }

    /// The control block as it is, halted or not (blocking); replica 0's in a population.
    pub fn read_control_unchecked(&self) -> Result<Control> {
        Ok(self.read_controls()?[0])
    }

    /// Every control block as it is, halted or not (blocking): one per replica of a
    /// [population](Optimizer::population), in group order, else one. Check a replica's with
    /// [`Control::checked`].
    pub fn read_controls(&self) -> Result<Vec<Control>> {
        let bytes = self.ctx.read_bytes(&self.control, 0, self.control.size())?;
        Ok(bytes
            .chunks_exact(std::mem::size_of::<Control>())
            .map(bytemuck::pod_read_unaligned)
            .collect())
    }

    /// The number of steps taken, read back from the device (blocking); replica 0's in a
    /// population.
    pub fn read_step(&self) -> Result<u32> {
        Ok(self.read_control_unchecked()?.step)
    }

    /// Resumes an optimizer halted by `error_if_nonfinite` (every halted replica of a
    /// population), from the next submitted step.
    pub fn clear_nonfinite_error(&self) {
        for k in 0..self.control_blocks() {
            self.write_control(k, control_field!(nonfinite_step), &0);
            self.write_control(k, control_field!(found_inf), &0);
        }
    }
}
