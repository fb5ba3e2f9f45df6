//! The CPU Muon ([`reference::Muon`]) against `torch.optim.Muon`'s trajectories
//! (tests/golden/muon.json, recorded by tools/golden/muon.py with torch 2.15.0): square, wide,
//! tall, 1 x n and odd shapes; Nesterov on and off; each learning-rate adjustment; weight decay
//! on and off; 3 and 5 iterations; a zero gradient; a zero matrix.
//!
//! The tolerance comes from PyTorch itself: the recording runs torch's Muon code in float64
//! (the expected values) and in float32, and stores, per step, the largest |f32 - f64| of the
//! parameters. Two f32 implementations of the same formulas that sum in different orders differ
//! from float64 by about as much; each step is checked within 4 times that spread (at least
//! 1e-6). torch.optim.Muon as shipped orthogonalizes in bfloat16: its final parameters, also
//! stored, sit about 1e-3 from float64, hundreds of times further than ours. Optax's form
//! replays `optax.contrib.muon`'s trajectories (tests/golden/muon_optax.json) the same way.

use serde_json::Value;
use wgpu_optim::reference::{self, Matrix};
use wgpu_optim::{AdjustLr, Error, MuonConfig};

fn f32s(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

fn f64s(value: &Value) -> Vec<f64> {
    let array = value.as_array().expect("an array");
    array
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

/// The configuration of a case: torch's keyword arguments over torch's defaults.
fn config(kwargs: &Value) -> MuonConfig {
    let mut config = MuonConfig::default();
    for (key, value) in kwargs.as_object().expect("an object") {
        match key.as_str() {
            "lr" => config.lr = value.as_f64().unwrap(),
            "weight_decay" => config.weight_decay = value.as_f64().unwrap(),
            "momentum" => config.momentum = value.as_f64().unwrap(),
            "nesterov" => config.nesterov = value.as_bool().unwrap(),
            "ns_steps" => config.ns_steps = value.as_u64().unwrap() as u32,
            "adjust_lr_fn" => {
                let name = value.as_str().unwrap();
                config.adjust_lr = AdjustLr::from_name(name).expect("a torch adjustment")
            }
            other => panic!("unknown keyword {other}"),
        }
    }
    config
}

/// `optax.contrib.muon`'s keyword arguments over Optax's defaults (eps 1e-8, no weight decay,
/// width scaling), in Optax's form.
fn optax_config(kwargs: &Value) -> MuonConfig {
    let mut config = MuonConfig::default()
        .with_optax_form(true)
        .with_eps(1e-8)
        .with_weight_decay(0.0)
        .with_adjust_lr(AdjustLr::WidthTransfer);
    for (key, value) in kwargs.as_object().expect("an object") {
        match key.as_str() {
            "learning_rate" => config.lr = value.as_f64().unwrap(),
            "weight_decay" => config.weight_decay = value.as_f64().unwrap(),
            "beta" => config.momentum = value.as_f64().unwrap(),
            "nesterov" => config.nesterov = value.as_bool().unwrap(),
            "ns_steps" => config.ns_steps = value.as_u64().unwrap() as u32,
            "eps" => config.eps = value.as_f64().unwrap(),
            "consistent_rms" => {
                assert_eq!(value.as_f64(), Some(0.2), "0.2 is match_rms_adamw's");
                config.adjust_lr = AdjustLr::MatchRmsAdamW;
            }
            other => panic!("unknown keyword {other}"),
        }
    }
    config
}

/// Replays every case with the configuration `config` makes of its keywords, each step within
/// 4 times the recording's own f32 spread (at least 1e-6), the final momentum within 1e-6
/// relative of the recorded one (`momentum_key`); returns the closest share of the tolerance
/// and where.
fn replay(cases: &[Value], config: fn(&Value) -> MuonConfig, momentum_key: &str) -> (f64, String) {
    let mut worst = (0.0f64, String::new());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let mut muon = reference::Muon::new(&config(&case["config"]), &[shape]).unwrap();
        let mut params = vec![f32s(&case["init"])];
        let spreads = f64s(&case["f32_spread"]);
        for (step, (grad, expected)) in case["grads"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["f64"].as_array().unwrap())
            .enumerate()
        {
            muon.step(&mut params, &[f32s(grad)]).unwrap();
            let tolerance = (4.0 * spreads[step]).max(1e-6);
            let error = params[0]
                .iter()
                .zip(f64s(expected))
                .map(|(&ours, recorded)| (ours as f64 - recorded).abs())
                .fold(0.0, f64::max);
            assert!(
                error <= tolerance,
                "{name}, step {}: {error:e} from float64, tolerance {tolerance:e}",
                step + 1
            );
            if error / tolerance > worst.0 {
                worst = (error / tolerance, format!("{name} step {}", step + 1));
            }
        }
        let buffer = f64s(&case[momentum_key]);
        for (&ours, recorded) in muon.momentum_buffer(0).unwrap().iter().zip(buffer) {
            assert!(
                (ours as f64 - recorded).abs() <= 1e-6 * (1.0 + recorded.abs()),
                "{name}: momentum buffer {ours} vs {recorded}"
            );
        }
    }
    worst
}

#[test]
fn the_reference_follows_torchs_muon_within_its_own_f32_spread() {
    let golden: Value = serde_json::from_str(include_str!("golden/muon.json")).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 37);
    let worst = replay(cases, config, "f64_momentum_buffer");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let spreads = f64s(&case["f32_spread"]);
        // Torch's bfloat16 default sits much further from float64 than this f32 reference
        // (the zero matrix excepted: everything stays 0 there).
        let bf16_distance = case["torch_bf16_final_distance"].as_f64().unwrap();
        let final_spread = *spreads.last().unwrap();
        assert!(
            name.starts_with("zero") || bf16_distance > 50.0 * final_spread,
            "{name}: bf16 {bf16_distance:e}, f32 spread {final_spread:e}"
        );
    }
    eprintln!(
        "closest to the tolerance: {:.2} of it ({})",
        worst.0, worst.1
    );
}

/// Optax's form (`MuonConfig::with_optax_form`) against `optax.contrib.muon`
/// (tests/golden/muon_optax.json, recorded by tools/golden/muon_optax.py with optax 0.2.8 and
/// JAX 0.10.2 in float64 and float32): square, wide, tall and odd shapes; Nesterov on and off;
/// weight decay; `consistent_rms`; 3 iterations with another eps.
#[test]
fn the_optax_form_follows_optax_muon_within_its_own_f32_spread() {
    let golden: Value = serde_json::from_str(include_str!("golden/muon_optax.json")).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 20);
    let worst = replay(cases, optax_config, "f64_mu");
    eprintln!(
        "closest to the tolerance: {:.2} of it ({})",
        worst.0, worst.1
    );
}

#[test]
fn a_zero_matrix_stays_finite_and_zero() {
    let mut muon = reference::Muon::new(&MuonConfig::default(), &[vec![3, 5]]).unwrap();
    let mut params = vec![vec![0.0; 15]];
    for _ in 0..3 {
        muon.step(&mut params, &[vec![0.0; 15]]).unwrap();
    }
    assert!(params[0].iter().all(|&p| p == 0.0));
    let zero = Matrix {
        rows: 2,
        cols: 2,
        values: vec![0.0; 4],
    };
    let ortho = reference::newton_schulz(&zero, [3.4445, -4.775, 2.0315], 5, 1e-7);
    assert_eq!(ortho.values, vec![0.0; 4]);
}

#[test]
fn newton_schulz_orthogonalizes_a_wide_and_a_tall_matrix_alike() {
    // The tall matrix is the wide one transposed: its result is the wide result transposed.
    let wide = Matrix {
        rows: 3,
        cols: 5,
        values: (0..15).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect(),
    };
    let coefficients = [3.4445, -4.775, 2.0315];
    let from_wide = reference::newton_schulz(&wide, coefficients, 5, 1e-7);
    let from_tall = reference::newton_schulz(&wide.transpose(), coefficients, 5, 1e-7);
    assert_eq!(from_tall, from_wide.transpose());
    // Quintic Newton-Schulz leaves singular values near 1 (0.5 to 1.5 by Jordan's account,
    // not exactly 1): the rows of the result are near orthonormal.
    let gram = (0..3)
        .flat_map(|i| (0..3).map(move |j| (i, j)))
        .map(|(i, j)| {
            (0..5)
                .map(|k| from_wide.values[i * 5 + k] * from_wide.values[j * 5 + k])
                .sum::<f32>()
        })
        .collect::<Vec<_>>();
    for i in 0..3 {
        assert!((0.3..1.7).contains(&gram[i * 3 + i]), "{gram:?}");
    }
}

#[test]
fn muon_refuses_what_torch_refuses_and_what_cannot_run() {
    let bad = |config: MuonConfig| reference::Muon::new(&config, &[vec![2, 2]]).unwrap_err();
    for error in [
        bad(MuonConfig::default().with_lr(-1.0)),
        bad(MuonConfig::default().with_momentum(f64::NAN)),
        bad(MuonConfig::default().with_weight_decay(-0.1)),
        bad(MuonConfig::default().with_ns_steps(0)),
        bad(MuonConfig::default().with_ns_steps(100)),
        bad(MuonConfig::default().with_eps(0.0)),
        bad(MuonConfig::default().with_ns_coefficients([1e39, 0.0, 0.0])),
    ] {
        assert!(
            matches!(error, Error::InvalidHyperparameter { .. }),
            "{error}"
        );
    }
    for shape in [vec![4], vec![2, 3, 4], vec![]] {
        let error =
            reference::Muon::new(&MuonConfig::default(), std::slice::from_ref(&shape)).unwrap_err();
        assert!(
            matches!(&error, Error::NotAMatrix { shape: s, .. } if *s == shape),
            "{error}"
        );
    }
    // Lengths are checked before anything moves.
    let mut muon = reference::Muon::new(&MuonConfig::default(), &[vec![2, 2]]).unwrap();
    let mut params = vec![vec![1.0; 4]];
    let error = muon.step(&mut params, &[vec![1.0; 3]]).unwrap_err();
    assert!(matches!(error, Error::LengthMismatch { .. }), "{error}");
    assert_eq!(params[0], vec![1.0; 4]);
    assert_eq!(muon.momentum_buffer(0).unwrap(), &[0.0; 4]);
}
