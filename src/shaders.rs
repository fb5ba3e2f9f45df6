//! The WGSL sources, and how they are put together into one module per optimizer kernel.
//!
//! Each file in `shaders/` is plain WGSL. A kernel's module is the concatenation of the shared
//! files it needs and its own file; `shaders/common/entry.wgsl` holds the entry points every
//! kernel shares (`prologue`, `update`, `update_tail`), which call the kernel's `prepare_group`
//! and `step_elements`. The gradient-processing module is `clip.wgsl` after one of two workgroup
//! reductions (`common/reduce_subgroup.wgsl` or `common/reduce_workgroup.wgsl`); `clip_value.wgsl`
//! clamps buffers in place.

/// Every WGSL file of the crate, by its path under `shaders/`.
pub const FILES: &[(&str, &str)] = &[
    (
        "common/control.wgsl",
        include_str!("../shaders/common/control.wgsl"),
    ),
    (
        "common/segment.wgsl",
        include_str!("../shaders/common/segment.wgsl"),
    ),
    (
        "common/math.wgsl",
        include_str!("../shaders/common/math.wgsl"),
    ),
    (
        "common/elements.wgsl",
        include_str!("../shaders/common/elements.wgsl"),
    ),
    (
        "common/elements_scalar.wgsl",
        include_str!("../shaders/common/elements_scalar.wgsl"),
    ),
    (
        "common/reduce_workgroup.wgsl",
        include_str!("../shaders/common/reduce_workgroup.wgsl"),
    ),
    (
        "common/reduce_subgroup.wgsl",
        include_str!("../shaders/common/reduce_subgroup.wgsl"),
    ),
    (
        "common/adam_hyper.wgsl",
        include_str!("../shaders/common/adam_hyper.wgsl"),
    ),
    (
        "common/entry.wgsl",
        include_str!("../shaders/common/entry.wgsl"),
    ),
    ("sgd.wgsl", include_str!("../shaders/sgd.wgsl")),
    ("adagrad.wgsl", include_str!("../shaders/adagrad.wgsl")),
    ("rmsprop.wgsl", include_str!("../shaders/rmsprop.wgsl")),
    ("adam.wgsl", include_str!("../shaders/adam.wgsl")),
    ("adabelief.wgsl", include_str!("../shaders/adabelief.wgsl")),
    ("lion.wgsl", include_str!("../shaders/lion.wgsl")),
    ("clip.wgsl", include_str!("../shaders/clip.wgsl")),
    (
        "clip_value.wgsl",
        include_str!("../shaders/clip_value.wgsl"),
    ),
];

/// A module's WGSL source: `files` concatenated in order.
pub fn concatenate(files: &[&'static str]) -> String {
    let mut source = String::new();
    for path in files {
        let (_, text) = FILES
            .iter()
            .find(|(p, _)| p == path)
            .expect("file listed in FILES");
        source += &format!("// ---- shaders/{path}\n{text}\n");
    }
    source
}

/// The files of the gradient-processing module (`clip.wgsl`): its workgroup reduction uses
/// subgroup operations when `subgroups` is true (the device then needs `Features::SUBGROUP`;
/// naga 30 takes subgroup built-ins without WGSL's `enable subgroups;`, and refuses it).
pub fn grad_files(subgroups: bool) -> Vec<&'static str> {
    let reduce = if subgroups {
        "common/reduce_subgroup.wgsl"
    } else {
        "common/reduce_workgroup.wgsl"
    };
    vec![
        "common/control.wgsl",
        "common/segment.wgsl",
        reduce,
        "clip.wgsl",
    ]
}

/// The gradient-processing module's WGSL source; see [`grad_files`].
pub fn grad_source(subgroups: bool) -> String {
    concatenate(&grad_files(subgroups))
}

/// The files of the standalone clip-by-value module.
pub const CLIP_VALUE_FILES: [&str; 3] = [
    "common/control.wgsl",
    "common/segment.wgsl",
    "clip_value.wgsl",
];

/// How an update kernel binds the element buffers (param, grad, states) of a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementLayout {
    /// `common/elements.wgsl`: `array<vec4<f32>>`, one 16-byte load or store per four
    /// elements. For chunks whose tensors start at multiples of 4 elements and whose bindings
    /// can be rounded up to 16 bytes within their buffers (every arena, and every buffer
    /// whose size leaves room).
    Vec4,
    /// `common/elements_scalar.wgsl`: `array<f32>`, for every other chunk.
    Scalar,
}

impl ElementLayout {
    /// The file that declares the buffers and their loads and stores.
    pub fn file(self) -> &'static str {
        match self {
            ElementLayout::Vec4 => "common/elements.wgsl",
            ElementLayout::Scalar => "common/elements_scalar.wgsl",
        }
    }
}

/// One optimizer kernel: a WGSL module with `prologue`, `update` and `update_tail` entry
/// points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `sgd.wgsl`
    Sgd,
    /// `adagrad.wgsl`
    Adagrad,
    /// `rmsprop.wgsl`
    RmsProp,
    /// `adam.wgsl`: Adam, AdamW, AMSGrad.
    Adam,
    /// `adabelief.wgsl`
    AdaBelief,
    /// `lion.wgsl`
    Lion,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 6] = [
        Kernel::Sgd,
        Kernel::Adagrad,
        Kernel::RmsProp,
        Kernel::Adam,
        Kernel::AdaBelief,
        Kernel::Lion,
    ];

    /// The kernel's name, as its file is named.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Sgd => "sgd",
            Kernel::Adagrad => "adagrad",
            Kernel::RmsProp => "rmsprop",
            Kernel::Adam => "adam",
            Kernel::AdaBelief => "adabelief",
            Kernel::Lion => "lion",
        }
    }

    /// The files that make up the module with `layout`, in order.
    pub fn files(self, layout: ElementLayout) -> Vec<&'static str> {
        let own = match self {
            Kernel::Sgd => "sgd.wgsl",
            Kernel::Adagrad => "adagrad.wgsl",
            Kernel::RmsProp => "rmsprop.wgsl",
            Kernel::Adam => "adam.wgsl",
            Kernel::AdaBelief => "adabelief.wgsl",
            Kernel::Lion => "lion.wgsl",
        };
        let mut files = vec![
            "common/control.wgsl",
            "common/segment.wgsl",
            "common/math.wgsl",
            layout.file(),
        ];
        if matches!(self, Kernel::Adam | Kernel::AdaBelief) {
            files.push("common/adam_hyper.wgsl");
        }
        files.extend([own, "common/entry.wgsl"]);
        files
    }

    /// The module's WGSL source with `layout`.
    pub fn source(self, layout: ElementLayout) -> String {
        concatenate(&self.files(layout))
    }

    /// How many state bindings (`state0`, `state1`, ...) the kernel declares.
    pub fn state_slots(self) -> usize {
        match self {
            Kernel::Sgd | Kernel::Adagrad | Kernel::Lion => 1,
            Kernel::RmsProp | Kernel::Adam | Kernel::AdaBelief => 3,
        }
    }
}
