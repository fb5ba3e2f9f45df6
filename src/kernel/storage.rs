//! How a kernel's element buffers are stored and bound: [`Storage`] (a type per role, master
//! weights, rounding) and [`ElementLayout`] (16-byte or scalar accesses).

use crate::dtype::Dtype;

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
/// the unsigned map (second moments), the others the signed one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Quant8 {
    /// Per state slot: the unsigned map (a slot of squares), else the signed one.
    pub unsigned: [bool; 3],
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

    /// Elements one load of every buffer covers in `layout`: 8 in the vec4 layout when
    /// [packed](Storage::packed), else 4.
    pub fn access_unit(self, layout: ElementLayout) -> u64 {
        match (layout, self.packed()) {
            (ElementLayout::Vec4, true) => 8,
            _ => 4,
        }
    }
}
