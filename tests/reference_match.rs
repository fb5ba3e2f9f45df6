//! Every optimizer, in every combination of its options, against the CPU reference: params
//! and every state buffer, element by element, over 12 steps, for lengths that straddle the
//! vec4 lanes and the workgroup tile.

mod common;
use common::*;
use wgpu_optim::{AdagradConfig, NAdamConfig, OptimizerConfig, Tuning};

const LENS: [usize; 7] = [1, 3, 255, 256, 257, 1000, 65537];
const STEPS: usize = 12;

/// Both ways of dealing vec4s to invocations (`Tuning::runs_per_invocation`): the adapter's
/// choice and the other.
#[test]
fn every_optimizer_and_option_matches_the_reference() {
    let configs = all_configs();
    let mut worst = 0.0_f32;
    for runs in [true, false] {
        let ctx = &context().clone().with_tuning(Tuning {
            runs_per_invocation: runs,
            ..context().tuning()
        });
        for (n, config) in configs.iter().enumerate() {
            let mut run = Run::new(ctx, config, &LENS, n as u64);
            for step in 1..=STEPS {
                run.step(ctx);
                if step == 1 || step == STEPS {
                    let what = format!("{config:?} (runs: {runs}) after step {step}");
                    worst = worst.max(run.compare(ctx, &what));
                }
            }
        }
    }
    eprintln!(
        "{} configurations; largest share of the tolerance used: {worst:.3}",
        configs.len()
    );
}

/// Found by the property tests: with a large `lr_decay`, a compiler that reassociated Adagrad's
/// `(step - 1) * lr_decay` into `step * lr_decay - lr_decay` cancelled the denominator to 0
/// and the first step sent every parameter to infinity on lavapipe.
#[test]
fn adagrad_with_a_large_lr_decay_matches_the_reference() {
    let ctx = context();
    for lr_decay in [1e30, 3.4e38] {
        let config = OptimizerConfig::Adagrad(AdagradConfig {
            lr_decay,
            ..AdagradConfig::default()
        });
        let mut run = Run::new(ctx, &config, &[5, 300], 3);
        for _ in 0..3 {
            run.step(ctx);
        }
        run.compare(ctx, &format!("Adagrad with lr_decay {lr_decay:e}"));
    }
}

/// NAdam with `beta1` and `momentum_decay` changed between steps, as a cycled momentum (or a
/// user) changes them, a zero `beta1` among them: the device matches the reference after
/// every step, and the checkpoint's `mu_product` is PyTorch's running product of each step's
/// own `mu_t`, computed here in f64 (0 for good once a `beta1` of 0 has been through it).
#[test]
fn nadam_carries_each_steps_beta1_and_momentum_decay_in_its_product() {
    let ctx = context();
    let schedules: [&[(f64, f64)]; 3] = [
        &[
            (0.9, 4e-3),
            (0.85, 4e-3),
            (0.95, 4e-3),
            (0.95, 4e-3),
            (0.8, 4e-3),
            (0.9, 4e-3),
        ],
        &[
            (0.9, 4e-3),
            (0.9, 0.5),
            (0.7, 50.0),
            (0.7, 50.0),
            (0.99, 0.0),
            (0.9, 4e-3),
        ],
        &[
            (0.9, 4e-3),
            (0.0, 4e-3),
            (0.0, 4e-3),
            (0.9, 4e-3),
            (0.95, 1.0),
            (0.9, 4e-3),
        ],
    ];
    for (n, schedule) in schedules.iter().enumerate() {
        let config = NAdamConfig::default().with_lr(0.01);
        let mut run = Run::new(ctx, &config.clone().into(), &[5, 300], 40 + n as u64);
        let mut exact = 1.0_f64;
        for (t, &(beta1, momentum_decay)) in schedule.iter().enumerate() {
            let step = config
                .clone()
                .with_betas(beta1, 0.999)
                .with_momentum_decay(momentum_decay);
            run.device.set_config(step.clone().into()).unwrap();
            run.reference.set_config(step.into()).unwrap();
            run.step(ctx);
            let what = format!("schedule {n} after step {}", t + 1);
            run.compare(ctx, &what);
            let t = (t + 1) as f64;
            exact *= beta1 * (1.0 - 0.5 * 0.96_f64.powf(t * momentum_decay));
            let file = run.device.checkpoint().unwrap();
            let file = safetensors::SafeTensors::deserialize(&file).unwrap();
            let tensor = file.tensor("state.1.mu_product").unwrap();
            let product = f64::from(f32::from_le_bytes(tensor.data().try_into().unwrap()));
            if exact == 0.0 {
                assert_eq!(product, 0.0, "{what}: mu_product");
            } else {
                let rel = (product / exact - 1.0).abs();
                assert!(rel <= 1e-5, "{what}: mu_product {product:e} vs {exact:e}");
            }
        }
    }
}
