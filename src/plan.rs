//! Dispatch planning: which tensors share a dispatch, how a span of them is cut into
//! binding-size chunks, and the segment tables that tell each workgroup what to do (PyTorch's
//! `multi_tensor_apply` with its `block_to_tensor`).
//!
//! Tensors whose ranges share buffers at the same relative offsets (an
//! [`Arena`](crate::Arena)'s) form a *span*: an optimizer keeps their state in one buffer per
//! state at the same layout, binds the span once per binding-size chunk, and updates every
//! tensor of the chunk in one dispatch. Each workgroup reads one [`Segment`] (a piece of one
//! tensor, at most a tile, and its parameter group) from a table. The same table drives the
//! gradient-norm reduction and [`ClipValue`](crate::ClipValue), so the gaps between tensors
//! are never read as data nor written.
//!
//! In the vec4 layout a chunk's table has two parts. The *main* segments end on a vec4
//! boundary, so the update stores whole vec4s with no per-lane path in its loop; the *tail*
//! segments (the last 1 to 3 elements of each tensor that ends inside a vec4) go to a small
//! second dispatch that stores lane by lane. Reductions read both parts as one slice.

use crate::error::{Error, Result};
use crate::layout::wgsl_struct;
use crate::shaders::ElementLayout;
use crate::tensor::BufferRange;

wgsl_struct! {
    /// One workgroup's work in an update dispatch: elements `[start, end)` of the bound chunk,
    /// all of one tensor, updated with parameter group `group`'s hyperparameters.
    pub struct Segment as "Segment" {
        /// First element, counted from the chunk's start.
        start: u32,
        /// One past the last element.
        end: u32,
        /// The parameter group.
        group: u32,
        /// The tensor's position in the optimizer's list (in a population, within its
        /// replica, so that a replica's stochastic rounding draws the bits it draws alone).
        tensor: u32,
        /// The index of element `start` within its tensor.
        tensor_offset: u32,
        /// Its slot among the per-tensor reductions' partials (LAMB's and LARS's trust
        /// ratios): each tensor's segments, main then tail, chunk after chunk, take
        /// consecutive slots, which the plan's tensor folds name.
        slot: u32,
    }
}

wgsl_struct! {
    /// One workgroup's work in the gradient-norm reduction (`grad_partials` in
    /// shaders/clip.wgsl): a run of one control group's segments, which lie in two ranges of
    /// the chunk's table (the group's main segments, then its tails), and where its partial
    /// goes.
    pub struct ReduceWork as "ReduceWork" {
        /// The first of its main segments (an index into the chunk's `all` slice).
        main_first: u32,
        /// One past its last main segment.
        main_end: u32,
        /// The first of its tail segments.
        tail_first: u32,
        /// One past its last tail segment.
        tail_end: u32,
        /// The partial it writes, counted over the plan (its slot is this modulo one binding
        /// of partials).
        partial: u32,
        /// Its control group: the control block whose loss scale and bound it reads.
        control: u32,
    }
}

wgsl_struct! {
    /// The partials of one control group, `[first, end)`: what `grad_local` folds into that
    /// group's [`NormStats`](crate::NormStats).
    pub struct Fold as "Fold" {
        /// The first partial.
        first: u32,
        /// One past the last.
        end: u32,
    }
}

/// Tensors laid out alike in the same buffers, one buffer per role (for an optimizer: param
/// and grad; for [`ClipValue`](crate::ClipValue): the values).
pub(crate) struct Span {
    /// Per role, the bytes from the first tensor's start to the last one's end.
    pub ranges: Vec<BufferRange>,
    /// Indices of the tensors in it.
    pub tensors: Vec<usize>,
}

impl Span {
    /// Element offset of tensor `range` (of role 0) within the span.
    pub fn offset_of(&self, range: &BufferRange) -> u64 {
        (range.offset() - self.ranges[0].offset()) / range.dtype().size()
    }

    /// The span's length in elements.
    pub fn len(&self) -> u64 {
        self.ranges[0].len()
    }
}

/// The element of its buffer a range starts at (its offset in elements of its type).
fn first_element(range: &BufferRange) -> i128 {
    i128::from(range.offset() / range.dtype().size())
}

/// Groups tensors (each a range per role, all of one length; the roles' types may differ,
/// each role's the same for every tensor) into spans: tensors whose elements lie at the same
/// relative positions in every role's buffer. A span's state buffers cover its gaps too, so
/// tensors spread thinly over a buffer (more than half gaps, past 1 MiB) get spans of their
/// own. Tensors of length 0 belong to none.
pub(crate) fn spans(tensors: &[Vec<BufferRange>]) -> Vec<Span> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (index, ranges) in tensors.iter().enumerate() {
        if ranges[0].is_empty() {
            continue;
        }
        let same_layout = |other: &[BufferRange]| {
            other.iter().zip(ranges).all(|(a, b)| {
                a.buffer() == b.buffer()
                    && first_element(a) - first_element(&other[0])
                        == first_element(b) - first_element(&ranges[0])
            })
        };
        match groups
            .iter_mut()
            .find(|(first, _)| same_layout(&tensors[*first]))
        {
            Some((_, members)) => members.push(index),
            None => groups.push((index, vec![index])),
        }
    }
    let span = |members: Vec<usize>| {
        // In elements of role 0's buffer.
        let start = members
            .iter()
            .map(|&i| first_element(&tensors[i][0]))
            .min()
            .expect("a span has a tensor");
        let end = members
            .iter()
            .map(|&i| first_element(&tensors[i][0]) + i128::from(tensors[i][0].len()))
            .max()
            .expect("a span has a tensor");
        let first = &tensors[members[0]];
        let ranges = first
            .iter()
            .map(|r| {
                let role_start = first_element(r) + start - first_element(&first[0]);
                let offset = role_start as u64 * r.dtype().size();
                BufferRange::typed(r.buffer(), offset, (end - start) as u64, r.dtype())
            })
            .collect();
        Span {
            ranges,
            tensors: members,
        }
    };
    let mut spans = Vec::new();
    for (_, members) in groups {
        let used: u64 = members.iter().map(|&i| tensors[i][0].len()).sum();
        let whole = span(members.clone());
        if whole.len() > (2 * used).max(used + (1 << 18)) {
            spans.extend(members.into_iter().map(|i| span(vec![i])));
        } else {
            spans.push(whole);
        }
    }
    spans
}

/// Refuses two tensors whose ranges (role 0) overlap: one step would update them twice.
pub(crate) fn check_disjoint(ranges: &[&BufferRange]) -> Result<()> {
    let mut order: Vec<usize> = (0..ranges.len())
        .filter(|&i| !ranges[i].is_empty())
        .collect();
    order.sort_by_key(|&i| ranges[i].offset());
    for (n, &i) in order.iter().enumerate() {
        for &j in &order[n + 1..] {
            let (a, b) = (ranges[i], ranges[j]);
            if b.offset() >= a.end() {
                break;
            }
            if a.buffer() == b.buffer() {
                return Err(Error::Overlapping {
                    first: i.min(j),
                    second: i.max(j),
                });
            }
        }
    }
    Ok(())
}

/// `count` entries of `size` bytes from byte `offset` of a plan's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableSlice {
    pub offset: u64,
    pub count: u64,
    pub size: u64,
}

impl TableSlice {
    /// The slice as a binding of `table` (a slice of no entry binds one zeroed entry).
    pub fn binding(self, table: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: table,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.count.max(1) * self.size),
        })
    }
}

const SEGMENT_SIZE: u64 = std::mem::size_of::<Segment>() as u64;
/// Bytes of one reduction partial (`Partial` in src/clip.rs).
const PARTIAL_SIZE: u64 = 8;

/// One binding-size chunk of a span: the elements a dispatch binds and its segments.
pub(crate) struct Chunk {
    /// The span it belongs to.
    pub span: usize,
    /// First element, counted from the span's start.
    pub offset: u64,
    /// Elements of the span in the chunk.
    pub len: u64,
    /// How the update binds it. `Vec4` chunks bind `len` rounded up to whole units.
    pub layout: ElementLayout,
    /// Elements per iteration of the update in this layout (4, or 8 in the vec4 layout of a
    /// kernel with a 16-bit buffer): what main segments end on.
    pub unit: u64,
    /// The update's segments: every element of the chunk's tensors, ending on unit
    /// boundaries in the vec4 layout; one slice per dispatch, each within the device's grid
    /// (`PlanLimits::max_workgroups` in both dimensions).
    pub main: Vec<TableSlice>,
    /// The vec4 layout's tail segments (at most `unit - 1` elements each), stored element by
    /// element by a second dispatch (64 per workgroup); empty when no tensor of the chunk ends
    /// inside a unit.
    pub tails: Vec<TableSlice>,
    /// When the plan is [regular](Plan::regular), each main dispatch's first and last
    /// segment, which the update binds in place of its `main` slice; else empty.
    pub regular: Vec<TableSlice>,
    /// `main`, zeroed padding and `tails` as one slice: every element exactly once, for
    /// reductions, which loop over it with at most `max_workgroups` workgroups (a zeroed
    /// segment is empty).
    pub all: TableSlice,
    /// The gradient-norm reduction's workgroups over this chunk, one [`ReduceWork`] each
    /// (a 2-D grid past `max_workgroups`).
    pub reduce: TableSlice,
}

impl Chunk {
    /// Elements the update binds: `len`, rounded up to whole units in the vec4 layout.
    pub fn bound_len(&self) -> u64 {
        match self.layout {
            ElementLayout::Vec4 => self.len.next_multiple_of(self.unit),
            ElementLayout::Scalar => self.len,
        }
    }
}

/// How the parameter groups of a plan share the control block (step counter, skip flag, clip
/// coefficient, loss scale) and the gradient norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// One control block and one global norm over every group (PyTorch's `param_groups`).
    Shared,
    /// A control block and a norm per group: each group is a replica of its own (a
    /// population), stepped, clipped and skipped alone.
    PerGroup,
}

/// The dispatches over a set of tensors: spans, their chunks, and one segment table.
pub(crate) struct Plan {
    pub spans: Vec<Span>,
    pub chunks: Vec<Chunk>,
    /// Slots of the gradient-norm reduction's partials, one binding's worth at most. The
    /// reduction's workgroup with [`ReduceWork::partial`] `p` writes slot `p % partials`,
    /// combining with what is there once `p` has wrapped around (shared control only: a plan
    /// with a control block per group never wraps).
    pub partials: u64,
    /// Control blocks: 1, or one per parameter group.
    pub controls: u32,
    /// One [`Fold`] per control block: the partials `grad_local` folds into its norm stats.
    pub folds: TableSlice,
    /// Segment slots: one per segment of every chunk (see [`Segment::slot`]).
    pub slots: u64,
    /// Each tensor's slots `[first, end)`, in the optimizer's order.
    pub tensor_slots: Vec<[u32; 2]>,
    /// One entry per tensor, in the optimizer's order, written as a [`Segment`]: `start` and
    /// `end` are the tensor's slots `[start, end)` (empty for a tensor of length 0), `group`
    /// its parameter group, `tensor` its index. What a per-tensor reduction folds.
    pub tensor_folds: TableSlice,
    /// Whether every main dispatch is regular (see [`regular_ends`]): the update then binds
    /// [`Chunk::regular`] and derives each workgroup's segment (`REGULAR_TILES` in
    /// shaders/common/entry.wgsl).
    pub regular: bool,
    /// Whether some partials share a slot: never short of a binding's worth of partials
    /// (16M workgroups, over 2^40 gradients); a plan with a control block per group must not.
    pub wraps: bool,
    /// Every chunk's segments and reduction work and the folds, each slice at an aligned
    /// offset.
    pub table: wgpu::Buffer,
}

/// What a plan is cut with: the device's binding limits and the update's tile.
pub(crate) struct PlanLimits {
    /// Most elements one binding covers (a multiple of the offset alignment).
    pub chunk_len: u64,
    /// Most elements one segment covers (a multiple of 8).
    pub tile: u64,
    /// Whether the kernel has a 16-bit buffer: its vec4 layout takes units of 8 elements.
    pub packed: bool,
    /// `min_storage_buffer_offset_alignment`.
    pub align: u64,
    /// `max_storage_buffer_binding_size`.
    pub max_binding: u64,
    /// Most workgroups per dimension of one dispatch.
    pub max_workgroups: u64,
    /// Elements a chunk's offset must be a multiple of for every role's binding (states and
    /// the master copy included) to start at an aligned offset: the alignment over the
    /// smallest storage size.
    pub cut_unit: u64,
}

/// Most workgroups of one control group's reduction in one chunk: enough to fill a large GPU,
/// few enough that each loops over several segments (workgroup barriers are costly on software
/// adapters) and that the single workgroup folding the group's partials has few to fold.
pub(crate) const REDUCE_MAX_WORKGROUPS: u64 = 1024;

/// Fewest segments per workgroup of a reduction (where there are that many): each workgroup
/// ends in a tree of barriers, which software adapters pay dearly for.
pub(crate) const REDUCE_MIN_SEGMENTS: u64 = 8;

/// Invocations per workgroup of the tail dispatch (`update_tail` in common/entry.wgsl).
pub(crate) const TAIL_WORKGROUP: u64 = 64;

/// A chunk's segments before the table is written.
struct ChunkSegments {
    span: usize,
    offset: u64,
    len: u64,
    layout: ElementLayout,
    unit: u64,
    main: Vec<Segment>,
    tails: Vec<Segment>,
}

impl ChunkSegments {
    /// Per control block present in the chunk: `(control, main range, tail range)` in the
    /// chunk's `all` slice, given each main and tail segment's position there. A control
    /// group's segments are consecutive in each part, because its tensors are consecutive in
    /// the optimizer's order; a range spans the zeroed padding between two dispatch slices
    /// when the group's segments do (past `max_workgroups` squared segments), which adds
    /// nothing.
    fn control_runs(
        &self,
        control: Control,
        (main_at, tail_at): (&[u32], &[u32]),
    ) -> Vec<(u32, [u32; 2], [u32; 2])> {
        let of = |s: &Segment| match control {
            Control::Shared => 0,
            Control::PerGroup => s.group,
        };
        // (control block, main range, tail range), each range once seen.
        type Run = (u32, Option<[u32; 2]>, Option<[u32; 2]>);
        let mut runs: Vec<Run> = Vec::new();
        let mut add = |segments: &[Segment], at: &[u32], tail: bool| {
            for (s, &j) in segments.iter().zip(at) {
                let k = of(s);
                let run = match runs.iter_mut().find(|r| r.0 == k) {
                    Some(run) => run,
                    None => {
                        runs.push((k, None, None));
                        runs.last_mut().expect("just pushed")
                    }
                };
                let range = if tail { &mut run.2 } else { &mut run.1 };
                let first = range.map_or(j, |r| r[0]);
                *range = Some([first, j + 1]);
            }
        };
        add(&self.main, main_at, false);
        add(&self.tails, tail_at, true);
        runs.sort_by_key(|r| r.0);
        runs.into_iter()
            .map(|(k, main, tail)| (k, main.unwrap_or([0, 0]), tail.unwrap_or([0, 0])))
            .collect()
    }
}

impl Plan {
    /// Plans `tensors` (each a range per role, see [`spans`]), tensor `i` in parameter group
    /// `groups[i]` (of `group_count`), the groups sharing one control block or each with its
    /// own. With a control block per group, chunks are cut at a group's first tensor where one
    /// lies within the binding limit, so that a group smaller than a binding is reduced in one
    /// chunk, as it would be alone; and segments name tensors by their index within the group.
    pub fn new(
        device: &wgpu::Device,
        tensors: &[Vec<BufferRange>],
        (groups, group_count): (&[u32], u32),
        control: Control,
        limits: &PlanLimits,
    ) -> Plan {
        use wgpu::util::DeviceExt;
        let spans = spans(tensors);
        let controls = match control {
            Control::Shared => 1,
            Control::PerGroup => group_count.max(1),
        };
        // The first tensor of each tensor's group (of its run of equal groups), so that
        // segments name tensors within their group when each group has a control block.
        let mut group_first = Vec::with_capacity(tensors.len());
        for i in 0..tensors.len() {
            let first = match control {
                Control::PerGroup if i > 0 && groups[i] == groups[i - 1] => group_first[i - 1],
                Control::PerGroup => i,
                Control::Shared => 0,
            };
            group_first.push(first);
        }
        let mut cut = Vec::new();
        for (n, span) in spans.iter().enumerate() {
            let mut offset = 0;
            while offset < span.len() {
                let limit = offset + limits.chunk_len;
                let mut len = limits.chunk_len.min(span.len() - offset);
                if control == Control::PerGroup && limit < span.len() {
                    // The last start of a group's first tensor within (offset, limit] at which
                    // every role's binding can start (a 16-bit state of an f32 parameter needs
                    // twice the parameter's element alignment).
                    let group_start = span
                        .tensors
                        .iter()
                        .filter(|&&i| i == 0 || groups[i - 1] != groups[i])
                        .map(|&i| span.offset_of(&tensors[i][0]))
                        .filter(|&start| start > offset && start <= limit)
                        .filter(|&start| start.is_multiple_of(limits.cut_unit))
                        .max();
                    if let Some(start) = group_start {
                        len = start - offset;
                    }
                }
                let unit = if limits.packed { 8 } else { 4 };
                let layout = vec4_layout(span, tensors, offset, len, unit, limits.max_binding);
                let (main, tails) = segments(
                    span,
                    tensors,
                    (groups, &group_first),
                    (offset, len),
                    limits,
                    (layout, unit),
                );
                if !main.is_empty() || !tails.is_empty() {
                    cut.push(ChunkSegments {
                        span: n,
                        offset,
                        len,
                        layout,
                        unit,
                        main,
                        tails,
                    });
                }
                offset += len;
            }
        }

        let tensor_folds = assign_slots(&mut cut, groups, tensors.len());
        let slots = tensor_folds.last().map_or(0, |f| u64::from(f.end));

        let mut table: Vec<u8> = Vec::new();
        // Each dispatch's slice starts at an aligned offset; a 2-D grid of max_workgroups^2
        // workgroups takes that many segments (or 64 tails each) at most.
        let grid = limits.max_workgroups * limits.max_workgroups;
        // Slices start at aligned offsets, and whole segments apart from each other, so that a
        // chunk's `all` slice reads its main slices, the zeroed padding and its tails as one
        // array of segments.
        let padding = lcm(limits.align, SEGMENT_SIZE) as usize;
        let push = |bytes: &[u8], table: &mut Vec<u8>| {
            let offset = table.len() as u64;
            table.extend_from_slice(bytes);
            table.resize(table.len().next_multiple_of(padding), 0);
            offset
        };
        let push_segments = |segments: &[Segment], per_dispatch: u64, table: &mut Vec<u8>| {
            segments
                .chunks(per_dispatch as usize)
                .map(|piece| TableSlice {
                    offset: push(bytemuck::cast_slice(piece), table),
                    count: piece.len() as u64,
                    size: SEGMENT_SIZE,
                })
                .collect::<Vec<_>>()
        };
        // Each main dispatch's ends, where it is regular. A regular plan's update reads two
        // entries per dispatch instead of one per workgroup.
        let ends: Vec<Vec<Option<[Segment; 2]>>> = cut
            .iter()
            .map(|c| c.main.chunks(grid as usize).map(regular_ends).collect())
            .collect();
        let regular = ends.iter().flatten().all(Option::is_some);
        // The segment slices first; the reduction's work needs the tails' position in `all`.
        let mut chunks = Vec::new();
        let mut runs = Vec::new();
        for c in &cut {
            let start = table.len() as u64;
            let main = push_segments(&c.main, grid, &mut table);
            let tails = push_segments(&c.tails, grid * TAIL_WORKGROUP, &mut table);
            let end = tails.last().or(main.last()).expect("a segment");
            let all = TableSlice {
                offset: start,
                count: (end.offset - start) / SEGMENT_SIZE + end.count,
                size: SEGMENT_SIZE,
            };
            // Each segment's position in `all`: slices start at aligned offsets.
            let positions = |slices: &[TableSlice]| -> Vec<u32> {
                slices
                    .iter()
                    .flat_map(|slice| {
                        let first = (slice.offset - start) / SEGMENT_SIZE;
                        (first..first + slice.count).map(|j| j as u32)
                    })
                    .collect()
            };
            runs.push(c.control_runs(control, (&positions(&main), &positions(&tails))));
            chunks.push((all, main, tails));
        }
        let ends: Vec<Vec<TableSlice>> = ends
            .into_iter()
            .map(|pieces| {
                pieces
                    .into_iter()
                    .flatten()
                    .filter(|_| regular)
                    .map(|ends| TableSlice {
                        offset: push(bytemuck::cast_slice(&ends), &mut table),
                        count: 2,
                        size: SEGMENT_SIZE,
                    })
                    .collect()
            })
            .collect();

        // Each control group's reduction: its segments of a chunk, in order (main, then tail),
        // are cut into runs of `run` segments, one per workgroup: at least
        // REDUCE_MIN_SEGMENTS each, and at most REDUCE_MAX_WORKGROUPS workgroups (or the
        // device's grid). A function of the group's own segments only, so a group reduces the
        // same way in a population as alone. Its partials are consecutive, chunk after chunk,
        // control group after control group.
        let max_partials = (limits.max_binding / PARTIAL_SIZE).max(1);
        let mut work: Vec<Vec<ReduceWork>> = vec![Vec::new(); cut.len()];
        let mut folds = Vec::new();
        let mut partials = 0_u64;
        for k in 0..controls {
            let first = partials;
            for (c, chunk_runs) in runs.iter().enumerate() {
                let Some((_, main, tail)) = chunk_runs.iter().find(|r| r.0 == k) else {
                    continue;
                };
                let (main_count, tail_count) = (main[1] - main[0], tail[1] - tail[0]);
                let count = u64::from(main_count + tail_count);
                let most = REDUCE_MAX_WORKGROUPS.min(limits.max_workgroups);
                let run = count.div_ceil(most).max(REDUCE_MIN_SEGMENTS);
                let workgroups = count.div_ceil(run);
                for w in 0..workgroups {
                    // Positions [from, to) of the group's list: main segments, then tails.
                    let (from, to) = (
                        (w * run).min(count) as u32,
                        ((w + 1) * run).min(count) as u32,
                    );
                    let main_part = |p: u32| main[0] + p.min(main_count);
                    let tail_part = |p: u32| tail[0] + p.saturating_sub(main_count);
                    work[c].push(ReduceWork {
                        main_first: main_part(from),
                        main_end: main_part(to),
                        tail_first: tail_part(from),
                        tail_end: tail_part(to),
                        partial: partials as u32,
                        control: k,
                    });
                    partials += 1;
                }
            }
            folds.push(Fold {
                first: first.min(max_partials) as u32,
                end: partials.min(max_partials) as u32,
            });
        }
        let chunks = cut
            .iter()
            .zip(chunks)
            .zip(work)
            .zip(ends)
            .map(|(((c, (all, main, tails)), work), regular)| Chunk {
                span: c.span,
                offset: c.offset,
                len: c.len,
                layout: c.layout,
                unit: c.unit,
                main,
                tails,
                regular,
                all,
                reduce: TableSlice {
                    offset: push(bytemuck::cast_slice(&work), &mut table),
                    count: work.len() as u64,
                    size: std::mem::size_of::<ReduceWork>() as u64,
                },
            })
            .collect();
        let folds = TableSlice {
            offset: push(bytemuck::cast_slice(&folds), &mut table),
            count: folds.len() as u64,
            size: std::mem::size_of::<Fold>() as u64,
        };
        let tensor_slots = tensor_folds.iter().map(|f| [f.start, f.end]).collect();
        let tensor_folds = TableSlice {
            offset: push(bytemuck::cast_slice(&tensor_folds), &mut table),
            count: tensor_folds.len() as u64,
            size: SEGMENT_SIZE,
        };
        let table = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-optim segments"),
            contents: &table,
            usage: wgpu::BufferUsages::STORAGE,
        });
        Plan {
            spans,
            chunks,
            partials: partials.clamp(1, max_partials),
            controls,
            folds,
            slots,
            tensor_slots,
            tensor_folds,
            regular,
            wraps: partials > max_partials,
            table,
        }
    }

    /// The table holding every slice of the plan.
    pub fn table(&self) -> &wgpu::Buffer {
        &self.table
    }

    /// Role `role`'s range of `chunk`: `len` elements, or the bound length of its layout.
    pub fn range(&self, chunk: &Chunk, role: usize, len: u64) -> BufferRange {
        self.spans[chunk.span].ranges[role].slice(chunk.offset, len)
    }
}

/// Numbers the segments' slots (each holds its tensor's index until now): a tensor's segments
/// take consecutive slots, main then tail, chunk after chunk. Returns each tensor's slots as a
/// fold entry (see [`Plan::tensor_folds`]).
fn assign_slots(cut: &mut [ChunkSegments], groups: &[u32], tensors: usize) -> Vec<Segment> {
    let mut counts = vec![0_u32; tensors];
    for c in cut.iter() {
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
    for c in cut.iter_mut() {
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
fn derived_segment([first, last]: [Segment; 2], count: u32, i: u32) -> Segment {
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
fn regular_ends(piece: &[Segment]) -> Option<[Segment; 2]> {
    let ends = [*piece.first()?, *piece.last()?];
    let tile = ends[0].end - ends[0].start;
    let count = u32::try_from(piece.len()).ok()?;
    // The shader counts the segments as (last.start - first.start) / tile + 1.
    let counted = (ends[1].start.checked_sub(ends[0].start)? / tile.max(1)).checked_add(1)?;
    let derived = (0..count).all(|i| derived_segment(ends, count, i) == piece[i as usize]);
    (tile > 0 && counted == count && derived).then_some(ends)
}

/// A dispatch grid of `count` workgroups: 1-D up to `max_x`, 2-D past it (plans keep `count`
/// within `max_x` squared).
pub(crate) fn grid(count: u64, max_x: u64) -> (u32, u32) {
    let x = count.clamp(1, max_x);
    (x as u32, count.div_ceil(x) as u32)
}

/// The least common multiple.
fn lcm(a: u64, b: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    a / gcd(a, b) * b
}

/// Whether a chunk can bind whole units of `unit` elements with 16-byte accesses: it and
/// each of its tensors start on a unit, and each role's binding starts on 16 bytes and can be
/// rounded up to whole units within its buffer (state buffers are padded to whole units).
fn vec4_layout(
    span: &Span,
    tensors: &[Vec<BufferRange>],
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
            range.offset() % 16 == 0
                && range.end() <= range.buffer().size()
                && range.end() - range.offset() <= max_binding
        });
    if fits {
        ElementLayout::Vec4
    } else {
        ElementLayout::Scalar
    }
}

/// The segments of one chunk, `[offset, offset + len)` of `span`: each tensor's part cut into
/// tiles. In the vec4 layout a part ending inside a unit gives its last 1 to `unit - 1`
/// elements to a tail segment, so that main segments end on unit boundaries.
fn segments(
    span: &Span,
    tensors: &[Vec<BufferRange>],
    (groups, group_first): (&[u32], &[usize]),
    (offset, len): (u64, u64),
    limits: &PlanLimits,
    (layout, unit): (ElementLayout, u64),
) -> (Vec<Segment>, Vec<Segment>) {
    let (mut main, mut tails) = (Vec::new(), Vec::new());
    let segment = |from: u64, to: u64, (tensor, tensor_start): (usize, u64), group: u32| Segment {
        start: (from - offset) as u32,
        end: (to - offset) as u32,
        group,
        tensor: (tensor - group_first[tensor]) as u32,
        tensor_offset: (from - tensor_start) as u32,
        // The tensor's index in the optimizer, until `assign_slots` numbers the slots.
        slot: tensor as u32,
    };
    for &i in &span.tensors {
        let start = span.offset_of(&tensors[i][0]);
        let end = start + tensors[i][0].len();
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
        let mut at = from;
        while at < body_end {
            let stop = (at + limits.tile).min(body_end);
            main.push(segment(at, stop, (i, start), groups[i]));
            at = stop;
        }
        if body_end < to {
            tails.push(segment(body_end, to, (i, start), groups[i]));
        }
    }
    (main, tails)
}
