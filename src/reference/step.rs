//! How the reference runs one step of any optimizer, as the device does: the kernel's prologue
//! once per step ([`Mirror::prologue`]), then its update over each tensor ([`Mirror::update`])
//! through [`Tensor`], which loads, rounds and stores every element as the generated element
//! access does (storage types, master copy, stochastic rounding).

use crate::dtype::{bf16_bits_stochastic, bf16_to_f32, stochastic_bits, Dtype};
use crate::kernel::{Rounding, Storage};

use super::common::{trust_ratio, SwitchWeights};

/// One optimizer's kernel on the host: each optimizer's file in `src/reference/` implements
/// it for its configuration, beside the mirrors of its WGSL functions.
pub(crate) trait Mirror {
    /// What the prologue gives the update: the kernel's `Hyper` (and options) and the step's
    /// `Derived` scalars.
    type Prepared;

    /// `prepare_group` at step `step` (1 for the first), carrying the `running` values across
    /// steps: the kernel's `Running` as f32 words (Schedule-Free's `lr_max` and `weight_sum`,
    /// NAdam's running `mu_product`; empty for the others, which leave them alone).
    fn prologue(&self, step: f32, running: &mut [f32]) -> Self::Prepared;

    /// The update of one tensor: `step_math` on each element.
    fn update(&self, prepared: &Self::Prepared, tensor: &mut Tensor<'_>);

    /// Schedule-Free's `eval()` and `train()` weights of z; `None` for an optimizer without
    /// the switch.
    fn switch_weights(&self) -> Option<SwitchWeights> {
        None
    }
}

/// The kernel's `Running` values `R`, in the reference's f32 words.
pub(super) fn running_of<R: bytemuck::Pod>(words: &mut [f32]) -> &mut R {
    bytemuck::from_bytes_mut(bytemuck::cast_slice_mut(words))
}

/// What the stores of one tensor's update do: round to the storage types, keep the master
/// copy, round the parameters stochastically.
pub(super) struct Stores<'a> {
    pub storage: Storage,
    pub step: u32,
    pub tensor: u32,
    // The tensor's master copy, with master weights.
    pub master: &'a mut Vec<f32>,
}

impl Stores<'_> {
    /// Parameter `i` as the update reads it: from the master copy after the first step.
    pub fn load_param(&self, i: usize, param: f32) -> f32 {
        let param = self.storage.param.round(param);
        match self.master.get(i) {
            Some(&master) if self.step > 1 => master,
            _ => param,
        }
    }

    /// Stores parameter `i`: into the master copy, and rounded into the parameter.
    pub fn store_param(&mut self, i: usize, value: f32) -> f32 {
        if let Some(master) = self.master.get_mut(i) {
            *master = value;
        }
        match self.storage.rounding {
            Rounding::Stochastic { seed } if self.storage.param == Dtype::BF16 => {
                let random = stochastic_bits(seed, self.step, self.tensor, i as u32);
                bf16_to_f32(bf16_bits_stochastic(value, random))
            }
            _ => self.storage.param.round(value),
        }
    }
}

/// A tensor's trust ratio (LAMB, LARS): the one the step computes, and the one it uses
/// instead, if any (see `reference::Optimizer::use_trust_ratios`).
pub(super) struct TrustSlot<'a> {
    pub computed: &'a mut f32,
    pub given: Option<f32>,
}

/// One tensor during an update: its parameters, gradients (as the step sees them) and state
/// slots, and how its stores round.
pub(crate) struct Tensor<'a> {
    pub(super) stores: Stores<'a>,
    pub(super) param: &'a mut [f32],
    pub(super) grad: &'a [f32],
    pub(super) slots: &'a mut [Vec<f32>; 3],
    pub(super) trust: TrustSlot<'a>,
}

impl Tensor<'_> {
    /// Whether this is the first step taken.
    pub fn first_step(&self) -> bool {
        self.stores.step == 1
    }

    /// Calls `f` on each element (the parameter as its type widens it, or its master copy)
    /// with its gradient and three state slots (zero for slots not kept), then stores the
    /// parameter and the slots that are kept.
    pub fn each(&mut self, f: &mut dyn FnMut(&mut f32, f32, &mut [f32; 3])) {
        for (i, (p, &g)) in self.param.iter_mut().zip(self.grad).enumerate() {
            let mut s = [0.0_f32; 3];
            for (value, slot) in s.iter_mut().zip(self.slots.iter()) {
                if let Some(&v) = slot.get(i) {
                    *value = v;
                }
            }
            let mut value = self.stores.load_param(i, *p);
            f(&mut value, g, &mut s);
            *p = self.stores.store_param(i, value);
            for (value, slot) in s.iter().zip(self.slots.iter_mut()) {
                if let Some(v) = slot.get_mut(i) {
                    *v = self.stores.storage.states.round(*value);
                }
            }
        }
    }

    /// The trust ratio of this tensor from the sums of its first pass (`trust_fold` of
    /// `shaders/common/trust.wgsl`): recorded as computed, and returned, or the one given
    /// instead.
    pub fn trust_ratio(&mut self, sums: &Squares, coefficient: f32, eps: f32, on: f32) -> f32 {
        let norm = |sum: f64| (sum as f32).sqrt();
        let ratio = trust_ratio(
            norm(sums.param),
            norm(sums.direction),
            coefficient,
            eps,
            on != 0.0,
        );
        *self.trust.computed = ratio;
        self.trust.given.unwrap_or(ratio)
    }
}

/// The sums of squares of one tensor's parameters and directions (LAMB, LARS), in f64: the
/// device sums in f32 in a tree, so the two differ by rounding, well within the tolerance.
#[derive(Default)]
pub(crate) struct Squares {
    param: f64,
    direction: f64,
}

impl Squares {
    /// Adds one element's parameter `p` and direction `u`.
    pub fn add(&mut self, p: f32, u: f32) {
        self.param += f64::from(p) * f64::from(p);
        self.direction += f64::from(u) * f64::from(u);
    }
}
