//! Golden 16-bit trajectories recorded from PyTorch's fused CPU optimizers (SGD, Adagrad,
//! Adam, AdamW with `fused=True`, bf16 and f16 parameters, gradients and states;
//! `tools/golden/mixed_precision.py`), replayed on the adapter step by step (but the f16
//! cases of Adagrad, Adam and AdamW, whose squared states this library refuses in f16): before each step
//! the device gets PyTorch's parameters and states of the step before, and after it every
//! parameter and state must be within one unit in the last place of the 16-bit type of
//! PyTorch's. (Both compute in f32 and round each store to nearest even; their f32 operations
//! differ in order, which can round a store the other way.) The free-running trajectory, never
//! reset, is reported beside.

mod common;
// The 16-bit replay uses the f32 replay's parsing only.
#[allow(dead_code)]
mod replay;

use serde_json::Value;
use wgpu_optim::*;

fn dtype(case: &Value) -> Dtype {
    match case["dtype"].as_str().expect("a dtype") {
        "bfloat16" => Dtype::BF16,
        "float16" => Dtype::F16,
        other => panic!("unknown dtype {other}"),
    }
}

struct Replay {
    arena: Arena,
    optimizer: Optimizer,
}

impl Replay {
    fn new(ctx: &Context, case: &Value) -> Replay {
        let dtype = dtype(case);
        let params = replay::tensors(&case["params"]);
        let lens: Vec<usize> = params.iter().map(Vec::len).collect();
        let arena = Arena::with_dtypes(ctx, &lens, dtype, dtype).unwrap();
        for (i, values) in params.iter().enumerate() {
            arena.write_param(i, values).unwrap();
        }
        // PyTorch keeps the states in the parameters' type: the default.
        let optimizer = replay::config(case).build(ctx, &arena.params()).unwrap();
        assert_eq!(optimizer.storage(), Storage::new(dtype, dtype, dtype));
        Replay { arena, optimizer }
    }

    fn step(&self, ctx: &Context, grads: &[Vec<f32>]) {
        for (i, grad) in grads.iter().enumerate() {
            self.arena.write_grad(i, grad).unwrap();
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        self.optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }

    /// The worst distance, in ulps, of the params and states from the step's golden values.
    fn distance(&self, case: &Value, step: usize) -> (f32, String) {
        let dtype = dtype(case);
        let mut worst = (0.0_f32, String::new());
        let mut compare = |what: String, device: &[f32], golden: &[f32]| {
            assert_eq!(device.len(), golden.len(), "{what}");
            for (i, (&d, &g)) in device.iter().zip(golden).enumerate() {
                let u = common::ulps_16bit(d, g, dtype);
                if u > worst.0 {
                    worst = (u, format!("{what}[{i}]: device {d:e}, PyTorch {g:e}"));
                }
            }
        };
        let params = replay::tensors(&case["params_after"][step]);
        for (i, golden) in params.iter().enumerate() {
            let device = self.arena.read_param(i).unwrap();
            compare(
                format!("step {} tensor {i} param", step + 1),
                &device,
                golden,
            );
            for (name, values) in case["states_after"][step][i].as_object().unwrap() {
                let device = self.optimizer.read_state(i, name).unwrap();
                let what = format!("step {} tensor {i} {name}", step + 1);
                compare(what, &device, &replay::vector(values));
            }
        }
        worst
    }

    /// Sets the params and states to the golden ones after `step`.
    fn reset(&self, ctx: &Context, case: &Value, step: usize) {
        let params = replay::tensors(&case["params_after"][step]);
        for (i, values) in params.iter().enumerate() {
            self.arena.write_param(i, values).unwrap();
            for (name, values) in case["states_after"][step][i].as_object().unwrap() {
                let range = self.optimizer.state_range(i, name).unwrap();
                ctx.write_f32(range, &replay::vector(values)).unwrap();
            }
        }
    }
}

#[test]
fn pytorch_fused_16_bit_trajectories_replay_within_one_ulp_per_step() {
    let ctx = common::context();
    let document: Value =
        serde_json::from_str(include_str!("golden/mixed_precision.json")).unwrap();
    let cases = document["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 14, "the fixture lost cases");
    let mut failures = Vec::new();
    eprintln!(
        "{:<32} {:>14} {:>18}",
        "case", "worst per step", "worst free-running"
    );
    let mut refused = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        if refuses_f16_squares(ctx, case) {
            refused += 1;
            continue;
        }
        let steps = case["grads"].as_array().unwrap().len();
        let forced = Replay::new(ctx, case);
        let free = Replay::new(ctx, case);
        let (mut per_step, mut running) = (0.0_f32, 0.0_f32);
        for step in 0..steps {
            let grads = replay::tensors(&case["grads"][step]);
            if step > 0 {
                forced.reset(ctx, case, step - 1);
            }
            forced.step(ctx, &grads);
            free.step(ctx, &grads);
            let (worst, at) = forced.distance(case, step);
            per_step = per_step.max(worst);
            running = running.max(free.distance(case, step).0);
            if worst > 1.0 {
                failures.push(format!("{name}: {worst} ulps at {at}"));
            }
        }
        eprintln!("{name:<32} {per_step:>14} {running:>18}");
    }
    // Adagrad's, Adam's and AdamW's f16 cases: their squared states are refused in f16.
    assert_eq!(
        refused, 5,
        "the f16 cases of optimizers with squared states"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether `case` keeps a squared state (Adam's `exp_avg_sq`, Adagrad's `sum`) in f16, as
/// PyTorch's fused optimizers do; if so, asserts that this library refuses it (issue 25,
/// finding 10: f16's 65504 is the square of a gradient of 256, and PyTorch's f16
/// `exp_avg_sq` overflows to inf for good past it).
fn refuses_f16_squares(ctx: &Context, case: &Value) -> bool {
    let config = replay::config(case);
    let squares = config.states().unwrap().iter().any(|s| s.holds_squares());
    if dtype(case) != Dtype::F16 || !squares {
        return false;
    }
    let params = replay::tensors(&case["params"]);
    let lens: Vec<usize> = params.iter().map(Vec::len).collect();
    let arena = Arena::with_dtypes(ctx, &lens, Dtype::F16, Dtype::F16).unwrap();
    assert!(matches!(
        config.build(ctx, &arena.params()),
        Err(Error::UnsupportedDtype {
            dtype: Dtype::F16,
            ..
        })
    ));
    true
}
