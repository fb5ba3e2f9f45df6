// Schedules on the device (`Optimizer::set_schedule`, src/schedule/device.rs). Recorded once
// per step after the gradient finalize and before the prologue: each parameter group's
// hyperparameter words (of its record's `hyper`) that the schedule moves are copied from the row of a table for the
// step about to be taken, picked by the group's own counter on the device. The host filled the
// table once, each row the bytes `Optimizer::set_config` would write for that step (the
// schedule evaluated in f64, every derived field rounded as the host rounds it), so a run
// driven from here is bit for bit the run a host loop gets by writing the same configuration
// before each step, and the loop writes nothing. Needs common/control.wgsl and the binding
// numbers of src/schedule/device.rs (ScheduleBinding) in the prelude.
//
//   t = min(counter, steps - 1), counter = step (steps taken) or step + skipped_steps
//   groups[g][words[w]] = table[g][t][w]                    for each moved word w

struct ScheduleShape {
    // u32 words of one group's record (its `hyper` first).
    record_words: u32,
    // Rows per group: the steps tabulated; later steps keep the last row.
    steps: u32,
    // Words per row: the words of the struct that some row moves.
    moved: u32,
    // Parameter groups.
    groups: u32,
    // Non-zero: the counter is the iterations (steps taken + steps skipped for non-finite
    // gradients), else the steps taken.
    iterations: u32,
    // Non-zero: group g reads control block g (a population), else every group block 0.
    group_control: u32,
}

@group(0) @binding(CONTROL_BINDING) var<storage, read> control: array<Control>;
// The groups' records, as words.
@group(0) @binding(GROUPS_BINDING) var<storage, read_write> groups: array<u32>;
@group(0) @binding(SHAPE_BINDING) var<storage, read> shape: ScheduleShape;
// The index, within a group's record, of each moved word.
@group(0) @binding(WORDS_BINDING) var<storage, read> words: array<u32>;
// table[(g * steps + t) * moved + w]: group g's value of moved word w at step t.
@group(0) @binding(TABLE_BINDING) var<storage, read> table: array<u32>;

// Invocation i writes moved word i % moved of group i / moved.
@compute @workgroup_size(64)
fn schedule(@builtin(global_invocation_id) id: vec3<u32>) {
    let s = shape;
    let g = id.x / s.moved;
    if g >= s.groups {
        return;
    }
    let w = id.x % s.moved;
    let c = control[select(0u, g, s.group_control != 0u)];
    var counter = c.step;
    if s.iterations != 0u {
        counter += c.skipped_steps;
    }
    let t = min(counter, s.steps - 1u);
    groups[g * s.record_words + words[w]] = table[(g * s.steps + t) * s.moved + w];
}
