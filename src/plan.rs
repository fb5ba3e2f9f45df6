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
        /// For the gradient-norm reduction: the first partial its chunk's workgroups write
        /// (counted over every chunk, modulo one binding of partials); the update ignores it.
        base: u32,
        /// The tensor's position in the optimizer's list.
        tensor: u32,
        /// The index of element `start` within its tensor.
        tensor_offset: u32,
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

/// Segments `count` entries from byte `offset` of a plan's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableSlice {
    pub offset: u64,
    pub count: u64,
}

impl TableSlice {
    /// The slice as a binding of `table` (a slice of no segment binds one zeroed entry).
    pub fn binding(self, table: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: table,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.count.max(1) * SEGMENT_SIZE),
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
    /// `main`, zeroed padding and `tails` as one slice: every element exactly once, for
    /// reductions, which loop over it with at most `max_workgroups` workgroups (a zeroed
    /// segment is empty).
    pub all: TableSlice,
    /// Workgroups of the gradient-norm reduction over this chunk: one partial each.
    pub reduce_workgroups: u32,
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

/// The dispatches over a set of tensors: spans, their chunks, and one segment table.
pub(crate) struct Plan {
    pub spans: Vec<Span>,
    pub chunks: Vec<Chunk>,
    /// Slots of the gradient-norm reduction's partials, one binding's worth at most. Chunk
    /// after chunk, workgroup `w` of a chunk whose segments say `base` writes partial
    /// `(base + w) % partials`, combining with what is there once `base + w` has wrapped
    /// around: every chunk's partials in one buffer, in a fixed order, however many chunks.
    pub partials: u64,
    /// Every chunk's segments, each slice at an aligned offset; `None` without a chunk.
    pub table: Option<wgpu::Buffer>,
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
}

/// Most workgroups of one reduction dispatch: enough to fill a large GPU, few enough that each
/// loops over several segments (workgroup barriers are costly on software adapters) and that
/// the single-workgroup pass folding the partials has few to fold.
pub(crate) const REDUCE_MAX_WORKGROUPS: u64 = 1024;

/// Invocations per workgroup of the tail dispatch (`update_tail` in common/entry.wgsl).
pub(crate) const TAIL_WORKGROUP: u64 = 64;

impl Plan {
    /// Plans `tensors` (each a range per role, see [`spans`]), tensor `i` in parameter group
    /// `groups[i]`.
    pub fn new(
        device: &wgpu::Device,
        tensors: &[Vec<BufferRange>],
        groups: &[u32],
        limits: &PlanLimits,
    ) -> Plan {
        use wgpu::util::DeviceExt;
        let spans = spans(tensors);
        let mut table: Vec<u8> = Vec::new();
        let mut chunks = Vec::new();
        let max_partials = (limits.max_binding / PARTIAL_SIZE).max(1);
        let mut partials = 0;
        // Each dispatch's slice starts at an aligned offset; a 2-D grid of max_workgroups^2
        // workgroups takes that many segments (or 64 tails each) at most.
        let grid = limits.max_workgroups * limits.max_workgroups;
        // Slices start at aligned offsets, and whole segments apart from each other, so that a
        // chunk's `all` slice reads its main slices, the zeroed padding and its tails as one
        // array of segments.
        let padding = lcm(limits.align, SEGMENT_SIZE) as usize;
        let push = |segments: &[Segment], per_dispatch: u64, table: &mut Vec<u8>| {
            segments
                .chunks(per_dispatch as usize)
                .map(|piece| {
                    let slice = TableSlice {
                        offset: table.len() as u64,
                        count: piece.len() as u64,
                    };
                    table.extend_from_slice(bytemuck::cast_slice(piece));
                    table.resize(table.len().next_multiple_of(padding), 0);
                    slice
                })
                .collect::<Vec<_>>()
        };
        for (n, span) in spans.iter().enumerate() {
            for c in 0..span.len().div_ceil(limits.chunk_len) {
                let offset = c * limits.chunk_len;
                let len = limits.chunk_len.min(span.len() - offset);
                let unit = if limits.packed { 8 } else { 4 };
                let layout = vec4_layout(span, tensors, offset, len, unit, limits.max_binding);
                let (mut main, mut tails) =
                    segments(span, tensors, groups, (offset, len), limits, (layout, unit));
                let count = (main.len() + tails.len()) as u64;
                if count == 0 {
                    continue;
                }
                let reduce_workgroups = count
                    .min(REDUCE_MAX_WORKGROUPS)
                    .min(limits.max_workgroups)
                    .min(max_partials);
                for segment in main.iter_mut().chain(&mut tails) {
                    segment.base = partials as u32;
                }
                partials += reduce_workgroups;
                let start = table.len() as u64;
                let main = push(&main, grid, &mut table);
                let tails = push(&tails, grid * TAIL_WORKGROUP, &mut table);
                let end = tails.last().or(main.last()).expect("a segment");
                let all = TableSlice {
                    offset: start,
                    count: (end.offset - start) / SEGMENT_SIZE + end.count,
                };
                chunks.push(Chunk {
                    span: n,
                    offset,
                    len,
                    layout,
                    unit,
                    main,
                    tails,
                    all,
                    reduce_workgroups: reduce_workgroups as u32,
                });
            }
        }
        let table = (!table.is_empty()).then(|| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-optim segments"),
                contents: &table,
                usage: wgpu::BufferUsages::STORAGE,
            })
        });
        Plan {
            spans,
            chunks,
            partials: partials.min(max_partials),
            table,
        }
    }

    /// The segment table; every plan with a chunk has one.
    pub fn table(&self) -> &wgpu::Buffer {
        self.table.as_ref().expect("a table for every chunk")
    }

    /// Role `role`'s range of `chunk`: `len` elements, or the bound length of its layout.
    pub fn range(&self, chunk: &Chunk, role: usize, len: u64) -> BufferRange {
        self.spans[chunk.span].ranges[role].slice(chunk.offset, len)
    }
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
    groups: &[u32],
    (offset, len): (u64, u64),
    limits: &PlanLimits,
    (layout, unit): (ElementLayout, u64),
) -> (Vec<Segment>, Vec<Segment>) {
    let (mut main, mut tails) = (Vec::new(), Vec::new());
    let segment = |from: u64, to: u64, (tensor, tensor_start): (usize, u64), group: u32| Segment {
        start: (from - offset) as u32,
        end: (to - offset) as u32,
        group,
        base: 0,
        tensor: tensor as u32,
        tensor_offset: (from - tensor_start) as u32,
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
