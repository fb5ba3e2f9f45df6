//! The kernel layer: WGSL assembly and what the host needs to run kernels, knowing no
//! configuration type. [`Kernel`] describes an optimizer kernel (its files, state slots and
//! group record), [`KernelSpec`] what one configuration lowers to; [`Storage`] and
//! [`ElementLayout`] how element buffers are typed and bound; the [`plan`] cuts
//! tensors into dispatches and segment tables; [`Control`] is the device-side control block;
//! [`Binding`] names every binding slot.

mod bindings;
mod control;
mod elements;
mod layout;
pub(crate) mod math;
mod pipelines;
pub(crate) mod plan;
mod sources;
mod spec;
mod storage;

pub use bindings::Binding;
pub(crate) use bindings::{prelude, Slots};
pub use control::Control;
pub(crate) use control::{control_field, ControlField, ControlOwners};
pub use elements::elements_source;
pub(crate) use layout::wgsl_struct;
pub use layout::{StructLayout, WgslLayout};
pub(crate) use pipelines::{
    kernel_layouts, kernel_pipeline, Dispatch, Entry, GradStages, ModuleKey, PipelineRequest,
    Variant,
};
pub use plan::{Fold, ReduceWork, Segment};
pub(crate) use sources::shader_file;
pub use sources::{
    concatenate, ShaderFile, ADAM_GROUP, COMMON, CONTROL, DTYPE, L2, MATH, MOMENTS, PROCESS,
    RECTIFY, SCHEDULE_FREE, SEGMENT,
};
pub use spec::{GroupRecord, Kernel, KernelSpec, StateSpec, MASTER_PARAM, SQUARED_STATES};
pub use storage::{ElementLayout, Quant8, Rounding, Storage, BLOCK_LANES};
