//! The 8-bit state codec ([`wgpu_optim::quant`]) against torchao 0.18.0 (tests/golden/adam8bit.json,
//! recorded by tools/golden/adam8bit.py with torch 2.15.0 on the CPU): the dynamic maps entry
//! for entry, and 120 steps of `single_param_adam` (Adam and AdamW, four hyperparameter sets,
//! 4096 elements: 16 blocks, one of them all zero, outliers in every other) replayed here in
//! torchao's own f32 operations over this crate's quantize and dequantize. Codes and scales
//! must match torchao's at every snapshot, bit for bit; the parameters within bitsandbytes'
//! bound (torch's CPU sqrt is not correctly rounded).

mod common;

use serde_json::Value;
use wgpu_optim::dtype::mix32;
use wgpu_optim::quant::{dynamic_map, Quantized, BLOCK};
use wgpu_optim::{
    AdamConfig, AdamWConfig, BufferRange, LionConfig, Optimizer, OptimizerConfig, Param,
    ParamGroup, Precision, SgdConfig,
};

fn golden() -> Value {
    let text = include_str!("golden/adam8bit.json");
    serde_json::from_str(text).expect("tests/golden/adam8bit.json parses")
}

fn bytes(value: &Value) -> Vec<u8> {
    let hex = value.as_str().expect("a hex string");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn f32s(value: &Value) -> Vec<f32> {
    bytes(value)
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// tools/golden/adam8bit.py's `uniform`: values in [-0.5, 0.5) and the hash words.
fn uniform(n: usize, seed: u32, t: u32) -> (Vec<f32>, Vec<u32>) {
    let key = mix32(seed.wrapping_mul(0x9E37_79B9) ^ t);
    let words: Vec<u32> = (0..n as u32).map(|i| mix32(i ^ key)).collect();
    let values = words
        .iter()
        .map(|&u| (u >> 8) as f32 * 2f32.powi(-24) - 0.5)
        .collect();
    (values, words)
}

/// tools/golden/adam8bit.py's `grad`.
fn grad(n: usize, seed: u32, t: u32, zero_block: usize) -> Vec<f32> {
    let (x, u) = uniform(n, seed, t);
    let amp = [1e-3f32, 3e-3, 1e-2, 3e-2, 1e-1][t as usize % 5];
    let mut g: Vec<f32> = x
        .iter()
        .zip(&u)
        .map(|(&x, &u)| {
            let g = x * amp;
            if u & 0xff == 0 {
                g * 100.0
            } else {
                g
            }
        })
        .collect();
    g[zero_block * BLOCK..(zero_block + 1) * BLOCK].fill(0.0);
    g
}

/// torch's CPU `lerp` with a scalar weight, as its vectorized kernel (`lerp_vec` in ATen's
/// LerpKernel.cpp) computes it: one fused multiply-add, from the start for weights below half,
/// from the end above.
fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight.abs() < 0.5 {
        weight.mul_add(end - start, start)
    } else {
        (weight - 1.0).mul_add(end - start, end)
    }
}

struct Case {
    adamw: bool,
    lr: f32,
    beta1: f64,
    beta2: f64,
    eps: f32,
    weight_decay: f32,
}

/// torchao's `single_param_adam` in its f32 operations, over the host codec.
fn step(
    case: &Case,
    t: u32,
    p: &mut [f32],
    g: &[f32],
    exp_avg: &mut Quantized,
    exp_avg_sq: &mut Quantized,
) {
    let lr = case.lr;
    let mut g = g.to_vec();
    if case.adamw {
        let decay = lr * case.weight_decay;
        for p in p.iter_mut() {
            *p -= decay * *p;
        }
    } else {
        for (g, &p) in g.iter_mut().zip(p.iter()) {
            *g += case.weight_decay * p;
        }
    }
    let bias_correction1 = 1.0 - (case.beta1 as f32).powf(t as f32);
    let bias_correction2 = 1.0 - (case.beta2 as f32).powf(t as f32);
    let (w1, w2) = ((1.0 - case.beta1) as f32, (1.0 - case.beta2) as f32);
    let m: Vec<f32> = exp_avg
        .dequantize()
        .iter()
        .zip(&g)
        .map(|(&m, &g)| lerp(m, g, w1))
        .collect();
    let v: Vec<f32> = exp_avg_sq
        .dequantize()
        .iter()
        .zip(&g)
        .map(|(&v, &g)| lerp(v, g * g, w2))
        .collect();
    *exp_avg = Quantized::new(&m, true);
    *exp_avg_sq = Quantized::new(&v, false);
    let bc2_sqrt = bias_correction2.sqrt();
    for ((p, &m), &v) in p.iter_mut().zip(&m).zip(&v) {
        let denom = v.sqrt() / bc2_sqrt + case.eps;
        *p -= lr * (m / bias_correction1) / denom;
    }
}

#[test]
fn the_dynamic_maps_are_torchaos_entry_for_entry() {
    let golden = golden();
    for (key, signed) in [("qmap_signed", true), ("qmap_unsigned", false)] {
        let expected = f32s(&golden[key]);
        let ours = dynamic_map(signed);
        for (code, (a, b)) in ours.iter().zip(&expected).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{key}[{code}]: {a} vs torchao {b}"
            );
        }
    }
}

#[test]
fn torchaos_adam8bit_states_bit_for_bit() {
    let golden = golden();
    let n = golden["n"].as_u64().unwrap() as usize;
    let steps = golden["steps"].as_u64().unwrap() as u32;
    let zero_block = golden["zero_block"].as_u64().unwrap() as usize;
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let seed = case["seed"].as_u64().unwrap() as u32;
        let config = Case {
            adamw: case["adamw"].as_bool().unwrap(),
            lr: case["lr"].as_f64().unwrap() as f32,
            beta1: case["beta1"].as_f64().unwrap(),
            beta2: case["beta2"].as_f64().unwrap(),
            eps: case["eps"].as_f64().unwrap() as f32,
            weight_decay: case["weight_decay"].as_f64().unwrap() as f32,
        };
        let mut p: Vec<f32> = uniform(n, seed, 0).0.iter().map(|x| x * 0.1).collect();
        let mut exp_avg = Quantized::zeros(n, true);
        let mut exp_avg_sq = Quantized::zeros(n, false);
        let snapshots = case["snapshots"].as_array().unwrap();
        let mut next = snapshots.iter().peekable();
        for t in 1..=steps {
            let g = grad(n, seed, t, zero_block);
            step(&config, t, &mut p, &g, &mut exp_avg, &mut exp_avg_sq);
            let Some(snap) = next.next_if(|s| s["step"].as_u64() == Some(t as u64)) else {
                continue;
            };
            // torch's CPU sqrt is not correctly rounded (its AVX-512 kernel is off by an ulp in
            // one element in five of this file's second moments), so parameters are compared by
            // bitsandbytes' own bound (tests/test_optim.py: the mean of |p - p_ref| / (|p_ref| +
            // 1e-9) at most 0.0016); AdamW's states never see the parameters and match exactly.
            let expected = f32s(&snap["param"]);
            let relative: f64 = p
                .iter()
                .zip(&expected)
                .map(|(a, b)| f64::from((a - b).abs()) / (f64::from(b.abs()) + 1e-9))
                .sum::<f64>()
                / n as f64;
            assert!(
                relative <= 0.0016,
                "{name} step {t}: mean relative error {relative:e}"
            );
            for (state, q) in [("exp_avg", &exp_avg), ("exp_avg_sq", &exp_avg_sq)] {
                let codes = bytes(&snap[format!("{state}_codes")]);
                let differ = q.codes.iter().zip(&codes).filter(|(a, b)| a != b).count();
                assert_eq!(differ, 0, "{name} step {t}: {differ} {state} codes differ");
                let scales = f32s(&snap[format!("{state}_scale")]);
                if config.adamw {
                    assert_eq!(q.scales, scales, "{name} step {t}: {state} scales");
                } else {
                    // Adam's L2 term feeds the parameters (and torch's sqrt) into the moments.
                    for (a, b) in q.scales.iter().zip(&scales) {
                        assert!(
                            (a - b).abs() <= 1e-6 * b,
                            "{name} step {t}: {state} {a} vs {b}"
                        );
                    }
                }
            }
            if config.adamw {
                assert_eq!(exp_avg.scales[zero_block], 1e-12, "{name}: the zero block");
            }
        }
        assert!(next.next().is_none(), "{name}: every snapshot replayed");
    }
}

/// One case replayed on the device with 8-bit states: at each snapshot step, the parameters,
/// and each state's codes and values (dequantized).
struct DeviceRun {
    params: Param,
    optimizer: Optimizer,
}

impl DeviceRun {
    fn new(config: OptimizerConfig, params: &[f32]) -> Self {
        let ctx = common::context();
        let param = ctx.upload_f32("params", params);
        let grad = ctx.upload_f32("grads", &vec![0.0; params.len()]);
        let params = Param::new(BufferRange::whole(&param), BufferRange::whole(&grad));
        let groups = vec![ParamGroup {
            config,
            params: vec![params.clone()],
        }];
        let precision = Precision::default().with_8bit_states();
        let optimizer = Optimizer::with_precision(ctx, groups, precision).unwrap();
        DeviceRun { params, optimizer }
    }

    fn step(&self, grad: &[f32]) {
        let ctx = common::context();
        ctx.write_f32(&self.params.grad, grad).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        self.optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }
}

/// How far a run is from a library's: the mean relative error of the parameters
/// (bitsandbytes' `relerr`, `|p - p_ref| / (|p_ref| + 1e-9)`), how many state values lie
/// outside bitsandbytes' `isclose` (atol 3e-3, rtol 1e-3) of the library's dequantized state,
/// and the share of equal codes.
struct Distance {
    relative: f64,
    far: usize,
    equal: f64,
}

/// bitsandbytes' bounds (tests/test_optim.py, `test_optimizer8bit`): the parameters' mean
/// relative error at most 0.0016, fewer than 20 state values not close
/// (`assert_most_approx_close`'s error count).
const MAX_RELATIVE: f64 = 0.0016;
const MAX_FAR: usize = 20;

impl Distance {
    fn describe(&self) -> String {
        let (relative, far, equal) = (self.relative, self.far, 100.0 * self.equal);
        format!("{relative:e} mean relative error, {far} values far, {equal:.4}% codes equal")
    }
}

impl DeviceRun {
    /// The distance to a snapshot: its parameters, and per state (name, codes key, scales
    /// key) its codes and scales.
    fn distance(&self, snap: &Value, keys: &[(&str, String, String)]) -> Distance {
        let ours = common::context().read_f32(&self.params.param).unwrap();
        let states: Vec<_> = keys
            .iter()
            .map(|(state, codes, scales)| {
                (
                    self.optimizer.read_quantized_state(0, state).unwrap(),
                    bytes(&snap[codes]),
                    f32s(&snap[scales]),
                )
            })
            .collect();
        distance((&ours, &f32s(&snap["param"])), &states)
    }
}

fn distance(params: (&[f32], &[f32]), states: &[(Quantized, Vec<u8>, Vec<f32>)]) -> Distance {
    let (ours, theirs) = params;
    let relative: f64 = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| f64::from((a - b).abs()) / (f64::from(b.abs()) + 1e-9))
        .sum::<f64>()
        / ours.len() as f64;
    let (mut far, mut equal, mut count) = (0, 0, 0);
    for (q, codes, scales) in states {
        let theirs = Quantized {
            codes: codes.clone(),
            scales: scales.clone(),
            signed: q.signed,
        };
        let values = q.dequantize().into_iter().zip(theirs.dequantize());
        far += values
            .filter(|(a, b)| (a - b).abs() > 3e-3 + 1e-3 * b.abs())
            .count();
        equal += q.codes.iter().zip(codes).filter(|(a, b)| a == b).count();
        count += codes.len();
    }
    Distance {
        relative,
        far,
        equal: equal as f64 / count as f64,
    }
}

#[test]
fn the_device_follows_torchao_within_bitsandbytes_bounds() {
    let golden = golden();
    let n = golden["n"].as_u64().unwrap() as usize;
    let zero_block = golden["zero_block"].as_u64().unwrap() as usize;
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let seed = case["seed"].as_u64().unwrap() as u32;
        let number = |key: &str| case[key].as_f64().unwrap();
        let config: OptimizerConfig = if case["adamw"].as_bool().unwrap() {
            AdamWConfig::default()
                .with_lr(number("lr"))
                .with_betas(number("beta1"), number("beta2"))
                .with_eps(number("eps"))
                .with_weight_decay(number("weight_decay"))
                .into()
        } else {
            AdamConfig::default()
                .with_lr(number("lr"))
                .with_betas(number("beta1"), number("beta2"))
                .with_eps(number("eps"))
                .with_weight_decay(number("weight_decay"))
                .into()
        };
        let params: Vec<f32> = uniform(n, seed, 0).0.iter().map(|x| x * 0.1).collect();
        let run = DeviceRun::new(config, &params);
        let mut snapshots = case["snapshots"].as_array().unwrap().iter().peekable();
        for t in 1..=golden["steps"].as_u64().unwrap() as u32 {
            run.step(&grad(n, seed, t, zero_block));
            let Some(snap) = snapshots.next_if(|s| s["step"].as_u64() == Some(t as u64)) else {
                continue;
            };
            let keys = ["exp_avg", "exp_avg_sq"]
                .map(|state| (state, format!("{state}_codes"), format!("{state}_scale")));
            let d = run.distance(snap, &keys);
            // Measured on lavapipe: every code of AdamW's runs equal to torchao's at every
            // snapshot, 99.98% of Adam's with L2 (its parameters, which reach the moments,
            // differ by torch's sqrt), no state value outside bitsandbytes' isclose.
            let what = format!("{name} step {t}: {}", d.describe());
            assert!(d.relative <= MAX_RELATIVE && d.far < MAX_FAR, "{what}");
            assert!(d.equal >= 0.999, "{what}");
        }
    }
}

#[test]
fn the_device_follows_bitsandbytes_sgd_lion_and_adamw() {
    let text = include_str!("golden/bnb8bit.json");
    let golden: Value = serde_json::from_str(text).unwrap();
    let n = golden["n"].as_u64().unwrap() as usize;
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let seed = case["seed"].as_u64().unwrap() as u32;
        let c = &case["config"];
        let number = |key: &str| c[key].as_f64().unwrap();
        let betas = |c: &Value| {
            (
                c["betas"][0].as_f64().unwrap(),
                c["betas"][1].as_f64().unwrap(),
            )
        };
        let (config, states): (OptimizerConfig, &[&str]) = match name {
            "sgd_momentum" => (
                SgdConfig::default()
                    .with_lr(number("lr"))
                    .with_momentum(number("momentum"))
                    .with_weight_decay(number("weight_decay"))
                    .into(),
                &["momentum_buffer"],
            ),
            "lion" => (
                LionConfig::default()
                    .with_lr(number("lr"))
                    .with_betas(betas(c).0, betas(c).1)
                    .with_weight_decay(number("weight_decay"))
                    .into(),
                &["exp_avg"],
            ),
            "adamw" => (
                AdamWConfig::default()
                    .with_lr(number("lr"))
                    .with_betas(betas(c).0, betas(c).1)
                    .with_eps(number("eps"))
                    .with_weight_decay(number("weight_decay"))
                    .into(),
                &["exp_avg", "exp_avg_sq"],
            ),
            other => panic!("unknown case {other}"),
        };
        // bitsandbytes' maps are torchao's, entry for entry.
        let maps = &case["maps"];
        assert_eq!(f32s(&maps["qmap1"]), dynamic_map(true), "{name} qmap1");
        if states.len() == 2 {
            assert_eq!(f32s(&maps["qmap2"]), dynamic_map(false), "{name} qmap2");
        }
        let params: Vec<f32> = uniform(n, seed, 0).0.iter().map(|x| x * 0.1).collect();
        let run = DeviceRun::new(config, &params);
        let mut snapshots = case["snapshots"].as_array().unwrap().iter().peekable();
        for t in 1..=golden["steps"].as_u64().unwrap() as u32 {
            run.step(&grad(n, seed, t, 3));
            let Some(snap) = snapshots.next_if(|s| s["step"].as_u64() == Some(t as u64)) else {
                continue;
            };
            let keys: Vec<_> = (states.iter().enumerate())
                .map(|(k, &state)| (state, format!("state{}", k + 1), format!("absmax{}", k + 1)))
                .collect();
            let d = run.distance(snap, &keys);
            let what = format!("{name} step {t}: {}", d.describe());
            // bitsandbytes' CPU quantizer (its C `quantize_blockwise`) rounds differently
            // from torchao's search (here 79.6% to 99.3% of codes equal after the first
            // step, from the same values), so later steps start from different states and
            // drift apart; its bounds hold for the step both take from the same state.
            if t == 1 {
                assert!(d.relative <= MAX_RELATIVE && d.far < MAX_FAR, "{what}");
            }
            eprintln!("bitsandbytes {what}");
        }
    }
}
