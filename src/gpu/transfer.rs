//! Moving data between the host and the device: uploads, writes through the queue and
//! blocking readbacks. For set-up, tests, tools and checkpoints: a training step never reads
//! back.

use wgpu::util::DeviceExt;

use super::pipeline::capture_errors;
use super::tensor::{BufferRange, COPY_ALIGNMENT};
use super::Context;
use crate::error::{Error, Result};

impl Context {
    /// A new storage buffer holding `data`, usable as a parameter or gradient and readable
    /// with [`Context::read_f32`].
    pub fn upload_f32(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Writes `data` into `range` through the queue (ordered before the next submit), rounded
    /// to the range's storage type (nearest, ties to even). Copies are of whole 32-bit words: a
    /// 16-bit range of odd length also zeroes the 2 bytes after its last element, which no
    /// other range can start at (ranges start on aligned offsets).
    pub fn write_f32(&self, range: &BufferRange, data: &[f32]) -> Result<()> {
        if data.len() as u64 != range.len() {
            return Err(Error::WrongLength {
                what: "write_f32",
                expected: range.len() as usize,
                actual: data.len(),
            });
        }
        range.check(0, "write", COPY_ALIGNMENT, wgpu::BufferUsages::COPY_DST)?;
        let mut bytes = range.dtype().encode(data);
        bytes.resize((range.word_end() - range.offset()) as usize, 0);
        // A destroyed or mapped buffer is a validation error: returned, not panicked on.
        capture_errors(self.device(), || {
            self.queue()
                .write_buffer(range.buffer(), range.offset(), &bytes)
        })
    }

    /// Reads `range` back to the host, widened to f32 from its storage type, blocking until
    /// the device has finished all submitted work. For tests, examples and tools: a training
    /// step never calls it. A destroyed or mapped buffer gives [`Error::Wgpu`].
    pub fn read_f32(&self, range: &BufferRange) -> Result<Vec<f32>> {
        range.check(0, "read", COPY_ALIGNMENT, wgpu::BufferUsages::COPY_SRC)?;
        let size = range.word_end() - range.offset();
        let bytes = self.read_bytes(range.buffer(), range.offset(), size)?;
        let mut values = range.dtype().decode(&bytes);
        values.truncate(range.len() as usize);
        Ok(values)
    }

    /// Reads `size` bytes at `offset` (both multiples of 4) of a buffer with `COPY_SRC`.
    pub(crate) fn read_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>> {
        if size == 0 {
            return Ok(Vec::new());
        }
        // A destroyed or mapped source is a validation error of the copy or the submit:
        // returned before waiting on a staging buffer that would hold zeros.
        let staging = capture_errors(self.device(), || {
            let staging = self.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-optim readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = self.device().create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
            self.queue().submit([encoder.finish()]);
            staging
        })?;
        self.read_staging(&staging, size, None)
    }

    /// The first `bytes` of `staging` (a `MAP_READ` buffer that work already submitted copies
    /// into), once `submission` (or the last submission) is done: mapped, copied out, unmapped.
    /// Blocking.
    pub(crate) fn read_staging(
        &self,
        staging: &wgpu::Buffer,
        bytes: u64,
        submission: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<u8>> {
        let slice = staging.slice(..bytes);
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            sender.send(result).ok();
        });
        // On every way out the buffer is unmapped, so that it can be mapped again: a pending
        // map is aborted, and a failed one's request cleared (wgpu refuses every later map of
        // the buffer until then). Scoped: unmapping a buffer wgpu holds unmapped (a map that
        // failed at once, a destroyed buffer) is a validation error, not a reason to panic.
        let unmap = || drop(capture_errors(self.device(), || staging.unmap()));
        let waited = self.device().poll(wgpu::PollType::Wait {
            submission_index: submission,
            timeout: None,
        });
        if let Err(e) = waited {
            unmap();
            return Err(e.into());
        }
        let mapped = pollster::block_on(receiver.receive()).expect("map_async callback ran");
        if let Err(e) = mapped {
            unmap();
            return Err(e.into());
        }
        let bytes = slice
            .get_mapped_range()
            .map(|range| range.to_vec())
            .map_err(|e| Error::Wgpu(e.to_string()));
        staging.unmap();
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map that fails (here: the buffer has a map pending already) leaves the staging
    /// buffer mappable: the next read succeeds.
    #[test]
    fn a_failed_map_leaves_the_staging_buffer_mappable() {
        let ctx = Context::new_blocking()
            .unwrap_or_else(|e| panic!("the tests need a wgpu adapter: {e}"));
        let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: 64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        let failed = ctx.read_staging(&staging, 64, None);
        assert!(
            failed.is_err(),
            "a second map of a buffer is refused: {failed:?}"
        );
        let read = ctx
            .read_staging(&staging, 64, None)
            .expect("the next read maps it");
        assert_eq!(read, vec![0; 64]);
    }
}
