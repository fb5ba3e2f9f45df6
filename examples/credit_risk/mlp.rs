//! The credit-default network on the device: a multilayer perceptron whose forward pass,
//! backward pass and focal loss are WGSL compute kernels (`mlp.wgsl`, `loss.wgsl`), its ten
//! weight and bias tensors in one [`Arena`] so that the optimizer updates all of them in one
//! dispatch. A training step records the batch gather, forward, loss, backward and the
//! optimizer step into one command encoder; nothing is read back.

use std::sync::Arc;
use wgpu::util::DeviceExt;

use wgpu_optim::{Arena, BufferRange, Context, Dtype, Optimizer, Param, Result};

/// The weights and biases: tensor `2 l` is layer `l`'s weight, row-major [inputs, outputs]
/// (the transpose of PyTorch's `Linear.weight`), tensor `2 l + 1` its bias; stored as f32 or
/// bf16 (their gradients always f32). A network's tensors are `first..first + 2 layers` of an
/// arena it may share with other replicas (a population: [`Net::replicas`]).
pub struct Net {
    pub widths: Vec<usize>,
    pub arena: Arc<Arena>,
    pub first: usize,
}

impl Net {
    /// A network of these widths (inputs first, one output last): He-initialised weights
    /// (normal, variance 2 / fan-in, for the ReLU layers; 1 / fan-in for the output), zero
    /// hidden biases and an output bias at the logit of `prior` (Lin et al.'s initialisation
    /// for a rare class: the first losses are not swamped by the majority).
    pub fn new(
        ctx: &Context,
        widths: &[usize],
        prior: f64,
        seed: u64,
        weights: Dtype,
    ) -> Result<Net> {
        let mut nets = Self::replicas(ctx, widths, prior, &[seed], weights)?;
        Ok(nets.remove(0))
    }

    /// One network per seed, each initialised from its seed as [`Net::new`] does, all in one
    /// arena (replica after replica), so that one population steps them all.
    pub fn replicas(
        ctx: &Context,
        widths: &[usize],
        prior: f64,
        seeds: &[u64],
        weights: Dtype,
    ) -> Result<Vec<Net>> {
        let mut lens = Vec::new();
        for pair in widths.windows(2) {
            lens.extend([pair[0] * pair[1], pair[1]]);
        }
        let per_net = lens.len();
        // The gradients stay f32 whatever the weights' type.
        let arena = Arc::new(Arena::with_dtypes(
            ctx,
            &lens.repeat(seeds.len()),
            weights,
            Dtype::F32,
        )?);
        let layers = widths.len() - 1;
        let mut nets = Vec::new();
        for (r, &seed) in seeds.iter().enumerate() {
            let mut rng = super::data::Rng::new(seed);
            let first = r * per_net;
            for (l, pair) in widths.windows(2).enumerate() {
                let (fan_in, fan_out) = (pair[0], pair[1]);
                let gain = if l + 1 == layers { 1.0 } else { 2.0 };
                let std = (gain / fan_in as f64).sqrt();
                let weights: Vec<f32> = (0..fan_in * fan_out)
                    .map(|_| (rng.normal() * std) as f32)
                    .collect();
                arena.write_param(first + 2 * l, &weights)?;
                let bias = if l + 1 == layers {
                    (prior / (1.0 - prior)).ln() as f32
                } else {
                    0.0
                };
                arena.write_param(first + 2 * l + 1, &vec![bias; fan_out])?;
            }
            nets.push(Net {
                widths: widths.to_vec(),
                arena: arena.clone(),
                first,
            });
        }
        Ok(nets)
    }

    fn layers(&self) -> usize {
        self.widths.len() - 1
    }

    /// Tensor `i`'s parameter range.
    pub fn param(&self, i: usize) -> Result<BufferRange> {
        self.arena.param(self.first + i)
    }

    /// Tensor `i`'s gradient range.
    pub fn grad(&self, i: usize) -> Result<BufferRange> {
        self.arena.grad(self.first + i)
    }

    /// The network's tensors, for an optimizer.
    pub fn params(&self) -> Vec<Param> {
        self.arena.params()[self.first..self.first + 2 * self.layers()].to_vec()
    }
}

/// The loss: focal loss with `gamma` and the positives' weight `alpha` (negatives: 1 -
/// alpha), or binary cross-entropy (`gamma` 0, no `alpha`).
#[derive(Clone, Copy, Debug)]
pub struct Loss {
    pub gamma: f32,
    pub alpha: Option<f32>,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Dims {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BatchUniform {
    start: u32,
    rows: u32,
    features: u32,
    gamma: f32,
    alpha: f32,
    _pad: [u32; 3],
}

/// The compute pipelines, built once per context.
pub struct Kernels {
    matmul_layout: wgpu::BindGroupLayout,
    forward_hidden: wgpu::ComputePipeline,
    forward_out: wgpu::ComputePipeline,
    weight_grad: wgpu::ComputePipeline,
    input_grad: wgpu::ComputePipeline,
    bias_grad: wgpu::ComputePipeline,
    gather: wgpu::ComputePipeline,
    loss: wgpu::ComputePipeline,
}

impl Kernels {
    /// The pipelines for a network whose weights are stored as `weights` (f32 or bf16).
    pub fn new(ctx: &Context, weights: Dtype) -> Kernels {
        let bf16 = if weights == Dtype::BF16 { 1.0 } else { 0.0 };
        let device = ctx.device();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("mlp"),
            source: wgpu::ShaderSource::Wgsl(include_str!("mlp.wgsl").into()),
        });
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let matmul_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("matmul"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, true),
                storage(3, true),
                storage(4, true),
                storage(5, false),
                storage(6, true),
                storage(7, true),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("matmul"),
            bind_group_layouts: &[Some(&matmul_layout)],
            immediate_size: 0,
        });
        let pipeline = |entry: &str, constants: &[(&str, f64)]| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                // Every invocation writes its part of both tiles before the barrier: no
                // zeroing (on GL naga writes it as one array constructor, which llvmpipe
                // compiles for a minute and a half).
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        };
        let loss_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("loss"),
            source: wgpu::ShaderSource::Wgsl(include_str!("loss.wgsl").into()),
        });
        let auto = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &loss_module,
                entry_point: Some(entry),
                // The loss writes every slot of its workgroup array before reading it.
                compilation_options: wgpu::PipelineCompilationOptions {
                    zero_initialize_workgroup_memory: false,
                    ..Default::default()
                },
                cache: None,
            })
        };
        Kernels {
            forward_hidden: pipeline("matmul", &[("BIAS", 1.0), ("RELU", 1.0), ("B_BF16", bf16)]),
            forward_out: pipeline("matmul", &[("BIAS", 1.0), ("B_BF16", bf16)]),
            weight_grad: pipeline("matmul", &[("TRANS_A", 1.0)]),
            input_grad: pipeline(
                "matmul",
                &[("TRANS_B", 1.0), ("MASK", 1.0), ("B_BF16", bf16)],
            ),
            bias_grad: pipeline("bias_grad", &[]),
            gather: auto("gather"),
            loss: auto("focal_loss"),
            matmul_layout,
        }
    }
}

/// A matmul (or bias-gradient) dispatch: its pipeline, bind group and grid.
struct Dispatch {
    pipeline: &'static str,
    group: wgpu::BindGroup,
    grid: (u32, u32),
}

/// The buffers and dispatches of one batch size over a dataset on the device: a training pass
/// (forward, loss, backward into the arena's gradients) or an evaluation pass (forward only).
pub struct Pass {
    pub rows: usize,
    features: usize,
    batch: wgpu::Buffer,
    gather: wgpu::BindGroup,
    loss: Option<wgpu::BindGroup>,
    forward: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    /// The logits of the last batch (`[rows]`).
    pub logits: wgpu::Buffer,
    /// The last batch's mean loss (training passes).
    pub loss_value: wgpu::Buffer,
    loss_config: Loss,
}

fn storage_buffer(ctx: &Context, label: &str, bytes: u64) -> wgpu::Buffer {
    ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(16),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// A dataset on the device: records row-major [n, features] and their labels (0 or 1).
pub struct DeviceData {
    #[allow(dead_code)] // Read by the example, not by its tests.
    pub n: usize,
    pub features: usize,
    pub records: wgpu::Buffer,
    pub labels: wgpu::Buffer,
    /// The order records are visited in: a permutation per epoch for training, the identity
    /// for evaluation.
    pub order: wgpu::Buffer,
}

impl DeviceData {
    /// `records` and `labels` on the device, visited in their order; the order is padded
    /// (with record 0) to a multiple of `pad`, so that passes of `pad` rows read whole batches.
    pub fn upload(
        ctx: &Context,
        records: &[f32],
        labels: &[f32],
        features: usize,
        pad: usize,
    ) -> DeviceData {
        let n = labels.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.resize(n.next_multiple_of(pad.max(1)), 0);
        let init = |label, contents: &[u8]| {
            ctx.device()
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                })
        };
        DeviceData {
            n,
            features,
            records: init("records", bytemuck::cast_slice(records)),
            labels: init("labels", bytemuck::cast_slice(labels)),
            order: init("order", bytemuck::cast_slice(&order)),
        }
    }

    /// Room for `n` records of `features` attributes, to be filled with [`DeviceData::write`]
    /// (a chunk of a stream).
    #[allow(dead_code)] // Used by the example, not by its tests.
    pub fn with_capacity(ctx: &Context, n: usize, features: usize) -> DeviceData {
        let order: Vec<u32> = (0..n as u32).collect();
        DeviceData {
            n,
            features,
            records: storage_buffer(ctx, "records", (n * features * 4) as u64),
            labels: storage_buffer(ctx, "labels", (n * 4) as u64),
            order: ctx
                .device()
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("order"),
                    contents: bytemuck::cast_slice(&order),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                }),
        }
    }

    /// Replaces the first records (at most the capacity) from the next submit on.
    #[allow(dead_code)] // Used by the example, not by its tests.
    pub fn write(&self, ctx: &Context, records: &[f32], labels: &[f32]) {
        assert!(labels.len() <= self.n && records.len() == labels.len() * self.features);
        ctx.queue()
            .write_buffer(&self.records, 0, bytemuck::cast_slice(records));
        ctx.queue()
            .write_buffer(&self.labels, 0, bytemuck::cast_slice(labels));
    }

    /// Visits the records in `order` from the next submit on.
    pub fn set_order(&self, ctx: &Context, order: &[u32]) {
        ctx.queue()
            .write_buffer(&self.order, 0, bytemuck::cast_slice(order));
    }
}

impl Pass {
    /// A pass of `rows` records at a time over `data`, training (`loss` given: backward into
    /// the arena's gradients) or evaluating.
    pub fn new(
        ctx: &Context,
        kernels: &Kernels,
        net: &Net,
        data: &DeviceData,
        rows: usize,
        loss: Option<Loss>,
    ) -> Result<Pass> {
        let device = ctx.device();
        let layers = net.layers();
        let features = net.widths[0];
        assert_eq!(
            features, data.features,
            "the network's inputs are the data's features"
        );
        let x = storage_buffer(ctx, "x", (rows * features * 4) as u64);
        let y = storage_buffer(ctx, "y", (rows * 4) as u64);
        // Activations H_1..H_L (H_L: the logits) and their gradients dZ_1..dZ_L.
        let acts: Vec<wgpu::Buffer> = (1..=layers)
            .map(|l| storage_buffer(ctx, "activation", (rows * net.widths[l] * 4) as u64))
            .collect();
        let training = loss.is_some();
        let dz: Vec<wgpu::Buffer> = if training {
            (1..=layers)
                .map(|l| storage_buffer(ctx, "dz", (rows * net.widths[l] * 4) as u64))
                .collect()
        } else {
            Vec::new()
        };
        let loss_value = storage_buffer(ctx, "loss", 16);
        let batch = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("batch"),
            size: std::mem::size_of::<BatchUniform>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let gather_layout = kernels.gather.get_bind_group_layout(0);
        let gather = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("gather"),
            layout: &gather_layout,
            entries: &[
                entry(0, entire(&batch)),
                entry(1, entire(&data.order)),
                entry(2, entire(&data.records)),
                entry(3, entire(&data.labels)),
                entry(4, entire(&x)),
                entry(5, entire(&y)),
            ],
        });
        let logits = acts[layers - 1].clone();
        let loss_group = training.then(|| {
            let layout = kernels.loss.get_bind_group_layout(0);
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("loss"),
                layout: &layout,
                entries: &[
                    entry(0, entire(&batch)),
                    entry(5, entire(&y)),
                    entry(6, entire(&logits)),
                    entry(7, entire(&dz[layers - 1])),
                    entry(8, entire(&loss_value)),
                ],
            })
        });

        let dims_buffer = |m: usize, n: usize, k: usize| {
            let dims = Dims {
                m: m as u32,
                n: n as u32,
                k: k as u32,
                _pad: 0,
            };
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("dims"),
                contents: bytemuck::bytes_of(&dims),
                usage: wgpu::BufferUsages::UNIFORM,
            })
        };
        // An unused read-only binding: a small buffer of its own.
        let unused = storage_buffer(ctx, "unused", 16);
        // Weights in bf16 bind as words at 6 and 7 (and an unused f32 buffer at 2 and 3);
        // in f32 the other way round.
        let bf16 = net.param(0)?.dtype() == Dtype::BF16;
        let matmul = |pipeline: &'static str,
                      (m, n, k): (usize, usize, usize),
                      [a, b, bias, mask]: [wgpu::BindingResource<'_>; 4],
                      c: wgpu::BindingResource<'_>,
                      grid: (u32, u32)| {
            let dims = dims_buffer(m, n, k);
            let weights = bf16 && pipeline != "weight_grad" && pipeline != "bias_grad";
            let (b, bias, b16, bias16) = if weights {
                (entire(&unused), entire(&unused), b, bias)
            } else {
                (b, bias, entire(&unused), entire(&unused))
            };
            let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(pipeline),
                layout: &kernels.matmul_layout,
                entries: &[
                    entry(0, dims.as_entire_binding()),
                    entry(1, a),
                    entry(2, b),
                    entry(3, bias),
                    entry(4, mask),
                    entry(5, c),
                    entry(6, b16),
                    entry(7, bias16),
                ],
            });
            Dispatch {
                pipeline,
                group,
                grid,
            }
        };
        let tiles = |m: usize, n: usize| (n.div_ceil(64) as u32, m.div_ceil(64) as u32);
        let param = |i: usize| net.param(i);
        let grad = |i: usize| net.grad(i);
        let mut forward = Vec::new();
        let mut backward = Vec::new();
        for l in 0..layers {
            let (k, n) = (net.widths[l], net.widths[l + 1]);
            let input = if l == 0 { &x } else { &acts[l - 1] };
            let (w, b) = (param(2 * l)?, param(2 * l + 1)?);
            let pipeline = if l + 1 == layers {
                "forward_out"
            } else {
                "forward_hidden"
            };
            forward.push(matmul(
                pipeline,
                (rows, n, k),
                [entire(input), binding(&w), binding(&b), entire(&unused)],
                entire(&acts[l]),
                tiles(rows, n),
            ));
        }
        if training {
            for l in (0..layers).rev() {
                let (k, n) = (net.widths[l], net.widths[l + 1]);
                let input = if l == 0 { &x } else { &acts[l - 1] };
                let (dw, db) = (grad(2 * l)?, grad(2 * l + 1)?);
                // dW = H^T dZ: [k, n], inner dimension the batch.
                backward.push(matmul(
                    "weight_grad",
                    (k, n, rows),
                    [
                        entire(input),
                        entire(&dz[l]),
                        entire(&unused),
                        entire(&unused),
                    ],
                    binding(&dw),
                    tiles(k, n),
                ));
                // db = column sums of dZ.
                backward.push(matmul(
                    "bias_grad",
                    (rows, n, 0),
                    [
                        entire(&dz[l]),
                        entire(&unused),
                        entire(&unused),
                        entire(&unused),
                    ],
                    binding(&db),
                    (n.div_ceil(64) as u32, 1),
                ));
                if l > 0 {
                    // dZ_{l-1} = (dZ W^T) * (H_{l-1} > 0).
                    let w = param(2 * l)?;
                    backward.push(matmul(
                        "input_grad",
                        (rows, k, n),
                        [
                            entire(&dz[l]),
                            binding(&w),
                            entire(&unused),
                            entire(&acts[l - 1]),
                        ],
                        entire(&dz[l - 1]),
                        tiles(rows, k),
                    ));
                }
            }
        }
        Ok(Pass {
            rows,
            features,
            batch,
            gather,
            loss: loss_group,
            forward,
            backward,
            logits,
            loss_value,
            loss_config: loss.unwrap_or(Loss {
                gamma: 0.0,
                alpha: None,
            }),
        })
    }

    /// Sets the batch to `rows` records from position `start` of the data's order, for the
    /// next submit.
    pub fn set_batch(&self, ctx: &Context, start: usize) {
        let uniform = BatchUniform {
            start: start as u32,
            rows: self.rows as u32,
            features: self.features as u32,
            gamma: self.loss_config.gamma,
            alpha: self.loss_config.alpha.unwrap_or(-1.0),
            _pad: [0; 3],
        };
        ctx.queue()
            .write_buffer(&self.batch, 0, bytemuck::bytes_of(&uniform));
    }

    /// Records the gather and the forward pass.
    pub fn record_forward(&self, kernels: &Kernels, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&kernels.gather);
        pass.set_bind_group(0, &self.gather, &[]);
        pass.dispatch_workgroups(((self.rows * self.features) as u32).div_ceil(64), 1, 1);
        self.run(kernels, pass, &self.forward);
    }

    /// Records the loss and the backward pass (training passes).
    pub fn record_backward(&self, kernels: &Kernels, pass: &mut wgpu::ComputePass<'_>) {
        let loss = self.loss.as_ref().expect("a training pass");
        pass.set_pipeline(&kernels.loss);
        pass.set_bind_group(0, loss, &[]);
        pass.dispatch_workgroups(1, 1, 1);
        self.run(kernels, pass, &self.backward);
    }

    fn run(&self, kernels: &Kernels, pass: &mut wgpu::ComputePass<'_>, dispatches: &[Dispatch]) {
        for d in dispatches {
            let pipeline = match d.pipeline {
                "forward_hidden" => &kernels.forward_hidden,
                "forward_out" => &kernels.forward_out,
                "weight_grad" => &kernels.weight_grad,
                "input_grad" => &kernels.input_grad,
                _ => &kernels.bias_grad,
            };
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &d.group, &[]);
            pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
        }
    }

    /// One training step from position `start` of the order: gather, forward, loss, backward
    /// and `optimizer`'s step, in one encoder, submitted; nothing is waited for.
    pub fn train_step(
        &self,
        ctx: &Context,
        kernels: &Kernels,
        optimizer: &Optimizer,
        start: usize,
        extra: impl FnOnce(&mut wgpu::CommandEncoder),
    ) {
        self.set_batch(ctx, start);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.record_forward(kernels, &mut pass);
            self.record_backward(kernels, &mut pass);
        }
        optimizer.step(&mut encoder);
        extra(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }
}

fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
}

fn entire(buffer: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    buffer.as_entire_binding()
}

/// An arena tensor's range as a binding (whole 32-bit words: a bf16 tensor of odd length
/// binds the word its last element lies in).
fn binding(range: &BufferRange) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: range.buffer(),
        offset: range.offset(),
        size: std::num::NonZeroU64::new(range.word_end() - range.offset()),
    })
}

/// The focal loss kernel alone over `logits` and `labels` (one batch): the mean loss and the
/// gradient of the mean with respect to each logit. For tests (`tests/credit_risk.rs`).
#[allow(dead_code)]
pub fn focal_loss_on_device(
    ctx: &Context,
    kernels: &Kernels,
    logits: &[f32],
    labels: &[f32],
    loss: Loss,
) -> Result<(f32, Vec<f32>)> {
    let rows = logits.len();
    let device = ctx.device();
    let batch = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("batch"),
        contents: bytemuck::bytes_of(&BatchUniform {
            start: 0,
            rows: rows as u32,
            features: 1,
            gamma: loss.gamma,
            alpha: loss.alpha.unwrap_or(-1.0),
            _pad: [0; 3],
        }),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let (z, y) = (
        ctx.upload_f32("logits", logits),
        ctx.upload_f32("labels", labels),
    );
    let dz = storage_buffer(ctx, "dlogits", (rows * 4) as u64);
    let value = storage_buffer(ctx, "loss", 16);
    let layout = kernels.loss.get_bind_group_layout(0);
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("loss"),
        layout: &layout,
        entries: &[
            entry(0, entire(&batch)),
            entry(5, entire(&y)),
            entry(6, entire(&z)),
            entry(7, entire(&dz)),
            entry(8, entire(&value)),
        ],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&kernels.loss);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    ctx.queue().submit([encoder.finish()]);
    let mean = ctx.read_f32(&BufferRange::new(&value, 0, 1))?[0];
    Ok((mean, ctx.read_f32(&BufferRange::new(&dz, 0, rows as u64))?))
}
