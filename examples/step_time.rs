//! Optimizer-step wall time, measured the way the peer benchmark `burn-bench`
//! (`shared/peers/burn-bench`, Burn 0.22 on its wgpu backend) measures Burn, so that the two can
//! be run on the same adapter and compared line for line (`tools/side_by_side.py` does that).
//!
//! ```text
//! cargo build --release --example step_time
//! target/release/examples/step_time --optim adamw --n 16M --tensors 1000 \
//!     [--layout arena|separate] [--clip-norm 1.0] [--steps 20] [--warmup 3] [--lr 1e-3]
//!     [--precision f32|8bit-states|bf16|f16|bf16-states|bf16-f32-states]
//! ```
//!
//! What it mirrors from the peer:
//!
//! * **Tensors.** N f32 elements split into K tensors exactly as the peer splits them
//!   (`sizes[i] = n / k + (i < n % k)`), with the same counts syntax (`k`/`M` decimal, `Ki`/`Mi`
//!   binary), and the same values: the peer's splitmix64 generator and seed, drawing each
//!   tensor's parameters then its gradient, uniform in [-1, 1). The gradients are fixed and
//!   reused by every step, as in the peer.
//! * **Optimizers**, with the peer's settings: `adamw` (lr 1e-3, betas 0.9/0.999, eps 1e-8,
//!   decoupled weight decay 1e-2), `adam` (same, no weight decay), `sgd-momentum` (momentum
//!   0.9, dampening 0, no Nesterov). `--lr` changes the learning rate.
//! * **Layout.** `--layout arena` (default) puts every tensor in one [`Arena`]: one parameter
//!   buffer and one gradient buffer, so a step is one update dispatch per binding-size chunk.
//!   `--layout separate` gives each tensor buffers of its own, as Burn has: one dispatch each.
//! * **Precision** (ours only; the peer is f32). `--precision` picks the storage types:
//!   `f32` (default), `bf16` (parameters, gradients and states), `f16` (parameters and
//!   gradients; f32 states, as f16 cannot hold squared moments), `bf16-states` (f32
//!   parameters and gradients, bf16 states), `bf16-f32-states` (bf16 parameters and
//!   gradients, f32 states), `bf16-master` (the same with an f32 master copy), `bf16-sr` (bf16
//!   everything, stochastic rounding). The math is f32 in every case.
//! * **Clipping.** `--clip-norm X` turns on gradient processing with `max_norm = X`. Ours clips
//!   by the **global** norm over all tensors (`torch.nn.utils.clip_grad_norm_`); Burn's
//!   `GradientClippingConfig::Norm` clips **each tensor by its own** norm. At K = 1 the two
//!   are the same operation.
//! * **Timing.** W warm-up steps (pipeline creation happens before them, at build), one more
//!   untimed step, then S timed steps. Each step records into a fresh `CommandEncoder`,
//!   submits, and waits for the whole queue with `device.poll(wait_indefinitely)`: the
//!   counterpart of Burn's `optim.step(..)` + `Device::sync()`, host work included.
//!   `ms_per_step` is the wall time of the S steps divided by S; `median_ms` and `min_ms` are
//!   over the per-step times; `elems_per_s = N / (ms_per_step / 1000)`.
//! * **Self-check.** The first min(len0, 4096) parameters of tensor 0 are read back and
//!   compared with [`reference::Optimizer`] (the crate's CPU oracle, same configuration) run for
//!   the same W + 1 + S steps: over all tensors with a clip (the global norm needs every
//!   gradient), over those elements only without. Exit status 1 when they differ by more than
//!   1e-5 (relative to the value's magnitude, at least 1).
//!
//! Output (stdout), the `ours` line in the field order and formatting of the peer's `burn`
//! line (`dispatches` = update dispatches per step, besides the one prologue dispatch and,
//! with a clip, the norm reduction):
//!
//! ```text
//! info wgpu-optim=0.1.0 adapter=".." driver=".." api=Vulkan device_type=Cpu layout=arena ...
//! ours optim=adamw n=1000000 tensors=1000 steps=20 ms_per_step=3.3985 elems_per_s=2.9424e8 median_ms=3.3147 min_ms=3.1800 clip_norm=none layout=arena dispatches=1
//! check optim=adamw steps_applied=24 initial0=.. gpu0=.. cpu0=.. abs_diff=.. max_abs_diff_first1000=.. ok=true
//! ```
//!
//! The adapter is the one `Context::new_blocking` picks (`WGPU_BACKEND=vulkan` pins Vulkan
//! as the peer does; `WGPU_ADAPTER_NAME` picks by name).

use std::time::Instant;

use wgpu_optim::quant::quantizes;
use wgpu_optim::{
    reference, AdamConfig, AdamWConfig, Arena, BufferRange, Context, Dtype, GradConfig, Optimizer,
    OptimizerConfig, Param, ParamGroup, Precision, Quant8, Rounding, SgdConfig, Storage,
};

const HELP: &str = "usage: step_time [--optim adamw|adam|sgd-momentum] [--n N] [--tensors K]
                 [--layout arena|separate] [--clip-norm X] [--steps S] [--warmup W]
                 [--lr LR] [--seed SEED] [--precision P] [--verbose]

  --n N            total f32 elements over all parameter tensors (default 1Mi; suffixes
                   k/M = 1e3/1e6, Ki/Mi = 2^10/2^20)
  --tensors K      number of parameter tensors (N is split as evenly as possible; default 1)
  --layout         arena (default): all tensors in one param and one grad buffer;
                   separate: buffers of their own per tensor
  --steps S        timed optimizer steps (default 20)
  --optim          adamw (default; lr 1e-3, betas 0.9/0.999, eps 1e-8, wd 1e-2), adam (same,
                   no wd), sgd-momentum (momentum 0.9, dampening 0, no nesterov, no wd)
  --clip-norm X    clip by the GLOBAL L2 norm (clip_grad_norm_; Burn clips per tensor)
  --warmup W       untimed warm-up steps (default 3), then one more untimed step
  --lr LR          learning rate (default 1e-3)
  --seed SEED      splitmix64 seed of the values (default 0x5EED, the peer's)
  --precision P    storage types: f32 (default), 8bit-states (f32 params and grads,
                   torchao's 8-bit states), bf16 (params, grads and states),
                   f16 (params and grads, f32 states),
                   bf16-states (f32 params and grads), bf16-f32-states (bf16 params and grads),
                   bf16-master (bf16 params and grads, f32 states and master weights),
                   bf16-sr (bf16 everything, stochastic rounding)
  --verbose        per-step times";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Optim {
    AdamW,
    Adam,
    SgdMomentum,
}

impl Optim {
    fn name(self) -> &'static str {
        match self {
            Optim::AdamW => "adamw",
            Optim::Adam => "adam",
            Optim::SgdMomentum => "sgd-momentum",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    Arena,
    Separate,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Arena => "arena",
            Layout::Separate => "separate",
        }
    }
}

struct Args {
    n: usize,
    tensors: usize,
    steps: usize,
    warmup: usize,
    optim: Optim,
    layout: Layout,
    clip_norm: Option<f32>,
    lr: f64,
    seed: u64,
    precision: (&'static str, Storage, Precision),
    verbose: bool,
}

/// The `--precision` names, their storage types and precision options.
fn precision(name: &str) -> Option<(&'static str, Storage, Precision)> {
    use Dtype::*;
    let plain = |storage: Storage| (storage, Precision::default().with_states(storage.states));
    // f16 parameters and gradients keep f32 states: f16 cannot hold AdamW's squares.
    let [f32, bf16, f16, bf16_states, bf16_f32_states] = [
        Storage::F32,
        Storage::new(BF16, BF16, BF16),
        Storage::new(F16, F16, F32),
        Storage::new(F32, F32, BF16),
        Storage::new(BF16, BF16, F32),
    ]
    .map(plain);
    let master = (
        Storage {
            master: true,
            ..Storage::new(BF16, BF16, F32)
        },
        Precision::default().with_states(F32).with_master_weights(),
    );
    let stochastic = (
        Storage {
            rounding: Rounding::Stochastic { seed: 1 },
            ..Storage::new(BF16, BF16, BF16)
        },
        Precision::default().with_stochastic_rounding(1),
    );
    // 8-bit block-quantized states (torchao's): codes and scales; the math's type is f32.
    let eight_bit = (
        Storage {
            quant8: Some(Quant8 {
                unsigned: [false, true, true],
                ..Quant8::default()
            }),
            ..Storage::F32
        },
        Precision::default().with_8bit_states(),
    );
    [
        ("f32", f32),
        ("8bit-states", eight_bit),
        ("bf16", bf16),
        ("f16", f16),
        ("bf16-states", bf16_states),
        ("bf16-f32-states", bf16_f32_states),
        ("bf16-master", master),
        ("bf16-sr", stochastic),
    ]
    .into_iter()
    .find(|(n, _)| *n == name)
    .map(|(n, (storage, precision))| (n, storage, precision))
}

fn die(msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{HELP}");
    std::process::exit(2);
}

/// A count as the peer parses it: `k`/`M` decimal, `Ki`/`Mi` binary, fractions allowed.
fn parse_count(s: &str) -> usize {
    let s = s.trim();
    let (num, mul) = if let Some(x) = s.strip_suffix("Ki") {
        (x, 1usize << 10)
    } else if let Some(x) = s.strip_suffix("Mi") {
        (x, 1usize << 20)
    } else if let Some(x) = s.strip_suffix(['k', 'K']) {
        (x, 1_000usize)
    } else if let Some(x) = s.strip_suffix(['m', 'M']) {
        (x, 1_000_000usize)
    } else {
        (s, 1usize)
    };
    let v: f64 = num
        .parse()
        .unwrap_or_else(|_| die(&format!("bad count: {s}")));
    if !(v.is_finite() && v >= 0.0) {
        die(&format!("bad count: {s}"));
    }
    (v * mul as f64).round() as usize
}

/// A seed in decimal or `0x` hexadecimal.
fn parse_seed(s: &str) -> u64 {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.unwrap_or_else(|_| die(&format!("bad --seed {s}")))
}

fn parse_args() -> Args {
    let mut a = Args {
        n: 1 << 20,
        tensors: 1,
        steps: 20,
        warmup: 3,
        optim: Optim::AdamW,
        layout: Layout::Arena,
        clip_norm: None,
        lr: 1e-3,
        seed: 0x5EED,
        precision: precision("f32").expect("f32 is a precision"),
        verbose: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        argv.get(*i)
            .cloned()
            .unwrap_or_else(|| die(&format!("missing value for {}", argv[*i - 1])))
    };
    while i < argv.len() {
        match argv[i].as_str() {
            "--n" => a.n = parse_count(&val(&mut i)),
            "--tensors" => a.tensors = parse_count(&val(&mut i)),
            "--steps" => a.steps = parse_count(&val(&mut i)),
            "--warmup" => a.warmup = parse_count(&val(&mut i)),
            "--lr" => {
                let v = val(&mut i);
                a.lr = v.parse().unwrap_or_else(|_| die(&format!("bad --lr {v}")));
            }
            "--seed" => a.seed = parse_seed(&val(&mut i)),
            "--precision" => {
                let v = val(&mut i);
                a.precision =
                    precision(&v).unwrap_or_else(|| die(&format!("unknown --precision {v}")));
            }
            "--optim" => {
                a.optim = match val(&mut i).as_str() {
                    "adamw" => Optim::AdamW,
                    "adam" => Optim::Adam,
                    "sgd-momentum" | "sgd" => Optim::SgdMomentum,
                    o => die(&format!("unknown optimizer {o}")),
                }
            }
            "--layout" => {
                a.layout = match val(&mut i).as_str() {
                    "arena" => Layout::Arena,
                    "separate" => Layout::Separate,
                    o => die(&format!("--layout takes arena|separate, got {o}")),
                }
            }
            "--clip-norm" => {
                let v = val(&mut i);
                let x: f32 = v
                    .parse()
                    .unwrap_or_else(|_| die(&format!("bad --clip-norm {v}")));
                if !(x.is_finite() && x > 0.0) {
                    die(&format!("--clip-norm must be positive, got {v}"));
                }
                a.clip_norm = Some(x);
            }
            "--verbose" | "-v" => a.verbose = true,
            "--help" | "-h" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            o => die(&format!("unknown argument {o}")),
        }
        i += 1;
    }
    if a.tensors == 0 || a.n < a.tensors {
        die("need 1 <= tensors <= n");
    }
    if a.steps == 0 {
        die("need steps >= 1");
    }
    if !(a.lr.is_finite() && a.lr >= 0.0) {
        die("need a finite, non-negative --lr");
    }
    a
}

/// The peer's generator: splitmix64 -> uniform f32 in [-1, 1).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn fill(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.uniform()).collect()
    }
}

/// The peer's optimizer settings, every field set explicitly.
fn config(a: &Args) -> OptimizerConfig {
    match a.optim {
        Optim::AdamW => OptimizerConfig::AdamW(
            AdamWConfig::default()
                .with_lr(a.lr)
                .with_betas(0.9, 0.999)
                .with_eps(1e-8)
                .with_weight_decay(1e-2)
                .with_amsgrad(false)
                .with_maximize(false),
        ),
        Optim::Adam => OptimizerConfig::Adam(
            AdamConfig::default()
                .with_lr(a.lr)
                .with_betas(0.9, 0.999)
                .with_eps(1e-8)
                .with_weight_decay(0.0)
                .with_amsgrad(false)
                .with_maximize(false),
        ),
        Optim::SgdMomentum => OptimizerConfig::Sgd(
            SgdConfig::default()
                .with_lr(a.lr)
                .with_momentum(0.9)
                .with_dampening(0.0)
                .with_weight_decay(0.0)
                .with_nesterov(false)
                .with_maximize(false),
        ),
    }
}

fn grad_config(a: &Args) -> Option<GradConfig> {
    a.clip_norm
        .map(|x| GradConfig::default().with_max_norm(f64::from(x)))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Where the tensors live on the device: kept alive for the optimizer's lifetime.
enum Tensors {
    Arena(Box<Arena>),
    Separate(Vec<Param>),
}

impl Tensors {
    fn params(&self) -> Vec<Param> {
        match self {
            Tensors::Arena(arena) => arena.params(),
            Tensors::Separate(params) => params.clone(),
        }
    }

    /// The first `len` parameters of tensor 0 (blocking).
    fn read_first(&self, ctx: &Context, len: usize) -> wgpu_optim::Result<Vec<f32>> {
        let mut values = match self {
            Tensors::Arena(arena) => arena.read_param(0)?,
            Tensors::Separate(params) => ctx.read_f32(&params[0].param)?,
        };
        values.truncate(len);
        Ok(values)
    }
}

/// A buffer of its own holding `values` as `dtype`.
fn upload(
    ctx: &Context,
    label: &str,
    values: &[f32],
    dtype: Dtype,
) -> wgpu_optim::Result<BufferRange> {
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (values.len() as u64 * dtype.size()).next_multiple_of(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let range = BufferRange::typed(&buffer, 0, values.len() as u64, dtype);
    ctx.write_f32(&range, values)?;
    Ok(range)
}

/// One step as the timed loop runs it: fresh encoder, record, submit, wait for the queue.
fn step(ctx: &Context, optimizer: &Optimizer) -> wgpu_optim::Result<()> {
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("step_time step"),
        });
    optimizer.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    ctx.device().poll(wgpu::PollType::wait_indefinitely())?;
    Ok(())
}

fn main() -> wgpu_optim::Result<()> {
    let a = parse_args();
    let ctx = Context::new_blocking()?;
    let clip = a.clip_norm.map_or("none".to_string(), |c| c.to_string());
    let (adapter, driver, api, device_type) = match ctx.adapter_info() {
        Some(info) => (
            info.name.clone(),
            format!("{} {}", info.driver, info.driver_info),
            format!("{:?}", info.backend),
            format!("{:?}", info.device_type),
        ),
        None => Default::default(),
    };
    println!(
        "info wgpu-optim={} adapter=\"{adapter}\" driver=\"{driver}\" api={api} \
         device_type={device_type} layout={} sync=poll-wait warmup={} lr={:e} clip_norm={clip} \
         clip_by={}",
        env!("CARGO_PKG_VERSION"),
        a.layout.name(),
        a.warmup,
        a.lr,
        if a.clip_norm.is_some() {
            "global-norm(Burn:per-tensor)"
        } else {
            "none"
        },
    );

    // ---- host data: the peer's split, generator and draw order --------------------------------
    let k = a.tensors;
    let sizes: Vec<usize> = (0..k).map(|i| a.n / k + usize::from(i < a.n % k)).collect();
    let check_len = sizes[0].min(4096);
    // The reference needs every tensor with a global-norm clip, only tensor 0's first elements
    // otherwise (the update is elementwise).
    let keep_all = a.clip_norm.is_some();
    let mut host_params: Vec<Vec<f32>> = Vec::new();
    let mut host_grads: Vec<Vec<f32>> = Vec::new();
    let mut rng = Rng(a.seed);
    let t0 = Instant::now();
    let (precision_name, storage, precision) = a.precision;
    let mut tensors = match a.layout {
        Layout::Arena => Tensors::Arena(Box::new(Arena::with_dtypes(
            &ctx,
            &sizes,
            storage.param,
            storage.grad,
        )?)),
        Layout::Separate => Tensors::Separate(Vec::with_capacity(k)),
    };
    for (i, &len) in sizes.iter().enumerate() {
        let p = rng.fill(len);
        let g = rng.fill(len);
        match &mut tensors {
            Tensors::Arena(arena) => {
                arena.write_param(i, &p)?;
                arena.write_grad(i, &g)?;
            }
            Tensors::Separate(params) => params.push(Param::new(
                upload(&ctx, &format!("param{i}"), &p, storage.param)?,
                upload(&ctx, &format!("grad{i}"), &g, storage.grad)?,
            )),
        }
        // The reference starts from the values as stored.
        let p: Vec<f32> = p.iter().map(|&x| storage.param.round(x)).collect();
        if keep_all {
            host_params.push(p);
            host_grads.push(g);
        } else if i == 0 {
            host_params.push(p[..check_len].to_vec());
            host_grads.push(g[..check_len].to_vec());
        }
    }
    let initial0 = host_params[0][0];

    let group = ParamGroup {
        config: config(&a),
        params: tensors.params(),
    };
    let mut optimizer = Optimizer::with_precision(&ctx, vec![group], precision)?;
    optimizer.set_grad_processing(grad_config(&a))?;
    // Lands the uploads and the control writes; pipelines were built by `Optimizer::new`.
    ctx.queue().submit([]);
    ctx.device().poll(wgpu::PollType::wait_indefinitely())?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;

    // ---- warm-up, then one more untimed step (the peer's observed step) ----------------------
    let tw = Instant::now();
    for _ in 0..a.warmup + 1 {
        step(&ctx, &optimizer)?;
    }
    let warmup_ms = tw.elapsed().as_secs_f64() * 1e3;

    // ---- timed steps -------------------------------------------------------------------------
    let mut per_step = Vec::with_capacity(a.steps);
    let t_all = Instant::now();
    for _ in 0..a.steps {
        let ts = Instant::now();
        step(&ctx, &optimizer)?;
        per_step.push(ts.elapsed().as_secs_f64() * 1e3);
    }
    let total_ms = t_all.elapsed().as_secs_f64() * 1e3;
    let total_steps = a.warmup + 1 + a.steps;
    let ms_per_step = total_ms / a.steps as f64;
    let elems_per_s = a.n as f64 / (ms_per_step / 1e3);
    let min_ms = per_step.iter().copied().fold(f64::INFINITY, f64::min);
    let med_ms = median(&mut per_step.clone());

    println!(
        "ours optim={} n={} tensors={} steps={} ms_per_step={:.4} elems_per_s={:.4e} \
         median_ms={:.4} min_ms={:.4} clip_norm={clip} layout={} dispatches={} \
         precision={precision_name} bytes_per_element={}",
        a.optim.name(),
        a.n,
        k,
        a.steps,
        ms_per_step,
        elems_per_s,
        med_ms,
        min_ms,
        a.layout.name(),
        optimizer.update_dispatches(),
        optimizer.bytes_per_element(),
    );
    if a.verbose {
        println!(
            "timing setup_ms={setup_ms:.1} warmup_ms={warmup_ms:.1} vec4_dispatches={} \
             per_step_ms={:?}",
            optimizer.vec4_dispatches(),
            per_step
                .iter()
                .map(|x| (x * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
    }

    // ---- correctness self-check ----------------------------------------------------------------
    let gpu = tensors.read_first(&ctx, check_len)?;
    let device_steps = optimizer.read_step()?;
    let lens: Vec<usize> = host_params.iter().map(Vec::len).collect();
    // Whether tensor 0 keeps 8-bit states follows its whole length (torchao's rule), not the
    // checked prefix's (the reference sees whole tensors only with a clip): a tensor that does
    // steps its first 4096 elements (whole blocks, each quantized alone) as a tensor of 4096
    // would; one that does not keeps f32 states.
    let storage = match storage.quant8 {
        Some(_) if !keep_all && !quantizes(sizes[0] as u64) => Storage {
            quant8: None,
            ..storage
        },
        _ => storage,
    };
    let mut cpu_optimizer = reference::Optimizer::with_storage(&config(&a), &lens, storage)?;
    cpu_optimizer.set_grad_processing(grad_config(&a))?;
    for _ in 0..total_steps {
        cpu_optimizer.step(&mut host_params, &host_grads)?;
    }
    let cpu = &host_params[0][..check_len];
    let diff0 = (gpu[0] - cpu[0]).abs();
    let mut max_diff = 0f32;
    let mut within = true;
    // Two units in the last place of a 16-bit parameter type: a last-place difference of the
    // f32 math may round a store the other way.
    let tolerance = match storage.param {
        Dtype::F32 => 1e-5,
        Dtype::F16 => 2.0 * 2f32.powi(-10),
        Dtype::BF16 => 2.0 * 2f32.powi(-7),
    };
    for (&x, &y) in gpu.iter().zip(cpu) {
        let d = (x - y).abs();
        max_diff = max_diff.max(d);
        within &= d <= tolerance * y.abs().max(1.0);
    }
    // A 16-bit parameter may not move at all (an update below half its last place: the
    // reference then stays put too).
    let moved = gpu[0] != initial0 || cpu[0] == initial0;
    let ok = within && moved && device_steps as usize == total_steps;
    println!(
        "check optim={} steps_applied={total_steps} device_step={device_steps} initial0={initial0:.8} \
         gpu0={:.8} cpu0={:.8} abs_diff={diff0:.3e} max_abs_diff_first{check_len}={max_diff:.3e} \
         ok={ok}",
        a.optim.name(),
        gpu[0],
        cpu[0],
    );
    if !ok {
        eprintln!(
            "error: self-check failed (tolerance {tolerance:e} x max(1, |cpu|); moved={moved}, \
             device step {device_steps} of {total_steps})"
        );
        std::process::exit(1);
    }
    Ok(())
}
