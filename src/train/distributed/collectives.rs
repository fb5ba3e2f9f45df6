//! A step's collectives and the device-host copies around them. Each runs whatever this
//! rank's [`Fault`] says: once a rank's part has failed it does no more device work and sends
//! zeros, so the other ranks never wait for it, and it writes nothing more back (what it
//! reduced before the fault stays in its gradients, as on the others). The ranks agree on their
//! faults before the update uses the gradients, and before gathered parameters are written.

use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::traits::*;

use super::super::agreement::Fault;
use super::{CommTimings, Distributed};
use crate::error::Result;
use crate::gpu::capture_errors;

impl Distributed {
    /// Whether every shard but the last is `block` long and starts at `r * block` (always
    /// without 8-bit states): the arena's values are then the messages as they lie.
    fn even(&self) -> bool {
        let n = self.elements;
        (0..self.ranks as u64).all(|r| self.bounds[r as usize] == (r * self.block).min(n))
    }

    /// The arena's `values` as the ranks' messages: rank r's shard at `r * block`, each padded
    /// with zeros to `block` elements (in place where the shards are [even](Self::even)).
    fn pack(&self, mut values: Vec<f32>) -> Vec<f32> {
        let len = (self.block * self.ranks as u64) as usize;
        if self.even() {
            values.resize(len, 0.0);
            return values;
        }
        let mut padded = vec![0.0; len];
        for (r, shard) in self.bounds.windows(2).enumerate() {
            let (lo, hi) = (shard[0] as usize, shard[1] as usize);
            let at = r * self.block as usize;
            padded[at..at + hi - lo].copy_from_slice(&values[lo..hi]);
        }
        padded
    }

    /// The arena's values from the ranks' messages ([`Distributed::pack`]'s inverse).
    fn unpack(&self, mut padded: Vec<f32>) -> Vec<f32> {
        if self.even() {
            padded.truncate(self.elements as usize);
            return padded;
        }
        let mut values = vec![0.0; self.elements as usize];
        for (r, shard) in self.bounds.windows(2).enumerate() {
            let (lo, hi) = (shard[0] as usize, shard[1] as usize);
            let at = r * self.block as usize;
            values[lo..hi].copy_from_slice(&padded[at..at + hi - lo]);
        }
        values
    }

    /// Submits `encoder` (which copies `bytes` into the staging buffer) and reads them back.
    fn download(
        &self,
        encoder: wgpu::CommandEncoder,
        bytes: u64,
        time: &mut Duration,
    ) -> Result<Vec<f32>> {
        let started = Instant::now();
        let submission = capture_errors(self.ctx.device(), || {
            self.ctx.queue().submit([encoder.finish()])
        })?;
        let bytes = self
            .ctx
            .read_staging(&self.staging, bytes, Some(submission))?;
        *time += started.elapsed();
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Replicated: bucket by bucket, each copied down in a submission of its own (all
    /// submitted first), then, in order, waited for, divided by the ranks, all-reduced (sum)
    /// and written back: a bucket is on the wire while the later ones are still copying, and
    /// its write-back is queued while the next one is reduced. Averaged as DDP does.
    pub(super) fn all_reduce_grads(&self, timings: &mut CommTimings, fault: &mut Fault) {
        let device = self.ctx.device();
        let bucket = 4 * (self.config.bucket_bytes / 4).max(1);
        let started = Instant::now();
        let mut submissions = Vec::with_capacity(self.buckets.len());
        for (k, staging) in self.buckets.iter().enumerate() {
            submissions.push(fault.attempt(|| {
                let mut encoder = device.create_command_encoder(&Default::default());
                let offset = k as u64 * bucket;
                encoder.copy_buffer_to_buffer(&self.grad, offset, staging, 0, staging.size());
                capture_errors(device, || self.ctx.queue().submit([encoder.finish()]))
            }));
        }
        timings.download += started.elapsed();
        let scale = 1.0 / self.ranks as f32;
        let mut reduced = Vec::new();
        for (k, (staging, submission)) in self.buckets.iter().zip(submissions).enumerate() {
            let waited = Instant::now();
            let read = submission.and_then(|submission| {
                fault.attempt(|| {
                    self.ctx
                        .read_staging(staging, staging.size(), Some(submission))
                })
            });
            let mut grads: Vec<f32> = match read {
                Some(bytes) => bytemuck::pod_collect_to_vec(&bytes),
                None => vec![0.0; (staging.size() / 4) as usize],
            };
            grads.iter_mut().for_each(|g| *g *= scale);
            timings.download += waited.elapsed();
            reduced.resize(grads.len(), 0.0_f32);
            let sent = Instant::now();
            self.comm
                .all_reduce_into(&grads[..], &mut reduced[..], SystemOperation::sum());
            timings.communicate += sent.elapsed();
            timings.bytes_sent += 4 * grads.len() as u64;
            if fault.is_clear() {
                let written = Instant::now();
                let offset = k as u64 * bucket;
                let bytes = bytemuck::cast_slice(&reduced);
                self.ctx.queue().write_buffer(&self.grad, offset, bytes);
                timings.upload += written.elapsed();
            }
        }
    }

    /// ZeRO-1: every element of the arena's gradients down to the host, divided by the ranks,
    /// reduce-scattered (sum) into this rank's shard and written back to its range of the
    /// gradients (the rest of the arena's gradients are not read by its optimizer).
    pub(super) fn reduce_scatter_grads(&self, timings: &mut CommTimings, fault: &mut Fault) {
        let bytes = 4 * self.elements;
        let grads = fault.attempt(|| {
            let device = self.ctx.device();
            let mut encoder = device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&self.grad, 0, &self.staging, 0, bytes);
            self.download(encoder, bytes, &mut timings.download)
        });
        let grads = grads.unwrap_or_else(|| vec![0.0; self.elements as usize]);
        let scale = 1.0 / self.ranks as f32;
        let mut padded = self.pack(grads);
        padded.iter_mut().for_each(|g| *g *= scale);
        let mut shard = vec![0.0_f32; self.block as usize];
        let sent = Instant::now();
        self.comm
            .reduce_scatter_block_into(&padded[..], &mut shard[..], SystemOperation::sum());
        timings.communicate += sent.elapsed();
        timings.bytes_sent += 4 * padded.len() as u64;
        if fault.is_clear() {
            let written = Instant::now();
            let len = (self.shard.1 - self.shard.0) as usize;
            let bytes = bytemuck::cast_slice(&shard[..len]);
            self.ctx
                .queue()
                .write_buffer(&self.grad, 4 * self.shard.0, bytes);
            timings.upload += written.elapsed();
        }
    }

    /// ZeRO-1 with gradient processing: this rank's norm statistics (its shard's sum of
    /// squares, or max for the inf-norm) recorded, all-reduced and written back, so that every
    /// rank's update clips and skips by the global norm.
    pub(super) fn all_reduce_stats(&self, timings: &mut CommTimings, fault: &mut Fault) {
        let Some(stats) = &self.stats else {
            return;
        };
        let local = fault.attempt(|| {
            let device = self.ctx.device();
            let mut encoder = device.create_command_encoder(&Default::default());
            self.optimizer.record_grad_stats(&mut encoder)?;
            encoder.copy_buffer_to_buffer(stats.buffer(), 0, &self.staging, 0, 8);
            self.download(encoder, 8, &mut timings.download)
        });
        let local = local.unwrap_or_else(|| vec![0.0; 2]);
        let inf_norm = self
            .optimizer
            .grad_processing()
            .is_some_and(|c| c.norm_type == f64::INFINITY);
        let op = if inf_norm {
            SystemOperation::max()
        } else {
            SystemOperation::sum()
        };
        let mut global = [0.0_f32; 2];
        let sent = Instant::now();
        self.comm.all_reduce_into(&local[..], &mut global[..], op);
        timings.communicate += sent.elapsed();
        timings.bytes_sent += 8;
        if fault.is_clear() {
            let bytes = bytemuck::cast_slice(&global);
            self.ctx.queue().write_buffer(stats.buffer(), 0, bytes);
        }
    }

    /// ZeRO-1: every rank's shard of the parameters to every rank, once the ranks agree that
    /// each one's `moved` (its update, or its switch of Schedule-Free's mode) and download went
    /// well: a rank whose part failed sends zeros, and then no rank writes what was gathered
    /// (each keeps its own shard, and the others' as they were), `failed` saying why.
    pub(super) fn all_gather_params(
        &self,
        timings: &mut CommTimings,
        moved: Result<()>,
        failed: &'static str,
    ) -> Result<()> {
        let mut fault = Fault::from_result(moved);
        let len = self.shard.1 - self.shard.0;
        let mine = fault.attempt(|| {
            let device = self.ctx.device();
            let mut encoder = device.create_command_encoder(&Default::default());
            if len > 0 {
                encoder.copy_buffer_to_buffer(
                    &self.param,
                    4 * self.shard.0,
                    &self.staging,
                    0,
                    4 * len,
                );
            }
            self.download(encoder, 4 * len.max(1), &mut timings.download)
        });
        let mut mine = mine.unwrap_or_default();
        mine.resize(self.block as usize, 0.0);
        let mut all = vec![0.0_f32; (self.block * self.ranks as u64) as usize];
        let sent = Instant::now();
        self.comm.all_gather_into(&mine[..], &mut all[..]);
        timings.communicate += sent.elapsed();
        timings.bytes_sent += 4 * self.block;
        self.vote(timings, 0, fault.into_result(), failed, failed)?;
        let written = Instant::now();
        let params = self.unpack(all);
        self.ctx
            .queue()
            .write_buffer(&self.param, 0, bytemuck::cast_slice(&params));
        timings.upload += written.elapsed();
        Ok(())
    }
}
