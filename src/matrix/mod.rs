//! Batched matrix kernels: Newton-Schulz orthogonalization of many matrices in one set of
//! dispatches (`shaders/newton_schulz.wgsl`), the heart of Muon's step on the device.

mod newton_schulz;

pub(crate) use newton_schulz::check_iteration;
pub use newton_schulz::{
    newton_schulz_files, newton_schulz_source, NewtonSchulz, NormFloor, NsOptions, NEWTON_SCHULZ,
};
