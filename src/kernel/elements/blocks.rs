//! The generated update of 8-bit block-quantized states (shaders/common/quant8.wgsl): a
//! block's new scales need all of its updated values before any code is stored, so the unit
//! loop of other storages becomes a loop over blocks, shared by lanes in one pass or taken by
//! one invocation in two.

use std::fmt::Write;

use super::{lane_units, Generator, COMPONENTS};
use crate::kernel::storage::BLOCK_LANES;

impl Generator {
    /// The 8-bit states' update: `unit_math` (a unit's loads, dequantized with its block's
    /// scales, and `step_math`), `store_unit` (its stores, the states quantized with the
    /// block's new scales), the two ways of updating blocks with them (`step_block`, a block
    /// per invocation in two passes; `step_block_rounds`, lanes sharing blocks in one) and
    /// `step_segment`, which picks one by `RUNS`.
    pub(super) fn quantized_step_unit(&self) -> String {
        let mut s = String::new();
        let groups: Vec<String> = (0..self.groups).map(|g| format!("e{g}")).collect();
        let _ = writeln!(
            s,
            "\n// One unit of a block, updated in registers.\nstruct Unit {{\n{}}}\n",
            groups
                .iter()
                .map(|e| format!("    {e}: Elements,\n"))
                .collect::<String>()
        );
        s += "// Loads the unit whose first group of four is `idx`, its states dequantized with the \
              block's\n// scales `old`, and updates it.\n";
        s += "fn unit_math(idx: vec4<u32>, s: Segment, group: Group, c: Control, old: vec3<f32>) -> Unit {\n";
        s += &self.loads_and_math();
        let _ = writeln!(s, "    return Unit({});\n}}\n", groups.join(", "));
        s += "// Stores the unit `u` whose first group of four is `idx`, its states quantized with the \
              block's\n// new scales `scale`.\n";
        s += "fn store_unit(idx: vec4<u32>, s: Segment, c: Control, u: Unit, scale: vec3<f32>) {\n";
        s += "    let end = s.end;\n    let q = idx.x / 4u;\n";
        for (g, e) in groups.iter().enumerate() {
            let _ = writeln!(s, "    let {e} = u.{e};");
            let _ = writeln!(s, "    let valid{g} = idx + vec4({}u) < vec4(end);", 4 * g);
        }
        for r in self
            .roles
            .iter()
            .filter(|r| !r.read_only && r.slot.is_none())
        {
            if r.dtype.is_16bit() {
                // Whole units only (no tail dispatch with 8-bit states): the old words of a
                // partial store are never read.
                let _ = writeln!(s, "    let {}_w = vec4(0u);", r.name);
            }
        }
        s += &self.stores();
        s += "}\n";
        s += &self.block_passes();
        s += &self.block_rounds();
        s += &lane_units("step_lane_blocks", "step_block", "blocks");
        s += BLOCK_SEGMENT;
        s
    }

    /// `step_block`, for runs per invocation (CPU adapters): an invocation updates a block
    /// alone in two passes, the first finding its new scales, the second updating again (the
    /// same operations on the same loads) and storing.
    fn block_passes(&self) -> String {
        let mut s = String::new();
        let groups: Vec<String> = (0..self.groups).map(|g| format!("e{g}")).collect();
        let access = self.storage.access_unit(self.layout);
        s += "\n// Updates the block whose first group of four is `idx` alone, in two passes.\n";
        s += "fn step_block(idx: vec4<u32>, s: Segment, group: Group, c: Control) {\n";
        s += "    let block = idx.x / BLOCK;\n    var old = vec3(0.0);\n";
        s += &self.scale_loads("    ");
        let _ = writeln!(
            s,
            "    var scale = vec3(MIN_SCALE);\n    for (var j = 0u; j < BLOCK; j += {access}u) {{\n        \
             let u = unit_math(idx + vec4(j), s, group, c, old);"
        );
        for e in &groups {
            let _ = writeln!(
                s,
                "        scale = max(scale, {});",
                self.unit_maxima(e, "u")
            );
        }
        let _ = writeln!(
            s,
            "    }}\n    for (var j = 0u; j < BLOCK; j += {access}u) {{\n        \
             store_unit(idx + vec4(j), s, c, unit_math(idx + vec4(j), s, group, c, old), scale);\n    }}"
        );
        s += &self.scale_stores("    ");
        s += "}\n";
        s
    }

    /// One line of WGSL per kept state slot, from `line(slot, its component of the vec3 of
    /// scales)`, indented by `indent`.
    fn per_slot(&self, indent: &str, line: impl Fn(usize, &str) -> String) -> String {
        self.roles
            .iter()
            .filter_map(|r| r.slot)
            .map(|slot| format!("{indent}{}\n", line(slot, COMPONENTS[slot])))
            .collect()
    }

    /// The old scales' loads of block `block` into `old`, and the stores of the new `scale`.
    fn scale_loads(&self, indent: &str) -> String {
        self.per_slot(indent, |slot, x| {
            format!("if uses_state({slot}u) {{ old.{x} = scales[scales_base({slot}u) + block]; }}")
        })
    }

    fn scale_stores(&self, indent: &str) -> String {
        self.per_slot(indent, |slot, x| {
            format!(
                "if uses_state({slot}u) {{ scales[scales_base({slot}u) + block] = scale.{x}; }}"
            )
        })
    }

    /// The largest finite magnitudes of group `e` of unit `unit`'s states, a `vec3` by slot.
    fn unit_maxima(&self, e: &str, unit: &str) -> String {
        let maxima: Vec<String> = (0..3)
            .map(|slot| {
                if self.roles.iter().any(|r| r.slot == Some(slot)) {
                    format!("finite_max4({unit}.{e}.state{slot})")
                } else {
                    "0.0".into()
                }
            })
            .collect();
        format!("vec3({})", maxima.join(", "))
    }

    /// `step_segment` of 8-bit states: the workgroup updates BLOCKS_PER_ROUND blocks a round,
    /// BLOCK_LANES invocations a block, each holding its units of the block in registers; the
    /// block's new scales are the largest of its lanes' (through workgroup memory, behind
    /// a barrier), then each lane quantizes and stores its units. One pass: every element is
    /// loaded once and its update computed once.
    fn block_rounds(&self) -> String {
        let access = self.storage.access_unit(self.layout);
        let units = crate::quant::BLOCK as u64 / (BLOCK_LANES * access);
        let mut s = String::new();
        s += &BLOCK_ROUNDS_HEAD.replace("%LANES%", &BLOCK_LANES.to_string());
        s += &self.scale_loads("        ");
        let _ = writeln!(
            s,
            "        // This lane's units of the block: {units} of {access} elements, BLOCK_LANES \
             units apart."
        );
        for u in 0..units {
            let _ = writeln!(
                s,
                "        let idx{u} = first + {access}u * (part + {u}u * BLOCK_LANES) + vec4(0u, 1u, 2u, 3u);\n        \
                 let u{u} = unit_math(idx{u}, s, group, c, old);"
            );
        }
        s += "        var lane_max = vec3(MIN_SCALE);\n";
        for u in 0..units {
            for g in 0..self.groups {
                let maxima = self.unit_maxima(&format!("e{g}"), &format!("u{u}"));
                let _ = writeln!(s, "        lane_max = max(lane_max, {maxima});");
            }
        }
        s += "        // The lanes' maxima meet in workgroup memory, a vec4 a lane (its slots' in x, y, z).\n";
        s += "        let at = ((r & 1u) * BLOCKS_PER_ROUND + mine) * BLOCK_LANES;\n";
        s += "        block_maxima[at + part] = vec4(lane_max, 0.0);\n";
        s += "        workgroupBarrier();\n        storageBarrier();\n";
        s += "        let scale = max_of_block(at);\n";
        // Lanes of a block past the segment's end computed a copy of its last block (all
        // lanes reach the barrier) and store nothing.
        s += "        if stores {\n";
        for u in 0..units {
            let _ = writeln!(s, "            store_unit(idx{u}, s, c, u{u}, scale);");
        }
        s += "        }\n        if stores && part == 0u {\n";
        s += &self.scale_stores("            ");
        s += "        }\n    }\n}\n";
        s
    }
}

/// The head of `step_segment` with 8-bit states (`Generator::block_rounds` writes the rest).
const BLOCK_ROUNDS_HEAD: &str = "
// Invocations per block, and blocks per round (the pipeline's WORKGROUP_SIZE is a multiple of
// BLOCK_LANES, at most BLOCK_LANES * MOST_BLOCKS_PER_ROUND: src/kernel/storage.rs).
const BLOCK_LANES: u32 = %LANES%u;
// (At least 1: the module holds this path with runs per invocation too, where the workgroup
// may be smaller than a block's lanes.)
override BLOCKS_PER_ROUND: u32 = max(WORKGROUP_SIZE / BLOCK_LANES, 1u);

// Each lane's largest new magnitude of each state slot (x, y, z) for two rounds: round
// parity, block of the round, lane of the block. A round writes the half the previous one
// did not read, so one barrier a round orders them. A lane writes whole vec4s of its own: a
// store to one component may write the whole vector (WGSL's memory model).
var<workgroup> block_maxima: array<vec4<f32>, 2u * BLOCKS_PER_ROUND * BLOCK_LANES>;
// Whether the workgroup's segment is live (made uniform for the rounds' barriers).
var<workgroup> segment_live: u32;

// The largest of a block's lanes' maxima, from `block_maxima[at]` on: its new scales.
fn max_of_block(at: u32) -> vec3<f32> {
    var m = block_maxima[at];
    for (var k = 1u; k < BLOCK_LANES; k++) {
        m = max(m, block_maxima[at + k]);
    }
    return m.xyz;
}

// 8-bit spans are whole blocks, so they have no tail segments: the tail entry points of
// this module are never dispatched, and a unit alone is not an update of 8-bit states.
fn step_unit(idx: vec4<u32>, s: Segment, group: Group, c: Control) {}

// Updates the blocks of segment `s` (none unless `live`), BLOCKS_PER_ROUND at a time: lane
// `lane` takes part `part` of block `mine` of each round, so that neighbouring lanes load
// neighbouring vec4s. Blocks start every BLOCK elements from their tensor's first, so
// `first / BLOCK` is a block of its own in the chunk's scales.
fn step_block_rounds(s: Segment, lane: u32, group: Group, c: Control, live: bool) {
    if lane == 0u {
        segment_live = u32(live);
    }
    let blocks = (s.end - s.start) / BLOCK;
    let live_rounds = (blocks + BLOCKS_PER_ROUND - 1u) / BLOCKS_PER_ROUND;
    let rounds = select(0u, live_rounds, workgroupUniformLoad(&segment_live) != 0u);
    let part = lane % BLOCK_LANES;
    let mine = lane / BLOCK_LANES;
    // Every lane loads its block's old scales and, past the segment's end, a copy of the last
    // block's elements before the barriers; the block's own lanes store them after:
    // storageBarrier orders those reads before these writes.
    for (var r = 0u; r < rounds; r++) {
        let b = r * BLOCKS_PER_ROUND + mine;
        let stores = b < blocks;
        let first = s.start + min(b, blocks - 1u) * BLOCK;
        let block = first / BLOCK;
        var old = vec3(0.0);
";
/// `step_segment` of 8-bit states, by how the workgroup deals its elements: with runs
/// (`Tuning::runs_per_invocation`, CPU adapters), each invocation takes whole blocks; without,
/// lanes share blocks.
const BLOCK_SEGMENT: &str = "
// Updates this invocation's part of segment `s` (none unless `live`): whole blocks of its own
// in two passes with runs per invocation (a CPU adapter's SIMD batch then streams through
// its lanes' blocks, with no barrier: on lavapipe, AdamW at 16M 2.6x faster than
// `step_block_rounds`, BENCHMARKS.md); else a share of blocks in one pass (coalesced loads).
fn step_segment(s: Segment, lane: u32, group: Group, c: Control, live: bool) {
    if RUNS {
        step_lane_blocks(s, lane, group, c, live);
    } else {
        step_block_rounds(s, lane, group, c, live);
    }
}
";

pub(super) const QUANT_REGIONS: &str = "
// Where each kept state's codes (words) and block scales start in the chunk's `codes` and
// `scales`: the kept states' regions of equal size one after another, in slot order
// (src/optimizer/build.rs, `allocate_states`).
fn states_before(slot: u32) -> u32 {
    var kept = 0u;
    for (var s = 0u; s < slot; s++) {
        kept += u32(uses_state(s));
    }
    return kept;
}

fn codes_base(slot: u32) -> u32 {
    return states_before(slot) * (arrayLength(&codes) / states_before(SLOTS));
}

fn scales_base(slot: u32) -> u32 {
    return states_before(slot) * (arrayLength(&scales) / states_before(SLOTS));
}
";
