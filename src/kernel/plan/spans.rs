//! The planner's view of tensors ([`PlanRange`]: where in which buffer, without the buffer
//! itself, so plans are made and tested without an adapter) and how tensors laid out alike
//! group into [`Span`]s.

use crate::dtype::Dtype;
use crate::gpu::BufferRange;

/// A range of elements of one buffer as the planner sees it: the buffer by its index in a
/// list the caller keeps ([`PlanBuffers`]), and that buffer's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlanRange {
    /// The buffer's index in the caller's list.
    pub buffer: usize,
    /// The buffer's size in bytes.
    pub buffer_size: u64,
    /// Offset of the first element, in bytes.
    pub offset: u64,
    /// Number of elements.
    pub len: u64,
    /// The storage type of the elements.
    pub dtype: Dtype,
}

impl PlanRange {
    /// Whether the range holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last byte (saturating, as [`BufferRange::end`]).
    pub fn end(&self) -> u64 {
        self.offset
            .saturating_add(self.len.saturating_mul(self.dtype.size()))
    }

    /// `count` elements starting `start` elements into this range.
    pub fn slice(&self, start: u64, count: u64) -> PlanRange {
        PlanRange {
            offset: self.offset + start * self.dtype.size(),
            len: count,
            ..*self
        }
    }

    /// The element of its buffer the range starts at (its offset in elements of its type).
    fn first_element(&self) -> i128 {
        i128::from(self.offset / self.dtype.size())
    }
}

/// The buffers behind a list of [`PlanRange`]s, each once, in the order first seen: what
/// turns a planned range back into a [`BufferRange`].
#[derive(Clone, Debug, Default)]
pub(crate) struct PlanBuffers {
    buffers: Vec<wgpu::Buffer>,
}

impl PlanBuffers {
    /// Each tensor's ranges (one per role) as the planner sees them, and their buffers.
    pub fn of(tensors: &[Vec<BufferRange>]) -> (Vec<Vec<PlanRange>>, PlanBuffers) {
        let mut buffers = PlanBuffers::default();
        let ranges = tensors
            .iter()
            .map(|roles| roles.iter().map(|r| buffers.range(r)).collect())
            .collect();
        (ranges, buffers)
    }

    fn range(&mut self, range: &BufferRange) -> PlanRange {
        let buffer = match self.buffers.iter().position(|b| b == range.buffer()) {
            Some(index) => index,
            None => {
                self.buffers.push(range.buffer().clone());
                self.buffers.len() - 1
            }
        };
        PlanRange {
            buffer,
            buffer_size: range.buffer().size(),
            offset: range.offset(),
            len: range.len(),
            dtype: range.dtype(),
        }
    }

    /// The buffer range `range` plans.
    pub fn get(&self, range: &PlanRange) -> BufferRange {
        BufferRange::typed(
            &self.buffers[range.buffer],
            range.offset,
            range.len,
            range.dtype,
        )
    }
}

/// Tensors laid out alike in the same buffers, one buffer per role (for an optimizer: param
/// and grad; for [`ClipValue`](crate::ClipValue): the values).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Span {
    /// Per role, the bytes from the first tensor's start to the last one's end.
    pub ranges: Vec<PlanRange>,
    /// Indices of the tensors in it.
    pub tensors: Vec<usize>,
    /// Whether its tensors keep 8-bit states (see [`PlanGroups::quantized`](super::PlanGroups)).
    pub quantized: bool,
}

impl Span {
    /// Element offset of tensor `range` (of the first role) within the span.
    pub fn offset_of(&self, range: &PlanRange) -> u64 {
        self.offset_at(range.offset, range.dtype)
    }

    /// Element offset, within the span, of the first role's element at byte `offset` of its
    /// buffer.
    pub fn offset_at(&self, offset: u64, dtype: Dtype) -> u64 {
        (offset - self.ranges[0].offset) / dtype.size()
    }

    /// The span's length in elements.
    pub fn len(&self) -> u64 {
        self.ranges[0].len
    }
}

/// Groups tensors (each a range per role, all of one length; the roles' types may differ,
/// each role's the same for every tensor) into spans: tensors whose elements lie at the same
/// relative positions in every role's buffer. A span's state buffers cover its gaps too, so
/// tensors spread thinly over a buffer (more than half gaps, past 1 MiB) get spans of their
/// own. Tensors of length 0 belong to none; a tensor that is `quantized` (tensor `i`'s entry,
/// false past the list's end) shares none with one that is not.
pub(crate) fn spans(tensors: &[Vec<PlanRange>], quantized: &[bool]) -> Vec<Span> {
    let class = |i: usize| quantized.get(i).copied().unwrap_or(false);
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (index, ranges) in tensors.iter().enumerate() {
        if ranges[0].is_empty() {
            continue;
        }
        let same_layout = |first: usize, other: &[PlanRange]| {
            class(first) == class(index)
                && other.iter().zip(ranges).all(|(a, b)| {
                    a.buffer == b.buffer
                        && a.first_element() - other[0].first_element()
                            == b.first_element() - ranges[0].first_element()
                })
        };
        match groups
            .iter_mut()
            .find(|(first, _)| same_layout(*first, &tensors[*first]))
        {
            Some((_, members)) => members.push(index),
            None => groups.push((index, vec![index])),
        }
    }
    let span = |members: Vec<usize>| {
        // In elements of the first role's buffer.
        let start = members
            .iter()
            .map(|&i| tensors[i][0].first_element())
            .min()
            .expect("a span has a tensor");
        let end = members
            .iter()
            .map(|&i| tensors[i][0].first_element() + i128::from(tensors[i][0].len))
            .max()
            .expect("a span has a tensor");
        let first = &tensors[members[0]];
        let ranges = first
            .iter()
            .map(|r| {
                let role_start = r.first_element() + start - first[0].first_element();
                PlanRange {
                    offset: role_start as u64 * r.dtype.size(),
                    len: (end - start) as u64,
                    ..*r
                }
            })
            .collect();
        Span {
            ranges,
            quantized: class(members[0]),
            tensors: members,
        }
    };
    let mut spans = Vec::new();
    for (_, members) in groups {
        let used: u64 = members.iter().map(|&i| tensors[i][0].len).sum();
        let whole = span(members.clone());
        if whole.len() > (2 * used).max(used + (1 << 18)) {
            spans.extend(members.into_iter().map(|i| span(vec![i])));
        } else {
            spans.push(whole);
        }
    }
    spans
}
