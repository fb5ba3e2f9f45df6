//! The parameter arena: many tensors in one param buffer and one grad buffer, laid out so that
//! an optimizer updates them all in one dispatch per binding-size chunk (see `src/kernel/plan/`).

use super::tensor::{BufferRange, Param};
use super::Context;
use crate::dtype::Dtype;
use crate::error::{Error, Result};

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
    // The storage types of the params and the grads.
    dtypes: (Dtype, Dtype),
}

/// An arena's buffers and layout (see `Arena::parts`).
#[cfg(feature = "mpi")]
pub(crate) struct ArenaParts<'a> {
    pub param: &'a wgpu::Buffer,
    pub grad: &'a wgpu::Buffer,
    /// Each tensor's element offset and length.
    pub layout: &'a [(u64, u64)],
    /// The storage types of the params and the grads.
    pub dtypes: (Dtype, Dtype),
}

impl Arena {
    /// An arena of f32 tensors of these lengths, params and grads zeroed.
    pub fn new(ctx: &Context, lens: &[usize]) -> Result<Self> {
        Self::with_dtypes(ctx, lens, Dtype::F32, Dtype::F32)
    }

    /// An arena whose params are stored as `param` and grads as `grad` (bf16 params with f32
    /// grads, say), zeroed. Tensors lie at the same element offsets in both buffers, each
    /// aligned for both types, and every tensor's last 32-bit word and 16-byte unit lies in
    /// its buffer: optimizers take the arena in one dispatch per chunk with 16-byte accesses.
    pub fn with_dtypes(ctx: &Context, lens: &[usize], param: Dtype, grad: Dtype) -> Result<Self> {
        let dtypes = (param, grad);
        let limits = ctx.device().limits();
        // In elements: aligned in the buffer of the smaller type is aligned in both.
        let smallest = param.size().min(grad.size());
        let largest = param.size().max(grad.size());
        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(32) / smallest;
        let mut layout = Vec::with_capacity(lens.len());
        let mut end: u64 = 0;
        for (index, &len) in lens.iter().enumerate() {
            layout.push((end, len as u64));
            // In bytes, checked: lengths no buffer can hold are refused, never wrapped.
            end = end
                .checked_add(len as u64)
                .and_then(|e| e.checked_next_multiple_of(align))
                .filter(|&e| {
                    e.checked_mul(largest)
                        .is_some_and(|b| b <= limits.max_buffer_size)
                })
                .ok_or(Error::OutOfBounds {
                    index,
                    role: "arena",
                    end: end.saturating_add(len as u64).saturating_mul(largest),
                    size: limits.max_buffer_size,
                })?;
        }
        let bytes = |dtype: Dtype| end.max(8) * dtype.size();
        let buffer = |label, dtype| {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes(dtype),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let (param, grad) = super::capture_errors(ctx.device(), || {
            (
                buffer("wgpu-optim arena params", param),
                buffer("wgpu-optim arena grads", grad),
            )
        })?;
        Ok(Arena {
            ctx: ctx.clone(),
            param,
            grad,
            layout,
            dtypes,
        })
    }

    /// The whole param and grad buffers, each tensor's element offset and length, and the
    /// storage types: what a distributed optimizer shards and communicates.
    #[cfg(feature = "mpi")]
    pub(crate) fn parts(&self) -> ArenaParts<'_> {
        ArenaParts {
            param: &self.param,
            grad: &self.grad,
            layout: &self.layout,
            dtypes: self.dtypes,
        }
    }

    /// The context the arena's buffers live on.
    #[cfg(feature = "mpi")]
    pub(crate) fn context(&self) -> &Context {
        &self.ctx
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.layout.len()
    }

    /// True when the arena holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.layout.is_empty()
    }

    fn range(&self, buffer: &wgpu::Buffer, dtype: Dtype, index: usize) -> Result<BufferRange> {
        let &(offset, len) = self.layout.get(index).ok_or(Error::NoSuchTensor {
            owner: "arena",
            index,
            count: self.layout.len(),
        })?;
        Ok(BufferRange::typed(
            buffer,
            offset * dtype.size(),
            len,
            dtype,
        ))
    }

    /// Tensor `index`'s parameters: (buffer, byte offset, length) to bind.
    pub fn param(&self, index: usize) -> Result<BufferRange> {
        self.range(&self.param, self.dtypes.0, index)
    }

    /// Tensor `index`'s gradient.
    pub fn grad(&self, index: usize) -> Result<BufferRange> {
        self.range(&self.grad, self.dtypes.1, index)
    }

    /// Every tensor as a [`Param`], in order: what an optimizer is built over.
    pub fn params(&self) -> Vec<Param> {
        (0..self.len())
            .map(|i| Param::new(self.param(i).unwrap(), self.grad(i).unwrap()))
            .collect()
    }

    /// Uploads tensor `index`'s parameters (rounded to their type).
    pub fn write_param(&self, index: usize, values: &[f32]) -> Result<()> {
        self.ctx.write_f32(&self.param(index)?, values)
    }

    /// Uploads tensor `index`'s gradient.
    pub fn write_grad(&self, index: usize, values: &[f32]) -> Result<()> {
        self.ctx.write_f32(&self.grad(index)?, values)
    }

    /// Reads tensor `index`'s parameters back, widened to f32 (blocking).
    pub fn read_param(&self, index: usize) -> Result<Vec<f32>> {
        self.ctx.read_f32(&self.param(index)?)
    }

    /// Reads tensor `index`'s gradient back (blocking).
    pub fn read_grad(&self, index: usize) -> Result<Vec<f32>> {
        self.ctx.read_f32(&self.grad(index)?)
    }
}
