//! Every WGSL module the crate builds, for tools and tests: the files under `shaders/`, each
//! optimizer kernel's source in any element layout and storage, and the other modules'
//! sources (gradient processing, clip by value, the device schedule, Newton-Schulz, Muon's
//! passes).

pub use crate::grad::{
    clip_value_files, clip_value_source, grad_files, grad_source, CLIP, CLIP_VALUE, GRAD_16BIT,
    GRAD_F32, REDUCE_SUBGROUP, REDUCE_WORKGROUP,
};
pub use crate::kernel::{
    concatenate, elements_source, Binding, ElementLayout, Kernel, ShaderFile, COMMON,
};
pub use crate::matrix::{newton_schulz_files, newton_schulz_source, NEWTON_SCHULZ};
pub use crate::optimizer::{muon_files, muon_source, MuonMatrix, MuonTile, MUON};
pub use crate::schedule::{schedule_files, schedule_source, SCHEDULE};

/// Every kernel the registered optimizers run, each once.
pub fn kernels() -> Vec<&'static Kernel> {
    crate::optim::OptimizerConfig::kernels()
}

/// Every WGSL file of the crate, each once: the shared files, each kernel's own, and those of
/// gradient processing and the device schedule.
pub fn files() -> Vec<ShaderFile> {
    let mut files = COMMON.to_vec();
    files.extend(kernels().iter().map(|k| k.file));
    files.extend([
        GRAD_F32,
        GRAD_16BIT,
        REDUCE_WORKGROUP,
        REDUCE_SUBGROUP,
        CLIP,
        CLIP_VALUE,
        SCHEDULE,
        NEWTON_SCHULZ,
        MUON,
    ]);
    files
}
