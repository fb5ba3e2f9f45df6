//! How a kernel's element buffers are stored and bound: [`Storage`] (a type per role, master
//! weights, rounding) and [`ElementLayout`] (16-byte or scalar accesses).

use crate::dtype::Dtype;
use crate::gpu::Tuning;

/// Invocations that update one block of 8-bit states together: 16 lanes of 16 elements, so
/// that a lane holds its units of the block in registers (4 of 4 elements, or 2 of 8).
pub const BLOCK_LANES: u64 = 16;

/// The most blocks one workgroup of 8-bit states updates at once (a round): its workgroup
/// size is [`Storage::workgroup_size`], at most 256.
pub const MOST_BLOCKS_PER_ROUND: u64 = 16;

/// How an update kernel binds the element buffers (param, grad, states) of a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementLayout {
    /// 16-byte loads and stores: `array<vec4<f32>>` for f32 buffers, one access per four
    /// elements; `array<vec4<u32>>` for 16-bit buffers, one access per eight. For chunks whose
    /// tensors start at multiples of a [unit](Storage::unit) and whose bindings can be rounded
    /// up to whole units within their buffers (every arena, and every buffer whose size leaves
    /// room).
    Vec4,
    /// One access per f32 element or per 16-bit pair (`array<f32>`, `array<u32>`), for every
    /// other chunk.
    Scalar,
}

impl ElementLayout {
    /// Both layouts.
    pub const ALL: [ElementLayout; 2] = [ElementLayout::Vec4, ElementLayout::Scalar];
}

/// How stores round a parameter to its 16-bit type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// To nearest, ties to even, as PyTorch's conversions.
    #[default]
    NearestEven,
    /// bf16 stochastic rounding: up with probability (discarded low 16 bits) / 2^16, from
    /// [`stochastic_bits`](crate::dtype::stochastic_bits)`(seed, step, tensor, element)`, so
    /// that a run is reproducible and the reference mirrors it.
    Stochastic {
        /// The seed of the counter-based hash.
        seed: u64,
    },
}

/// 8-bit block-quantized states ([`Precision::with_8bit_states`](crate::Precision)): each state
/// slot is a code per element (4 to a 32-bit word) and an f32 scale per block of
/// [`BLOCK`](crate::quant::BLOCK) elements (`src/quant.rs`); `unsigned` says which slots index
/// the unsigned map (second moments), the others the signed one; `uniform_maps` how the
/// quantization table is bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Quant8 {
    /// Per state slot: the unsigned map (a slot of squares), else the signed one.
    pub unsigned: [bool; 3],
    /// The quantization table as a uniform buffer, else a read-only storage buffer
    /// ([`Tuning::uniform_maps`]).
    pub uniform_maps: bool,
}

/// How one optimizer's element buffers are stored: every parameter of an optimizer shares
/// one type, every gradient one, every state one; and, for 16-bit parameters, an f32 master
/// copy or stochastic rounding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Storage {
    /// The parameters'.
    pub param: Dtype,
    /// The gradients'.
    pub grad: Dtype,
    /// The optimizer states' (`exp_avg`, `momentum_buffer`, ...).
    pub states: Dtype,
    /// Whether an f32 master copy of 16-bit parameters (the `master_param` state) is what the
    /// step updates; the 16-bit parameters are written from it, rounded.
    pub master: bool,
    /// How stores of the parameters round.
    pub rounding: Rounding,
    /// States as 8-bit codes and block scales (`states` is then f32, the math's type).
    pub quant8: Option<Quant8>,
}

impl Storage {
    /// Everything in f32.
    pub const F32: Storage = Storage::new(Dtype::F32, Dtype::F32, Dtype::F32);

    /// These types, stores rounded to nearest even, no master copy.
    pub const fn new(param: Dtype, grad: Dtype, states: Dtype) -> Storage {
        Storage {
            param,
            grad,
            states,
            master: false,
            rounding: Rounding::NearestEven,
            quant8: None,
        }
    }

    /// Whether any buffer is 16-bit: the vec4 layout then takes eight elements per iteration,
    /// so that one 16-byte access carries eight 16-bit values.
    pub fn packed(self) -> bool {
        self.param.is_16bit() || self.grad.is_16bit() || self.states.is_16bit()
    }

    /// Bytes of the smallest storage type among the roles bound at a chunk's offset in a
    /// span's buffers (2 when any is 16-bit, else 4). 8-bit codes are not among them: each
    /// chunk's codes and scales have regions of their own (`plan::QuantRegions`).
    pub(crate) fn smallest_size(self) -> u64 {
        if self.packed() {
            2
        } else {
            4
        }
    }

    /// Elements per iteration of the update in `layout`: what segments of the vec4 layout end
    /// on (8 when [packed](Storage::packed), else 4; a whole block of 8-bit states, 256, which
    /// one invocation updates). The scalar layout takes 4 at a time.
    pub fn unit(self, layout: ElementLayout) -> u64 {
        match (layout, self.quant8) {
            (ElementLayout::Vec4, Some(_)) => crate::quant::BLOCK as u64,
            _ => self.access_unit(layout),
        }
    }

    /// Invocations per workgroup of the update kernels with this storage under `tuning`: its
    /// `workgroup_size`, except where lanes share blocks of 8-bit states (without
    /// [runs](Tuning::runs_per_invocation)): then the largest multiple of `BLOCK_LANES` (16)
    /// within it, from 16 to `BLOCK_LANES * MOST_BLOCKS_PER_ROUND` (256).
    pub fn workgroup_size(self, tuning: &Tuning) -> u32 {
        if self.blocks_shared(tuning) {
            let lanes = BLOCK_LANES as u32;
            let most = lanes * MOST_BLOCKS_PER_ROUND as u32;
            (tuning.workgroup_size / lanes * lanes).clamp(lanes, most)
        } else {
            tuning.workgroup_size
        }
    }

    /// Whether `BLOCK_LANES` (16) invocations update each block of 8-bit states together (one
    /// pass, coalesced loads), rather than one invocation a block (runs per invocation).
    pub fn blocks_shared(self, tuning: &Tuning) -> bool {
        self.quant8.is_some() && !tuning.runs_per_invocation
    }

    /// Elements one load of every buffer covers in `layout`: 8 in the vec4 layout when
    /// [packed](Storage::packed), else 4.
    pub fn access_unit(self, layout: ElementLayout) -> u64 {
        match (layout, self.packed()) {
            (ElementLayout::Vec4, true) => 8,
            _ => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_sharing_blocks_take_whole_blocks_of_lanes() {
        let quantized = Storage {
            quant8: Some(Quant8::default()),
            ..Storage::F32
        };
        let tuning = |workgroup_size, runs_per_invocation| Tuning {
            workgroup_size,
            runs_per_invocation,
            ..Tuning::default()
        };
        for (asked, got) in [
            (1, 16),
            (16, 16),
            (48, 48),
            (100, 96),
            (256, 256),
            (1024, 256),
        ] {
            assert_eq!(
                quantized.workgroup_size(&tuning(asked, false)),
                got,
                "{asked}"
            );
            // With runs per invocation, and without 8-bit states, the tuned size stands.
            assert_eq!(quantized.workgroup_size(&tuning(asked, true)), asked);
            assert_eq!(Storage::F32.workgroup_size(&tuning(asked, false)), asked);
        }
    }
}
