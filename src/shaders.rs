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
        "common/grad_f32.wgsl",
        include_str!("../shaders/common/grad_f32.wgsl"),
    ),
    (
        "common/grad_16bit.wgsl",
        include_str!("../shaders/common/grad_16bit.wgsl"),
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
    ("common/l2.wgsl", include_str!("../shaders/common/l2.wgsl")),
    (
        "common/moments.wgsl",
        include_str!("../shaders/common/moments.wgsl"),
    ),
    (
        "common/rectify.wgsl",
        include_str!("../shaders/common/rectify.wgsl"),
    ),
    (
        "common/schedule_free.wgsl",
        include_str!("../shaders/common/schedule_free.wgsl"),
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
    ("adamax.wgsl", include_str!("../shaders/adamax.wgsl")),
    ("nadam.wgsl", include_str!("../shaders/nadam.wgsl")),
    ("radam.wgsl", include_str!("../shaders/radam.wgsl")),
    ("adadelta.wgsl", include_str!("../shaders/adadelta.wgsl")),
    ("adopt.wgsl", include_str!("../shaders/adopt.wgsl")),
    (
        "schedule_free_adamw.wgsl",
        include_str!("../shaders/schedule_free_adamw.wgsl"),
    ),
    (
        "schedule_free_sgd.wgsl",
        include_str!("../shaders/schedule_free_sgd.wgsl"),
    ),
    ("lamb.wgsl", include_str!("../shaders/lamb.wgsl")),
    ("lars.wgsl", include_str!("../shaders/lars.wgsl")),
    (
        "common/trust.wgsl",
        include_str!("../shaders/common/trust.wgsl"),
    ),
    ("clip.wgsl", include_str!("../shaders/clip.wgsl")),
    ("schedule.wgsl", include_str!("../shaders/schedule.wgsl")),
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

/// The files of the gradient-processing module (`clip.wgsl`) for gradients stored 16-bit
/// (`sixteen_bit`) or f32: its workgroup reduction uses subgroup operations when `subgroups`
/// is true (the device then needs `Features::SUBGROUP`; naga 30 takes subgroup built-ins
/// without WGSL's `enable subgroups;`, and refuses it).
pub fn grad_files(subgroups: bool, sixteen_bit: bool) -> Vec<&'static str> {
    let reduce = if subgroups {
        "common/reduce_subgroup.wgsl"
    } else {
        "common/reduce_workgroup.wgsl"
    };
    let grad = if sixteen_bit {
        "common/grad_16bit.wgsl"
    } else {
        "common/grad_f32.wgsl"
    };
    vec![
        "common/control.wgsl",
        "common/segment.wgsl",
        "common/dtype.wgsl",
        grad,
        reduce,
        "clip.wgsl",
    ]
}

/// The gradient-processing module's WGSL source; see [`grad_files`].
pub fn grad_source(subgroups: bool, sixteen_bit: bool) -> String {
    concatenate(&grad_files(subgroups, sixteen_bit))
}

/// The files of the standalone clip-by-value module.
pub const CLIP_VALUE_FILES: [&str; 3] = [
    "common/control.wgsl",
    "common/segment.wgsl",
    "clip_value.wgsl",
];

/// The files of the device-schedule module (`Optimizer::set_schedule`).
pub const SCHEDULE_FILES: [&str; 2] = ["common/control.wgsl", "schedule.wgsl"];

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
        }
    }

    /// Whether any buffer is 16-bit: the vec4 layout then takes eight elements per iteration,
    /// so that one 16-byte access carries eight 16-bit values.
    pub fn packed(self) -> bool {
        self.param.is_16bit() || self.grad.is_16bit() || self.states.is_16bit()
    }

    /// Bytes of the smallest storage type among the roles (2 when any is 16-bit, else 4).
    pub(crate) fn smallest_size(self) -> u64 {
        if self.packed() {
            2
        } else {
            4
        }
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

/// The binding of the f32 master copy of 16-bit parameters in the update's bind group.
pub const MASTER_BINDING: u32 = 8;

/// The binding of a trust-ratio kernel's per-slot sums and ratios (`common/trust.wgsl`).
pub const TRUST_BINDING: u32 = 9;

/// One element buffer of an update kernel: its WGSL name, binding, type and access.
struct Role {
    name: &'static str,
    binding: u32,
    dtype: Dtype,
    read_only: bool,
    // The `Elements` field it loads into and stores from.
    field: &'static str,
    // The state slot, for states (loaded and stored only where the kernel `uses_state`).
    slot: Option<usize>,
}

/// The WGSL that binds a kernel's element buffers and moves a unit of elements between them
/// and the registers: the declarations, `element_indices`, `units_of` and `step_unit`, which
/// loads a unit, calls the kernel's `step_math` on each group of four and stores the results.
/// Generated per element layout and storage, so that the update loop holds exactly the
/// accesses and conversions its types need (lavapipe's time follows the accesses, not the
/// bytes).
pub fn elements_source(
    layout: ElementLayout,
    storage: Storage,
    state_slots: usize,
    trust: bool,
) -> String {
    use std::fmt::Write;
    let role = |name, binding, dtype, read_only, field, slot| Role {
        name,
        binding,
        dtype,
        read_only,
        field,
        slot,
    };
    let mut roles = vec![
        role("param", 2, storage.param, false, "param", None),
        role("grad", 3, storage.grad, true, "grad", None),
    ];
    for slot in 0..state_slots {
        let name = ["state0", "state1", "state2"][slot];
        roles.push(role(
            name,
            4 + slot as u32,
            storage.states,
            false,
            name,
            Some(slot),
        ));
    }
    let master = storage.master && storage.param.is_16bit();
    if master {
        roles.push(role(
            "master",
            MASTER_BINDING,
            Dtype::F32,
            false,
            "param",
            None,
        ));
    }
    let stochastic = match storage.rounding {
        Rounding::Stochastic { seed } if storage.param == Dtype::BF16 => Some(seed),
        _ => None,
    };
    let vec4 = layout == ElementLayout::Vec4;
    let groups = if vec4 && storage.packed() { 2 } else { 1 };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by src/shaders.rs (elements_source): layout {layout:?}, {storage:?}."
    );
    s += "@group(0) @binding(0) var<storage, read_write> control: array<Control>;\n";
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
    if let Some(seed) = stochastic {
        let _ = writeln!(
            s,
            "{}const SEED_LO: u32 = {}u;\nconst SEED_HI: u32 = {}u;",
            STOCHASTIC_COMMENT,
            seed as u32,
            (seed >> 32) as u32
        );
        s += STOCHASTIC_BITS;
    }

    // step_unit: loads, math, stores.
    s +=
        "\n// Loads the unit whose first group of four is `idx` in segment `s` (elements past its \
          end are\n// not the tensor's), updates it group by group and stores it.\n";
    s += "fn step_unit(idx: vec4<u32>, s: Segment, h: Hyper, c: Control) {\n";
    s += "    let end = s.end;\n";
    if vec4 {
        s += "    let q = idx.x / 4u;\n";
    } else {
        // Loads read a real element for every lane: lanes past the end are clamped to the last.
        s += "    let i = min(idx, vec4(end - 1u));\n";
    }
    for g in 0..groups {
        let _ = writeln!(s, "    var e{g}: Elements;");
        let _ = writeln!(s, "    let valid{g} = idx + vec4({}u) < vec4(end);", 4 * g);
    }
    for r in &roles {
        let n = r.name;
        let (open, close, indent) = match r.slot {
            Some(slot) => (
                format!("    if uses_state({slot}u) {{\n"),
                "    }\n",
                "        ",
            ),
            None => (String::new(), "", "    "),
        };
        if r.dtype.is_16bit() {
            let zero = if vec4 { "vec4(0u)" } else { "vec2(0u)" };
            let _ = writeln!(s, "    var {n}_w = {zero};");
        }
        s += &open;
        let widen = |words: String| format!("{}_load({words})", short(r.dtype));
        let values: Vec<String> = match (vec4, r.dtype.is_16bit()) {
            (true, false) => (0..groups).map(|g| format!("{n}[q + {g}u]")).collect(),
            (true, true) => {
                let _ = writeln!(s, "{indent}{n}_w = {n}[idx.x / 8u];");
                vec![widen(format!("{n}_w.xy")), widen(format!("{n}_w.zw"))]
            }
            (false, false) => vec![format!("vec4({n}[i.x], {n}[i.y], {n}[i.z], {n}[i.w])")],
            (false, true) => {
                let _ = writeln!(s, "{indent}{n}_w = vec2({n}[i.x / 2u], {n}[i.z / 2u]);");
                vec![widen(format!("{n}_w"))]
            }
        };
        for (g, value) in values.into_iter().enumerate() {
            let value = match n {
                "grad" => format!("process_grad({value}, c)"),
                // The master copy starts as the parameters at the first step.
                "master" => format!("select({value}, e{g}.param, c.step == 1u)"),
                _ => value,
            };
            let _ = writeln!(s, "{indent}e{g}.{} = {value};", r.field);
        }
        s += close;
    }
    for g in 0..groups {
        let _ = writeln!(s, "    step_math(&e{g}, h, c);");
        if trust {
            let _ = writeln!(s, "    trust_accumulate(e{g}, valid{g});");
        }
    }
    let random = |g: usize| format!("stochastic_bits(s, idx + vec4({}u), c)", 4 * g);
    for r in roles.iter().filter(|r| !r.read_only) {
        let (n, f) = (r.name, r.field);
        let sr = stochastic.is_some() && n == "param";
        let call = match (vec4, r.dtype.is_16bit()) {
            (true, false) => (0..groups)
                .map(|g| format!("store_{n}(q + {g}u, valid{g}, e{g}.{f});"))
                .collect::<Vec<_>>()
                .join(" "),
            (true, true) => {
                let extra = if sr {
                    format!(", {}, {}", random(0), random(1))
                } else {
                    String::new()
                };
                format!("store_{n}(idx.x / 8u, valid0, valid1, {n}_w, e0.{f}, e1.{f}{extra});")
            }
            (false, false) => format!("store_{n}(idx, valid0, e0.{f});"),
            (false, true) => {
                let extra = if sr {
                    format!(", {}", random(0))
                } else {
                    String::new()
                };
                format!("store_{n}(idx, valid0, {n}_w, e0.{f}{extra});")
            }
        };
        // A trust-ratio kernel's pass stores only what it changes (common/trust.wgsl).
        match (r.slot, trust) {
            (Some(slot), false) => {
                let _ = writeln!(s, "    if uses_state({slot}u) {{ {call} }}");
            }
            (Some(slot), true) => {
                let _ = writeln!(
                    s,
                    "    if uses_state({slot}u) && writes_state({slot}u) {{ {call} }}"
                );
            }
            (None, false) => {
                let _ = writeln!(s, "    {call}");
            }
            (None, true) => {
                let _ = writeln!(s, "    if TRUST_APPLY {{ {call} }}");
            }
        }
    }
    s += "}\n";

    // The stores, one function per buffer.
    for r in roles.iter().filter(|r| !r.read_only) {
        let n = r.name;
        let sr = stochastic.is_some() && n == "param";
        let bits = |v: &str, random: &str| {
            if sr {
                format!("bf16_bits_stochastic({v}, {random})")
            } else {
                format!("{}_bits({v})", short(r.dtype))
            }
        };
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
                "\nfn store_{n}(q: u32, valid0: vec4<bool>, valid1: vec4<bool>, old: vec4<u32>, v0: vec4<f32>, v1: vec4<f32>{}) {{
    let packed = vec4(pack_halves({}), pack_halves({}));
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
}}",
                if sr { ", r0: vec4<u32>, r1: vec4<u32>" } else { "" },
                bits("v0", "r0"),
                bits("v1", "r1"),
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
                "\nfn store_{n}(idx: vec4<u32>, valid: vec4<bool>, old: vec2<u32>, v: vec4<f32>{}) {{
    let packed = pack_halves({});
    // As in the vec4 layout: a word whose high half is not the tensor's keeps that half.
    let word = select((old & vec2(0xffff0000u)) | (packed & vec2(0xffffu)), packed, valid.yw);
    if valid.x {{ {n}[idx.x / 2u] = word.x; }}
    if valid.z {{ {n}[idx.z / 2u] = word.y; }}
}}",
                if sr { ", r: vec4<u32>" } else { "" },
                bits("v", "r"),
            ),
        };
    }
    s
}

const STOCHASTIC_COMMENT: &str = "
// Stochastic rounding of the bf16 parameters (Rounding::Stochastic): the seed, and the random
// bits of each element, a hash of (seed, step, tensor, index within the tensor): the same
// whatever the layout, and mirrored by the host (src/dtype.rs, stochastic_bits).
";

const STOCHASTIC_BITS: &str = "
// The random bits of the elements `idx` of segment `s` at this step.
fn stochastic_bits(s: Segment, idx: vec4<u32>, c: Control) -> vec4<u32> {
    let key = mix32(mix32(mix32(SEED_LO ^ mix32(SEED_HI)) ^ c.step) ^ s.tensor);
    return mix32_4(vec4(key) ^ (vec4(s.tensor_offset) + idx - vec4(s.start)));
}
";

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
    /// `adamax.wgsl`
    Adamax,
    /// `nadam.wgsl`: NAdam, PyTorch's and Optax's.
    NAdam,
    /// `radam.wgsl`: RAdam, PyTorch's and Optax's.
    RAdam,
    /// `adadelta.wgsl`
    Adadelta,
    /// `adopt.wgsl`: ADOPT, the authors' PyTorch form and Optax's.
    Adopt,
    /// `schedule_free_adamw.wgsl`: Schedule-Free AdamW, with its eval/train switch.
    ScheduleFreeAdamW,
    /// `schedule_free_sgd.wgsl`: Schedule-Free SGD, with its eval/train switch.
    ScheduleFreeSgd,
    /// `lamb.wgsl`: LAMB, with per-tensor trust ratios (`common/trust.wgsl`).
    Lamb,
    /// `lars.wgsl`: LARS, with per-tensor trust ratios (`common/trust.wgsl`).
    Lars,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 15] = [
        Kernel::Sgd,
        Kernel::Adagrad,
        Kernel::RmsProp,
        Kernel::Adam,
        Kernel::AdaBelief,
        Kernel::Lion,
        Kernel::Adamax,
        Kernel::NAdam,
        Kernel::RAdam,
        Kernel::Adadelta,
        Kernel::Adopt,
        Kernel::ScheduleFreeAdamW,
        Kernel::ScheduleFreeSgd,
        Kernel::Lamb,
        Kernel::Lars,
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
            Kernel::Adamax => "adamax",
            Kernel::NAdam => "nadam",
            Kernel::RAdam => "radam",
            Kernel::Adadelta => "adadelta",
            Kernel::Adopt => "adopt",
            Kernel::ScheduleFreeAdamW => "schedule_free_adamw",
            Kernel::ScheduleFreeSgd => "schedule_free_sgd",
            Kernel::Lamb => "lamb",
            Kernel::Lars => "lars",
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
            Kernel::Adamax => "adamax.wgsl",
            Kernel::NAdam => "nadam.wgsl",
            Kernel::RAdam => "radam.wgsl",
            Kernel::Adadelta => "adadelta.wgsl",
            Kernel::Adopt => "adopt.wgsl",
            Kernel::ScheduleFreeAdamW => "schedule_free_adamw.wgsl",
            Kernel::ScheduleFreeSgd => "schedule_free_sgd.wgsl",
            Kernel::Lamb => "lamb.wgsl",
            Kernel::Lars => "lars.wgsl",
        };
        let mut files = vec![
            "common/control.wgsl",
            "common/segment.wgsl",
            "common/math.wgsl",
            "common/dtype.wgsl",
        ];
        if matches!(self, Kernel::Adam | Kernel::AdaBelief | Kernel::Adamax) {
            files.push("common/adam_hyper.wgsl");
        }
        if matches!(
            self,
            Kernel::Sgd
                | Kernel::Adagrad
                | Kernel::RmsProp
                | Kernel::Adamax
                | Kernel::Adadelta
                | Kernel::Adam
                | Kernel::NAdam
                | Kernel::RAdam
                | Kernel::Adopt
        ) {
            files.push("common/l2.wgsl");
        }
        if matches!(
            self,
            Kernel::Adam | Kernel::NAdam | Kernel::RAdam | Kernel::Adopt
        ) {
            files.push("common/moments.wgsl");
        }
        if matches!(self, Kernel::RAdam | Kernel::AdaBelief) {
            files.push("common/rectify.wgsl");
        }
        if self.is_schedule_free() {
            files.push("common/schedule_free.wgsl");
        }
        files.extend([own, "common/entry.wgsl"]);
        if self.has_trust_ratio() {
            files.push("common/trust.wgsl");
        }
        files
    }

    /// Whether the kernel scales each tensor's update by a trust ratio (LAMB, LARS): a step
    /// then takes two passes with a per-tensor reduction between them (`common/trust.wgsl`).
    pub fn has_trust_ratio(self) -> bool {
        matches!(self, Kernel::Lamb | Kernel::Lars)
    }

    /// Whether the kernel is a Schedule-Free one, with the eval/train switch
    /// (`common/schedule_free.wgsl`).
    pub fn is_schedule_free(self) -> bool {
        matches!(self, Kernel::ScheduleFreeAdamW | Kernel::ScheduleFreeSgd)
    }

    /// The module's WGSL source with `layout` and `storage`.
    pub fn source(self, layout: ElementLayout, storage: Storage) -> String {
        let mut source = concatenate(&self.files());
        source += &elements_source(layout, storage, self.state_slots(), self.has_trust_ratio());
        source
    }

    /// How many state bindings (`state0`, `state1`, ...) the kernel declares.
    pub fn state_slots(self) -> usize {
        match self {
            Kernel::Sgd
            | Kernel::Adagrad
            | Kernel::Lion
            | Kernel::ScheduleFreeSgd
            | Kernel::Lars => 1,
            Kernel::Adamax
            | Kernel::NAdam
            | Kernel::RAdam
            | Kernel::Adadelta
            | Kernel::Adopt
            | Kernel::ScheduleFreeAdamW
            | Kernel::Lamb => 2,
            Kernel::RmsProp | Kernel::Adam | Kernel::AdaBelief => 3,
        }
    }
}
