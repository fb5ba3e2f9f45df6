//! How one chunk of a span is cut into segments (a tile of one tensor each), how its element
//! accesses are laid out, and the numbering and regularity of segments.

use super::spans::{PlanRange, Span};
use super::{ControlMode, PlanLimits, Segment, TensorGroups};
use crate::kernel::ElementLayout;

/// Which elements of a span a chunk binds, and how: the update's unit of elements and the
/// layout of its accesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ChunkCut {
    /// First element, counted from the span's start.
    pub offset: u64,
    /// Elements of the span in the chunk.
    pub len: u64,
    /// How the update binds the chunk.
    pub layout: ElementLayout,
    /// Elements per iteration of the update in this layout.
    pub unit: u64,
}

/// A chunk's segments before the table is written.
#[derive(Clone, Debug)]
pub(super) struct ChunkSegments {
    /// The span it belongs to.
    pub span: usize,
    pub cut: ChunkCut,
    pub main: Vec<Segment>,
    pub tails: Vec<Segment>,
}

/// Where one control block's segments lie in a chunk's `all` slice: its main segments and its
/// tail segments, each `[first, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ControlRun {
    pub control: u32,
    pub main: [u32; 2],
    pub tail: [u32; 2],
}

impl ChunkSegments {
    /// Per control block present in the chunk, where its segments lie in the chunk's `all`
    /// slice, given each main and tail segment's position there (`main_at`, `tail_at`). A
    /// control group's segments are consecutive in each part, because its tensors are
    /// consecutive in the optimizer's order; a range spans the zeroed padding between two
    /// dispatch slices when the group's segments do (past `max_workgroups` squared segments),
    /// which adds nothing.
    pub fn control_runs(
        &self,
        control: ControlMode,
        main_at: &[u32],
        tail_at: &[u32],
    ) -> Vec<ControlRun> {
        let of = |s: &Segment| match control {
            ControlMode::Shared => 0,
            ControlMode::PerGroup => s.group,
        };
        // Each range once seen.
        struct Seen {
            control: u32,
            main: Option<[u32; 2]>,
            tail: Option<[u32; 2]>,
        }
        let mut runs: Vec<Seen> = Vec::new();
        let mut add = |segments: &[Segment], at: &[u32], tail: bool| {
            for (s, &j) in segments.iter().zip(at) {
                let k = of(s);
                let run = match runs.iter().position(|r| r.control == k) {
                    Some(index) => &mut runs[index],
                    None => {
                        runs.push(Seen {
                            control: k,
                            main: None,
                            tail: None,
                        });
                        runs.last_mut().expect("just pushed")
                    }
                };
                let range = if tail { &mut run.tail } else { &mut run.main };
                let first = range.map_or(j, |r| r[0]);
                *range = Some([first, j + 1]);
            }
        };
        add(&self.main, main_at, false);
        add(&self.tails, tail_at, true);
        runs.sort_by_key(|r| r.control);
        runs.into_iter()
            .map(|r| ControlRun {
                control: r.control,
                main: r.main.unwrap_or([0, 0]),
                tail: r.tail.unwrap_or([0, 0]),
            })
            .collect()
    }
}

/// Whether a chunk can bind whole units of `unit` elements with 16-byte accesses: it and
/// each of its tensors start on a unit, and each role's binding starts on 16 bytes and can be
/// rounded up to whole units within its buffer (state buffers are padded to whole units).
pub(super) fn vec4_layout(
    span: &Span,
    tensors: &[Vec<PlanRange>],
    offset: u64,
    len: u64,
    unit: u64,
    max_binding: u64,
) -> ElementLayout {
    let padded = len.next_multiple_of(unit);
    let fits = offset.is_multiple_of(unit)
        && span.tensors.iter().all(|&i| {
            let start = span.offset_of(&tensors[i][0]);
            start < offset || start >= offset + len || (start - offset).is_multiple_of(unit)
        })
        && span.ranges.iter().all(|r| {
            let range = r.slice(offset, padded);
            range.offset % 16 == 0
                && range.end() <= range.buffer_size
                && range.end() - range.offset <= max_binding
        });
    if fits {
        ElementLayout::Vec4
    } else {
        ElementLayout::Scalar
    }
}

/// The segments of one chunk of `span`: each tensor's part cut into tiles. In the vec4 layout
/// a part ending inside a unit gives its last 1 to `unit - 1` elements to a tail segment, so
/// that main segments end on unit boundaries. Returns (main, tails); each segment's `slot`
/// holds its tensor's index until [`assign_slots`] numbers them.
pub(super) fn segments(
    span: &Span,
    tensors: &[Vec<PlanRange>],
    groups: &TensorGroups<'_>,
    cut: ChunkCut,
    limits: &PlanLimits,
) -> (Vec<Segment>, Vec<Segment>) {
    let ChunkCut {
        offset,
        len,
        layout,
        unit,
    } = cut;
    let (mut main, mut tails) = (Vec::new(), Vec::new());
    let segment = |from: u64, to: u64, tensor: usize, tensor_start: u64| Segment {
        start: (from - offset) as u32,
        end: (to - offset) as u32,
        group: groups.of_tensor[tensor],
        tensor: (tensor - groups.first_of[tensor]) as u32,
        tensor_offset: (from - tensor_start) as u32,
        // The tensor's index in the optimizer, until `assign_slots` numbers the slots.
        slot: tensor as u32,
    };
    for &i in &span.tensors {
        let start = span.offset_of(&tensors[i][0]);
        let end = start + tensors[i][0].len;
        let (from, to) = (start.max(offset), end.min(offset + len));
        if from >= to {
            continue;
        }
        // Tensors start at aligned offsets and tiles are whole units: every segment starts on
        // a vec4, which the reductions' vec4 loads rely on.
        debug_assert_eq!((from - offset) % 4, 0);
        let body_end = match layout {
            ElementLayout::Vec4 => from + (to - from) / unit * unit,
            ElementLayout::Scalar => to,
        };
        let tile = if span.quantized {
            limits.quantized_tile
        } else {
            limits.tile
        };
        let mut at = from;
        while at < body_end {
            let stop = (at + tile).min(body_end);
            // The 8-bit update takes whole blocks (src/kernel/elements/blocks.rs): quantized
            // tensors are whole blocks (`quant::quantizes`), cut at block edges and into
            // tiles of whole blocks.
            debug_assert!(
                !span.quantized || (stop - at).is_multiple_of(crate::quant::BLOCK as u64)
            );
            main.push(segment(at, stop, i, start));
            at = stop;
        }
        if body_end < to {
            tails.push(segment(body_end, to, i, start));
        }
    }
    (main, tails)
}

/// Numbers the segments' slots (each holds its tensor's index until now): a tensor's segments
/// take consecutive slots, main then tail, chunk after chunk. Returns each tensor's slots as a
/// fold entry (see [`Plan::tensor_folds`](super::Plan::tensor_folds)).
pub(super) fn assign_slots(
    chunks: &mut [ChunkSegments],
    groups: &[u32],
    tensors: usize,
) -> Vec<Segment> {
    let mut counts = vec![0_u32; tensors];
    for c in chunks.iter() {
        for s in c.main.iter().chain(&c.tails) {
            counts[s.slot as usize] += 1;
        }
    }
    let mut next = Vec::with_capacity(tensors);
    let mut folds = Vec::with_capacity(tensors);
    let mut first = 0_u32;
    for (i, &count) in counts.iter().enumerate() {
        next.push(first);
        folds.push(Segment {
            start: first,
            end: first + count,
            group: groups.get(i).copied().unwrap_or(0),
            tensor: i as u32,
            ..Segment::default()
        });
        first += count;
    }
    for c in chunks.iter_mut() {
        // Within a chunk a tensor's main segments come before its tail.
        for s in c.main.iter_mut().chain(c.tails.iter_mut()) {
            let tensor = s.slot as usize;
            s.slot = next[tensor];
            next[tensor] += 1;
        }
    }
    folds
}

/// Segment `i` of a regular dispatch of `count` segments, derived from its first and last as
/// `main_segment` in shaders/common/entry.wgsl derives it: tiles of the first's length in a
/// row, the last ending where the last does.
pub(super) fn derived_segment([first, last]: [Segment; 2], count: u32, i: u32) -> Segment {
    // u32 arithmetic wraps in WGSL: so it does here (a wrapped value matches no real table).
    let tile = first.end.wrapping_sub(first.start);
    let start = first.start.wrapping_add(i.wrapping_mul(tile));
    Segment {
        start,
        end: if i + 1 == count {
            last.end
        } else {
            start.wrapping_add(tile)
        },
        tensor_offset: first.tensor_offset.wrapping_add(i.wrapping_mul(tile)),
        slot: first.slot.wrapping_add(i),
        ..first
    }
}

/// The first and last segment of a main dispatch whose segments are regular: every one is
/// what [`derived_segment`] derives from those two (one tensor's tiles in a row, of one
/// group, consecutive slots). A single tensor's chunk is regular; an arena's is not.
pub(super) fn regular_ends(piece: &[Segment]) -> Option<[Segment; 2]> {
    let ends = [*piece.first()?, *piece.last()?];
    let tile = ends[0].end - ends[0].start;
    let count = u32::try_from(piece.len()).ok()?;
    // The shader counts the segments as (last.start - first.start) / tile + 1.
    let counted = (ends[1].start.checked_sub(ends[0].start)? / tile.max(1)).checked_add(1)?;
    let derived = (0..count).all(|i| derived_segment(ends, count, i) == piece[i as usize]);
    (tile > 0 && counted == count && derived).then_some(ends)
}
