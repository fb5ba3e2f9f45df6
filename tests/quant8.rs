//! 8-bit block-quantized states on the device (`Precision::with_8bit_states`) against the CPU
//! reference (`reference::Optimizer::with_storage` with the device's storage), which runs the
//! same f32 update over the dequantized states and requantizes with the host codec
//! (`wgpu_optim::quant`, itself checked against torchao in tests/quant8_golden.rs): codes,
//! scales and parameters step by step, for Adam, AdamW (and AMSGrad), SGD with momentum and
//! Lion over f32, bf16 and f16 parameters, beside the tensors torchao keeps in full precision
//! (fewer than 4096 elements, or not whole blocks) in the same optimizer; checkpoints,
//! snapshots, skipped steps, non-finite values; the bad input; the memory.

mod common;

use common::{assert_close, context, Rng};
use std::sync::{Mutex, OnceLock};
use wgpu_optim::quant::{self, dynamic_map, quantize, quantizes, BLOCK};
use wgpu_optim::shaders;
use wgpu_optim::{
    reference, AdagradConfig, AdamConfig, AdamWConfig, BufferRange, Context, Dtype, Error,
    GradConfig, LionConfig, Optimizer, OptimizerConfig, Param, ParamGroup, Precision, SgdConfig,
    Tuning,
};

/// Tensors of `lens` in one buffer (each at a multiple of the offset alignment, so that most
/// blocks straddle 256-element boundaries of the buffer), stepped with 8-bit states on the
/// device and on the host.
struct Quant8Run {
    ctx: &'static Context,
    params: Vec<Param>,
    host: Vec<Vec<f32>>,
    device: Optimizer,
    reference: reference::Optimizer,
    rng: Rng,
}

fn buffer(ctx: &Context, label: &str, bytes: u64) -> wgpu::Buffer {
    ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.next_multiple_of(16).max(16),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// `lens` laid out in one parameter buffer and one gradient buffer of `dtype`.
fn tensors(ctx: &Context, lens: &[usize], dtype: Dtype) -> Vec<Param> {
    let align = u64::from(ctx.device().limits().min_storage_buffer_offset_alignment);
    let mut offsets = Vec::new();
    let mut end = 0u64;
    for &len in lens {
        offsets.push(end);
        end = (end + len as u64 * dtype.size()).next_multiple_of(align);
    }
    let params = buffer(ctx, "params", end);
    let grads = buffer(ctx, "grads", end);
    lens.iter()
        .zip(&offsets)
        .map(|(&len, &offset)| {
            Param::new(
                BufferRange::typed(&params, offset, len as u64, dtype),
                BufferRange::typed(&grads, offset, len as u64, dtype),
            )
        })
        .collect()
}

impl Quant8Run {
    fn new(config: &OptimizerConfig, lens: &[usize], dtype: Dtype, precision: Precision) -> Self {
        Quant8Run::on(context(), config, lens, dtype, precision)
    }

    fn on(
        ctx: &'static Context,
        config: &OptimizerConfig,
        lens: &[usize],
        dtype: Dtype,
        precision: Precision,
    ) -> Self {
        let params = tensors(ctx, lens, dtype);
        let mut rng = Rng::new(lens.len() as u64 * 7919 + lens[0] as u64);
        let host: Vec<Vec<f32>> = lens
            .iter()
            .map(|&len| rng.vector(len).iter().map(|&v| dtype.round(v)).collect())
            .collect();
        for (p, values) in params.iter().zip(&host) {
            ctx.write_f32(&p.param, values).unwrap();
        }
        let groups = vec![ParamGroup {
            config: config.clone(),
            params: params.clone(),
        }];
        let device = Optimizer::with_precision(ctx, groups, precision.with_8bit_states()).unwrap();
        assert!(device.quantized_states());
        let reference = reference::Optimizer::with_storage(config, lens, device.storage()).unwrap();
        Quant8Run {
            ctx,
            params,
            host,
            device,
            reference,
            rng,
        }
    }

    fn step_with(&mut self, grads: &[Vec<f32>]) {
        let ctx = self.ctx;
        for (p, g) in self.params.iter().zip(grads) {
            ctx.write_f32(&p.grad, g).unwrap();
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        self.device.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        let rounded: Vec<Vec<f32>> = grads
            .iter()
            .zip(&self.params)
            .map(|(g, p)| g.iter().map(|&v| p.grad.dtype().round(v)).collect())
            .collect();
        self.reference.step(&mut self.host, &rounded).unwrap();
    }

    /// Gradients with every block's magnitude different (so that scales differ), one block
    /// of zeros per tensor and an outlier in some blocks.
    fn gradients(&mut self) -> Vec<Vec<f32>> {
        let lens: Vec<usize> = self.host.iter().map(Vec::len).collect();
        lens.iter()
            .map(|&len| {
                let mut g = self.rng.gradient(len);
                for (b, block) in g.chunks_mut(BLOCK).enumerate() {
                    let scale = [1e-3, 1.0, 3e-2, 0.0, 10.0][b % 5];
                    block.iter_mut().for_each(|v| *v *= scale);
                }
                g
            })
            .collect()
    }

    /// `steps` steps of fresh gradients, each compared.
    fn steps_compared(&mut self, steps: u32, what: &str) {
        for step in 1..=steps {
            let grads = self.gradients();
            self.step_with(&grads);
            self.compare(&format!("{what} step {step}"));
        }
    }

    /// Every state's codes and scales equal to the reference's (the values of full-precision
    /// states close), and the parameters close.
    fn compare(&self, what: &str) {
        let ctx = self.ctx;
        for (i, p) in self.params.iter().enumerate() {
            let device = ctx.read_f32(&p.param).unwrap();
            assert_close(&format!("{what}: tensor {i} param"), &device, &self.host[i]);
            for state in self.device.state_specs() {
                let name = state.name;
                if !quantizes(p.len()) {
                    assert!(matches!(
                        self.device.read_quantized_state(i, name),
                        Err(Error::Quantized(_))
                    ));
                    let values = self.device.read_state(i, name).unwrap();
                    let host = self.reference.state(i, name).unwrap();
                    assert_close(&format!("{what}: tensor {i} {name}"), &values, host);
                    continue;
                }
                let device = self.device.read_quantized_state(i, name).unwrap();
                let host = self.reference.quantized_state(i, name).unwrap();
                assert_eq!(device.signed, host.signed, "{what}: {name} map");
                let differ = device.codes.iter().zip(&host.codes).filter(|(a, b)| a != b);
                assert_eq!(differ.count(), 0, "{what}: tensor {i} {name} codes");
                assert_close(
                    &format!("{what}: tensor {i} {name} scales"),
                    &device.scales,
                    &host.scales,
                );
                let values = self.device.read_state(i, name).unwrap();
                assert_close(&format!("{what}: {name}"), &values, &host.dequantize());
            }
        }
    }
}

fn configs() -> Vec<OptimizerConfig> {
    vec![
        AdamWConfig::default().with_lr(1e-2).into(),
        AdamConfig::default()
            .with_lr(1e-2)
            .with_weight_decay(0.01)
            .with_amsgrad(true)
            .into(),
        SgdConfig::default()
            .with_lr(1e-2)
            .with_momentum(0.9)
            .with_nesterov(true)
            .into(),
        LionConfig::default()
            .with_lr(1e-3)
            .with_weight_decay(0.1)
            .into(),
    ]
}

/// `ctx` launching with `workgroup_size` invocations, `vec4s` units each, and either runs per
/// invocation (each invocation updates whole blocks alone, in two passes: what
/// `Context::request` picks for CPU adapters such as lavapipe) or not (`BLOCK_LANES` lanes
/// share each block, one pass: GPUs' default); the quantization table in a uniform buffer
/// with runs (CPU adapters' default), else in a storage buffer. Built once per setting and
/// kept for the tests' run.
fn dealt(ctx: &'static Context, runs: bool, workgroup_size: u32, vec4s: u32) -> &'static Context {
    dealt_with(ctx, runs, runs, workgroup_size, vec4s)
}

/// [`dealt`] with the table's binding chosen apart (`uniform_maps`).
fn dealt_with(
    ctx: &'static Context,
    runs: bool,
    uniform_maps: bool,
    workgroup_size: u32,
    vec4s: u32,
) -> &'static Context {
    type Key = (usize, Tuning);
    static CONTEXTS: Mutex<Vec<(Key, &'static Context)>> = Mutex::new(Vec::new());
    let tuning = Tuning {
        runs_per_invocation: runs,
        uniform_maps,
        workgroup_size,
        vec4s_per_invocation: vec4s,
        ..ctx.tuning()
    };
    let key = (ctx as *const Context as usize, tuning);
    let mut contexts = CONTEXTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, dealt)) = contexts.iter().find(|(k, _)| *k == key) {
        return dealt;
    }
    let dealt: &'static Context = Box::leak(Box::new(ctx.clone().with_tuning(tuning)));
    contexts.push((key, dealt));
    dealt
}

/// Both ways of dealing blocks to invocations, at the default launch settings: runs with the
/// table in a uniform buffer (CPU adapters'), lanes sharing blocks with the table in a storage
/// buffer (GPUs').
fn both_dealings() -> [&'static Context; 2] {
    [true, false].map(|runs| dealt(context(), runs, 256, 4))
}

#[test]
fn every_optimizer_matches_the_reference_code_for_code() {
    for (ctx, config) in both_dealings()
        .into_iter()
        .flat_map(|ctx| configs().into_iter().map(move |config| (ctx, config)))
    {
        // 8-bit states for the first and third; full precision for the others (short of a
        // block, and a length that ends inside a vec4: the tail dispatch). The third starts
        // 100 elements (or the alignment's padding) past a multiple of 256 in the span of the
        // two, so its blocks' codes are not at its elements' offsets.
        let lens = [8192, 100, 4096, 301];
        let mut run = Quant8Run::on(ctx, &config, &lens, Dtype::F32, Precision::default());
        let runs = ctx.tuning().runs_per_invocation;
        run.steps_compared(12, &format!("{}, runs {runs}", config.name()));
    }
}

/// A device with WebGPU's default limits but bindings of 64 KiB (16384 f32 elements): one
/// buffer of 8-bit tensors is then several chunks, as a model's arena is past
/// `max_storage_buffer_binding_size`.
fn small_bindings() -> &'static Context {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    CONTEXT.get_or_init(|| common::context_with_binding_limit(64 << 10))
}

#[test]
fn a_buffer_past_one_binding_is_cut_at_block_edges() {
    let ctx = small_bindings();
    assert_eq!(ctx.max_chunk_len(), 16384);
    // At 256-byte offsets in one buffer: 8-bit tensors at 0, 8512 (not a multiple of 256
    // from its chunk's start), 12608, 25024 (two and a half bindings long) and 65984;
    // f32-state tensors of 300 and 100 between. Each chunk ends at the last block edge within
    // a binding (src/kernel/plan/tests.rs): [0, 16192), [16192, 32448), [32448, 48832),
    // [48832, 65216), [65216, 74176), so the third tensor has parts in two chunks and the
    // fifth in four, each chunk's codes and scales bound at its own region.
    let lens = [8192, 300, 4096, 12288, 100, 40960, 8192];
    for config in configs() {
        let what = format!("{} in 64 KiB bindings", config.name());
        let mut run = Quant8Run::on(ctx, &config, &lens, Dtype::F32, Precision::default());
        // Five chunks of 8-bit tensors, two of the span of f32-state ones (16804 elements).
        assert_eq!(run.device.update_dispatches(), 7, "{what}");
        run.steps_compared(4, &what);
        // A bf16 buffer of the same tensors: other cuts (elements of two bytes).
        let mut run = Quant8Run::on(ctx, &config, &lens, Dtype::BF16, Precision::default());
        run.steps_compared(2, &format!("{what}, bf16"));
    }
    // A snapshot and a checkpoint bring back every chunk's codes and scales.
    let config: OptimizerConfig = AdamWConfig::default().with_lr(1e-2).into();
    let mut run = Quant8Run::on(ctx, &config, &lens, Dtype::F32, Precision::default());
    run.steps_compared(2, "before the checkpoint");
    let states = |run: &Quant8Run| {
        let quantized = lens
            .iter()
            .enumerate()
            .filter(|(_, &len)| quantizes(len as u64));
        quantized
            .flat_map(|(i, _)| ["exp_avg", "exp_avg_sq"].map(|name| (i, name)))
            .map(|(i, name)| run.device.read_quantized_state(i, name).unwrap())
            .collect::<Vec<_>>()
    };
    let kept = states(&run);
    let bytes = run.device.checkpoint().unwrap();
    // The long tensor's parts, one tensor of the file each, as torchao names them.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, shape) in [("codes", 40960), ("scale", 160)] {
        let view = file.tensor(&format!("state.5.exp_avg_sq.{name}")).unwrap();
        assert_eq!(view.shape(), [shape], "{name}");
    }
    let codes = file.tensor("state.5.exp_avg.codes").unwrap();
    let read = run.device.read_quantized_state(5, "exp_avg").unwrap();
    assert!(
        codes.data() == &read.codes[..],
        "the file's codes are the device's"
    );
    let snapshot = wgpu_optim::Snapshot::of_optimizer(ctx, &run.device, &[]).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    snapshot.record_save(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let rewound = |run: &mut Quant8Run, what: &str, rewind: &dyn Fn(&mut Quant8Run)| {
        let grads = run.gradients();
        run.step_with(&grads);
        let stepped = states(run);
        assert!(kept.iter().zip(&stepped).all(|(k, s)| k != s), "{what}");
        rewind(run);
        assert!(
            states(run) == kept,
            "{what}: every chunk's codes and scales back"
        );
    };
    rewound(&mut run, "snapshot", &|run| {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        snapshot.record_restore(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        assert_eq!(run.device.read_step().unwrap(), 2);
    });
    rewound(&mut run, "checkpoint", &|run| {
        run.device.load_checkpoint(&bytes).unwrap();
    });
    // A NaN scale in the long tensor's last chunk (block 150 of 160; the chunks before it
    // would be written first) is refused before any chunk is written.
    let poisoned = common::rewrite_checkpoint(
        &bytes,
        |name, data| {
            if name == "state.5.exp_avg_sq.scale" {
                data[600..604].copy_from_slice(&f32::NAN.to_le_bytes());
            }
        },
        |_| {},
    );
    let grads = run.gradients();
    run.step_with(&grads);
    let stepped = states(&run);
    let f32_states = run.device.read_state(1, "exp_avg").unwrap();
    match run.device.load_checkpoint(&poisoned) {
        Err(Error::CheckpointMismatch(message)) => assert!(
            message.contains("state.5.exp_avg_sq.scale") && message.contains("block 150"),
            "{message}"
        ),
        other => panic!("a NaN scale in a chunked tensor: {other:?}"),
    }
    assert!(states(&run) == stepped, "a refused load writes no chunk");
    assert_eq!(run.device.read_step().unwrap(), 3, "nor the step counter");
    assert_eq!(run.device.read_state(1, "exp_avg").unwrap(), f32_states);
}

/// WebGPU's default limits (8 storage buffers a shader stage, the browser's unless an adapter
/// is asked for more): an 8-bit kernel binds every state's codes in one binding and their
/// scales in another, so AMSGrad's three states take the bindings f32 states would.
#[test]
fn eight_bit_states_fit_webgpus_default_limits() {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    let defaults = wgpu::Limits::default();
    let ctx = CONTEXT.get_or_init(|| {
        common::context_with_binding_limit(defaults.max_storage_buffer_binding_size)
    });
    assert_eq!(
        ctx.device().limits().max_storage_buffers_per_shader_stage,
        8
    );
    for config in configs() {
        let lens = [8192, 100, 4096, 301];
        let mut run = Quant8Run::on(ctx, &config, &lens, Dtype::F32, Precision::default());
        run.steps_compared(3, &format!("{} on WebGPU's default limits", config.name()));
    }
    // With master weights AdamW binds 8 storage buffers where the table is a uniform buffer,
    // 9 (past the limit, refused by name) where it is a storage one. An empty tensor keeps no
    // state, so the kernel of full-precision states (9 with master weights) is not built.
    let adamw: OptimizerConfig = AdamWConfig::default().with_lr(1e-2).into();
    let master = Precision::default().with_master_weights();
    let t = ctx.tuning();
    let uniform = dealt_with(
        ctx,
        t.runs_per_invocation,
        true,
        t.workgroup_size,
        t.vec4s_per_invocation,
    );
    let mut run = Quant8Run::on(uniform, &adamw, &[4096, 0, 8192], Dtype::BF16, master);
    run.steps_compared(
        3,
        "AdamW, bf16 parameters, master weights, the table a uniform buffer",
    );
    let storage = dealt_with(
        ctx,
        t.runs_per_invocation,
        false,
        t.workgroup_size,
        t.vec4s_per_invocation,
    );
    let params = tensors(storage, &[4096], Dtype::BF16);
    let group = ParamGroup {
        config: adamw,
        params,
    };
    let precision = master.with_8bit_states();
    let refused = Optimizer::with_precision(storage, vec![group], precision).map(|_| ());
    assert!(
        matches!(
            refused,
            Err(Error::TooManyStorageBuffers {
                needed: 9,
                limit: 8,
                ..
            })
        ),
        "{refused:?}"
    );
}

/// A device with `limits` (WebGPU's defaults otherwise), built once per `slot`.
fn limited(slot: usize, limits: impl FnOnce(&mut wgpu::Limits)) -> &'static Context {
    static CONTEXTS: [OnceLock<Context>; 2] = [OnceLock::new(), OnceLock::new()];
    CONTEXTS[slot].get_or_init(|| {
        let mut asked = wgpu::Limits::default();
        limits(&mut asked);
        common::context_with_limits(asked)
    })
}

/// The quantization table (38 KiB) goes where the device binds it: asked for a uniform
/// buffer on a device that binds uniform buffers of 8 KiB, the optimizer binds a storage one;
/// asked for a storage buffer where storage bindings are 16 KiB, a uniform one; each steps
/// code for code with the reference. A device that binds neither is refused by name.
#[test]
fn the_table_goes_where_the_device_binds_it() {
    let table = (quant::TABLE_WORDS * 4) as u64;
    let small_uniform = limited(0, |l| l.max_uniform_buffer_binding_size = 8 << 10);
    assert!(
        small_uniform
            .device()
            .limits()
            .max_uniform_buffer_binding_size
            < table
    );
    let small_storage = bindings_of(16);
    assert!(
        small_storage
            .device()
            .limits()
            .max_storage_buffer_binding_size
            < table
    );
    let adamw: OptimizerConfig = AdamWConfig::default().with_lr(1e-2).into();
    for (ctx, asked, bound) in [
        (small_uniform, true, false),
        (small_storage, false, true),
        (context(), true, true),
        (context(), false, false),
    ] {
        let ctx = dealt_with(ctx, true, asked, 256, 4);
        let mut run = Quant8Run::on(ctx, &adamw, &[4096, 8192], Dtype::F32, Precision::default());
        let uniform = run.device.storage().quant8.map(|q| q.uniform_maps);
        assert_eq!(uniform, Some(bound), "asked for uniform {asked}");
        run.steps_compared(3, &format!("AdamW, asked for uniform {asked}"));
    }
    let neither = limited(1, |l| {
        l.max_uniform_buffer_binding_size = 8 << 10;
        l.max_storage_buffer_binding_size = 16 << 10;
    });
    let params = tensors(neither, &[4096], Dtype::F32);
    let group = ParamGroup {
        config: adamw,
        params,
    };
    let precision = Precision::default().with_8bit_states();
    let refused = Optimizer::with_precision(neither, vec![group], precision).map(|_| ());
    assert!(matches!(refused, Err(Error::Quantized(_))), "{refused:?}");
}

/// Devices with WebGPU's default limits but bindings of 16, 32 or 64 KiB.
fn bindings_of(kib: usize) -> &'static Context {
    static CONTEXTS: [OnceLock<Context>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = [16, 32, 64]
        .iter()
        .position(|&k| k == kib)
        .expect("16, 32 or 64 KiB");
    CONTEXTS[slot].get_or_init(|| common::context_with_binding_limit((kib as u64) << 10))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

    /// Any buffer of 8-bit tensors (whole blocks, from 4096 elements, up to six bindings long)
    /// and full-precision ones, under any of three binding limits, with any offered optimizer,
    /// either dealing of blocks and workgroup sizes that leave the last round of shared
    /// blocks partly idle (48 lanes: three blocks a round; 100: clamped to 96; 1: to 16),
    /// either binding of the quantization table: code for code with the reference over two
    /// steps, whatever the cuts.
    #[test]
    fn any_layout_in_any_binding_matches_the_reference(
        sizes in proptest::collection::vec((0u8..3, 1usize..100), 1..6),
        kib in proptest::sample::select(vec![16usize, 32, 64]),
        optimizer in 0usize..4,
        runs in proptest::bool::ANY,
        uniform_maps in proptest::bool::ANY,
        workgroup_size in proptest::sample::select(vec![1u32, 16, 48, 100, 256]),
    ) {
        let lens: Vec<usize> = sizes
            .iter()
            .map(|&(kind, n)| if kind == 0 { 256 * (16 + n) } else { 7 * n })
            .collect();
        let config = &configs()[optimizer];
        let what = format!(
            "{} over {lens:?} in {kib} KiB bindings, runs {runs}, uniform table {uniform_maps}, \
             workgroups of {workgroup_size}",
            config.name()
        );
        let ctx = dealt_with(bindings_of(kib), runs, uniform_maps, workgroup_size, 4);
        let mut run = Quant8Run::on(ctx, config, &lens, Dtype::F32, Precision::default());
        run.steps_compared(2, &what);
    }
}

/// Lanes sharing blocks in workgroups of 48 (three blocks a round), one round a segment: a
/// tensor of 19 blocks leaves the last segment's round two blocks idle, whose lanes compute a
/// copy of the last block and store nothing. f32 parameters, and bf16 ones with master
/// weights or stochastic rounding (units of 8 elements, 2 a lane).
#[test]
fn a_rounds_idle_lanes_store_nothing() {
    let ctx = dealt(context(), false, 48, 1);
    let adamw: OptimizerConfig = AdamWConfig::default().with_lr(1e-2).into();
    let cases = [
        (Dtype::F32, Precision::default()),
        (Dtype::BF16, Precision::default().with_master_weights()),
        (
            Dtype::BF16,
            Precision::default().with_stochastic_rounding(3),
        ),
    ];
    for (dtype, precision) in cases {
        let mut run = Quant8Run::on(ctx, &adamw, &[19 * 256, 100, 16 * 256], dtype, precision);
        run.steps_compared(4, &format!("workgroups of 48, {dtype:?} {precision:?}"));
    }
}

/// SGD without momentum keeps no state: 8-bit states asked for change nothing (bitsandbytes'
/// `SGD8bit` with momentum 0 keeps none either).
#[test]
fn sgd_without_momentum_has_no_state_to_quantize() {
    let config: OptimizerConfig = SgdConfig::default().with_lr(1e-2).into();
    let mut run = Quant8Run::new(&config, &[8192, 100], Dtype::F32, Precision::default());
    assert!(run.device.state_specs().is_empty());
    assert_eq!(run.device.state_bytes(), 0);
    run.steps_compared(3, "SGD without momentum");
}

#[test]
fn sixteen_bit_parameters_master_weights_and_stochastic_rounding() {
    let adamw: OptimizerConfig = AdamWConfig::default().with_lr(1e-2).into();
    let lion: OptimizerConfig = LionConfig::default().with_lr(1e-3).into();
    let cases = [
        (adamw.clone(), Dtype::BF16, Precision::default()),
        (
            adamw.clone(),
            Dtype::F16,
            Precision::default().with_master_weights(),
        ),
        (
            lion,
            Dtype::BF16,
            Precision::default().with_stochastic_rounding(7),
        ),
    ];
    for ctx in both_dealings() {
        for (config, dtype, precision) in cases.clone() {
            let mut run = Quant8Run::on(ctx, &config, &[4096, 8192, 100], dtype, precision);
            let runs = ctx.tuning().runs_per_invocation;
            run.steps_compared(6, &format!("{} {dtype:?}, runs {runs}", config.name()));
        }
    }
}

#[test]
fn a_zero_block_keeps_the_smallest_scale_and_a_nan_never_reaches_one() {
    for ctx in both_dealings() {
        a_zero_block_and_a_nan_on(ctx);
    }
}

fn a_zero_block_and_a_nan_on(ctx: &'static Context) {
    let config: OptimizerConfig = AdamWConfig::default().into();
    let mut run = Quant8Run::on(ctx, &config, &[4096], Dtype::F32, Precision::default());
    let mut grads = vec![vec![0.5f32; 4096]];
    grads[0][..BLOCK].fill(0.0);
    grads[0][300] = f32::NAN;
    grads[0][600] = f32::INFINITY;
    run.step_with(&grads);
    for name in ["exp_avg", "exp_avg_sq"] {
        let state = run.device.read_quantized_state(0, name).unwrap();
        assert_eq!(state.scales[0], 1e-12, "{name}: the zero block");
        assert!(
            state.scales.iter().all(|s| s.is_finite()),
            "{name}: {:?}",
            state.scales
        );
        let host = run.reference.quantized_state(0, name).unwrap();
        assert_eq!(state, *host, "{name}");
    }
}

#[test]
fn a_skipped_step_leaves_codes_and_scales_alone() {
    for ctx in both_dealings() {
        a_skipped_step_on(ctx);
    }
}

fn a_skipped_step_on(ctx: &'static Context) {
    let config: OptimizerConfig = AdamWConfig::default().into();
    let mut run = Quant8Run::on(ctx, &config, &[4096], Dtype::F32, Precision::default());
    let grads = run.gradients();
    run.step_with(&grads);
    let before = run.device.read_quantized_state(0, "exp_avg").unwrap();
    run.device
        .set_grad_processing(Some(GradConfig::default()))
        .unwrap();
    let mut bad = run.gradients();
    bad[0][5] = f32::NAN;
    ctx.write_f32(&run.params[0].grad, &bad[0]).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    run.device.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    assert_eq!(run.device.read_step().unwrap(), 1, "the step was skipped");
    assert_eq!(
        run.device.read_quantized_state(0, "exp_avg").unwrap(),
        before
    );
}

#[test]
fn adam_states_take_about_two_bytes_a_parameter() {
    let ctx = context();
    let lens = [4096, 65536, 256];
    let params = tensors(ctx, &lens, Dtype::F32);
    let count: usize = lens.iter().sum();
    let config: OptimizerConfig = AdamWConfig::default().into();
    let group = |params: &[Param]| {
        vec![ParamGroup {
            config: config.clone(),
            params: params.to_vec(),
        }]
    };
    let bytes = |precision| {
        let optimizer = Optimizer::with_precision(ctx, group(&params), precision).unwrap();
        optimizer.state_bytes() as f64 / count as f64
    };
    let eight_bit = bytes(Precision::default().with_8bit_states());
    // Two states of a byte each and an f32 scale per 256 elements, 2 + 8 / 256, for the
    // tensors torchao quantizes; 8 bytes for the 256-element one, which it keeps in f32.
    let quantized = (4096 + 65536) as f64;
    assert_eq!(
        eight_bit,
        (quantized * (2.0 + 8.0 / 256.0) + 256.0 * 8.0) / count as f64
    );
    assert!(eight_bit <= 2.1);
    assert_eq!(bytes(Precision::default()), 8.0);
    assert_eq!(bytes(Precision::default().with_states(Dtype::BF16)), 4.0);
}

/// What benchmarks divide by: AdamW moves 8 bytes of parameter, 4 of gradient and a byte of
/// each state each way with 8-bit states (16), and 28 where a tensor keeps f32 states
/// (torchao's rule), averaged over the elements to the nearest byte.
#[test]
fn bytes_per_element_counts_the_states_each_tensor_keeps() {
    let ctx = context();
    let eight_bit = Precision::default().with_8bit_states();
    let per_element = |lens: &[usize]| {
        let group = ParamGroup {
            config: AdamWConfig::default().into(),
            params: tensors(ctx, lens, Dtype::F32),
        };
        Optimizer::with_precision(ctx, vec![group], eight_bit)
            .unwrap()
            .bytes_per_element()
    };
    assert_eq!(per_element(&[8192]), 16);
    // Not whole blocks, or fewer than 4096 elements: f32 states, as without the option.
    assert_eq!(per_element(&[8000]), 28);
    assert_eq!(per_element(&[1024]), 28);
    // 8192 elements at 16 and 1024 at 28: 17.3 a byte.
    assert_eq!(per_element(&[8192, 1024]), 17);
    // 4096 at 16 and 4096 at 28: 22.
    assert_eq!(per_element(&[4096, 4000, 96]), 22);
}

/// The reference takes a checkpoint's codes and scales (`set_quantized_state`, as the
/// hostile-checkpoint test restores it), its values then what they dequantize to; a state of
/// another length or map, or of a tensor with f32 states, is refused.
#[test]
fn the_reference_takes_codes_and_scales_as_a_checkpoint_restores_them() {
    let config: OptimizerConfig = AdamWConfig::default().into();
    let ctx = context();
    let storage = Optimizer::with_precision(
        ctx,
        vec![ParamGroup {
            config: config.clone(),
            params: tensors(ctx, &[512], Dtype::F32),
        }],
        Precision::default().with_8bit_states(),
    )
    .unwrap()
    .storage();
    let mut reference = reference::Optimizer::with_storage(&config, &[4096, 100], storage).unwrap();
    let values: Vec<f32> = (0..4096).map(|i| (i as f32 * 0.37).sin()).collect();
    let squares = quant::Quantized::new(&values.iter().map(|v| v * v).collect::<Vec<_>>(), false);
    reference
        .set_quantized_state(0, "exp_avg_sq", squares.clone())
        .unwrap();
    assert_eq!(
        reference.quantized_state(0, "exp_avg_sq").unwrap(),
        &squares
    );
    assert_eq!(
        reference.state(0, "exp_avg_sq").unwrap(),
        &squares.dequantize()[..]
    );
    // The first moment takes the signed map.
    let signed = quant::Quantized::new(&values, true);
    reference
        .set_quantized_state(0, "exp_avg", signed.clone())
        .unwrap();
    let short = quant::Quantized::new(&values[..3840], true);
    assert!(matches!(
        reference.set_quantized_state(0, "exp_avg", short),
        Err(Error::WrongLength { .. })
    ));
    assert!(matches!(
        reference.set_quantized_state(1, "exp_avg", signed.clone()),
        Err(Error::Quantized(_))
    ));
    assert!(matches!(
        reference.set_quantized_state(0, "momentum_buffer", signed.clone()),
        Err(Error::NoSuchState { .. })
    ));
    let unsigned = quant::Quantized::new(&values, false);
    assert!(matches!(
        reference.set_quantized_state(0, "exp_avg", unsigned),
        Err(Error::Quantized(_))
    ));
    assert_eq!(reference.quantized_state(0, "exp_avg").unwrap(), &signed);
}

#[test]
fn bad_input_is_refused_with_typed_errors() {
    let ctx = context();
    let eight_bit = Precision::default().with_8bit_states();
    let build = |config: OptimizerConfig, params: Vec<Param>, precision| {
        Optimizer::with_precision(ctx, vec![ParamGroup { config, params }], precision)
    };
    let adamw: OptimizerConfig = AdamWConfig::default().into();
    // An optimizer neither torchao nor bitsandbytes quantizes here.
    let params = tensors(ctx, &[4096], Dtype::F32);
    let adagrad: OptimizerConfig = AdagradConfig::default().into();
    assert!(matches!(
        build(adagrad, params.clone(), eight_bit),
        Err(Error::Quantized(_))
    ));
    // Two storage types for the states.
    let both = eight_bit.with_states(Dtype::BF16);
    assert!(matches!(
        build(adamw.clone(), params.clone(), both),
        Err(Error::InvalidOptions(_))
    ));
    // A tensor at an offset no binding can start at, refused as for any storage.
    let odd = buffer(ctx, "odd", 4 * 2048);
    let shifted = Param::new(
        BufferRange::new(&odd, 4, 256),
        BufferRange::new(&odd, 4096, 256),
    );
    assert!(matches!(
        build(adamw.clone(), vec![shifted], eight_bit),
        Err(Error::MisalignedOffset { index: 0, .. })
    ));
    // States that are codes and scales are not one range: typed errors, not wrong bytes.
    let optimizer = build(adamw, params, eight_bit).unwrap();
    assert!(matches!(
        optimizer.state_range(0, "exp_avg"),
        Err(Error::Quantized(_))
    ));
    assert!(matches!(
        optimizer.read_quantized_state(0, "momentum_buffer"),
        Err(Error::NoSuchState { .. })
    ));
    assert!(matches!(
        optimizer.read_quantized_state(3, "exp_avg"),
        Err(Error::NoSuchTensor { .. })
    ));
}

#[test]
fn a_checkpoint_resumes_bit_for_bit_with_torchaos_names() {
    let ctx = context();
    let config: OptimizerConfig = AdamConfig::default()
        .with_lr(1e-2)
        .with_amsgrad(true)
        .into();
    // The third's blocks start off the span's multiples of 256 (see the test above).
    let lens = [4096, 100, 4096, 256];
    let mut first = Quant8Run::new(&config, &lens, Dtype::F32, Precision::default());
    let mut later: Vec<Vec<Vec<f32>>> = Vec::new();
    for _ in 0..3 {
        let grads = first.gradients();
        first.step_with(&grads);
    }
    for _ in 0..3 {
        later.push(first.gradients());
    }
    let bytes = first.device.checkpoint().unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, dtype, shape) in [
        ("state.0.exp_avg.codes", safetensors::Dtype::U8, vec![4096]),
        ("state.0.exp_avg.scale", safetensors::Dtype::F32, vec![16]),
        (
            "state.0.max_exp_avg_sq.codes",
            safetensors::Dtype::U8,
            vec![4096],
        ),
        // torchao keeps a tensor of 100 (or 256) in full precision.
        ("state.1.exp_avg_sq", safetensors::Dtype::F32, vec![100]),
        (
            "state.2.exp_avg_sq.codes",
            safetensors::Dtype::U8,
            vec![4096],
        ),
        ("state.3.exp_avg_sq", safetensors::Dtype::F32, vec![256]),
    ] {
        let view = file.tensor(name).unwrap();
        assert_eq!((view.dtype(), view.shape()), (dtype, &shape[..]), "{name}");
    }
    let codes = file.tensor("state.0.exp_avg.codes").unwrap();
    let saved = first.device.read_quantized_state(0, "exp_avg").unwrap();
    assert_eq!(codes.data(), &saved.codes[..]);

    // A second optimizer over copies of the parameters, loaded from the file.
    let mut second = Quant8Run::new(&config, &lens, Dtype::F32, Precision::default());
    for (p, values) in second.params.iter().zip(&first.host) {
        ctx.write_f32(&p.param, values).unwrap();
    }
    second.device.load_checkpoint(&bytes).unwrap();
    for grads in &later {
        first.step_with(grads);
        second.step_with(grads);
    }
    for (i, &len) in lens.iter().enumerate() {
        let a = ctx.read_f32(&first.params[i].param).unwrap();
        let b = ctx.read_f32(&second.params[i].param).unwrap();
        assert_eq!(common::bits(&a), common::bits(&b), "tensor {i} param");
        for name in ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] {
            let a = first.device.read_state(i, name).unwrap();
            let b = second.device.read_state(i, name).unwrap();
            assert_eq!(common::bits(&a), common::bits(&b), "tensor {i} {name}");
            if quantizes(len as u64) {
                let a = first.device.read_quantized_state(i, name).unwrap();
                let b = second.device.read_quantized_state(i, name).unwrap();
                assert_eq!(a, b, "tensor {i} {name}");
            }
        }
    }

    // A checkpoint of full-precision states is not one of 8-bit states.
    let groups = vec![ParamGroup {
        config: config.clone(),
        params: second.params.clone(),
    }];
    let f32_states = Optimizer::with_precision(ctx, groups, Precision::default()).unwrap();
    let other = f32_states.checkpoint().unwrap();
    assert!(matches!(
        second.device.load_checkpoint(&other),
        Err(Error::CheckpointMismatch(_))
    ));
}

/// A file's block scales are ones an optimizer keeps, 0 before the first step (torchao's
/// `OptimState8bit.zeros`) or finite and at least `quant::MIN_SCALE` after (torchao clips at
/// 1e-12 too), or the file is refused with nothing written: a NaN scale would make its
/// block's states NaN at the next step, a negative one flip their signs.
#[test]
fn a_checkpoints_scales_must_be_ones_an_optimizer_keeps() {
    let config: OptimizerConfig = AdamWConfig::default().with_lr(1e-2).into();
    let mut run = Quant8Run::new(&config, &[1024, 8192], Dtype::F32, Precision::default());
    // Before the first step every scale is 0, and the file loads.
    let fresh = run.device.checkpoint().unwrap();
    run.device.load_checkpoint(&fresh).unwrap();
    let grads = run.gradients();
    run.step_with(&grads);
    let bytes = run.device.checkpoint().unwrap();
    let before = run.device.read_quantized_state(1, "exp_avg_sq").unwrap();
    let with_scale = |target: &str, scale: f32| {
        common::rewrite_checkpoint(
            &bytes,
            |name, data| {
                if name == target {
                    data[8..12].copy_from_slice(&scale.to_le_bytes());
                }
            },
            |_| {},
        )
    };
    // The smallest scale a step stores, and a block of zeros' 0, are accepted.
    for good in [quant::MIN_SCALE, 0.0] {
        let file = with_scale("state.1.exp_avg_sq.scale", good);
        run.device.load_checkpoint(&file).unwrap();
        let loaded = run.device.read_quantized_state(1, "exp_avg_sq").unwrap();
        assert_eq!(loaded.scales[2], good);
    }
    run.device.load_checkpoint(&bytes).unwrap();
    let below = f32::from_bits(quant::MIN_SCALE.to_bits() - 1);
    for bad in [
        f32::NAN,
        f32::INFINITY,
        -1.0,
        -quant::MIN_SCALE,
        below,
        1e-40,
    ] {
        for state in ["exp_avg", "exp_avg_sq"] {
            let target = format!("state.1.{state}.scale");
            match run.device.load_checkpoint(&with_scale(&target, bad)) {
                Err(Error::CheckpointMismatch(message)) => {
                    assert!(message.contains(&target), "{bad}: {message}");
                    assert!(message.contains("block 2"), "{bad}: {message}");
                }
                other => panic!("a scale of {bad} in {target}: {other:?}"),
            }
        }
    }
    // Nothing was written: the states are the saved ones.
    assert_eq!(
        run.device.read_quantized_state(1, "exp_avg_sq").unwrap(),
        before
    );
}

#[test]
fn a_snapshot_rewinds_codes_scales_and_parameters() {
    let ctx = context();
    let config: OptimizerConfig = LionConfig::default().with_lr(1e-2).into();
    let mut run = Quant8Run::new(&config, &[256, 4096], Dtype::F32, Precision::default());
    let grads = run.gradients();
    run.step_with(&grads);
    let snapshot = wgpu_optim::Snapshot::of_optimizer(ctx, &run.device, &[]).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    snapshot.record_save(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let saved = run.device.read_quantized_state(1, "exp_avg").unwrap();
    let param = ctx.read_f32(&run.params[1].param).unwrap();
    let grads = run.gradients();
    run.step_with(&grads);
    assert_ne!(
        run.device.read_quantized_state(1, "exp_avg").unwrap(),
        saved
    );
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    snapshot.record_restore(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    assert_eq!(
        run.device.read_quantized_state(1, "exp_avg").unwrap(),
        saved
    );
    assert_eq!(ctx.read_f32(&run.params[1].param).unwrap(), param);
    assert_eq!(run.device.read_step().unwrap(), 1);
}

/// The device's quantizer (`quantize4` in shaders/common/quant8.wgsl: a bucket of magnitudes'
/// code and the position of its boundary, one word) against the host's, torchao's binary search
/// (`wgpu_optim::quant::quantize`), on every entry of both maps, every midpoint between
/// neighbours, every decision boundary, the floats on either side of each, the band edges
/// (powers of ten) and theirs, the buckets' edges, zeros, the ends, values past them,
/// subnormals, infinities, NaN, a spread of others and random bit patterns; with the table in
/// a storage buffer and in a uniform one.
#[test]
fn the_device_quantizer_is_torchaos_search_on_every_edge() {
    let up = |x: f32| {
        f32::from_bits(if x >= 0.0 {
            x.to_bits() + 1
        } else {
            x.to_bits() - 1
        })
    };
    let down = |x: f32| {
        f32::from_bits(if x > 0.0 {
            x.to_bits() - 1
        } else {
            x.to_bits() + 1
        })
    };
    let mut values = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        1.5,
        -1.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE / 4.0,
        -f32::MIN_POSITIVE / 4.0,
        f32::MAX,
        -f32::MAX,
    ];
    for signed in [true, false] {
        let map = dynamic_map(signed);
        let bounds = quant::thresholds(&map);
        for (pair, &bound) in map.windows(2).zip(&bounds[1..]) {
            let mid = (pair[0] + pair[1]) / 2.0;
            for v in [pair[0], mid, bound] {
                values.extend([v, up(v), down(v), -v]);
            }
        }
    }
    for k in 0..=8 {
        let edge = 10f32.powi(-k);
        values.extend([edge, up(edge), down(edge), -edge, -up(edge), -down(edge)]);
    }
    // Every bucket's first magnitude and the one below it, both signs.
    for key in quant::FIRST_BUCKET..quant::FIRST_BUCKET + quant::BUCKETS as u32 + 1 {
        let edge = f32::from_bits(key << quant::BUCKET_SHIFT);
        values.extend([edge, down(edge), -edge, -down(edge)]);
    }
    let mut rng = Rng::new(5);
    values.extend((0..4000).map(|i| rng.uniform() * 10f32.powi(-(i % 9))));
    // Any bits: every exponent, both signs, subnormals, NaN payloads; and any bits with the
    // exponents of the map's range (2^-24 to 2^1).
    values.extend((0..20000).map(|_| f32::from_bits(rng.next_u64() as u32)));
    values.extend((0..20000).map(|_| {
        let bits = rng.next_u64() as u32;
        let exponent = 103 + (bits >> 23) % 25;
        f32::from_bits(bits & 0x807f_ffff | exponent << 23)
    }));
    values.resize(values.len().next_multiple_of(4), 0.0);
    values.push(f32::NAN);
    values.resize(values.len().next_multiple_of(4), 0.0);
    for uniform in [false, true] {
        let words = quantized_on_device(&values, uniform);
        let mut checked = 0;
        for (signed, offset) in [(true, 0), (false, 1)] {
            let map = dynamic_map(signed);
            for (i, group) in values.chunks(4).enumerate() {
                let word = words[2 * i + offset];
                for (k, &x) in group.iter().enumerate() {
                    let device = (word >> (8 * k)) & 0xff;
                    let host = u32::from(quantize(x, &map));
                    assert_eq!(
                        device, host,
                        "{x:e} (signed {signed}, uniform table {uniform}): device {device}, host {host}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 110_000, "{checked}");
    }
}

/// The shader's table constants (shaders/common/quant8.wgsl) are the host's (src/quant.rs).
#[test]
fn the_shaders_table_constants_are_the_hosts() {
    let text = shaders::files()
        .into_iter()
        .find(|f| f.path == "common/quant8.wgsl")
        .expect("common/quant8.wgsl")
        .text;
    for (name, value) in [
        ("BLOCK", BLOCK as u32),
        ("TABLE_BUCKETS", quant::TABLE_BUCKETS as u32),
        ("BUCKETS", quant::BUCKETS as u32),
        ("BUCKET_SHIFT", quant::BUCKET_SHIFT),
        ("FIRST_BUCKET", quant::FIRST_BUCKET),
    ] {
        let line = format!("const {name}: u32 = {value}u;");
        assert!(text.contains(&line), "{line}");
    }
    let min_scale = format!("const MIN_SCALE: f32 = {:e};", quant::MIN_SCALE);
    assert!(text.contains(&min_scale), "{min_scale}");
    assert_eq!(quant::device_table().len(), quant::TABLE_WORDS);
}

/// `quantize4` of every four of `values` on the device, on the signed map and the unsigned
/// one (two words each), the table bound as a uniform buffer or a storage one.
fn quantized_on_device(values: &[f32], uniform: bool) -> Vec<u32> {
    use wgpu::util::DeviceExt;
    let ctx = context();
    let quant8 = shaders::files()
        .into_iter()
        .find(|f| f.path == "common/quant8.wgsl")
        .unwrap();
    let source = format!(
        "@group(0) @binding(0) {};
@group(0) @binding(1) var<storage, read> inputs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> outputs: array<u32>;
{}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {{
    let i = id.x;
    if i >= arrayLength(&inputs) {{ return; }}
    outputs[2u * i] = quantize4(inputs[i], 0u);
    outputs[2u * i + 1u] = quantize4(inputs[i], 256u);
}}",
        quant::table_declaration("qmaps", uniform),
        quant8.text
    );
    let device = ctx.device();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("quantize4 test"),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let table = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("table"),
        contents: bytemuck::cast_slice(quant::device_table()),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM,
    });
    let inputs = ctx.upload_f32("inputs", values);
    let outputs = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("outputs"),
        contents: &vec![0u8; values.len() * 2],
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            (0, table.as_entire_binding()),
            (1, inputs.as_entire_binding()),
            (2, outputs.as_entire_binding()),
        ]
        .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource }),
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups((values.len() as u32 / 4).div_ceil(64), 1, 1);
    }
    ctx.queue().submit([encoder.finish()]);
    ctx.read_f32(&BufferRange::whole(&outputs))
        .unwrap()
        .iter()
        .map(|w| w.to_bits())
        .collect()
}
