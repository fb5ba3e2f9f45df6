//! The device-side control block, [`Control`], and typed access to its fields.

use std::marker::PhantomData;

use super::layout::{wgsl_struct, WgslLayout};
use crate::error::{Error, Result};

wgsl_struct! {
    /// The device-side control block of an optimizer (`shaders/common/control.wgsl`).
    ///
    /// Everything a step depends on that is data rather than configuration lives here, on the
    /// device, so that a step can be skipped, unscaled or clipped without a host round trip.
    /// Read it back with [`Optimizer::read_control`](crate::Optimizer::read_control) (blocking)
    /// or a [`ControlReader`](crate::ControlReader) (non-blocking) to log the gradient norm.
    pub struct Control as "Control" {
        /// The loss scale for the next backward pass (PyTorch's `GradScaler.get_scale()`); 1
        /// without a scaler. At offset 0, so a loss kernel can bind these 4 bytes of the
        /// control buffer as `var<storage, read> grad_scale: f32`.
        grad_scale: f32,
        /// Steps taken so far (PyTorch's `state['step']`), advanced on the device.
        step: u32,
        /// Non-zero when the last step's gradients held an inf or NaN: it changed nothing.
        found_inf: u32,
        /// 1 / the loss scale the last step's gradients were computed with.
        inv_grad_scale: f32,
        /// The last step's global-norm clip coefficient (1 when not clipping).
        clip_coef: f32,
        /// `clip_grad_value_`'s bound, `f32::INFINITY` when off.
        clip_value: f32,
        /// The global norm of the last step's unscaled gradients, before clipping by norm
        /// (after clipping by value); inf or NaN when a gradient is.
        grad_norm: f32,
        /// GradScaler's growth tracker: consecutive finite steps since the scale changed.
        growth_tracker: u32,
        /// Steps skipped because a gradient was inf or NaN.
        skipped_steps: u32,
        /// With `error_if_nonfinite`, the step whose gradients were first found non-finite;
        /// 0 when none. While set, steps change nothing.
        nonfinite_step: u32,
    }
}

impl Control {
    /// A fresh optimizer: no step taken, gradients used as they are.
    pub const INITIAL: Control = Control {
        grad_scale: 1.0,
        step: 0,
        found_inf: 0,
        inv_grad_scale: 1.0,
        clip_coef: 1.0,
        clip_value: f32::INFINITY,
        grad_norm: 0.0,
        growth_tracker: 0,
        skipped_steps: 0,
        nonfinite_step: 0,
    };

    /// Whether the last step was skipped because a gradient was inf or NaN.
    pub fn skipped(&self) -> bool {
        self.found_inf != 0
    }

    /// `Ok(self)`, or [`Error::NonFiniteGradients`] when an
    /// optimizer with `error_if_nonfinite` has halted.
    pub fn checked(self) -> Result<Control> {
        match self.nonfinite_step {
            0 => Ok(self),
            step => Err(Error::NonFiniteGradients {
                step,
                steps_taken: self.step,
                grad_norm: self.grad_norm,
            }),
        }
    }

    /// The byte offset of the field named `field`, for copying or binding one field of the
    /// control buffer (`grad_scale` is at 0).
    pub fn offset_of(field: &str) -> Option<u64> {
        Self::FIELDS
            .iter()
            .find(|(name, _)| *name == field)
            .map(|&(_, offset)| offset as u64)
    }
}

/// One field of [`Control`] as a byte offset with its type, for writing that field alone
/// through the queue. Made by [`control_field!`], so the compiler checks the name and the type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ControlField<T> {
    offset: usize,
    _type: PhantomData<T>,
}

impl<T: bytemuck::Pod> ControlField<T> {
    /// The field at `offset`, whose type is the one `_read` returns.
    pub const fn new(offset: usize, _read: fn(&Control) -> T) -> Self {
        ControlField {
            offset,
            _type: PhantomData,
        }
    }

    /// Its byte offset in control block `k` of a buffer of blocks.
    pub fn offset_in_block(self, k: usize) -> u64 {
        (k * std::mem::size_of::<Control>() + self.offset) as u64
    }
}

/// The [`ControlField`] of the named field of [`Control`]: `control_field!(grad_scale)`.
macro_rules! control_field {
    ($field:ident) => {
        $crate::kernel::ControlField::new(
            core::mem::offset_of!($crate::kernel::Control, $field),
            |control: &$crate::kernel::Control| control.$field,
        )
    };
}
pub(crate) use control_field;

/// Which words of a control block the gradient processing in force keeps as state, rather
/// than holding at the values its configuration implies: what a restore of a saved block may
/// bring back ([`Snapshot`](crate::Snapshot)), as loading a checkpoint checks the block
/// against the loading optimizer's processing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ControlOwners {
    /// A GradScaler: `grad_scale` and `growth_tracker` are its state (1 and 0 without one).
    pub scaler: bool,
    /// `error_if_nonfinite`: a halt (`nonfinite_step`) is state (none without it).
    pub halts: bool,
}

impl ControlOwners {
    /// Whether a restore brings field `name` back: every field but `clip_value`
    /// (configuration, written by the host) and `inv_grad_scale` (each step derives it from
    /// `grad_scale` before use), and the scaler's and the halt's fields only where owned.
    fn restores(self, name: &str) -> bool {
        match name {
            "clip_value" | "inv_grad_scale" => false,
            "grad_scale" | "growth_tracker" => self.scaler,
            "nonfinite_step" => self.halts,
            _ => true,
        }
    }

    /// The byte ranges of control block `k` (of a buffer of blocks) a restore copies back,
    /// adjacent fields merged.
    pub fn restored_ranges(self, k: usize) -> Vec<std::ops::Range<u64>> {
        let block = (k * std::mem::size_of::<Control>()) as u64;
        let mut ranges: Vec<std::ops::Range<u64>> = Vec::new();
        for &(name, offset) in Control::FIELDS {
            if !self.restores(name) {
                continue;
            }
            let start = block + offset as u64;
            match ranges.last_mut() {
                Some(last) if last.end == start => last.end = start + 4,
                _ => ranges.push(start..start + 4),
            }
        }
        ranges
    }
}
