//! Every optimizer, in every combination of its options, against the CPU reference: params
//! and every state buffer, element by element, over 12 steps, for lengths that straddle the
//! vec4 lanes and the workgroup tile.

mod common;
use common::*;
use wgpu_optim::{AdagradConfig, OptimizerConfig, Tuning};

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
