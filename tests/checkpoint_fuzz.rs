//! Hostile checkpoints (issue 12): every truncation of a small checkpoint, every bit of its
//! header and of its control block flipped, seeded random byte flips, and structured edits
//! (dtypes, shapes, metadata values, aliased keys, control words at their edge values), for
//! optimizers with and without gradient processing. After each load, either a typed error and
//! the optimizer byte-identical (states, control block, configuration), or a state from which
//! the next steps equal the CPU reference's started from that same state. The counts are
//! printed (`cargo test --test checkpoint_fuzz -- --nocapture`).

mod common;
use common::*;
use std::collections::HashMap;
use wgpu_optim::*;

const LENS: [usize; 2] = [3, 17];

/// Everything a load may change: every state's bits, the control block's, the configuration.
/// (Not the checkpoint's bytes: its metadata map is written in hash order.)
type State = (Vec<Vec<u32>>, Vec<u32>, Vec<OptimizerConfig>);

fn state(run: &Run) -> State {
    let device = &run.device;
    let mut states = Vec::new();
    for i in 0..LENS.len() {
        for spec in device.state_specs() {
            states.push(bits(&device.read_state(i, spec.name).unwrap()));
        }
    }
    let control = device.read_control_unchecked().unwrap();
    let control = bytemuck::cast_slice::<Control, u32>(&[control]).to_vec();
    (states, control, device.group_configs().to_vec())
}

/// One optimizer under attack, and what a good load leaves it as.
struct Target {
    run: Run,
    grad: Option<GradConfig>,
    good: Vec<u8>,
    baseline: State,
    params: Vec<Vec<f32>>,
    config: OptimizerConfig,
}

#[derive(Default, Debug)]
struct Counts {
    tried: usize,
    refused: usize,
    accepted: usize,
    wrong: Vec<String>,
}

impl Target {
    fn new(ctx: &Context, config: OptimizerConfig, grad: Option<GradConfig>, seed: u64) -> Self {
        let mut run = Run::new(ctx, &config, &LENS, seed);
        run.set_grad_processing(grad.clone());
        run.step(ctx);
        run.step(ctx);
        let good = run.device.checkpoint().unwrap();
        run.device.load_checkpoint(&good).unwrap();
        let baseline = state(&run);
        let params = run
            .params
            .iter()
            .map(|p| ctx.read_f32(&p.param).unwrap())
            .collect();
        Target {
            run,
            grad,
            good,
            baseline,
            params,
            config,
        }
    }

    /// Loads `bytes`, checks the outcome, and puts the optimizer back as it was.
    fn attack(&mut self, ctx: &Context, what: &str, bytes: &[u8], counts: &mut Counts) {
        counts.tried += 1;
        match self.run.device.load_checkpoint(bytes) {
            Err(_) => {
                counts.refused += 1;
                if state(&self.run) != self.baseline || self.run.device.config() != &self.config {
                    counts
                        .wrong
                        .push(format!("{what}: refused, but the optimizer changed"));
                }
            }
            Ok(()) => {
                counts.accepted += 1;
                if let Err(problem) = self.control_is_usable() {
                    counts
                        .wrong
                        .push(format!("{what}: accepted, but {problem}"));
                }
                if let Err(problem) = self.steps_match_the_reference(ctx) {
                    counts
                        .wrong
                        .push(format!("{what}: accepted, then {problem}"));
                }
                self.run.device.load_checkpoint(&self.good).unwrap();
                for (param, values) in self.run.params.iter().zip(&self.params) {
                    ctx.write_f32(&param.param, values).unwrap();
                }
            }
        }
    }

    /// What any accepted control block must hold for stepping to be correct.
    fn control_is_usable(&self) -> Result<(), String> {
        let c = self.run.device.read_control_unchecked().unwrap();
        let scaler = self.grad.as_ref().and_then(|g| g.grad_scaler.as_ref());
        let halts = self.grad.as_ref().is_some_and(|g| g.error_if_nonfinite);
        match scaler {
            Some(_) if !(c.grad_scale.is_finite() && c.grad_scale > 0.0) => {
                Err(format!("loss scale {}", c.grad_scale))
            }
            Some(s) if c.growth_tracker >= s.growth_interval => {
                Err(format!("growth tracker {}", c.growth_tracker))
            }
            None if c.grad_scale != 1.0 => {
                Err(format!("loss scale {} without a scaler", c.grad_scale))
            }
            _ if c.step == u32::MAX => Err("a step counter about to wrap".into()),
            _ if c.nonfinite_step != 0 && !halts => Err("halted without error_if_nonfinite".into()),
            _ => Ok(()),
        }
    }

    /// Two steps from the loaded state, on the device and on a reference given that state.
    fn steps_match_the_reference(&mut self, ctx: &Context) -> Result<(), String> {
        let device = &mut self.run.device;
        let config = device.config().clone();
        let mut reference = reference::Optimizer::new(&config, &LENS).map_err(|e| e.to_string())?;
        reference
            .set_grad_processing(self.grad.clone())
            .map_err(|e| e.to_string())?;
        for i in 0..LENS.len() {
            for state in device.state_specs().to_vec() {
                let values = device.read_state(i, state.name).unwrap();
                reference.set_state(i, state.name, &values).unwrap();
            }
        }
        reference.set_control(device.read_control_unchecked().unwrap());
        let mut host = self.params.clone();
        let mut rng = Rng::new(99);
        for step in 0..2 {
            let grads: Vec<Vec<f32>> = LENS.iter().map(|&n| rng.gradient(n)).collect();
            self.run.step_device(ctx, &grads);
            reference
                .step(&mut host, &grads)
                .map_err(|e| e.to_string())?;
            for (i, expected) in host.iter().enumerate() {
                let got = ctx.read_f32(&self.run.params[i].param).unwrap();
                if !matches_reference(&got, expected) {
                    return Err(format!(
                        "step {step}, tensor {i}: device {got:?}, reference {expected:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The safetensors header: its JSON and where the data starts.
fn header(bytes: &[u8]) -> (serde_json::Value, usize) {
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let json = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    (json, 8 + len)
}

/// `bytes` with its header JSON replaced (the data unchanged).
fn with_header(bytes: &[u8], json: &serde_json::Value) -> Vec<u8> {
    let (_, data) = header(bytes);
    let text = serde_json::to_vec(json).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[data..]);
    out
}

/// Every attack on one target.
fn attack_all(ctx: &Context, target: &mut Target, counts: &mut Counts) {
    let good = target.good.clone();
    let (json, data) = header(&good);

    for len in 0..good.len() {
        target.attack(ctx, &format!("truncated to {len}"), &good[..len], counts);
    }
    for bit in 0..data * 8 {
        let mut bytes = good.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        target.attack(ctx, &format!("header bit {bit}"), &bytes, counts);
    }
    let control = &json["wgpu_optim.control"]["data_offsets"];
    let start = data + control[0].as_u64().unwrap() as usize;
    let end = data + control[1].as_u64().unwrap() as usize;
    for bit in start * 8..end * 8 {
        let mut bytes = good.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        target.attack(
            ctx,
            &format!("control bit {}", bit - start * 8),
            &bytes,
            counts,
        );
    }
    for word in 0..(end - start) / 4 {
        for value in [0, 1, f32::NAN.to_bits(), f32::INFINITY.to_bits(), u32::MAX] {
            let mut bytes = good.clone();
            let at = start + 4 * word;
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            target.attack(
                ctx,
                &format!("control word {word} = {value:#x}"),
                &bytes,
                counts,
            );
        }
    }
    let mut rng = Rng::new(1234);
    for _ in 0..300 {
        let mut bytes = good.clone();
        let at = (rng.next_u64() % bytes.len() as u64) as usize;
        bytes[at] = rng.next_u64() as u8;
        target.attack(ctx, &format!("byte {at} = {}", bytes[at]), &bytes, counts);
    }

    // Structured edits of the header: other dtypes and shapes for each tensor, metadata
    // values past f32 or not numbers, aliased keys.
    let tensors: Vec<String> = json
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    for name in &tensors {
        for dtype in ["F16", "BF16", "F64", "I32", "U32", "F32", "U8"] {
            let mut edited = json.clone();
            edited[name]["dtype"] = dtype.into();
            target.attack(
                ctx,
                &format!("{name} as {dtype}"),
                &with_header(&good, &edited),
                counts,
            );
        }
        for shape in [vec![], vec![0], vec![1], vec![17, 1], vec![1_u64 << 40]] {
            let mut edited = json.clone();
            edited[name]["shape"] = serde_json::json!(shape);
            let what = format!("{name} shaped {shape:?}");
            target.attack(ctx, &what, &with_header(&good, &edited), counts);
        }
    }
    let metadata: HashMap<String, String> =
        serde_json::from_value(json["__metadata__"].clone()).unwrap();
    for key in metadata.keys() {
        for value in [
            "nan", "inf", "-inf", "1e39", "-1", "", "0", "1e-50", "none", "true",
        ] {
            let mut edited = json.clone();
            edited["__metadata__"][key] = value.into();
            let what = format!("metadata {key} = {value:?}");
            target.attack(ctx, &what, &with_header(&good, &edited), counts);
        }
        if let Some(rest) = key.strip_prefix("param_groups.0.") {
            for alias in ["00", "+0", "0 ", "٠"] {
                let mut edited = json.clone();
                edited["__metadata__"][format!("param_groups.{alias}.{rest}")] = "0.5".into();
                let what = format!("metadata alias {alias} of {key}");
                target.attack(ctx, &what, &with_header(&good, &edited), counts);
            }
        }
    }
}

#[test]
fn hostile_checkpoints_are_refused_or_step_correctly() {
    let ctx = context();
    let targets = [
        (
            OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.01)),
            Some(
                GradConfig::default()
                    .with_clip_value(0.5)
                    .with_grad_scaler(GradScalerConfig::default().with_growth_interval(3)),
            ),
        ),
        (
            OptimizerConfig::Sgd(SgdConfig::default().with_lr(0.1).with_momentum(0.9)),
            None,
        ),
        (
            OptimizerConfig::RmsProp(RmsPropConfig::default().with_lr(0.01)),
            Some(GradConfig::default().with_error_if_nonfinite(true)),
        ),
    ];
    let mut total = Counts::default();
    for (n, (config, grad)) in targets.into_iter().enumerate() {
        let name = config.name();
        let mut target = Target::new(ctx, config, grad, 50 + n as u64);
        let mut counts = Counts::default();
        attack_all(ctx, &mut target, &mut counts);
        eprintln!(
            "{name}: {} loads tried, {} refused, {} accepted, {} accepted and wrong",
            counts.tried,
            counts.refused,
            counts.accepted,
            counts.wrong.len()
        );
        total.tried += counts.tried;
        total.refused += counts.refused;
        total.accepted += counts.accepted;
        total.wrong.extend(counts.wrong);
    }
    eprintln!(
        "all: {} loads tried, {} refused, {} accepted, {} accepted and wrong",
        total.tried,
        total.refused,
        total.accepted,
        total.wrong.len()
    );
    assert!(total.accepted > 0 && total.refused > 0, "{total:?}");
    assert!(
        total.wrong.is_empty(),
        "{} wrong outcomes, the first: {:#?}",
        total.wrong.len(),
        &total.wrong[..total.wrong.len().min(10)]
    );
}
