//! The device layer: a [`Context`] (device, queue, launch settings, the pipeline cache every
//! client shares), pipeline building blocks, host transfers, and the ways tensors are handed
//! to the crate ([`BufferRange`], [`Param`], [`Arena`]). It knows no optimizer.

mod arena;
mod context;
pub(crate) mod pipeline;
mod tensor;
mod transfer;

pub use arena::Arena;
#[cfg(feature = "mpi")]
pub(crate) use arena::ArenaParts;
pub use context::{Context, ContextOptions, Tuning, MAX_VEC4S_PER_INVOCATION};
pub(crate) use pipeline::capture_errors;
pub(crate) use tensor::{check_disjoint, storage_alignment, COPY_ALIGNMENT};
pub use tensor::{BufferRange, Param};
