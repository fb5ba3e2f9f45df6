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
/// with f32 states, bf16 parameters with f32 gradients, f32 parameters with bf16 states.
fn storages() -> Vec<Storage> {
    use Dtype::*;
    let storage = |param, grad, states| Storage {
        param,
        grad,
        states,
    };
    vec![
        storage(BF16, BF16, BF16),
        storage(F16, F16, F16),
        storage(BF16, BF16, F32),
        storage(F16, F16, F32),
        storage(BF16, F32, F32),
        storage(F32, F32, BF16),
        storage(F32, F32, F16),
    ]
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
                    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
                        label: None,
                        size: bytes,
                        usage: wgpu::BufferUsages::STORAGE
                            | wgpu::BufferUsages::COPY_SRC
                            | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    BufferRange::typed(&buffer, 0, len as u64, dtype)
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
        let precision = Precision::default().with_states(storage.states);
        let group = ParamGroup {
            config: config.clone(),
            params: params.clone(),
        };
        let device = Optimizer::with_precision(ctx, vec![group], precision).unwrap();
        assert_eq!(device.storage(), storage);
        let reference = reference::Optimizer::with_storage(config, &LENS, storage).unwrap();
        MixedRun {
            params,
            host,
            device,
            reference,
            rng,
            _arena: arena,
        }
    }

    fn step(&mut self, ctx: &Context) {
        let grads: Vec<Vec<f32>> = self
            .params
            .iter()
            .map(|p| self.rng.gradient(p.len() as usize))
            .collect();
        for (param, grad) in self.params.iter().zip(&grads) {
            ctx.write_f32(&param.grad, grad).unwrap();
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        self.device.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        self.reference.step(&mut self.host, &grads).unwrap();
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
                let ulps = ulps_apart(d, r, dtype);
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

/// How far apart two values of a 16-bit type are, in units in the last place of the larger.
fn ulps_apart(a: f32, b: f32, dtype: Dtype) -> f32 {
    let (significand_bits, min_step) = match dtype {
        Dtype::F16 => (11, 2f32.powi(-24)),
        _ => (8, f32::from_bits(1 << 16)),
    };
    let larger = a.abs().max(b.abs());
    // The ulp at `larger`, not below the type's smallest subnormal step.
    let ulp = (2f32.powi(larger.log2().floor() as i32 + 1 - significand_bits)).max(min_step);
    (a - b).abs() / ulp
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
