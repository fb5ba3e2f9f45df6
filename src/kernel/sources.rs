//! The WGSL files, and how they are put together into modules.
//!
//! Each file in `shaders/` is plain WGSL. A module is the concatenation of the files it needs,
//! in order, after a prelude of the binding numbers the Rust side binds (see
//! [`Binding`](super::Binding)). This module holds the files every optimizer kernel shares and
//! those of the optimizer families; each optimizer's own file is named by its [`Kernel`]
//! descriptor (`src/optim/<name>.rs`), the gradient-processing files by `src/grad/`, the device
//! schedule's by `src/schedule/device.rs`.
//!
//! [`Kernel`]: super::Kernel

/// One WGSL file of the crate: its path under `shaders/` and its text, compiled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShaderFile {
    /// The path under `shaders/`: `adam.wgsl`, `common/entry.wgsl`.
    pub path: &'static str,
    /// The file's text.
    pub text: &'static str,
}

/// The [`ShaderFile`] at `path` under `shaders/`, its text compiled in.
macro_rules! shader_file {
    ($path:literal) => {
        $crate::kernel::ShaderFile {
            path: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $path)),
        }
    };
}
pub(crate) use shader_file;

/// `struct Control` and the gradient stages' shared helpers.
pub const CONTROL: ShaderFile = shader_file!("common/control.wgsl");
/// `struct Segment`: the tables' entries.
pub const SEGMENT: ShaderFile = shader_file!("common/segment.wgsl");
/// `expm1`, bias corrections, `lerp`: mirrored by `reference::math`.
pub const MATH: ShaderFile = shader_file!("common/math.wgsl");
/// Loads and stores of 16-bit values, and the stochastic-rounding hash.
pub const DTYPE: ShaderFile = shader_file!("common/dtype.wgsl");
/// How a step sees its gradients (`process_grad`) and whether it is skipped.
pub const PROCESS: ShaderFile = shader_file!("common/process.wgsl");
/// The entry points every optimizer kernel shares: `prologue`, `update`, `update_tail`.
pub const ENTRY: ShaderFile = shader_file!("common/entry.wgsl");
/// The trust-ratio passes of LAMB and LARS.
pub const TRUST: ShaderFile = shader_file!("common/trust.wgsl");
/// The Adam family's group record (Adam, AdamW, AdaBelief, Adamax) and its prologue.
pub const ADAM_GROUP: ShaderFile = shader_file!("common/adam_group.wgsl");
/// The L2 weight-decay term.
pub const L2: ShaderFile = shader_file!("common/l2.wgsl");
/// The Adam family's moments.
pub const MOMENTS: ShaderFile = shader_file!("common/moments.wgsl");
/// RAdam's rectification (RAdam, AdaBelief's `rectify`).
pub const RECTIFY: ShaderFile = shader_file!("common/rectify.wgsl");
/// Schedule-Free's schedule, update and eval/train switch.
pub const SCHEDULE_FREE: ShaderFile = shader_file!("common/schedule_free.wgsl");

/// 8-bit block-quantized states: dequantize, the block scale, torchao's quantize.
pub const QUANT8: ShaderFile = shader_file!("common/quant8.wgsl");

/// Every shared file of the optimizer kernels.
pub const COMMON: [ShaderFile; 13] = [
    CONTROL,
    SEGMENT,
    MATH,
    DTYPE,
    PROCESS,
    ENTRY,
    TRUST,
    ADAM_GROUP,
    L2,
    MOMENTS,
    RECTIFY,
    SCHEDULE_FREE,
    QUANT8,
];

/// A module's WGSL source: `prelude`, then `files` concatenated in order.
pub fn concatenate(prelude: &str, files: &[ShaderFile]) -> String {
    let mut source = String::from(prelude);
    for file in files {
        source += &format!("// ---- shaders/{}\n{}\n", file.path, file.text);
    }
    source
}
