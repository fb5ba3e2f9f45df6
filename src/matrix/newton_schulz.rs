//! [`NewtonSchulz`]: the orthogonalization of Muon over a batch of matrices of any shapes, each
//! iteration three dispatches (the grid's z is the matrix) whatever the batch's size.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{invalid, Error, Result};
use crate::gpu::pipeline::{
    bind_group, bind_group_layout, compute_pipeline, create_module, BufferEntry,
};
use crate::gpu::{capture_errors, BufferRange, Context};
use crate::kernel::{concatenate, prelude, shader_file, ShaderFile, Slots};

/// The Newton-Schulz module's file.
pub const NEWTON_SCHULZ: ShaderFile = shader_file!("newton_schulz.wgsl");

/// The bindings of the Newton-Schulz module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NsBinding {
    Table,
    Input,
    Output,
    SumSquares,
    XIn,
    XOut,
    Gram,
    Poly,
}

impl Slots for NsBinding {
    const ALL: &'static [Self] = &[
        NsBinding::Table,
        NsBinding::Input,
        NsBinding::Output,
        NsBinding::SumSquares,
        NsBinding::XIn,
        NsBinding::XOut,
        NsBinding::Gram,
        NsBinding::Poly,
    ];

    fn index(self) -> u32 {
        self as u32
    }

    fn constant(self) -> &'static str {
        match self {
            NsBinding::Table => "TABLE_BINDING",
            NsBinding::Input => "INPUT_BINDING",
            NsBinding::Output => "OUTPUT_BINDING",
            NsBinding::SumSquares => "SUMSQ_BINDING",
            NsBinding::XIn => "X_IN_BINDING",
            NsBinding::XOut => "X_OUT_BINDING",
            NsBinding::Gram => "GRAM_BINDING",
            NsBinding::Poly => "POLY_BINDING",
        }
    }
}

/// The files of the Newton-Schulz module.
pub fn newton_schulz_files() -> Vec<ShaderFile> {
    vec![NEWTON_SCHULZ]
}

/// The Newton-Schulz module's WGSL source with the iterate stored in f32 (`f16_iterate`
/// false) or f16: its bindings' prelude, the iterate's declarations and its file.
pub fn newton_schulz_source(f16_iterate: bool) -> String {
    let prelude = prelude::<NsBinding>() + iterate_declarations(f16_iterate);
    concatenate(&prelude, &newton_schulz_files())
}

/// The iterate's buffers and their access, in f32 or as f16 pairs packed in u32
/// (`pack2x16float`: any adapter, no `shader-f16` needed); the math is f32 either way.
fn iterate_declarations(f16_iterate: bool) -> &'static str {
    if f16_iterate {
        "// The iterate X in f16, two to a u32 word, a vec4 of X in a vec2<u32>.
@group(0) @binding(X_IN_BINDING) var<storage, read> x_in: array<vec2<u32>>;
@group(0) @binding(X_OUT_BINDING) var<storage, read_write> x_out: array<vec2<u32>>;
fn x_in_at(at: u32) -> vec4<f32> {
    let w = x_in[at];
    return vec4(unpack2x16float(w.x), unpack2x16float(w.y));
}
fn x_out_set(at: u32, v: vec4<f32>) {
    x_out[at] = vec2(pack2x16float(v.xy), pack2x16float(v.zw));
}
"
    } else {
        "// The iterate X in f32.
@group(0) @binding(X_IN_BINDING) var<storage, read> x_in: array<vec4<f32>>;
@group(0) @binding(X_OUT_BINDING) var<storage, read_write> x_out: array<vec4<f32>>;
fn x_in_at(at: u32) -> vec4<f32> {
    return x_in[at];
}
fn x_out_set(at: u32, v: vec4<f32>) {
    x_out[at] = v;
}
"
    }
}

/// What the matrix is divided by before the iterations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NormFloor {
    /// `max(||X||_F, eps)`: `torch.optim.Muon`'s `norm().clamp(min=eps)` (the default).
    #[default]
    Max,
    /// `||X||_F + eps`: `optax.contrib.muon`'s (Frobenius preconditioning).
    Add,
}

/// How a batch runs, beyond its coefficients, steps and eps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NsOptions {
    /// What each matrix is divided by first (PyTorch's floor by default).
    pub norm_floor: NormFloor,
    /// Store the iterate X in f16 (the math stays f32): half its bytes, on any adapter (f16
    /// pairs packed in 32-bit words); results within about 1e-3 of the f32 iterate's, as
    /// close to float64 as PyTorch's bfloat16 iteration or closer (tests/newton_schulz.rs).
    pub f16_iterate: bool,
}

/// Cache key of the module's pipelines (one set per device and options).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct NsKey(NsOptions);

struct NsPipelines {
    layout: wgpu::BindGroupLayout,
    sum_squares: wgpu::ComputePipeline,
    load: wgpu::ComputePipeline,
    // Gram, polynomial, update (the `KIND` override).
    multiply: [wgpu::ComputePipeline; 3],
    store: wgpu::ComputePipeline,
}

/// A `multiply` workgroup: WG_X x WG_Y invocations, each 16 rows by 4 columns of the result
/// (the shader's `ROWS` and `PER`), so a tile of TILE columns by TILE_ROWS rows; and the side of
/// a `load` or `store` workgroup's square of elements.
const WG_X: u32 = 8;
const WG_Y: u32 = 8;
const TILE: u32 = WG_X * 4;
const SQUARE: u32 = 16;
const TILE_ROWS: u32 = WG_Y * 16;

/// Newton-Schulz orthogonalization (`torch.optim.Muon`'s `_zeropower_via_newtonschulz`, in f32)
/// of a batch of matrices of any shapes: one dispatch for every matrix's norm, one to load and
/// normalize, three per iteration (`G = X X^T`, `H = b G + c G G`, `X <- a X + H X`), one to
/// store. A matrix taller than wide is transposed as it is loaded and back as it is stored.
///
/// The matrices are read from [`NewtonSchulz::input`] (row-major, each `rows x cols`) and the
/// results written to [`NewtonSchulz::output`], ranges of two buffers the object owns: a Muon
/// step writes its momentum update into the first and reads the second. The CPU mirror is
/// [`reference::newton_schulz`](crate::reference::newton_schulz).
///
/// ```no_run
/// # use wgpu_optim::{matrix::NewtonSchulz, Context};
/// # fn demo(ctx: &Context) -> wgpu_optim::Result<()> {
/// let ns = NewtonSchulz::new(ctx, &[(256, 128), (128, 64)], [3.4445, -4.7750, 2.0315], 5, 1e-7)?;
/// ctx.write_f32(&ns.input(0)?, &vec![0.5; 256 * 128])?;
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// ns.record(&mut encoder);
/// ctx.queue().submit([encoder.finish()]);
/// let orthogonalized = ctx.read_f32(&ns.output(0)?)?;
/// # Ok(()) }
/// ```
pub struct NewtonSchulz {
    pipelines: Arc<NsPipelines>,
    shapes: Vec<(usize, usize)>,
    // Each matrix's first element in `input` and `output`.
    offsets: Vec<u64>,
    input: wgpu::Buffer,
    output: wgpu::Buffer,
    // [x_in = X1, x_out = X0] and [x_in = X0, x_out = X1]: the iterations alternate.
    groups: [wgpu::BindGroup; 2],
    steps: u32,
    count: u32,
    // The largest m and n (rounded up to 4) over the matrices (m <= n after transposing).
    max_m: u32,
    max_n: u32,
}

/// Refuses Newton-Schulz settings the f32 iteration cannot run, or runs without effect:
/// coefficients not finite in f32, a norm floor that is not positive, 0 or 100+ iterations
/// (PyTorch refuses 100 and more; 0 would leave the update merely normalized).
pub(crate) fn check_iteration(coefficients: [f64; 3], steps: u32, eps: f64) -> Result<()> {
    for (name, value) in ["ns_a", "ns_b", "ns_c"].into_iter().zip(coefficients) {
        if !(value as f32).is_finite() {
            return invalid(name, value, "a value finite in f32");
        }
    }
    if !((eps as f32).is_finite() && eps as f32 > 0.0) {
        return invalid("eps", eps, "a value > 0, finite in f32");
    }
    if !(1..100).contains(&steps) {
        return invalid("ns_steps", steps.into(), "1 to 99 iterations");
    }
    Ok(())
}

fn groups_of(len: u32, side: u32) -> u32 {
    len.div_ceil(side)
}

impl NewtonSchulz {
    /// Prepares the orthogonalization of matrices of these `(rows, cols)` shapes with
    /// coefficients `(a, b, c)`, `steps` iterations (1 to 99) and norm floor `eps` (> 0).
    /// Refused: an empty batch or matrix, values not finite in f32, more matrices than one
    /// dispatch's grid holds, buffers past one storage binding.
    pub fn new(
        ctx: &Context,
        shapes: &[(usize, usize)],
        coefficients: [f64; 3],
        steps: u32,
        eps: f64,
    ) -> Result<Self> {
        Self::with_options(ctx, shapes, coefficients, steps, eps, NsOptions::default())
    }

    /// [`NewtonSchulz::new`] with `options`: Optax's norm floor (`||X||_F + eps`,
    /// [`NormFloor::Add`]), an f16 iterate.
    pub fn with_options(
        ctx: &Context,
        shapes: &[(usize, usize)],
        coefficients: [f64; 3],
        steps: u32,
        eps: f64,
        options: NsOptions,
    ) -> Result<Self> {
        check_iteration(coefficients, steps, eps)?;
        if shapes.is_empty() || shapes.iter().any(|&(r, c)| r == 0 || c == 0) {
            return Err(Error::InvalidOptions(
                "Newton-Schulz needs at least one matrix, each of at least one row and column",
            ));
        }
        if shapes.len() as u64 > ctx.max_workgroups() {
            return Err(Error::InvalidOptions(
                "more matrices than one dispatch's grid holds (max_workgroups_per_dispatch)",
            ));
        }
        let device = ctx.device();
        let (mut x_len, mut g_len, mut io_len) = (0u64, 0u64, 0u64);
        let mut table: Vec<u32> = Vec::new();
        let mut offsets = Vec::with_capacity(shapes.len());
        let (mut max_m, mut max_n) = (0u32, 0u32);
        for &(rows, cols) in shapes {
            let (m, n) = (rows.min(cols) as u64, rows.max(cols) as u64);
            // Rows padded to whole vec4s (zeros).
            let (m4, n4) = (m.next_multiple_of(4), n.next_multiple_of(4));
            let entry = [x_len, g_len, io_len, m, n, u64::from(rows > cols), n4, m4];
            if entry.iter().any(|&v| v > u64::from(u32::MAX)) {
                return Err(Error::InvalidOptions("a matrix past 2^32 elements"));
            }
            table.extend(entry.map(|v| v as u32));
            offsets.push(io_len);
            max_m = max_m.max(m as u32);
            max_n = max_n.max(n4 as u32);
            x_len += m * n4;
            g_len += m * m4;
            io_len += m * n;
        }
        let limit = device.limits().max_storage_buffer_binding_size;
        // 32-bit words of the iterate: two f16 values to a word.
        let x_words = if options.f16_iterate {
            x_len / 2
        } else {
            x_len
        };
        if x_words.max(g_len) * 4 > limit {
            return Err(Error::InvalidOptions(
                "the batch's matrices past one storage binding (max_storage_buffer_binding_size)",
            ));
        }
        let pipelines = ctx.cached(NsKey(options), |device| build_pipelines(device, options))?;
        capture_errors(device, || {
            let buffer = |label: &str, len: u64, usage: wgpu::BufferUsages| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: (len.max(1) * 4).next_multiple_of(16),
                    usage: wgpu::BufferUsages::STORAGE | usage,
                    mapped_at_creation: false,
                })
            };
            let copy = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
            let input = buffer("wgpu-optim ns input", io_len, copy);
            let output = buffer("wgpu-optim ns output", io_len, copy);
            let sumsq = buffer("wgpu-optim ns sumsq", shapes.len() as u64, copy);
            let x = [
                buffer("wgpu-optim ns x0", x_words, copy),
                buffer("wgpu-optim ns x1", x_words, copy),
            ];
            let gram = buffer("wgpu-optim ns gram", g_len, copy);
            let poly = buffer("wgpu-optim ns poly", g_len, copy);
            let head = coefficients
                .map(|v| v as f32)
                .into_iter()
                .chain([eps as f32])
                .map(f32::to_bits);
            let words: Vec<u32> = head.chain(table).collect();
            let table = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-optim ns table"),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::STORAGE,
            });
            use NsBinding as B;
            let group = |x_in: &wgpu::Buffer, x_out: &wgpu::Buffer| {
                bind_group(
                    device,
                    "wgpu-optim newton-schulz",
                    &pipelines.layout,
                    &[
                        (B::Table.index(), table.as_entire_binding()),
                        (B::Input.index(), input.as_entire_binding()),
                        (B::Output.index(), output.as_entire_binding()),
                        (B::SumSquares.index(), sumsq.as_entire_binding()),
                        (B::XIn.index(), x_in.as_entire_binding()),
                        (B::XOut.index(), x_out.as_entire_binding()),
                        (B::Gram.index(), gram.as_entire_binding()),
                        (B::Poly.index(), poly.as_entire_binding()),
                    ],
                )
            };
            let groups = [group(&x[1], &x[0]), group(&x[0], &x[1])];
            NewtonSchulz {
                pipelines,
                shapes: shapes.to_vec(),
                offsets,
                input,
                output,
                groups,
                steps,
                count: shapes.len() as u32,
                max_m,
                max_n,
            }
        })
    }

    fn range(&self, buffer: &wgpu::Buffer, index: usize) -> Result<BufferRange> {
        let &(rows, cols) = self.shapes.get(index).ok_or(Error::NoSuchTensor {
            owner: "Newton-Schulz batch",
            index,
            count: self.shapes.len(),
        })?;
        let offset = self.offsets[index] * 4;
        Ok(BufferRange::new(buffer, offset, (rows * cols) as u64))
    }

    /// Where matrix `index` is read from: `rows x cols` f32 values, row-major.
    pub fn input(&self, index: usize) -> Result<BufferRange> {
        self.range(&self.input, index)
    }

    /// Where matrix `index`'s orthogonalization is written: `rows x cols`, row-major.
    pub fn output(&self, index: usize) -> Result<BufferRange> {
        self.range(&self.output, index)
    }

    /// The buffer every matrix is read from ([`NewtonSchulz::input`]'s).
    pub(crate) fn input_buffer(&self) -> &wgpu::Buffer {
        &self.input
    }

    /// The buffer every result is written to ([`NewtonSchulz::output`]'s).
    pub(crate) fn output_buffer(&self) -> &wgpu::Buffer {
        &self.output
    }

    /// The matrices' shapes, as given.
    pub fn shapes(&self) -> &[(usize, usize)] {
        &self.shapes
    }

    /// Dispatches a [`record`](NewtonSchulz::record) makes: 3 per iteration and 3 more,
    /// whatever the number of matrices.
    pub fn dispatches(&self) -> usize {
        3 * self.steps as usize + 3
    }

    /// Records the orthogonalization of every matrix of the batch into `encoder`, in one
    /// compute pass.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-optim newton-schulz"),
            timestamp_writes: None,
        });
        self.record_into(&mut pass);
    }

    /// Records the orthogonalization into a compute pass already begun (a Muon step's).
    pub(crate) fn record_into(&self, pass: &mut wgpu::ComputePass<'_>) {
        let p = &self.pipelines;
        // Load and store: an invocation per 4 columns of a row.
        let square = (
            groups_of(self.max_n / 4, SQUARE),
            groups_of(self.max_m, SQUARE),
            self.count,
        );
        pass.set_bind_group(0, &self.groups[0], &[]);
        pass.set_pipeline(&p.sum_squares);
        pass.dispatch_workgroups(self.count, 1, 1);
        pass.set_pipeline(&p.load); // writes X0
        pass.dispatch_workgroups(square.0, square.1, square.2);
        let gram = (
            groups_of(self.max_m, TILE),
            groups_of(self.max_m, TILE_ROWS),
        );
        let grids = [gram, gram, (groups_of(self.max_n, TILE), gram.1)];
        for step in 0..self.steps {
            // Iteration `step` reads X0 at even steps (group 1), X1 at odd (group 0).
            pass.set_bind_group(0, &self.groups[1 - (step % 2) as usize], &[]);
            for (pipeline, &(x, y)) in p.multiply.iter().zip(&grids) {
                pass.set_pipeline(pipeline);
                pass.dispatch_workgroups(x, y, self.count);
            }
        }
        // The last iteration wrote X1 if the count is odd: group 0 reads it as x_in.
        pass.set_bind_group(0, &self.groups[(1 - self.steps % 2) as usize], &[]);
        pass.set_pipeline(&p.store);
        pass.dispatch_workgroups(square.0, square.1, square.2);
    }
}

fn build_pipelines(device: &wgpu::Device, options: NsOptions) -> NsPipelines {
    use NsBinding as B;
    let source = newton_schulz_source(options.f16_iterate);
    let module = create_module(device, "newton_schulz", &source);
    let entries = [
        BufferEntry::read(B::Table.index()),
        BufferEntry::read(B::Input.index()),
        BufferEntry::read_write(B::Output.index()),
        BufferEntry::read_write(B::SumSquares.index()),
        BufferEntry::read(B::XIn.index()),
        BufferEntry::read_write(B::XOut.index()),
        BufferEntry::read_write(B::Gram.index()),
        BufferEntry::read_write(B::Poly.index()),
    ];
    let layout = bind_group_layout(device, "newton_schulz", &entries);
    let pipeline = |entry: &str, constants: &[(&str, f64)]| {
        compute_pipeline(device, &module, entry, &layout, constants)
    };
    let multiply = |kind: u32| pipeline("multiply", &[("KIND", f64::from(kind))]);
    NsPipelines {
        sum_squares: pipeline("sum_squares", &[]),
        load: pipeline(
            "load",
            &[(
                "NORM_PLUS_EPS",
                f64::from(options.norm_floor == NormFloor::Add),
            )],
        ),
        multiply: [multiply(0), multiply(1), multiply(2)],
        store: pipeline("store", &[]),
        layout,
    }
}
