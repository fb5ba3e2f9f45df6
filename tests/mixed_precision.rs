//! 16-bit storage (f16, bf16) for parameters, gradients and states, with f32 math: every
//! optimizer and option against the CPU reference, which rounds each store as the kernels do.

mod common;
use common::*;
use wgpu_optim::*;

/// Lengths that end inside a 32-bit word (odd), inside a unit of eight, on a unit, and across
/// workgroup tiles.
const LENS: [usize; 8] = [1, 3, 7, 9, 255, 256, 1000, 4099];
const STEPS: usize = 3;

/// The layouts users pick: everything 16-bit (f16 or bf16), 16-bit parameters and gradients
/// with f32 states, bf16 parameters with f32 gradients, f32 parameters with bf16 states; 16-bit
/// parameters with f32 master weights; bf16 parameters with stochastic rounding.
fn storages() -> Vec<Storage> {
    use Dtype::*;
    let master = |param, states| Storage {
        master: true,
        ..Storage::new(param, param, states)
    };
    vec![
        Storage::new(BF16, BF16, BF16),
        Storage::new(F16, F16, F16),
        Storage::new(BF16, BF16, F32),
        Storage::new(F16, F16, F32),
        Storage::new(BF16, F32, F32),
        Storage::new(F32, F32, BF16),
        Storage::new(F32, F32, F16),
        master(BF16, F32),
        master(F16, F32),
        master(BF16, BF16),
        Storage {
            rounding: Rounding::Stochastic { seed: 7 },
            ..Storage::new(BF16, BF16, F32)
        },
    ]
}

/// Whether `config` keeps a squared state, which f16 `states` cannot hold.
fn f16_squares(config: &OptimizerConfig, states: Dtype) -> bool {
    states == Dtype::F16 && config.states().unwrap().iter().any(|s| s.holds_squares())
}

/// Issue 25, finding 10: an optimizer with a squared state (Adam's exp_avg_sq...) refuses
/// f16 states, whose 65504 is the square of a gradient of 256.
fn assert_f16_squares_refused(ctx: &Context, config: &OptimizerConfig, storage: Storage) {
    let arena = Arena::with_dtypes(ctx, &LENS, storage.param, storage.grad).unwrap();
    let group = ParamGroup {
        config: config.clone(),
        params: arena.params(),
    };
    assert!(
        matches!(
            Optimizer::with_precision(ctx, vec![group], precision(storage)),
            Err(Error::UnsupportedDtype {
                dtype: Dtype::F16,
                ..
            })
        ),
        "{config:?} with {storage:?}"
    );
}

/// The precision options that give `storage`.
fn precision(storage: Storage) -> Precision {
    let mut precision = Precision::default().with_states(storage.states);
    if storage.master {
        precision = precision.with_master_weights();
    }
    if let Rounding::Stochastic { seed } = storage.rounding {
        precision = precision.with_stochastic_rounding(seed);
    }
    precision
}

/// How the tensors lie: one arena (16-byte accesses, eight elements per iteration where a type
/// is 16-bit) or buffers of their own sized to the word (the scalar layout, pairs of 16-bit
/// elements per word).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Placement {
    Arena,
    OwnBuffers,
}

struct MixedRun {
    params: Vec<Param>,
    host: Vec<Vec<f32>>,
    device: Optimizer,
    reference: reference::Optimizer,
    rng: Rng,
    // With gradient processing: the device's norm stats, which the reference then uses (as
    // tests/common's Run does: the device's norm is a tree-shaped f32 sum).
    stats: Option<BufferRange>,
    // Keeps the arena's buffers alive.
    _arena: Option<Arena>,
}

impl MixedRun {
    fn new(
        ctx: &Context,
        config: &OptimizerConfig,
        storage: Storage,
        placement: Placement,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let (params, arena) = match placement {
            Placement::Arena => {
                let arena = Arena::with_dtypes(ctx, &LENS, storage.param, storage.grad).unwrap();
                (arena.params(), Some(arena))
            }
            Placement::OwnBuffers => {
                let buffer = |len: usize, dtype: Dtype| {
                    let bytes = (len as u64 * dtype.size()).next_multiple_of(4);
                    BufferRange::typed(&zeroed_buffer(ctx, bytes), 0, len as u64, dtype)
                };
                let params = LENS
                    .iter()
                    .map(|&len| Param::new(buffer(len, storage.param), buffer(len, storage.grad)))
                    .collect();
                (params, None)
            }
        };
        let host: Vec<Vec<f32>> = params
            .iter()
            .map(|p| {
                let values = rng.vector(p.len() as usize);
                ctx.write_f32(&p.param, &values).unwrap();
                values.iter().map(|&x| storage.param.round(x)).collect()
            })
            .collect();
        let group = ParamGroup {
            config: config.clone(),
            params: params.clone(),
        };
        let device = Optimizer::with_precision(ctx, vec![group], precision(storage)).unwrap();
        assert_eq!(device.storage(), storage);
        let reference = reference::Optimizer::with_storage(config, &LENS, storage).unwrap();
        MixedRun {
            params,
            host,
            device,
            reference,
            rng,
            stats: None,
            _arena: arena,
        }
    }

    fn set_grad_processing(&mut self, ctx: &Context, config: GradConfig) {
        let stats = BufferRange::whole(&ctx.upload_f32("norm stats", &[0.0; 2]));
        self.device.set_norm_stats_buffer(stats.clone()).unwrap();
        self.device
            .set_grad_processing(Some(config.clone()))
            .unwrap();
        self.reference.set_grad_processing(Some(config)).unwrap();
        self.stats = Some(stats);
    }

    fn step(&mut self, ctx: &Context) {
        let grads = self.gradients();
        self.step_with(ctx, &grads);
    }

    fn gradients(&mut self) -> Vec<Vec<f32>> {
        self.params
            .iter()
            .map(|p| self.rng.gradient(p.len() as usize))
            .collect()
    }

    fn step_with(&mut self, ctx: &Context, grads: &[Vec<f32>]) {
        for (param, grad) in self.params.iter().zip(grads) {
            ctx.write_f32(&param.grad, grad).unwrap();
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        self.device.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        let ratios = mirror_trust_ratios(&self.device, &mut self.reference);
        match &self.stats {
            Some(stats) => {
                let device = ctx.read_f32(stats).unwrap();
                let device = NormStats {
                    value: device[0],
                    nonfinite: device[1],
                };
                let hyper = self.device.grad_processing().unwrap().hyper().unwrap();
                let stored: Vec<Vec<f32>> = grads
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(|&x| self.device.storage().grad.round(x))
                            .collect()
                    })
                    .collect();
                let exact = reference::norm_stats(&stored, &self.reference.control(), &hyper);
                assert_stats_close(device, exact);
                self.reference
                    .step_with_stats(&mut self.host, grads, device)
                    .unwrap();
            }
            None => self.reference.step(&mut self.host, grads).unwrap(),
        }
        if let Some(ratios) = ratios {
            assert_trust_ratios_close(&ratios, self.reference.trust_ratios());
        }
    }

    /// Every parameter and state, as bits.
    fn snapshot(&self, ctx: &Context) -> Vec<Vec<u32>> {
        let mut all = Vec::new();
        for (i, param) in self.params.iter().enumerate() {
            all.push(bits(&ctx.read_f32(&param.param).unwrap()));
            for name in self.device.state_names() {
                all.push(bits(&self.device.read_state(i, name).unwrap()));
            }
        }
        all
    }

    /// Every parameter and state against the reference: (elements, elements whose bits
    /// differ, the largest difference in units in the last place of the 16-bit type).
    fn compare(&self, ctx: &Context, what: &str, storage: Storage) -> (usize, usize, f32) {
        let mut total = (0, 0, 0.0_f32);
        let mut check = |name: String, dtype: Dtype, device: &[f32], reference: &[f32]| {
            assert_eq!(device.len(), reference.len(), "{name}");
            for (i, (&d, &r)) in device.iter().zip(reference).enumerate() {
                assert!(
                    d.is_nan() || d == dtype.round(d),
                    "{what} {name}[{i}]: {d} is not a {dtype} value"
                );
                total.0 += 1;
                if d.to_bits() == r.to_bits() || (d.is_nan() && r.is_nan()) {
                    continue;
                }
                total.1 += 1;
                if dtype == Dtype::F32 {
                    // f32 values: the f32 tests' tolerance (reassociation).
                    assert!(
                        matches_reference(&[d], &[r]),
                        "{what} {name}[{i}]: {d:e} vs {r:e}"
                    );
                    continue;
                }
                let ulps = ulps_16bit(d, r, dtype);
                total.2 = total.2.max(ulps);
                assert!(
                    ulps <= MAX_ULPS,
                    "{what} {name}[{i}]: device {d:e}, reference {r:e}: {ulps} ulps of {dtype} apart"
                );
            }
        };
        for (i, param) in self.params.iter().enumerate() {
            let device = ctx.read_f32(&param.param).unwrap();
            check(
                format!("tensor {i} param"),
                storage.param,
                &device,
                &self.host[i],
            );
            for state in self.device.state_specs() {
                let device = self.device.read_state(i, state.name).unwrap();
                let reference = self.reference.state(i, state.name).unwrap();
                check(
                    format!("tensor {i} {}", state.name),
                    storage.states,
                    &device,
                    reference,
                );
            }
        }
        total
    }
}

/// The device computes in f32 as the reference does, but lavapipe's compiler reassociates
/// (the f32 tests allow 2e-6 relative): a last-place difference in f32 can round a store the
/// other way, one ulp of the 16-bit type, which the next steps carry. Three steps stay within
/// two.
const MAX_ULPS: f32 = 2.0;

#[test]
fn every_optimizer_and_option_matches_the_reference_in_16_bit_storage() {
    let ctx = context();
    let mut worst = 0.0_f32;
    let (mut elements, mut differing) = (0, 0);
    for storage in storages() {
        for placement in [Placement::Arena, Placement::OwnBuffers] {
            for (n, config) in all_configs().iter().enumerate() {
                if f16_squares(config, storage.states) {
                    assert_f16_squares_refused(ctx, config, storage);
                    continue;
                }
                let mut run = MixedRun::new(ctx, config, storage, placement, n as u64);
                for step in 1..=STEPS {
                    run.step(ctx);
                    let what = format!("{config:?} {storage:?} {placement:?} step {step}");
                    let (e, d, ulps) = run.compare(ctx, &what, storage);
                    elements += e;
                    differing += d;
                    worst = worst.max(ulps);
                }
                if placement == Placement::Arena {
                    assert_eq!(run.device.vec4_dispatches(), run.device.update_dispatches());
                }
            }
        }
    }
    eprintln!("{elements} elements compared, {differing} not bit-identical, worst {worst} ulps");
    // Most elements are bit-identical: rounding hides the f32 reassociation.
    assert!(
        differing * 100 < elements,
        "{differing} of {elements} differ"
    );
}

/// The kernels' conversions are the host's, bit for bit: every f16 and bf16 value survives a
/// load and a store unchanged (NaNs become the canonical NaN), and f32 values round to
/// nearest even, subnormals, ties, overflow and NaN included. SGD with momentum and lr 0
/// leaves the parameters as loaded and stores the first gradient as the momentum buffer.
#[test]
fn conversions_match_the_host_bit_for_bit() {
    let ctx = context();
    let config = OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.0).with_momentum(0.9));
    // Every 16-bit pattern, as f32: through the parameters (load, then store).
    let every_pattern: Vec<u16> = (0..=u16::MAX).collect();
    // f32 values near every rounding boundary of both types: through the momentum buffer.
    let mut awkward = Vec::new();
    for exponent in 90..=160_u32 {
        for low in [
            0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fff, 0x8000, 0x8001, 0x18000,
        ] {
            for mantissa in [low, 0x7f_ffff - low, 0x40_0000 | low] {
                let bits = (exponent << 23) | (mantissa & 0x7f_ffff);
                awkward.extend([f32::from_bits(bits), -f32::from_bits(bits)]);
            }
        }
    }
    awkward.extend([
        0.0,
        -0.0,
        65504.0,
        65519.99,
        65520.0,
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
    ]);
    awkward.extend((1..40).map(f32::from_bits));
    for dtype in [Dtype::F16, Dtype::BF16] {
        let decode = |bits: u16| dtype.decode(&bits.to_le_bytes())[0];
        let values: Vec<f32> = every_pattern.iter().map(|&b| decode(b)).collect();
        // Tensor 0: the patterns, with zero gradients; tensor 1: zeros, with the awkward values
        // as gradients (an inf gradient would turn a parameter into 0 * inf = NaN).
        let arena =
            Arena::with_dtypes(ctx, &[values.len(), awkward.len()], dtype, Dtype::F32).unwrap();
        arena.write_param(0, &values).unwrap();
        arena.write_grad(1, &awkward).unwrap();
        let precision = Precision::default().with_states(dtype);
        let group = ParamGroup {
            config: config.clone(),
            params: arena.params(),
        };
        let optimizer = Optimizer::with_precision(ctx, vec![group], precision).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        let params = arena.read_param(0).unwrap();
        for (i, (&before, &after)) in values.iter().zip(&params).enumerate() {
            // A NaN's sign after arithmetic is unspecified; stored, it is the canonical NaN.
            let same = if before.is_nan() {
                after.is_nan() && (dtype.round(after).to_bits() == after.to_bits())
            } else {
                before.to_bits() == after.to_bits()
            };
            assert!(
                same,
                "{dtype} pattern {i:#06x}: loaded and stored as {after:e}"
            );
        }
        let momentum = optimizer.read_state(1, "momentum_buffer").unwrap();
        for (&x, &stored) in awkward.iter().zip(&momentum) {
            assert_eq!(
                dtype.round(x).to_bits(),
                stored.to_bits(),
                "{dtype}: {x:e} ({:#010x}) stored as {stored:e}",
                x.to_bits()
            );
        }
    }
}

/// One SGD step (lr 1, no momentum) from bf16 parameters at 0 with f32 gradients `-values`:
/// the parameters become `values`, rounded by the store as `precision` says.
fn store_once(ctx: &Context, values: &[f32], precision: Precision) -> Vec<f32> {
    store_in_arena(ctx, &[values.len()], values, precision).0
}

/// `store_once` into tensor 0 of an arena of tensors of `lens` (`lens[0] == values.len()`),
/// and the optimizer's `regular_dispatches`.
fn store_in_arena(
    ctx: &Context,
    lens: &[usize],
    values: &[f32],
    precision: Precision,
) -> (Vec<f32>, usize) {
    let arena = Arena::with_dtypes(ctx, lens, Dtype::BF16, Dtype::F32).unwrap();
    let negated: Vec<f32> = values.iter().map(|v| -v).collect();
    arena.write_grad(0, &negated).unwrap();
    let group = ParamGroup {
        config: OptimizerConfig::Sgd(SgdConfig::default().with_lr(1.0)),
        params: arena.params(),
    };
    let optimizer = Optimizer::with_precision(ctx, vec![group], precision).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    optimizer.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    (arena.read_param(0).unwrap(), optimizer.regular_dispatches())
}

/// Stochastic rounding draws each element's bits from (tensor, index within the tensor), so a
/// tensor rounds alike wherever it lies: alone (each workgroup derives its tile:
/// `Optimizer::regular_dispatches`) or in an arena after another tensor (each workgroup loads
/// its segment), over several tiles.
#[test]
fn stochastic_rounding_draws_the_same_bits_in_any_layout() {
    let ctx = context();
    let tuning = ctx.tuning();
    // bf16 parameters take units of eight elements: three tiles and a short fourth.
    let tile = 8 * tuning.workgroup_size as usize * tuning.vec4s_per_invocation as usize;
    let len = 3 * tile + 40;
    let values = Rng::new(12).vector(len);
    let precision = Precision::default().with_stochastic_rounding(7);
    let rounded = |lens: &[usize]| store_in_arena(ctx, lens, &values, precision);
    let (shared, regular) = rounded(&[len, 100]);
    assert_eq!(regular, 0, "two tensors in one arena load their segments");
    let (alone, regular) = rounded(&[len]);
    assert_eq!(regular, 1, "one tensor's tiles are derived");
    assert_eq!(bits(&alone), bits(&shared), "the layouts round differently");
    let nearest: Vec<f32> = values.iter().map(|&v| Dtype::BF16.round(v)).collect();
    assert!(
        bits(&alone) != bits(&nearest),
        "no element rounded away from the nearest"
    );
}

/// Stochastic rounding as torchao tests it: the mean of 100,000 rounded copies of each of 32
/// values is the value within 3e-5 (relative); the same seed gives the same bits, another
/// seed other bits. The values lie in [1.5, 2) times powers of two, where one rounding's
/// relative spread is at most 2^-7 / 1.5 / 2, so the mean's is 8e-6: the bound is 3.6 of it.
#[test]
fn stochastic_rounding_is_unbiased_and_reproducible() {
    let ctx = context();
    const COPIES: usize = 100_000;
    let mut rng = Rng::new(11);
    let values: Vec<f32> = (0..32)
        .map(|k| {
            let v = 1.5 + 0.5 * rng.vector(1)[0].abs();
            let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
            sign * v * 2f32.powi(k - 16)
        })
        .collect();
    let copies: Vec<f32> = values
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, COPIES))
        .collect();
    let sr = |seed| {
        store_once(
            ctx,
            &copies,
            Precision::default().with_stochastic_rounding(seed),
        )
    };
    let rounded = sr(1);
    for (k, (&v, chunk)) in values.iter().zip(rounded.chunks(COPIES)).enumerate() {
        assert!(
            chunk.iter().all(|&x| x == Dtype::BF16.round(x)),
            "value {k}: a stored value is not a bf16"
        );
        let mean = chunk.iter().map(|&x| f64::from(x)).sum::<f64>() / COPIES as f64;
        let error = ((mean - f64::from(v)) / f64::from(v)).abs();
        assert!(
            error < 3e-5,
            "value {k} ({v:e}): mean of the roundings {mean:e}, {error:e} off"
        );
        // Each copy rounds to one of the two neighbours of v.
        let lo = f32::from_bits((v.abs().to_bits() >> 16) << 16).copysign(v);
        assert!(chunk.iter().all(|&x| x == lo || x.abs() > lo.abs()));
    }
    // Rounded to nearest, every copy is the one nearest bf16.
    let nearest = store_once(ctx, &copies, Precision::default());
    for (&v, chunk) in values.iter().zip(nearest.chunks(COPIES)) {
        assert!(chunk.iter().all(|&x| x == Dtype::BF16.round(v)));
    }
    assert_eq!(
        bits(&sr(1)),
        bits(&rounded),
        "the same seed must give the same bits"
    );
    let other = sr(2);
    let differing = other.iter().zip(&rounded).filter(|(a, b)| a != b).count();
    assert!(
        differing > copies.len() / 10,
        "another seed changed only {differing} elements"
    );
}

/// Why master weights and stochastic rounding exist: plain SGD with a constant gradient whose
/// steps (1e-4) are below half a bf16 ulp at 1 (2^-9). In f32 the parameters go from 1 to 0.9
/// in 1000 steps; stored in bf16 and rounded to nearest they never move; with stochastic
/// rounding they get there on average, with master weights to within a bf16 ulp.
#[test]
fn master_weights_and_stochastic_rounding_track_f32_where_bf16_stalls() {
    let ctx = context();
    const LEN: usize = 4096;
    const STEPS: usize = 1000;
    let run = |precision: Precision| {
        let arena = Arena::with_dtypes(ctx, &[LEN], Dtype::BF16, Dtype::F32).unwrap();
        arena.write_param(0, &[1.0; LEN]).unwrap();
        arena.write_grad(0, &[1.0; LEN]).unwrap();
        let group = ParamGroup {
            config: OptimizerConfig::Sgd(SgdConfig::default().with_lr(1e-4)),
            params: arena.params(),
        };
        let optimizer = Optimizer::with_precision(ctx, vec![group], precision).unwrap();
        for _ in 0..STEPS {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            optimizer.step(&mut encoder);
            ctx.queue().submit([encoder.finish()]);
        }
        // The loss is the parameters' mean (the gradient of each is 1).
        let params = arena.read_param(0).unwrap();
        params.iter().map(|&p| f64::from(p)).sum::<f64>() / LEN as f64
    };
    // f32: 1 - 1000 * 1e-4, in f32 steps.
    let f32_loss = (0..STEPS).fold(1.0_f32, |p, _| p - 1e-4) as f64;
    let nearest = run(Precision::default());
    let stochastic = run(Precision::default().with_stochastic_rounding(3));
    let master = run(Precision::default().with_master_weights());
    eprintln!("loss after {STEPS} steps: f32 {f32_loss:.5}, bf16 nearest {nearest:.5}, stochastic {stochastic:.5}, master {master:.5}");
    assert_eq!(nearest, 1.0, "bf16 rounded to nearest should stall at 1");
    assert!(
        (stochastic - f32_loss).abs() < 2e-3,
        "stochastic rounding: {stochastic}"
    );
    assert!(
        (master - f32_loss).abs() <= 2f64.powi(-8),
        "master weights: {master}"
    );
}

/// A checkpoint of a 16-bit optimizer keeps each state in its type (BF16, F16) and the master
/// copy in F32, and resuming from it gives the same bits as never stopping (stochastic
/// rounding included: its bits depend on the restored step). A checkpoint whose state types
/// differ from the loading optimizer's is refused and changes nothing.
#[test]
fn checkpoints_keep_the_storage_types() {
    let ctx = context();
    // Adamax: no squared state, so f16 states are among the storages.
    let config = OptimizerConfig::Adamax(AdamaxConfig::default().with_lr(1e-2));
    let storages = [
        Storage::new(Dtype::BF16, Dtype::BF16, Dtype::BF16),
        Storage::new(Dtype::F32, Dtype::F32, Dtype::F16),
        Storage {
            master: true,
            ..Storage::new(Dtype::F16, Dtype::F16, Dtype::F32)
        },
        Storage {
            rounding: Rounding::Stochastic { seed: 5 },
            ..Storage::new(Dtype::BF16, Dtype::F32, Dtype::BF16)
        },
    ];
    for storage in storages {
        let mut original = MixedRun::new(ctx, &config, storage, Placement::Arena, 1);
        let before: Vec<_> = (0..2).map(|_| original.gradients()).collect();
        let after: Vec<_> = (0..2).map(|_| original.gradients()).collect();
        for grads in &before {
            original.step_with(ctx, grads);
        }
        let checkpoint = original.device.checkpoint().unwrap();
        let file = safetensors::SafeTensors::deserialize(&checkpoint).unwrap();
        let expected = |dtype| match dtype {
            Dtype::F32 => safetensors::Dtype::F32,
            Dtype::F16 => safetensors::Dtype::F16,
            Dtype::BF16 => safetensors::Dtype::BF16,
        };
        let exp_avg = file.tensor("state.0.exp_avg").unwrap();
        assert_eq!(exp_avg.dtype(), expected(storage.states), "{storage:?}");
        assert_eq!(exp_avg.shape(), [LENS[0]]);
        assert_eq!(
            file.tensor("state.1.master_param").map(|t| t.dtype()).ok(),
            storage.master.then_some(safetensors::Dtype::F32),
            "{storage:?}"
        );
        let params: Vec<Vec<f32>> = original
            .params
            .iter()
            .map(|p| ctx.read_f32(&p.param).unwrap())
            .collect();
        for grads in &after {
            original.step_with(ctx, grads);
        }

        let mut resumed = MixedRun::new(ctx, &config, storage, Placement::Arena, 2);
        for (param, values) in resumed.params.iter().zip(&params) {
            ctx.write_f32(&param.param, values).unwrap();
        }
        resumed.device.load_checkpoint(&checkpoint).unwrap();
        for grads in &after {
            resumed.step_with(ctx, grads);
        }
        let (resumed_bits, original_bits) = (resumed.snapshot(ctx), original.snapshot(ctx));
        for (n, (r, o)) in resumed_bits.iter().zip(&original_bits).enumerate() {
            let first = r.iter().zip(o).position(|(a, b)| a != b);
            assert!(
                first.is_none(),
                "{storage:?}: resuming differs from never stopping in buffer {n} at {first:?}"
            );
        }

        // Another state type: refused, nothing changed.
        let other_states = if storage.states == Dtype::F32 {
            Dtype::BF16
        } else {
            Dtype::F32
        };
        let other = Storage {
            states: other_states,
            ..storage
        };
        let mut other = MixedRun::new(ctx, &config, other, Placement::Arena, 3);
        other.step(ctx);
        let untouched = other.snapshot(ctx);
        match other.device.load_checkpoint(&checkpoint) {
            Err(Error::CheckpointMismatch(what)) => assert!(what.contains("exp_avg"), "{what}"),
            other => panic!("{storage:?}: loaded into {other_states} states: {other:?}"),
        }
        assert_eq!(
            other.snapshot(ctx),
            untouched,
            "a refused load changed the optimizer"
        );
    }
}

/// Gradient processing reads 16-bit gradients as they are stored: unscaled by a GradScaler,
/// clipped by value and by global norm, against the reference; an f16 gradient that
/// overflowed to inf (past 65504) is caught and the step skipped, as GradScaler does.
#[test]
fn gradient_processing_takes_16_bit_gradients() {
    let ctx = context();
    let config = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(1e-2));
    let processing = GradConfig::default()
        .with_max_norm(1.0)
        .with_clip_value(0.8)
        // A scale f16 gradients hold (GradScaler's default 65536 overflows them all: it backs
        // off to such a scale within a few steps).
        .with_grad_scaler(GradScalerConfig {
            init_scale: 256.0,
            ..GradScalerConfig::default()
        });
    for storage in [
        Storage::new(Dtype::BF16, Dtype::BF16, Dtype::F32),
        // f32 states: AdamW's exp_avg_sq refuses f16.
        Storage::new(Dtype::F16, Dtype::F16, Dtype::F32),
        Storage::new(Dtype::F32, Dtype::BF16, Dtype::F32),
    ] {
        for placement in [Placement::Arena, Placement::OwnBuffers] {
            let mut run = MixedRun::new(ctx, &config, storage, placement, 9);
            run.set_grad_processing(ctx, processing.clone());
            for step in 1..=4 {
                let scale = run.device.read_control().unwrap().grad_scale;
                let mut grads = run.gradients();
                for g in grads.iter_mut().flatten() {
                    *g *= scale;
                }
                if step == 3 {
                    // Past f16's range: inf once stored as f16 (bf16 holds it: the clip does).
                    grads[4][7] = 7e4 * scale;
                }
                run.step_with(ctx, &grads);
                let what = format!("{storage:?} {placement:?} step {step}");
                run.compare(ctx, &what, storage);
                let control = run.device.read_control().unwrap();
                let overflowed = step == 3 && storage.grad == Dtype::F16;
                assert_eq!(control.skipped(), overflowed, "{what}");
            }
        }
    }
}
