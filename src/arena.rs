//! Many tensors, one dispatch: the parameter arena, and how an optimizer lays its tensors out
//! for the segment-table update (PyTorch's `multi_tensor_apply` with its `block_to_tensor`).
//!
//! Tensors whose parameters share one buffer, and whose gradients share another at the same
//! relative offsets, form a *span*: the optimizer keeps their state in one buffer per state at
//! the same layout, binds the span once per binding-size chunk, and updates every tensor of the
//! chunk in one dispatch. Each workgroup reads one [`Segment`] (a piece of one tensor, at most
//! a tile, and its parameter group) from a table. An [`Arena`] allocates tensors that way;
//! tensors in buffers of their own still work, a span (and so a dispatch) each.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::layout::wgsl_struct;
use crate::tensor::{BufferRange, Param};

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
        /// Padding to 16 bytes.
        pad: u32,
    }
}

/// Tensors laid out alike in one param buffer and one grad buffer.
pub(crate) struct Span {
    /// The param bytes from the first tensor's start to the last one's end.
    pub param: BufferRange,
    /// The same bytes of the grad buffer.
    pub grad: BufferRange,
    /// Indices of the tensors in it.
    pub tensors: Vec<usize>,
}

impl Span {
    /// Element offset of `param` within the span.
    pub fn offset_of(&self, param: &Param) -> u64 {
        (param.param.offset() - self.param.offset()) / 4
    }
}

/// Groups tensors into spans. A span's state buffers cover its gaps too, so tensors spread
/// thinly over a buffer (more than half gaps, past 1 MiB) get spans of their own. Tensors of
/// length 0 belong to none.
pub(crate) fn spans(params: &[Param]) -> Vec<Span> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (index, param) in params.iter().enumerate() {
        if param.is_empty() {
            continue;
        }
        let same_layout = |other: &Param| {
            other.param.buffer() == param.param.buffer()
                && other.grad.buffer() == param.grad.buffer()
                && other.param.offset() as i128 - other.grad.offset() as i128
                    == param.param.offset() as i128 - param.grad.offset() as i128
        };
        match groups
            .iter_mut()
            .find(|(first, _)| same_layout(&params[*first]))
        {
            Some((_, members)) => members.push(index),
            None => groups.push((index, vec![index])),
        }
    }
    let span = |members: Vec<usize>| {
        let start = members
            .iter()
            .map(|&i| params[i].param.offset())
            .min()
            .unwrap();
        let end = members
            .iter()
            .map(|&i| params[i].param.end())
            .max()
            .unwrap();
        let first = &params[members[0]];
        let grad_start = start + first.grad.offset() - first.param.offset();
        Span {
            param: BufferRange::new(first.param.buffer(), start, (end - start) / 4),
            grad: BufferRange::new(first.grad.buffer(), grad_start, (end - start) / 4),
            tensors: members,
        }
    };
    let mut spans = Vec::new();
    for (_, members) in groups {
        let used: u64 = members.iter().map(|&i| params[i].len() * 4).sum();
        let whole = span(members.clone());
        if whole.param.len() * 4 > (2 * used).max(used + (1 << 20)) {
            spans.extend(members.into_iter().map(|i| span(vec![i])));
        } else {
            spans.push(whole);
        }
    }
    spans
}

/// One binding of a span: `len` elements from element `offset`, and its segments.
pub(crate) struct ChunkPlan {
    pub offset: u64,
    pub len: u64,
    pub segments: Vec<Segment>,
}

/// Cuts `span` into bindings of at most `chunk_len` elements (a multiple of the offset
/// alignment) and each tensor's part of a binding into segments of at most `tile` elements.
pub(crate) fn chunk_plans(
    span: &Span,
    params: &[Param],
    groups: &[u32],
    chunk_len: u64,
    tile: u64,
) -> Vec<ChunkPlan> {
    (0..span.param.len().div_ceil(chunk_len))
        .map(|c| {
            let offset = c * chunk_len;
            let len = chunk_len.min(span.param.len() - offset);
            let mut segments = Vec::new();
            for &i in &span.tensors {
                let start = span.offset_of(&params[i]);
                let end = start + params[i].len();
                let (from, to) = (start.max(offset), end.min(offset + len));
                let mut at = from;
                while at < to {
                    let stop = (at + tile).min(to);
                    segments.push(Segment {
                        start: (at - offset) as u32,
                        end: (stop - offset) as u32,
                        group: groups[i],
                        pad: 0,
                    });
                    at = stop;
                }
            }
            ChunkPlan {
                offset,
                len,
                segments,
            }
        })
        .collect()
}

/// Refuses two tensors whose parameters overlap: one step would update them twice.
pub(crate) fn check_disjoint(params: &[Param]) -> Result<()> {
    let mut order: Vec<usize> = (0..params.len())
        .filter(|&i| !params[i].is_empty())
        .collect();
    order.sort_by_key(|&i| params[i].param.offset());
    for (n, &i) in order.iter().enumerate() {
        for &j in &order[n + 1..] {
            let (a, b) = (&params[i].param, &params[j].param);
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

/// Many tensors in one param buffer and one grad buffer, at offsets aligned to the device's
/// `min_storage_buffer_offset_alignment`, the same in both: an optimizer built over
/// [`Arena::params`] updates them all in one dispatch per binding-size chunk.
///
/// Bind [`Arena::param`] and [`Arena::grad`] ranges in your forward and backward kernels.
///
/// ```no_run
/// # use wgpu_optim::{AdamWConfig, Arena, Context};
/// # fn demo(ctx: &Context) -> wgpu_optim::Result<()> {
/// let arena = Arena::new(ctx, &[4096 * 1024, 1024, 1024 * 1024, 1024])?;
/// arena.write_param(0, &vec![0.01; 4096 * 1024])?;
/// let adamw = AdamWConfig::default().build(ctx, &arena.params())?;
/// # Ok(()) }
/// ```
pub struct Arena {
    ctx: Context,
    param: wgpu::Buffer,
    grad: wgpu::Buffer,
    // Element offset and length of each tensor.
    layout: Vec<(u64, u64)>,
}

impl Arena {
    /// An arena of tensors of these lengths, params and grads zeroed.
    pub fn new(ctx: &Context, lens: &[usize]) -> Result<Self> {
        let align = u64::from(ctx.device().limits().min_storage_buffer_offset_alignment) / 4;
        let mut layout = Vec::with_capacity(lens.len());
        let mut end = 0;
        for &len in lens {
            layout.push((end, len as u64));
            end = (end + len as u64).div_ceil(align) * align;
        }
        let size = end.max(1) * 4;
        let buffer = |label| {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let (param, grad) = crate::context::capture_errors(ctx.device(), || {
            (
                buffer("wgpu-optim arena params"),
                buffer("wgpu-optim arena grads"),
            )
        })?;
        Ok(Arena {
            ctx: ctx.clone(),
            param,
            grad,
            layout,
        })
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.layout.len()
    }

    /// True when the arena holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.layout.is_empty()
    }

    fn range(&self, buffer: &wgpu::Buffer, index: usize) -> Result<BufferRange> {
        let &(offset, len) = self.layout.get(index).ok_or(Error::NoSuchTensor {
            index,
            count: self.layout.len(),
        })?;
        Ok(BufferRange::new(buffer, offset * 4, len))
    }

    /// Tensor `index`'s parameters: (buffer, byte offset, length) to bind.
    pub fn param(&self, index: usize) -> Result<BufferRange> {
        self.range(&self.param, index)
    }

    /// Tensor `index`'s gradient.
    pub fn grad(&self, index: usize) -> Result<BufferRange> {
        self.range(&self.grad, index)
    }

    /// Every tensor as a [`Param`], in order: what an optimizer is built over.
    pub fn params(&self) -> Vec<Param> {
        (0..self.len())
            .map(|i| {
                Param::new(
                    self.range(&self.param, i).unwrap(),
                    self.range(&self.grad, i).unwrap(),
                )
            })
            .collect()
    }

    /// Uploads tensor `index`'s parameters.
    pub fn write_param(&self, index: usize, values: &[f32]) -> Result<()> {
        self.ctx.write_f32(&self.param(index)?, values)
    }

    /// Uploads tensor `index`'s gradient.
    pub fn write_grad(&self, index: usize, values: &[f32]) -> Result<()> {
        self.ctx.write_f32(&self.grad(index)?, values)
    }

    /// Reads tensor `index`'s parameters back (blocking).
    pub fn read_param(&self, index: usize) -> Result<Vec<f32>> {
        self.ctx.read_f32(&self.param(index)?)
    }

    /// Reads tensor `index`'s gradient back (blocking).
    pub fn read_grad(&self, index: usize) -> Result<Vec<f32>> {
        self.ctx.read_f32(&self.grad(index)?)
    }
}
