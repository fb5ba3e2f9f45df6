//! Batched Newton-Schulz on the device ([`NewtonSchulz`]) against the CPU reference
//! ([`reference::newton_schulz`]), one matrix at a time: square, wide, tall, 1 x n, odd sizes
//! and sizes across the 64 x 64 tiles, in one batch; each matrix's result the same bits alone
//! as in the batch; a zero matrix; what it refuses.

mod common;

use common::{context, Rng};
use wgpu_optim::matrix::{NewtonSchulz, NormFloor, NsOptions};
use wgpu_optim::reference::{self, Matrix};
use wgpu_optim::Error;

const COEFFICIENTS: [f64; 3] = [3.4445, -4.7750, 2.0315];
const SHAPES: [(usize, usize); 8] = [
    (8, 8),
    (4, 12),
    (12, 4),
    (1, 16),
    (7, 13),
    (13, 7),
    (65, 130),
    (150, 70),
];

fn run(shapes: &[(usize, usize)], inputs: &[Vec<f32>], steps: u32) -> Vec<Vec<f32>> {
    let ctx = context();
    let ns = NewtonSchulz::new(ctx, shapes, COEFFICIENTS, steps, 1e-7).unwrap();
    for (i, values) in inputs.iter().enumerate() {
        ctx.write_f32(&ns.input(i).unwrap(), values).unwrap();
    }
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ns.record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    (0..shapes.len())
        .map(|i| ctx.read_f32(&ns.output(i).unwrap()).unwrap())
        .collect()
}

fn inputs(seed: u64, shapes: &[(usize, usize)]) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    shapes.iter().map(|&(r, c)| rng.gradient(r * c)).collect()
}

/// The device sums each product over the inner index in the reference's order, but may fuse
/// multiply-adds and sums the norm as a tree: after 5 iterations of a polynomial whose
/// coefficients reach 4.8, the entries (of order 1/sqrt(n), at most about 1) differ from the
/// reference by 1.1e-6 at most on lavapipe (the largest seen is printed); 1e-5 absolute is the
/// bound, still 100 times below PyTorch's own bfloat16 iteration's distance from float64
/// (about 1e-3, tests/muon_golden.rs).
const TOLERANCE: f32 = 1e-5;

#[test]
fn a_batch_of_every_shape_matches_the_reference_one_matrix_at_a_time() {
    let inputs = inputs(7, &SHAPES);
    for steps in [5, 2] {
        let device = run(&SHAPES, &inputs, steps);
        let mut worst = 0.0f32;
        for ((&(rows, cols), input), device) in SHAPES.iter().zip(&inputs).zip(&device) {
            let matrix = Matrix {
                rows,
                cols,
                values: input.clone(),
            };
            let coefficients = COEFFICIENTS.map(|v| v as f32);
            let expected = reference::newton_schulz(&matrix, coefficients, steps, 1e-7);
            for (d, r) in device.iter().zip(&expected.values) {
                let error = (d - r).abs();
                worst = worst.max(error);
                assert!(
                    error <= TOLERANCE,
                    "{rows} x {cols}, {steps} steps: device {d} vs reference {r}"
                );
            }
            assert!(
                device.iter().any(|&v| v != 0.0),
                "{rows} x {cols}: all zero"
            );
        }
        eprintln!("{steps} steps: largest |device - reference| {worst:e}");
    }
}

/// Optax's floor (`||X||_F + eps`), with an eps large enough to change the result: the
/// reference's, within the same bound; and not the default floor's.
#[test]
fn the_norm_plus_eps_floor_matches_the_reference() {
    let ctx = context();
    let shapes = [(7, 13), (13, 7), (8, 8)];
    let inputs = inputs(17, &shapes);
    let eps = 0.5;
    let options = NsOptions {
        norm_floor: NormFloor::Add,
        ..NsOptions::default()
    };
    let ns = NewtonSchulz::with_options(ctx, &shapes, COEFFICIENTS, 5, eps, options);
    let ns = ns.unwrap();
    for (i, values) in inputs.iter().enumerate() {
        ctx.write_f32(&ns.input(i).unwrap(), values).unwrap();
    }
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ns.record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let coefficients = COEFFICIENTS.map(|v| v as f32);
    for (i, (&(rows, cols), input)) in shapes.iter().zip(&inputs).enumerate() {
        let device = ctx.read_f32(&ns.output(i).unwrap()).unwrap();
        let matrix = Matrix {
            rows,
            cols,
            values: input.clone(),
        };
        let floor = NormFloor::Add;
        let expected =
            reference::newton_schulz_with_floor(&matrix, coefficients, 5, eps as f32, floor);
        for (d, r) in device.iter().zip(&expected.values) {
            assert!((d - r).abs() <= TOLERANCE, "{rows} x {cols}: {d} vs {r}");
        }
        let max = reference::newton_schulz(&matrix, coefficients, 5, eps as f32);
        assert!(
            max.values
                .iter()
                .zip(&device)
                .any(|(a, b)| (a - b).abs() > 1e-3),
            "{rows} x {cols}: the floor changes nothing"
        );
    }
}

/// The iterate stored in f16 (the math in f32): each stored value is rounded to 11 bits, and
/// the quintic iteration (which leaves singular values between about 0.7 and 1.2, not at
/// exactly one) carries the roundings through: 2.8e-3 from the f32 reference at most on these
/// shapes on lavapipe (printed). The bound, 1e-2, is a third of what PyTorch's own bfloat16 iteration
/// (`torch.optim._muon._zeropower_via_newtonschulz`, torch 2.15.0) was measured to be from its
/// float64 run on normal inputs of the same shapes (3.4e-2, 5 draws each). The results differ
/// from the f32 iterate's (the storage really is f16).
#[test]
fn an_f16_iterate_stays_near_the_f32_reference() {
    let ctx = context();
    let inputs = inputs(19, &SHAPES);
    let options = NsOptions {
        f16_iterate: true,
        ..NsOptions::default()
    };
    let ns = NewtonSchulz::with_options(ctx, &SHAPES, COEFFICIENTS, 5, 1e-7, options).unwrap();
    for (i, values) in inputs.iter().enumerate() {
        ctx.write_f32(&ns.input(i).unwrap(), values).unwrap();
    }
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ns.record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let f32_iterate = run(&SHAPES, &inputs, 5);
    let coefficients = COEFFICIENTS.map(|v| v as f32);
    let mut worst = 0.0f32;
    for (i, (&(rows, cols), input)) in SHAPES.iter().zip(&inputs).enumerate() {
        let device = ctx.read_f32(&ns.output(i).unwrap()).unwrap();
        let matrix = Matrix {
            rows,
            cols,
            values: input.clone(),
        };
        let expected = reference::newton_schulz(&matrix, coefficients, 5, 1e-7);
        for (d, r) in device.iter().zip(&expected.values) {
            worst = worst.max((d - r).abs());
            assert!((d - r).abs() <= 1e-2, "{rows} x {cols}: {d} vs {r}");
        }
        assert_ne!(device, f32_iterate[i], "{rows} x {cols}: not stored in f16");
    }
    eprintln!("f16 iterate: largest |device - reference| {worst:e}");
}

#[test]
fn each_matrix_gets_the_same_bits_alone_as_in_the_batch() {
    let inputs = inputs(11, &SHAPES);
    let batched = run(&SHAPES, &inputs, 5);
    for (i, &shape) in SHAPES.iter().enumerate() {
        let alone = run(&[shape], &inputs[i..=i], 5);
        assert_eq!(alone[0], batched[i], "{shape:?}");
    }
}

#[test]
fn a_zero_matrix_stays_zero() {
    let out = run(&[(3, 5), (4, 4)], &[vec![0.0; 15], vec![1.0; 16]], 5);
    assert_eq!(out[0], vec![0.0; 15]);
    assert!(out[1].iter().all(|v| v.is_finite()));
}

#[test]
fn bad_settings_are_refused() {
    let ctx = context();
    let new = |shapes: &[(usize, usize)], coefficients: [f64; 3], steps: u32, eps: f64| {
        NewtonSchulz::new(ctx, shapes, coefficients, steps, eps).err()
    };
    for (error, what) in [
        (new(&[], COEFFICIENTS, 5, 1e-7), "an empty batch"),
        (
            new(&[(0, 4)], COEFFICIENTS, 5, 1e-7),
            "a matrix without rows",
        ),
        (new(&[(4, 4)], COEFFICIENTS, 0, 1e-7), "no iteration"),
        (new(&[(4, 4)], COEFFICIENTS, 100, 1e-7), "100 iterations"),
        (
            new(&[(4, 4)], [f64::NAN, 0.0, 0.0], 5, 1e-7),
            "a NaN coefficient",
        ),
        (new(&[(4, 4)], COEFFICIENTS, 5, 0.0), "eps 0"),
    ] {
        let error = error.unwrap_or_else(|| panic!("{what} was accepted"));
        assert!(
            matches!(
                error,
                Error::InvalidOptions(_) | Error::InvalidHyperparameter { .. }
            ),
            "{what}: {error}"
        );
    }
    let ns = NewtonSchulz::new(ctx, &[(2, 3)], COEFFICIENTS, 5, 1e-7).unwrap();
    assert!(matches!(ns.input(1), Err(Error::NoSuchTensor { .. })));
    assert_eq!(ns.dispatches(), 18);
}
