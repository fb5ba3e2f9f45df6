//! What the benchmarks and the roofline example share. Timing recorded GPU work: with timestamp queries
//! where the device has `Features::TIMESTAMP_QUERY` (the GPU's clock, from the start of an empty
//! pass recorded before the work to the end of one recorded after it), wall time around submit
//! and wait otherwise. Either way the work is submitted and waited for once per measurement.

use std::time::{Duration, Instant};

use wgpu_optim::*;

/// Every optimizer kernel with its default options (SGD also with momentum, Adam also with
/// AMSGrad), by the name the tables give it.
pub fn configs() -> Vec<(&'static str, OptimizerConfig)> {
    vec![
        ("sgd", OptimizerConfig::Sgd(SgdConfig::default())),
        (
            "sgd_momentum",
            OptimizerConfig::Sgd(SgdConfig::default().with_momentum(0.9)),
        ),
        (
            "adagrad",
            OptimizerConfig::Adagrad(AdagradConfig::default()),
        ),
        (
            "rmsprop",
            OptimizerConfig::RmsProp(RmsPropConfig::default()),
        ),
        ("adam", OptimizerConfig::Adam(AdamConfig::default())),
        ("adamw", OptimizerConfig::AdamW(AdamWConfig::default())),
        (
            "amsgrad",
            OptimizerConfig::Adam(AdamConfig::default().with_amsgrad(true)),
        ),
        (
            "adabelief",
            OptimizerConfig::AdaBelief(AdaBeliefConfig::default()),
        ),
        ("lion", OptimizerConfig::Lion(LionConfig::default())),
        ("lamb", OptimizerConfig::Lamb(LambConfig::default())),
        ("lars", OptimizerConfig::Lars(LarsConfig::default())),
    ]
}

/// AdamW's mixed-precision layouts, by the name the tables give them: (name, parameter type,
/// gradient type, precision options). The math is f32 in every one.
pub fn precisions() -> Vec<(&'static str, Dtype, Dtype, Precision)> {
    use Dtype::*;
    let states = |dtype| Precision::default().with_states(dtype);
    vec![
        ("adamw [f32]", F32, F32, states(F32)),
        ("adamw [f32, bf16 states]", F32, F32, states(BF16)),
        ("adamw [bf16]", BF16, BF16, states(BF16)),
        // f16 parameters and gradients keep f32 states: f16 cannot hold AdamW's exp_avg_sq.
        ("adamw [f16, f32 states]", F16, F16, states(F32)),
        ("adamw [bf16, f32 states]", BF16, BF16, states(F32)),
        (
            "adamw [bf16, f32 master+states]",
            BF16,
            BF16,
            states(F32).with_master_weights(),
        ),
        (
            "adamw [bf16, stochastic rounding]",
            BF16,
            BF16,
            states(BF16).with_stochastic_rounding(1),
        ),
        // torchao's 8-bit states (code for code with the reference, so the roofline's check
        // of the parameters holds as for the others).
        (
            "adamw [f32, 8-bit states]",
            F32,
            F32,
            Precision::default().with_8bit_states(),
        ),
    ]
}

/// A tensor of `values` stored as `param`, its gradient (the same values) as `grad`, each in a
/// buffer of its own padded to 16 bytes.
pub fn typed_tensor(ctx: &Context, values: &[f32], param: Dtype, grad: Dtype) -> Param {
    let typed = |label: &str, dtype: Dtype| {
        let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (values.len() as u64 * dtype.size()).next_multiple_of(16),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let range = BufferRange::typed(&buffer, 0, values.len() as u64, dtype);
        ctx.write_f32(&range, values).expect("upload");
        range
    };
    Param::new(typed("param", param), typed("grad", grad))
}

/// Values in [-0.5, 0.5): never zeros.
pub fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// Which clock a [`Timer`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamps around the work.
    Timestamps,
    /// Host wall time around submit and wait: includes submission and wake-up.
    Wall,
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::Timestamps => "GPU timestamp queries",
            Clock::Wall => "wall time around submit + wait (no TIMESTAMP_QUERY)",
        })
    }
}

struct Queries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

/// Times closures that record into a command encoder.
pub struct Timer {
    ctx: Context,
    queries: Option<Queries>,
}

impl Timer {
    /// A timer on `ctx`'s device; timestamps where it has them.
    pub fn new(ctx: &Context) -> Self {
        let device = ctx.device();
        let queries = device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| {
                let buffer = |label, usage| {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(label),
                        size: 16,
                        usage,
                        mapped_at_creation: false,
                    })
                };
                Queries {
                    set: device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("timer"),
                        ty: wgpu::QueryType::Timestamp,
                        count: 2,
                    }),
                    resolve: buffer(
                        "timer resolve",
                        wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    ),
                    readback: buffer(
                        "timer readback",
                        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    ),
                }
            });
        Timer {
            ctx: ctx.clone(),
            queries,
        }
    }

    /// The clock this timer reads.
    pub fn clock(&self) -> Clock {
        match self.queries {
            Some(_) => Clock::Timestamps,
            None => Clock::Wall,
        }
    }

    /// Records `work`, submits it, waits, and returns how long it took.
    pub fn time(&self, work: impl FnOnce(&mut wgpu::CommandEncoder)) -> Duration {
        let (device, queue) = (self.ctx.device(), self.ctx.queue());
        let mut encoder = device.create_command_encoder(&Default::default());
        let Some(q) = &self.queries else {
            let start = Instant::now();
            work(&mut encoder);
            queue.submit([encoder.finish()]);
            wait(&self.ctx);
            return start.elapsed();
        };
        let mark = |encoder: &mut wgpu::CommandEncoder, index: u32| {
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timer"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &q.set,
                    beginning_of_pass_write_index: (index == 0).then_some(0),
                    end_of_pass_write_index: (index == 1).then_some(1),
                }),
            });
        };
        mark(&mut encoder, 0);
        work(&mut encoder);
        mark(&mut encoder, 1);
        encoder.resolve_query_set(&q.set, 0..2, &q.resolve, 0);
        encoder.copy_buffer_to_buffer(&q.resolve, 0, &q.readback, 0, 16);
        queue.submit([encoder.finish()]);
        let slice = q.readback.slice(..);
        slice.map_async(wgpu::MapMode::Read, |r| r.expect("map timestamps"));
        wait(&self.ctx);
        let ticks: [u64; 2] =
            bytemuck::pod_read_unaligned(&slice.get_mapped_range().expect("mapped timestamps"));
        q.readback.unmap();
        let ns = ticks[1].saturating_sub(ticks[0]) as f64 * f64::from(queue.get_timestamp_period());
        Duration::from_nanos(ns as u64)
    }

    /// The median of `runs` timings of `work`, after one untimed warm-up run.
    #[allow(dead_code)] // the roofline example's
    pub fn median(&self, runs: usize, mut work: impl FnMut(&mut wgpu::CommandEncoder)) -> Duration {
        self.time(&mut work);
        let mut times: Vec<Duration> = (0..runs.max(1)).map(|_| self.time(&mut work)).collect();
        times.sort();
        times[times.len() / 2]
    }
}

/// Blocks until the queue is idle.
pub fn wait(ctx: &Context) {
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
}

/// `copy.wgsl`: `src` to `dst` (both `n` f32, `n` a multiple of 4) with the update kernels'
/// launch settings, one dispatch per binding-size chunk.
pub struct CopyKernel {
    pipeline: wgpu::ComputePipeline,
    // A bind group and its workgroup grid per chunk.
    chunks: Vec<(wgpu::BindGroup, (u32, u32))>,
}

impl CopyKernel {
    pub fn new(ctx: &Context, src: &wgpu::Buffer, dst: &wgpu::Buffer, n: usize) -> Self {
        let device = ctx.device();
        let tuning = ctx.tuning();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("copy"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../copy.wgsl").into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("copy"),
            layout: None,
            module: &module,
            entry_point: Some("copy"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &[
                    ("WORKGROUP_SIZE", f64::from(tuning.workgroup_size)),
                    (
                        "VEC4S_PER_INVOCATION",
                        f64::from(tuning.vec4s_per_invocation),
                    ),
                    ("RUNS", f64::from(u8::from(tuning.runs_per_invocation))),
                ],
                ..Default::default()
            },
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        let chunk_len = ctx.max_chunk_len() / 4 * 4;
        let tile = u64::from(tuning.workgroup_size * tuning.vec4s_per_invocation);
        let chunks = (0..n as u64)
            .step_by(chunk_len as usize)
            .map(|start| {
                let len = chunk_len.min(n as u64 - start);
                let range = |buffer| {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: 4 * start,
                        size: std::num::NonZeroU64::new(4 * len),
                    })
                };
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("copy"),
                    layout: &layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: range(src),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: range(dst),
                        },
                    ],
                });
                let tiles = (len / 4).div_ceil(tile).max(1);
                let x = tiles.min(65535);
                (bind_group, (x as u32, tiles.div_ceil(x) as u32))
            })
            .collect();
        CopyKernel { pipeline, chunks }
    }

    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&self.pipeline);
        for (bind_group, (x, y)) in &self.chunks {
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(*x, *y, 1);
        }
    }
}
