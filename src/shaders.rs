//! The WGSL sources, and how they are put together into one module per optimizer kernel.
//!
//! Each file in `shaders/` is plain WGSL. A kernel's module is the concatenation of the shared
//! files it needs and its own file; `shaders/common/entry.wgsl` holds the entry points every
//! kernel shares (`prologue`, `update`, `update_tail`), which call the kernel's `prepare_group`
//! and, through the generated element access ([`elements_source`]: the buffers in their
//! storage types, loads and stores), its `step_math`. The gradient-processing module is `clip.wgsl` after one of two workgroup
//! reductions (`common/reduce_subgroup.wgsl` or `common/reduce_workgroup.wgsl`); `clip_value.wgsl`
//! clamps buffers in place.

use crate::dtype::Dtype;

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
        "common/dtype.wgsl",
        include_str!("../shaders/common/dtype.wgsl"),
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

/// The storage types of one optimizer's element buffers: every parameter of an optimizer
/// shares one type, every gradient one, every state one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Storage {
    /// The parameters'.
    pub param: Dtype,
    /// The gradients'.
    pub grad: Dtype,
    /// The optimizer states' (`exp_avg`, `momentum_buffer`, ...).
    pub states: Dtype,
}

impl Storage {
    /// Everything in f32.
    pub const F32: Storage = Storage {
        param: Dtype::F32,
        grad: Dtype::F32,
        states: Dtype::F32,
    };

    /// Whether any buffer is 16-bit: the vec4 layout then takes eight elements per iteration,
    /// so that one 16-byte access carries eight 16-bit values.
    pub fn packed(self) -> bool {
        self.param.is_16bit() || self.grad.is_16bit() || self.states.is_16bit()
    }

    /// Elements per iteration of the update in `layout`: what segments of the vec4 layout end
    /// on (8 when [packed](Storage::packed), else 4). The scalar layout takes 4 at a time.
    pub fn unit(self, layout: ElementLayout) -> u64 {
        match (layout, self.packed()) {
            (ElementLayout::Vec4, true) => 8,
            _ => 4,
        }
    }
}

/// One element buffer of an update kernel: its WGSL name, binding, type and access.
struct Role {
    name: &'static str,
    binding: u32,
    dtype: Dtype,
    read_only: bool,
    // The state slot, for states (loaded and stored only where the kernel `uses_state`).
    slot: Option<usize>,
}

/// The WGSL that binds a kernel's element buffers and moves a unit of elements between them
/// and the registers: the declarations, `element_indices`, `units_of` and `step_unit`, which
/// loads a unit, calls the kernel's `step_math` on each group of four and stores the results.
/// Generated per element layout and storage types, so that the update loop holds exactly the
/// accesses its types need (lavapipe's time follows the accesses, not the bytes).
pub fn elements_source(layout: ElementLayout, storage: Storage, state_slots: usize) -> String {
    use std::fmt::Write;
    let mut roles = vec![
        Role {
            name: "param",
            binding: 2,
            dtype: storage.param,
            read_only: false,
            slot: None,
        },
        Role {
            name: "grad",
            binding: 3,
            dtype: storage.grad,
            read_only: true,
            slot: None,
        },
    ];
    for slot in 0..state_slots {
        roles.push(Role {
            name: ["state0", "state1", "state2"][slot],
            binding: 4 + slot as u32,
            dtype: storage.states,
            read_only: false,
            slot: Some(slot),
        });
    }
    let vec4 = layout == ElementLayout::Vec4;
    let groups = if vec4 && storage.packed() { 2 } else { 1 };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by src/shaders.rs (elements_source): layout {layout:?}, param {}, grad {}, \
         states {}.",
        storage.param, storage.grad, storage.states
    );
    s += "@group(0) @binding(0) var<storage, read_write> control: Control;\n";
    for r in &roles {
        let ty = match (vec4, r.dtype.is_16bit()) {
            (true, false) => "vec4<f32>",
            (true, true) => "vec4<u32>",
            (false, false) => "f32",
            (false, true) => "u32",
        };
        let access = if r.read_only { "read" } else { "read_write" };
        let _ = writeln!(
            s,
            "@group(0) @binding({}) var<storage, {access}> {}: array<{ty}>;",
            r.binding, r.name
        );
    }
    let _ = writeln!(
        s,
        "\n// Elements per iteration of the update loop.\nconst UNIT: u32 = {}u;",
        storage.unit(layout)
    );
    s += if vec4 { VEC4_INDICES } else { SCALAR_INDICES };
    if !vec4 && storage.packed() {
        s += SCALAR_PAIR_INDICES;
    } else if !vec4 {
        s += SCALAR_SINGLE_INDICES;
    }
    s += ELEMENTS_STRUCT;

    // step_unit: loads, math, stores.
    s += "\n// Loads the unit whose first group of four is `idx` (elements past `end` are not the \
          tensor's),\n// updates it group by group and stores it.\n";
    s += "fn step_unit(idx: vec4<u32>, end: u32, h: Hyper, c: Control) {\n";
    if vec4 {
        s += "    let q = idx.x / 4u;\n";
        s += "    let valid0 = idx < vec4(end);\n";
        if groups == 2 {
            s += "    let valid1 = idx + vec4(4u) < vec4(end);\n";
        }
    } else {
        // Loads read a real element for every lane: lanes past the end are clamped to the last.
        s += "    let i = min(idx, vec4(end - 1u));\n";
        s += "    let valid0 = idx < vec4(end);\n";
    }
    for g in 0..groups {
        let _ = writeln!(s, "    var e{g}: Elements;");
    }
    for r in &roles {
        let (open, close, indent) = match r.slot {
            Some(slot) => (
                format!("    if uses_state({slot}u) {{\n"),
                "    }\n",
                "        ",
            ),
            None => (String::new(), "", "    "),
        };
        if r.dtype.is_16bit() {
            let _ = writeln!(
                s,
                "    var {}_w = {};",
                r.name,
                if vec4 { "vec4(0u)" } else { "vec2(0u)" }
            );
        }
        s += &open;
        let load = |words: &str| format!("{}_load({words})", short(r.dtype));
        let wrap = |value: String| {
            if r.name == "grad" {
                format!("process_grad({value}, c)")
            } else {
                value
            }
        };
        match (vec4, r.dtype.is_16bit()) {
            (true, false) => {
                for g in 0..groups {
                    let at = if g == 0 {
                        "q".into()
                    } else {
                        format!("q + {g}u")
                    };
                    let value = wrap(format!("{}[{at}]", r.name));
                    let _ = writeln!(s, "{indent}e{g}.{} = {value};", r.name);
                }
            }
            (true, true) => {
                let _ = writeln!(s, "{indent}{0}_w = {0}[idx.x / 8u];", r.name);
                for (g, half) in ["xy", "zw"].iter().enumerate() {
                    let value = wrap(load(&format!("{}_w.{half}", r.name)));
                    let _ = writeln!(s, "{indent}e{g}.{} = {value};", r.name);
                }
            }
            (false, false) => {
                let n = r.name;
                let value = wrap(format!("vec4({n}[i.x], {n}[i.y], {n}[i.z], {n}[i.w])"));
                let _ = writeln!(s, "{indent}e0.{n} = {value};");
            }
            (false, true) => {
                let n = r.name;
                let _ = writeln!(s, "{indent}{n}_w = vec2({n}[i.x / 2u], {n}[i.z / 2u]);");
                let _ = writeln!(s, "{indent}e0.{n} = {};", wrap(load(&format!("{n}_w"))));
            }
        }
        s += close;
    }
    for g in 0..groups {
        let _ = writeln!(s, "    step_math(&e{g}, h, c);");
    }
    for r in roles.iter().filter(|r| !r.read_only) {
        let n = r.name;
        let call = match (vec4, r.dtype.is_16bit()) {
            (true, false) => (0..groups)
                .map(|g| {
                    let at = if g == 0 {
                        "q".into()
                    } else {
                        format!("q + {g}u")
                    };
                    format!("store_{n}({at}, valid{g}, e{g}.{n});")
                })
                .collect::<Vec<_>>()
                .join(" "),
            (true, true) => {
                format!("store_{n}(idx.x / 8u, valid0, valid1, {n}_w, e0.{n}, e1.{n});")
            }
            (false, false) => format!("store_{n}(idx, valid0, e0.{n});"),
            (false, true) => format!("store_{n}(idx, valid0, {n}_w, e0.{n});"),
        };
        match r.slot {
            Some(slot) => {
                let _ = writeln!(s, "    if uses_state({slot}u) {{ {call} }}");
            }
            None => {
                let _ = writeln!(s, "    {call}");
            }
        }
    }
    s += "}\n";

    // The stores, one function per buffer.
    for r in roles.iter().filter(|r| !r.read_only) {
        let n = r.name;
        let bits = format!("{}_bits", short(r.dtype));
        let _ = match (vec4, r.dtype.is_16bit()) {
            (true, false) => writeln!(
                s,
                "\nfn store_{n}(q: u32, valid: vec4<bool>, v: vec4<f32>) {{
    if !PARTIAL_VEC4S {{
        {n}[q] = v;
        return;
    }}
    for (var lane = 0u; lane < 4u; lane++) {{
        if valid[lane] {{ {n}[q][lane] = v[lane]; }}
    }}
}}"
            ),
            (true, true) => writeln!(
                s,
                "\nfn store_{n}(q: u32, valid0: vec4<bool>, valid1: vec4<bool>, old: vec4<u32>, v0: vec4<f32>, v1: vec4<f32>) {{
    let packed = vec4(pack_halves({bits}(v0)), pack_halves({bits}(v1)));
    if !PARTIAL_VEC4S {{
        {n}[q] = packed;
        return;
    }}
    // Whole words where both halves are the tensor's; where only the low half is, the high
    // half keeps the bits it had (no other invocation writes that word).
    let low = vec4(valid0.x, valid0.z, valid1.x, valid1.z);
    let high = vec4(valid0.y, valid0.w, valid1.y, valid1.w);
    let word = select((old & vec4(0xffff0000u)) | (packed & vec4(0xffffu)), packed, high);
    for (var j = 0u; j < 4u; j++) {{
        if low[j] {{ {n}[q][j] = word[j]; }}
    }}
}}"
            ),
            (false, false) => writeln!(
                s,
                "\nfn store_{n}(idx: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {{
    if valid.x {{ {n}[idx.x] = v.x; }}
    if valid.y {{ {n}[idx.y] = v.y; }}
    if valid.z {{ {n}[idx.z] = v.z; }}
    if valid.w {{ {n}[idx.w] = v.w; }}
}}"
            ),
            (false, true) => writeln!(
                s,
                "\nfn store_{n}(idx: vec4<u32>, valid: vec4<bool>, old: vec2<u32>, v: vec4<f32>) {{
    let packed = pack_halves({bits}(v));
    // As in the vec4 layout: a word whose high half is not the tensor's keeps that half.
    let word = select((old & vec2(0xffff0000u)) | (packed & vec2(0xffffu)), packed, valid.yw);
    if valid.x {{ {n}[idx.x / 2u] = word.x; }}
    if valid.z {{ {n}[idx.z / 2u] = word.y; }}
}}"
            ),
        };
    }
    s
}

/// The prefix of a 16-bit type's functions in common/dtype.wgsl.
fn short(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::F32 => "f32",
        Dtype::F16 => "f16",
        Dtype::BF16 => "bf16",
    }
}

const VEC4_INDICES: &str = "
// How a workgroup's units are dealt to its invocations (Tuning::runs_per_invocation). Off:
// consecutive invocations take consecutive units, row after row (coalesced 16-byte loads on
// GPUs). On: each invocation takes a run of VEC4S_PER_INVOCATION consecutive units, which
// suits adapters that run invocations as SIMD batches on a CPU (lavapipe): a batch then
// streams through one contiguous piece of each buffer.
override RUNS: bool = false;

// Set for the tail dispatch (`update_tail` in common/entry.wgsl) only: stores write the
// elements of the tensor alone. The main update stores whole units, with no per-lane code in
// its loop.
override PARTIAL_VEC4S: bool = false;

// The first four elements of the `k`-th unit that invocation `lane` updates in a tile from
// `start`.
fn element_indices(start: u32, lane: u32, k: u32) -> vec4<u32> {
    if RUNS {
        return start + UNIT * (lane * VEC4S_PER_INVOCATION + k) + vec4(0u, 1u, 2u, 3u);
    }
    return start + UNIT * (k * WORKGROUP_SIZE + lane) + vec4(0u, 1u, 2u, 3u);
}

// How many of its units invocation `lane` visits in segment `s`: a bound known only at run
// time, so that compilers keep a loop that ends with the segment rather than unroll it into
// masked code that runs every unit for every segment (on lavapipe, 1000 tensors of 1000
// elements then took 1.5x longer). With runs it is exact per invocation; without, it counts
// the rows of the segment, and the update stops an invocation at the segment's end.
fn units_of(s: Segment, lane: u32) -> u32 {
    let units = (s.end - s.start + UNIT - 1u) / UNIT;
    if RUNS {
        let first = lane * VEC4S_PER_INVOCATION;
        return select(0u, min(VEC4S_PER_INVOCATION, units - first), units > first);
    }
    return (units + WORKGROUP_SIZE - 1u) / WORKGROUP_SIZE;
}
";

const SCALAR_INDICES: &str = "
// Runs per invocation are a vec4-layout setting: here the elements of a group lie
// WORKGROUP_SIZE apart already, so a workgroup's loads of each lane are contiguous.
const RUNS: bool = false;

// The groups of four an invocation visits in segment `s`: the rows of the segment (a bound
// known only at run time; see the vec4 layout). The update stops an invocation at the end.
fn units_of(s: Segment, lane: u32) -> u32 {
    return (s.end - s.start + 4u * WORKGROUP_SIZE - 1u) / (4u * WORKGROUP_SIZE);
}
";

const SCALAR_SINGLE_INDICES: &str = "
// The elements of the `k`-th group of four that invocation `lane` updates in a tile from
// `start`, WORKGROUP_SIZE apart.
fn element_indices(start: u32, lane: u32, k: u32) -> vec4<u32> {
    return start + (4u * k + vec4(0u, 1u, 2u, 3u)) * WORKGROUP_SIZE + lane;
}
";

const SCALAR_PAIR_INDICES: &str = "
// The elements of the `k`-th group of four that invocation `lane` updates in a tile from
// `start`: two pairs (one 32-bit word of a 16-bit buffer each), WORKGROUP_SIZE pairs apart,
// so that no two invocations ever write one word.
fn element_indices(start: u32, lane: u32, k: u32) -> vec4<u32> {
    let pairs = (2u * k + vec4(0u, 0u, 1u, 1u)) * WORKGROUP_SIZE + lane;
    return start + 2u * pairs + vec4(0u, 1u, 0u, 1u);
}
";

const ELEMENTS_STRUCT: &str = "
// Four elements of every buffer, in f32, as the kernel's `step_math` updates them. States
// the kernel does not keep stay zero.
struct Elements {
    param: vec4<f32>,
    grad: vec4<f32>,
    state0: vec4<f32>,
    state1: vec4<f32>,
    state2: vec4<f32>,
}
";

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

    /// The files of the module, in order; [`Kernel::source`] adds the generated element
    /// access ([`elements_source`]).
    pub fn files(self) -> Vec<&'static str> {
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
            "common/dtype.wgsl",
        ];
        if matches!(self, Kernel::Adam | Kernel::AdaBelief) {
            files.push("common/adam_hyper.wgsl");
        }
        files.extend([own, "common/entry.wgsl"]);
        files
    }

    /// The module's WGSL source with `layout` and `storage`.
    pub fn source(self, layout: ElementLayout, storage: Storage) -> String {
        let mut source = concatenate(&self.files());
        source += &elements_source(layout, storage, self.state_slots());
        source
    }

    /// How many state bindings (`state0`, `state1`, ...) the kernel declares.
    pub fn state_slots(self) -> usize {
        match self {
            Kernel::Sgd | Kernel::Adagrad | Kernel::Lion => 1,
            Kernel::RmsProp | Kernel::Adam | Kernel::AdaBelief => 3,
        }
    }
}
