//! Where a tensor lives: a range of elements of one storage type in a wgpu buffer.

use crate::dtype::Dtype;
use crate::error::{Error, Result};

/// `len` elements of `buffer` of one [`Dtype`] (f32 unless made with [`BufferRange::typed`]),
/// starting `offset` bytes in.
///
/// The offset must be a multiple of the device's `min_storage_buffer_offset_alignment`
/// (256 bytes on most adapters), as for any storage binding. A 16-bit range is bound as whole
/// 32-bit words: its buffer must hold the word its last element lies in.
#[derive(Clone, Debug)]
pub struct BufferRange {
    buffer: wgpu::Buffer,
    offset: u64,
    len: u64,
    dtype: Dtype,
}

impl BufferRange {
    /// `len` f32 elements starting `offset` bytes into `buffer`.
    pub fn new(buffer: &wgpu::Buffer, offset: u64, len: u64) -> Self {
        Self::typed(buffer, offset, len, Dtype::F32)
    }

    /// `len` elements of `dtype` starting `offset` bytes into `buffer`.
    pub fn typed(buffer: &wgpu::Buffer, offset: u64, len: u64, dtype: Dtype) -> Self {
        BufferRange {
            buffer: buffer.clone(),
            offset,
            len,
            dtype,
        }
    }

    /// The whole buffer, as `size / 4` f32 elements.
    pub fn whole(buffer: &wgpu::Buffer) -> Self {
        Self::whole_typed(buffer, Dtype::F32)
    }

    /// The whole buffer, as `size / dtype.size()` elements of `dtype`.
    pub fn whole_typed(buffer: &wgpu::Buffer, dtype: Dtype) -> Self {
        Self::typed(buffer, 0, buffer.size() / dtype.size(), dtype)
    }

    /// The storage type of the elements.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Offset of the first element, in bytes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the range holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        // Saturating: a length no buffer can hold (near 2^62 elements) ends at u64::MAX, past
        // every buffer, rather than wrapping back inside it.
        self.offset
            .saturating_add(self.len.saturating_mul(self.dtype.size()))
    }

    /// One past the last byte of the 32-bit words the range lies in: what a binding or a copy
    /// of it covers (`end` rounded up to 4 bytes).
    pub fn word_end(&self) -> u64 {
        self.end().checked_next_multiple_of(4).unwrap_or(u64::MAX)
    }

    /// Whether the two ranges share a byte of one buffer.
    pub(crate) fn overlaps(&self, other: &BufferRange) -> bool {
        self.buffer == other.buffer && self.offset < other.end() && other.offset < self.end()
    }

    /// `count` elements starting `start` elements into this range.
    pub(crate) fn slice(&self, start: u64, count: u64) -> BufferRange {
        let offset = self.offset + start * self.dtype.size();
        BufferRange::typed(&self.buffer, offset, count, self.dtype)
    }

    /// The range as a binding of whole 32-bit words (at least one: an empty range binds its
    /// first word).
    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new((self.word_end() - self.offset).max(4)),
        })
    }

    /// Refuses a range that does not start at a multiple of `alignment` (named by `limit`),
    /// runs past its buffer or lacks `usage`.
    pub(crate) fn check(
        &self,
        index: usize,
        role: &'static str,
        alignment: Alignment,
        usage: wgpu::BufferUsages,
    ) -> Result<()> {
        let missing = usage - self.buffer.usage();
        if !missing.is_empty() {
            return Err(Error::MissingUsage {
                index,
                role,
                missing,
            });
        }
        if !self.offset.is_multiple_of(u64::from(alignment.bytes)) {
            return Err(Error::MisalignedOffset {
                index,
                role,
                offset: self.offset,
                alignment: alignment.bytes,
                limit: alignment.limit,
            });
        }
        if self.word_end() > self.buffer.size() {
            return Err(Error::OutOfBounds {
                index,
                role,
                end: self.word_end(),
                size: self.buffer.size(),
            });
        }
        Ok(())
    }
}

/// An alignment a range's offset must have, and where it comes from (for errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Alignment {
    /// In bytes.
    pub bytes: u32,
    /// The limit it comes from: `min_storage_buffer_offset_alignment`, ...
    pub limit: &'static str,
}

/// The alignment of a storage binding's offset on `device`.
pub(crate) fn storage_alignment(device: &wgpu::Device) -> Alignment {
    Alignment {
        bytes: device.limits().min_storage_buffer_offset_alignment,
        limit: "min_storage_buffer_offset_alignment",
    }
}

/// The alignment of a host copy's offset.
pub(crate) const COPY_ALIGNMENT: Alignment = Alignment {
    bytes: wgpu::COPY_BUFFER_ALIGNMENT as u32,
    limit: "wgpu::COPY_BUFFER_ALIGNMENT",
};

/// Refuses two tensors whose ranges overlap: one step would update them twice.
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

/// One parameter tensor and its gradient, as PyTorch's `param` and `param.grad`.
///
/// Both need [`wgpu::BufferUsages::STORAGE`]; the optimizer writes `param` and only reads `grad`.
#[derive(Clone, Debug)]
pub struct Param {
    /// The parameter, updated in place.
    pub param: BufferRange,
    /// Its gradient, read by the step.
    pub grad: BufferRange,
}

impl Param {
    /// A parameter and its gradient.
    pub fn new(param: BufferRange, grad: BufferRange) -> Self {
        Param { param, grad }
    }

    /// A parameter and its gradient, each a whole buffer.
    pub fn whole(param: &wgpu::Buffer, grad: &wgpu::Buffer) -> Self {
        Param::new(BufferRange::whole(param), BufferRange::whole(grad))
    }

    /// The number of elements.
    pub fn len(&self) -> u64 {
        self.param.len()
    }

    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.param.is_empty()
    }

    /// Refuses a pair the kernel cannot take, before anything is created.
    pub(crate) fn check(&self, index: usize, device: &wgpu::Device) -> Result<()> {
        let alignment = storage_alignment(device);
        self.param
            .check(index, "param", alignment, wgpu::BufferUsages::STORAGE)?;
        self.grad
            .check(index, "grad", alignment, wgpu::BufferUsages::STORAGE)?;
        if self.param.len() != self.grad.len() {
            return Err(Error::LengthMismatch {
                index,
                param_len: self.param.len(),
                grad_len: self.grad.len(),
            });
        }
        if self.param.buffer() == self.grad.buffer() {
            return Err(Error::Aliased { index });
        }
        Ok(())
    }
}
