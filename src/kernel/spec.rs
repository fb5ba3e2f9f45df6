//! What an optimizer kernel is ([`Kernel`]: its WGSL files, state slots and group record) and
//! what one configuration lowers to for it ([`KernelSpec`]). Knows no configuration type:
//! each optimizer's file in `src/optim/` describes its kernel with these.

use std::hash::{Hash, Hasher};

use super::bindings::Binding;
use super::elements::elements_source;
use super::layout::{StructLayout, WgslLayout};
use super::sources::{
    concatenate, ShaderFile, CONTROL, DTYPE, ENTRY, MATH, PROCESS, QUANT8, SEGMENT, TRUST,
};
use super::storage::{ElementLayout, Storage};
use crate::error::{Error, Result};

/// One optimizer kernel: a WGSL module with the entry points of `common/entry.wgsl`
/// (`prologue`, `update`, `update_tail`; a trust-ratio kernel adds `update_norms`,
/// `update_tail_norms` and `trust_fold`), and what the host must know to bind and feed it.
/// Each optimizer's file in `src/optim/` declares its kernel as a constant; optimizers may
/// share one (Adam's runs AdamW).
#[derive(Debug)]
pub struct Kernel {
    /// Its name, as its own file is named: `adam`.
    pub name: &'static str,
    /// Its own file: its `Hyper`, `Derived`, `Group`, `prepare_group`, `uses_state` and
    /// `step_math`.
    pub file: ShaderFile,
    /// The family files it needs before its own (`common/moments.wgsl`, ...), in order.
    pub family: &'static [ShaderFile],
    /// How many state bindings (`state0`, `state1`, ...) it declares.
    pub state_slots: usize,
    /// Its parameter groups' record.
    pub record: GroupRecord,
    /// Whether it scales each tensor's update by a trust ratio (LAMB, LARS): a step then
    /// takes two passes with a per-tensor reduction between them (`common/trust.wgsl`).
    pub trust_ratio: bool,
    /// The overrides that turn its update into Schedule-Free's switch to the evaluation point
    /// and back (`TO_EVAL`, `TO_TRAIN`); `None` for kernels without the switch.
    pub modes: Option<[&'static str; 2]>,
}

impl PartialEq for Kernel {
    fn eq(&self, other: &Kernel) -> bool {
        self.name == other.name
    }
}

impl Eq for Kernel {}

impl Hash for Kernel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl Kernel {
    /// The files of the module, in order; [`Kernel::source`] adds the generated bindings and
    /// element access.
    pub fn files(&self) -> Vec<ShaderFile> {
        let mut files = vec![CONTROL, SEGMENT, MATH, DTYPE];
        files.extend_from_slice(self.family);
        files.extend([self.file, PROCESS, ENTRY]);
        if self.trust_ratio {
            files.push(TRUST);
        }
        files
    }

    /// The files of its module with `storage`: [`Kernel::files`], and the 8-bit states' codec
    /// with those.
    pub fn module_files(&self, storage: Storage) -> Vec<ShaderFile> {
        let mut files = self.files();
        if storage.quant8.is_some() {
            files.push(QUANT8);
        }
        files
    }

    /// The module's WGSL source with `layout` and `storage`.
    pub fn source(&self, layout: ElementLayout, storage: Storage) -> String {
        let mut source = concatenate("", &self.module_files(storage));
        source += &Binding::declarations(self.trust_ratio);
        source += &elements_source(layout, storage, self.state_slots, self.trust_ratio);
        source
    }
}

/// A parameter group's record in a kernel's `groups` buffer (WGSL `struct Group`), in three
/// typed parts, each a struct of its own (Optax keeps `ScheduleFreeState` apart from the
/// hyperparameters; Burn its `AdaptiveMomentumState`):
///
/// - `hyper`: what the host writes, from the configuration (at the build, by `set_config`,
///   by a device schedule);
/// - `derived`: what the prologue derives from the step counter each step (bias corrections,
///   step sizes); never written by the host;
/// - `running`: what the prologue carries from step to step (Schedule-Free's `lr_max` and
///   `weight_sum`); written by the host only at the build and from a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    /// The host-written hyperparameters (`Hyper`).
    pub hyper: StructLayout,
    /// The per-step scalars the prologue derives (`Derived`), if any.
    pub derived: Option<StructLayout>,
    /// The running values the prologue keeps (`Running`), if any.
    pub running: Option<StructLayout>,
}

impl GroupRecord {
    /// A record of `H` alone.
    pub const fn of<H: WgslLayout>() -> Self {
        GroupRecord {
            hyper: StructLayout::of::<H>(),
            derived: None,
            running: None,
        }
    }

    /// The same record with the prologue's per-step scalars `D`.
    pub const fn with_derived<D: WgslLayout>(mut self) -> Self {
        self.derived = Some(StructLayout::of::<D>());
        self
    }

    /// The same record with the running values `R`.
    pub const fn with_running<R: WgslLayout>(mut self) -> Self {
        self.running = Some(StructLayout::of::<R>());
        self
    }

    /// Bytes of one record.
    pub fn size(&self) -> usize {
        self.running_offset() + self.running.map_or(0, |r| r.size)
    }

    /// Where `derived` starts in a record.
    pub fn derived_offset(&self) -> usize {
        self.hyper.size
    }

    /// Where `running` starts in a record.
    pub fn running_offset(&self) -> usize {
        self.derived_offset() + self.derived.map_or(0, |d| d.size)
    }

    /// The members of WGSL's `struct Group`: `(name, offset)`, in order.
    pub fn members(&self) -> Vec<(&'static str, usize)> {
        let mut members = vec![("hyper", 0)];
        if self.derived.is_some() {
            members.push(("derived", self.derived_offset()));
        }
        if self.running.is_some() {
            members.push(("running", self.running_offset()));
        }
        members
    }
}

/// The name of the f32 master copy of 16-bit parameters, as a state.
pub const MASTER_PARAM: &str = "master_param";

/// A state buffer an optimizer keeps per tensor, named as in PyTorch's `state_dict`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateSpec {
    /// PyTorch's name: `exp_avg`, `momentum_buffer`, ...
    pub name: &'static str,
    /// The WGSL binding it fills: `state0`, `state1` or `state2`.
    pub slot: usize,
    /// Its value before the first step.
    pub init: f32,
}

/// PyTorch's names of the states that accumulate squares (of gradients, or of updates:
/// Adadelta's `acc_delta`): f16 cannot hold them (its largest value, 65504, is the square of
/// 256), so an optimizer keeping one refuses f16 states.
pub const SQUARED_STATES: [&str; 7] = [
    "exp_avg_sq",
    "max_exp_avg_sq",
    "square_avg",
    "sum",
    "exp_avg_var",
    "max_exp_avg_var",
    "acc_delta",
];

impl StateSpec {
    /// Whether the state accumulates squares ([`SQUARED_STATES`]).
    pub fn holds_squares(&self) -> bool {
        SQUARED_STATES.contains(&self.name)
    }
}

/// What the device needs to run one configuration: kernel, structural options, state buffers
/// and the bytes of its group record's parts.
#[derive(Clone, Debug)]
pub struct KernelSpec {
    /// The kernel.
    pub kernel: &'static Kernel,
    /// Its structural options: WGSL overrides, on or off.
    pub overrides: Vec<(&'static str, bool)>,
    /// The state buffers kept per tensor.
    pub states: Vec<StateSpec>,
    /// The bytes of the record's `hyper`: what the host writes.
    pub hyper: Vec<u8>,
    /// The bytes of the record's `running` values before the first step (empty without).
    pub running: Vec<u8>,
}

impl KernelSpec {
    /// The spec of `kernel` with `hyper` as the device will read it. Every field of `hyper`
    /// must be finite as f32, as the kernels compute in f32: a value that only f64 holds (an lr
    /// of 1e39) or a derived one that overflows f32 (AdamW's `1 - lr * weight_decay` for huge
    /// values) is refused here rather than turned into inf on the device. `ln_*` fields are
    /// exempt: `ln(0) = -inf` is how a beta of 0 reaches the bias correction, which handles it.
    pub fn new<H: WgslLayout>(
        kernel: &'static Kernel,
        overrides: Vec<(&'static str, bool)>,
        states: Vec<StateSpec>,
        hyper: &H,
    ) -> Result<Self> {
        debug_assert_eq!(kernel.record.hyper, StructLayout::of::<H>());
        let bytes = bytemuck::bytes_of(hyper);
        for &(name, offset) in H::FIELDS {
            let value: f32 = bytemuck::pod_read_unaligned(&bytes[offset..offset + 4]);
            if !value.is_finite() && !name.starts_with("ln_") {
                return Err(Error::InvalidHyperparameter {
                    name,
                    value: f64::from(value),
                    expected: "hyperparameters whose values, and the values derived from them, \
                               are finite in f32",
                });
            }
        }
        Ok(KernelSpec {
            kernel,
            overrides,
            states,
            hyper: bytes.to_vec(),
            running: Vec::new(),
        })
    }

    /// The same spec whose running values start as `running`.
    pub fn with_running<R: WgslLayout>(mut self, running: &R) -> Self {
        debug_assert_eq!(self.kernel.record.running, Some(StructLayout::of::<R>()));
        self.running = bytemuck::bytes_of(running).to_vec();
        self
    }

    /// The same kernel, structural options and states: only hyperparameter values may differ.
    pub fn same_structure(&self, other: &KernelSpec) -> bool {
        self.kernel == other.kernel
            && self.overrides == other.overrides
            && self.states == other.states
    }

    /// A whole record as the build writes it: `hyper`, the derived scalars zeroed (the
    /// prologue writes them before any update reads them), the running values' start.
    pub fn record(&self) -> Vec<u8> {
        let record = &self.kernel.record;
        let mut bytes = self.hyper.clone();
        bytes.resize(record.running_offset(), 0);
        bytes.extend_from_slice(&self.running);
        debug_assert_eq!(bytes.len(), record.size());
        bytes
    }
}
