//! Hostile checkpoints (issues 12 and 25): truncations, bits of the header and of the control
//! blocks flipped, seeded random byte flips, and structured edits (dtypes, shapes, tensors
//! reinterpreted at the same byte length or left out, metadata values, removed and aliased
//! keys, control words at their edge values, a population's control blocks swapped), for
//! optimizers with and without gradient processing and for every kind of state: NAdam's
//! running product under a cycled beta1, LAMB's trust ratios, f32 master weights of bf16
//! parameters, a population's control blocks and per-replica running values, Schedule-Free's
//! running values and mode, 8-bit states' codes and block scales of each kernel that offers
//! them (AdamW with AMSGrad, SGD with Nesterov momentum, Lion with f32 master weights of bf16
//! parameters; a scale at each edge of what a load takes, codes at any value).
//!
//! After each load, either a typed error and the optimizer as it was (every state, control
//! block, running value and mode, as a checkpoint of it reads, and every group's
//! configuration), or a state that saves and loads back, whose control blocks are usable,
//! whose `mu_product` is in [0, 1] and 8-bit scales 0 or finite and at least 1e-12 (never
//! NaN), and from which the next steps (after Schedule-Free's `train()` or not) equal the CPU
//! reference's started from that same state (8-bit codes and scales bit for bit): its states,
//! control blocks and running values as a fresh checkpoint of the device reads them. The
//! counts and times are printed (`cargo test --test checkpoint_fuzz -- --nocapture`).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Instant;
use wgpu_optim::*;

/// The tensors of each parameter group (each replica of a population).
const LENS: [usize; 2] = [3, 17];

/// A checkpoint, parsed: its tensors (dtype, shape, bytes) and its metadata, sorted by name
/// (the file's metadata map is written in hash order, so its bytes are not canonical).
#[derive(Debug, PartialEq)]
struct Parsed {
    tensors: BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    metadata: BTreeMap<String, String>,
}

impl Parsed {
    fn new(bytes: &[u8]) -> Parsed {
        let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
        let tensors = file
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let value = (view.dtype(), view.shape().to_vec(), view.data().to_vec());
                (name, value)
            })
            .collect();
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
        let metadata = header.metadata().clone().unwrap_or_default();
        Parsed {
            tensors,
            metadata: metadata.into_iter().collect(),
        }
    }

    /// Tensor `name`'s values, widened to f32.
    fn values(&self, name: &str) -> Vec<f32> {
        let (dtype, _, bytes) = &self.tensors[name];
        match dtype {
            safetensors::Dtype::F32 => Dtype::F32.decode(bytes),
            safetensors::Dtype::F16 => Dtype::F16.decode(bytes),
            safetensors::Dtype::BF16 => Dtype::BF16.decode(bytes),
            other => panic!("{name} is {other:?}"),
        }
    }

    /// 8-bit state `name` (`state.<i>.<state>`) as torchao's codes and scales, if the file
    /// holds it so; `signed`: its map.
    fn quantized(&self, name: &str, signed: bool) -> Option<quant::Quantized> {
        let (_, _, codes) = self.tensors.get(&format!("{name}.codes"))?;
        Some(quant::Quantized {
            codes: codes.clone(),
            scales: self.values(&format!("{name}.scale")),
            signed,
        })
    }

    /// Every control block.
    fn controls(&self) -> Vec<Control> {
        let (_, _, bytes) = &self.tensors["wgpu_optim.control"];
        bytes
            .chunks_exact(std::mem::size_of::<Control>())
            .map(bytemuck::pod_read_unaligned)
            .collect()
    }

    /// Group `group`'s running values, in the order of its kernel's `Running` struct.
    fn running(&self, group: usize, config: &OptimizerConfig) -> Result<Vec<f32>, String> {
        running_fields(config)
            .iter()
            .map(|&(name, _)| {
                let key = format!("param_groups.{group}.{name}");
                let text = self.metadata.get(&key).ok_or(format!("no {key}"))?;
                text.parse::<f32>()
                    .map_err(|e| format!("{key} = {text:?}: {e}"))
            })
            .collect()
    }

    /// PyTorch's per-parameter scalars that are functions of the running values (NAdam's
    /// `mu_product`): finite, in [0, 1]; and 8-bit states' block scales: 0 (before the first
    /// step) or finite and at least `quant::MIN_SCALE`, never NaN (issue 29).
    fn scalars_in_range(&self) -> Result<(), String> {
        for name in self.tensors.keys().filter(|k| k.ends_with(".mu_product")) {
            let values = self.values(name);
            if !(values.len() == 1 && (0.0..=1.0).contains(&values[0])) {
                return Err(format!("{name} = {values:?}, not one value in [0, 1]"));
            }
        }
        let scales = self.tensors.keys();
        for name in scales.filter(|k| k.starts_with("state.") && k.ends_with(".scale")) {
            let kept = |s: &f32| *s == 0.0 || (s.is_finite() && *s >= quant::MIN_SCALE);
            if let Some(scale) = self.values(name).iter().find(|s| !kept(s)) {
                return Err(format!("{name} holds the scale {scale}"));
            }
        }
        Ok(())
    }
}

/// The running values of `config`'s kernel (the fields of its `Running` struct), under the
/// names checkpoints give them; none for kernels without.
fn running_fields(config: &OptimizerConfig) -> &'static [(&'static str, usize)] {
    match config {
        OptimizerConfig::NAdam(_) => NAdamRunning::FIELDS,
        OptimizerConfig::ScheduleFreeAdamW(_) | OptimizerConfig::ScheduleFreeSgd(_) => {
            ScheduleFreeRunning::FIELDS
        }
        _ => &[],
    }
}

/// Everything a load may change: the optimizer's checkpoint (states, control blocks, running
/// values, mode, hyperparameters as text) and every group's configuration.
type State = (Parsed, Vec<OptimizerConfig>);

fn state(optimizer: &Optimizer) -> State {
    let parsed = Parsed::new(&optimizer.checkpoint().unwrap());
    (parsed, optimizer.group_configs().to_vec())
}

/// How much of each attack a target takes. The optimizers of issue 12 take every one; the
/// state kinds added since take every control bit and structured edit, but header bits and
/// truncations only in the entries they add (and a sample of lengths) and fewer random bytes,
/// to keep the file's runtime within a CI run on two cores.
#[derive(Clone, Copy)]
struct Effort {
    /// Header entries (tensor names and metadata keys, by prefix) whose bits are flipped one
    /// by one and where the file is truncated at every byte; empty: the whole header, and
    /// every truncation.
    focus: &'static [&'static str],
    /// Seeded random byte flips.
    random_bytes: usize,
}

const FULL: Effort = Effort {
    focus: &[],
    random_bytes: 300,
};

/// How an optimizer under attack is built and stepped to the checkpoint the attacks edit.
struct Setup {
    /// One configuration per parameter group, each over tensors of `lens`.
    groups: Vec<OptimizerConfig>,
    /// The tensors' lengths in each group: [`LENS`], or tensors that keep 8-bit states.
    lens: &'static [usize],
    /// A population: a control block per group.
    population: bool,
    /// The parameters' and gradients' storage type.
    param_dtype: Dtype,
    precision: Precision,
    /// Gradient processing: one configuration for all, or one per replica of a population.
    grad: Option<Vec<GradConfig>>,
    steps: usize,
    /// beta1 of each step, minus 0.02 per group (a cycled beta1, as under OneCycleLR).
    beta1s: &'static [f64],
    /// NaN gradients: (step, tensor) pairs.
    poison: &'static [(usize, usize)],
    /// Schedule-Free: saved in eval mode (x).
    eval: bool,
    effort: Effort,
    seed: u64,
}

impl Setup {
    /// One group of `config`, f32, two steps, every attack.
    fn of(config: OptimizerConfig, seed: u64) -> Setup {
        Setup {
            groups: vec![config],
            lens: &LENS,
            population: false,
            param_dtype: Dtype::F32,
            precision: Precision::default(),
            grad: None,
            steps: 2,
            beta1s: &[],
            poison: &[],
            eval: false,
            effort: FULL,
            seed,
        }
    }
}

/// One optimizer under attack, and what a good load leaves it as.
struct Target {
    optimizer: Optimizer,
    arena: Arena,
    /// The tensors of each group (each replica), as indices.
    groups: Vec<Range<usize>>,
    lens: Vec<usize>,
    effort: Effort,
    good: Vec<u8>,
    baseline: State,
    /// The parameters when the checkpoint was saved (loads do not touch them).
    params: Vec<Vec<f32>>,
}

#[derive(Default, Debug)]
struct Counts {
    tried: usize,
    refused: usize,
    accepted: usize,
    wrong: Vec<String>,
}

impl Target {
    fn new(ctx: &Context, setup: Setup) -> Self {
        let mut rng = Rng::new(setup.seed);
        let lens = setup.lens.repeat(setup.groups.len());
        let arena = Arena::with_dtypes(ctx, &lens, setup.param_dtype, setup.param_dtype).unwrap();
        for (i, &len) in lens.iter().enumerate() {
            arena.write_param(i, &rng.vector(len)).unwrap();
        }
        let params = arena.params();
        let groups: Vec<ParamGroup> = params
            .chunks(setup.lens.len())
            .zip(&setup.groups)
            .map(|(params, config)| ParamGroup {
                config: config.clone(),
                params: params.to_vec(),
            })
            .collect();
        let mut optimizer = if setup.population {
            Optimizer::population(ctx, groups, setup.precision).unwrap()
        } else {
            assert_eq!(groups.len(), 1, "the references model one group at a time");
            Optimizer::with_precision(ctx, groups, setup.precision).unwrap()
        };
        match setup.grad {
            Some(configs) if setup.population => {
                optimizer.set_grad_processing_per_group(Some(configs))
            }
            Some(mut configs) => optimizer.set_grad_processing(Some(configs.remove(0))),
            None => Ok(()),
        }
        .unwrap();
        for step in 0..setup.steps {
            if let Some(&beta1) = setup.beta1s.get(step) {
                for group in 0..setup.groups.len() {
                    let config = optimizer.group_configs()[group]
                        .with_cycled_momentum(beta1 - 0.02 * group as f64)
                        .unwrap();
                    optimizer.set_group_config(group, config).unwrap();
                }
            }
            for (i, &len) in lens.iter().enumerate() {
                let mut grad = rng.gradient(len);
                if setup.poison.contains(&(step, i)) {
                    grad[len / 2] = f32::NAN;
                }
                arena.write_grad(i, &grad).unwrap();
            }
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            optimizer.step(&mut encoder);
            if setup.eval && step + 1 == setup.steps {
                optimizer.schedule_free_eval(&mut encoder).unwrap();
            }
            ctx.queue().submit([encoder.finish()]);
        }
        let good = optimizer.checkpoint().unwrap();
        optimizer.load_checkpoint(&good).unwrap();
        let baseline = state(&optimizer);
        // With 8-bit states, a tensor that keeps them: the attacks on codes and scales and the
        // comparisons of their bits run.
        if optimizer.storage().quant8.is_some() {
            let codes = baseline.0.tensors.keys().filter(|k| k.ends_with(".codes"));
            assert!(codes.count() > 0, "no tensor keeps 8-bit states");
        }
        let params = (0..lens.len())
            .map(|i| arena.read_param(i).unwrap())
            .collect();
        Target {
            optimizer,
            arena,
            groups: (0..setup.groups.len())
                .map(|g| g * setup.lens.len()..(g + 1) * setup.lens.len())
                .collect(),
            lens,
            effort: setup.effort,
            good,
            baseline,
            params,
        }
    }

    /// Loads `bytes`, checks the outcome, and puts the optimizer back as it was.
    fn attack(&mut self, ctx: &Context, what: &str, bytes: &[u8], counts: &mut Counts) {
        counts.tried += 1;
        match self.optimizer.load_checkpoint(bytes) {
            Err(_) => {
                counts.refused += 1;
                if state(&self.optimizer) != self.baseline {
                    counts
                        .wrong
                        .push(format!("{what}: refused, but the optimizer changed"));
                }
            }
            Ok(()) => {
                counts.accepted += 1;
                let train_first = counts.accepted % 2 == 1;
                if let Err(problem) = self.check_accepted(ctx, train_first) {
                    counts
                        .wrong
                        .push(format!("{what}: accepted, but {problem}"));
                }
                self.optimizer.load_checkpoint(&self.good).unwrap();
                for (i, values) in self.params.iter().enumerate() {
                    self.arena.write_param(i, values).unwrap();
                }
            }
        }
    }

    /// Whether state `name` takes the signed map with 8-bit states (the squares take the
    /// unsigned one).
    fn signed(&self, name: &str) -> bool {
        let spec = self.optimizer.state_specs().iter().find(|s| s.name == name);
        !spec.is_some_and(|s| s.holds_squares())
    }

    /// The control block that replica (group) `group` steps by.
    fn block(&self, group: usize) -> usize {
        if self.optimizer.is_population() {
            group
        } else {
            0
        }
    }

    /// What an accepted state must be: usable control blocks, PyTorch's scalars in range, a
    /// checkpoint of it that loads back, and the reference's next steps from it (with
    /// Schedule-Free's `train()` first or not: a step in eval mode moves x back to y itself).
    fn check_accepted(&mut self, ctx: &Context, train_first: bool) -> Result<(), String> {
        let bytes = self.optimizer.checkpoint().map_err(|e| e.to_string())?;
        let loaded = Parsed::new(&bytes);
        self.controls_are_usable(&loaded.controls())?;
        loaded.scalars_in_range()?;
        self.optimizer
            .load_checkpoint(&bytes)
            .map_err(|e| format!("its own checkpoint is refused: {e}"))?;
        let stepped = self.steps_match_the_reference(ctx, &loaded, train_first)?;
        stepped
            .scalars_in_range()
            .map_err(|problem| format!("after two steps, {problem}"))
    }

    /// What any accepted control block must hold for stepping to be correct, each checked
    /// against its replica's gradient processing.
    fn controls_are_usable(&self, controls: &[Control]) -> Result<(), String> {
        if controls.len() != self.optimizer.control_blocks() {
            return Err(format!("{} control blocks", controls.len()));
        }
        for (k, c) in controls.iter().enumerate() {
            let grad = self.optimizer.group_grad_processing(k);
            let scaler = grad.and_then(|g| g.grad_scaler.as_ref());
            let halts = grad.is_some_and(|g| g.error_if_nonfinite);
            let problem = match scaler {
                Some(_) if !(c.grad_scale.is_finite() && c.grad_scale > 0.0) => {
                    format!("loss scale {}", c.grad_scale)
                }
                Some(s) if c.growth_tracker >= s.growth_interval => {
                    format!("growth tracker {}", c.growth_tracker)
                }
                None if c.grad_scale != 1.0 => {
                    format!("loss scale {} without a scaler", c.grad_scale)
                }
                _ if c.step == u32::MAX => "a step counter about to wrap".into(),
                _ if c.nonfinite_step != 0 && !halts => "halted without error_if_nonfinite".into(),
                _ => continue,
            };
            return Err(format!("control block {k}: {problem}"));
        }
        Ok(())
    }

    /// Schedule-Free's `train()` (if `train_first`) and two steps from the loaded state, on the
    /// device and on a reference per group given that state (`loaded`: the device's
    /// checkpoint, whose running values hold Schedule-Free's mode); returns the device's
    /// checkpoint after them.
    fn steps_match_the_reference(
        &mut self,
        ctx: &Context,
        loaded: &Parsed,
        train_first: bool,
    ) -> Result<Parsed, String> {
        let storage = self.optimizer.storage();
        let controls = loaded.controls();
        let mut references = Vec::new();
        for (group, tensors) in self.groups.iter().enumerate() {
            let config = &self.optimizer.group_configs()[group];
            let lens = &self.lens[tensors.clone()];
            let err = |e: Error| format!("group {group}'s reference: {e}");
            let mut reference =
                reference::Optimizer::with_storage(config, lens, storage).map_err(err)?;
            let k = self.block(group);
            let grad = self.optimizer.group_grad_processing(k).cloned();
            reference.set_grad_processing(grad).map_err(err)?;
            for (j, i) in tensors.clone().enumerate() {
                for name in self.optimizer.state_names() {
                    let key = format!("state.{i}.{name}");
                    match loaded.quantized(&key, self.signed(name)) {
                        Some(q) => reference.set_quantized_state(j, name, q).map_err(err)?,
                        None => reference
                            .set_state(j, name, &loaded.values(&key))
                            .map_err(err)?,
                    }
                }
            }
            reference.set_control(controls[k]);
            reference
                .set_running(&loaded.running(group, config)?)
                .map_err(err)?;
            references.push(reference);
        }
        let mut host = self.params.clone();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        if train_first && self.optimizer.schedule_free_train(&mut encoder).is_ok() {
            ctx.queue().submit([encoder.finish()]);
            for (reference, tensors) in references.iter_mut().zip(&self.groups) {
                reference
                    .schedule_free_train(&mut host[tensors.clone()])
                    .map_err(|e| e.to_string())?;
            }
            self.compare(ctx, "after train()", &references, &host)?;
        }
        let mut rng = Rng::new(99);
        let mut stepped = None;
        for step in 0..2 {
            let grads: Vec<Vec<f32>> = self.lens.iter().map(|&n| rng.gradient(n)).collect();
            for (i, grad) in grads.iter().enumerate() {
                self.arena.write_grad(i, grad).unwrap();
            }
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            self.optimizer.step(&mut encoder);
            ctx.queue().submit([encoder.finish()]);
            let ratios = self.optimizer.read_trust_ratios().ok();
            for (reference, tensors) in references.iter_mut().zip(&self.groups) {
                if let Some(ratios) = &ratios {
                    reference
                        .use_trust_ratios(&ratios[tensors.clone()])
                        .map_err(|e| e.to_string())?;
                }
                reference
                    .step(&mut host[tensors.clone()], &grads[tensors.clone()])
                    .map_err(|e| e.to_string())?;
            }
            stepped = Some(self.compare(ctx, &format!("step {step}"), &references, &host)?);
        }
        Ok(stepped.unwrap())
    }

    /// Every parameter, state, control block and running value of the device against the
    /// references' (`host`: their parameters); returns the device's checkpoint.
    fn compare(
        &self,
        ctx: &Context,
        what: &str,
        references: &[reference::Optimizer],
        host: &[Vec<f32>],
    ) -> Result<Parsed, String> {
        let storage = self.optimizer.storage();
        let device = Parsed::new(&self.optimizer.checkpoint().map_err(|e| e.to_string())?);
        let controls = device.controls();
        // The parameters in one transfer: the arena's buffer, widened.
        let first = self.arena.param(0).unwrap();
        let whole = BufferRange::whole_typed(first.buffer(), storage.param);
        let buffer = ctx.read_f32(&whole).unwrap();
        for (group, (reference, tensors)) in references.iter().zip(&self.groups).enumerate() {
            for (j, i) in tensors.clone().enumerate() {
                let range = self.arena.param(i).unwrap();
                let at = (range.offset() / storage.param.size()) as usize;
                let got = &buffer[at..at + self.lens[i]];
                if !close(storage.param, got, &host[i]) {
                    return Err(format!(
                        "{what}, tensor {i}: device params {got:?}, reference {:?}",
                        host[i]
                    ));
                }
                for name in self.optimizer.state_names() {
                    // 8-bit states: the device's codes and scales are the reference's, bit
                    // for bit.
                    let key = format!("state.{i}.{name}");
                    if let Some(got) = device.quantized(&key, self.signed(name)) {
                        let expected = reference.quantized_state(j, name).unwrap();
                        let bits = |q: &quant::Quantized| {
                            let scales: Vec<u32> = q.scales.iter().map(|s| s.to_bits()).collect();
                            (q.codes.clone(), scales)
                        };
                        if bits(&got) != bits(expected) {
                            return Err(format!(
                                "{what}, tensor {i}: device {name} {got:?}, reference {expected:?}"
                            ));
                        }
                        continue;
                    }
                    let dtype = if name == MASTER_PARAM {
                        Dtype::F32
                    } else {
                        storage.states
                    };
                    let got = device.values(&format!("state.{i}.{name}"));
                    let expected = reference.state(j, name).unwrap();
                    if !close(dtype, &got, expected) {
                        return Err(format!(
                            "{what}, tensor {i}: device {name} {got:?}, reference {expected:?}"
                        ));
                    }
                }
            }
            let config = &self.optimizer.group_configs()[group];
            let running = device.running(group, config)?;
            if !matches_reference(&running, reference.running()) {
                return Err(format!(
                    "{what}, group {group}: device running values {running:?}, reference {:?}",
                    reference.running()
                ));
            }
            let fields = |c: Control| {
                (
                    c.step,
                    c.found_inf != 0,
                    c.skipped_steps,
                    c.nonfinite_step,
                    c.growth_tracker,
                    c.grad_scale.to_bits(),
                )
            };
            let (got, expected) = (controls[self.block(group)], reference.control());
            if fields(got) != fields(expected) {
                return Err(format!(
                    "{what}, group {group}: device control {got:?}, reference {expected:?}"
                ));
            }
        }
        Ok(device)
    }
}

/// Whether `device` values of type `dtype` match the reference's: within the f32 tolerance,
/// or, 16-bit, within two units in the last place (a last-place f32 difference can round a
/// store the other way, as tests/mixed_precision.rs allows).
fn close(dtype: Dtype, device: &[f32], reference: &[f32]) -> bool {
    match dtype {
        Dtype::F32 => matches_reference(device, reference),
        _ => {
            device.len() == reference.len()
                && device
                    .iter()
                    .zip(reference)
                    .all(|(&d, &r)| ulps_16bit(d, r, dtype) <= 2.0)
        }
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

/// Where header entry `key` (`"key":value`, a tensor's entry or a metadata value) lies in
/// the file.
fn entry_span(bytes: &[u8], key: &str) -> Range<usize> {
    let (_, data) = header(bytes);
    let text = &bytes[8..data];
    let needle = format!("\"{key}\":");
    let start = text
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("no {needle} in the header"));
    let value = start + needle.len();
    // A tensor's entry is an object without nested ones; metadata values are strings without
    // escapes.
    let close = if text[value] == b'{' { b'}' } else { b'"' };
    let end = value + 1 + text[value + 1..].iter().position(|&b| b == close).unwrap() + 1;
    8 + start..8 + end
}

/// The other dtypes and shapes of `entry`'s bytes (same byte length, so the file still parses
/// and only the loader's own checks stand between them and the state).
fn reinterpretations(entry: &serde_json::Value) -> Vec<(&'static str, Vec<u64>)> {
    let offsets = &entry["data_offsets"];
    let bytes = offsets[1].as_u64().unwrap() - offsets[0].as_u64().unwrap();
    let original = (
        entry["dtype"].as_str().unwrap().to_string(),
        serde_json::from_value::<Vec<u64>>(entry["shape"].clone()).unwrap(),
    );
    let mut out = Vec::new();
    for (dtype, size) in [
        ("F64", 8),
        ("F32", 4),
        ("I32", 4),
        ("U32", 4),
        ("F16", 2),
        ("BF16", 2),
        ("U8", 1),
    ] {
        if !bytes.is_multiple_of(size) {
            continue;
        }
        let n = bytes / size;
        let shapes = match n {
            1 => vec![vec![], vec![1]],
            _ => vec![vec![n], vec![1, n]],
        };
        for shape in shapes {
            if (dtype, &shape) != (original.0.as_str(), &original.1) {
                out.push((dtype, shape));
            }
        }
    }
    out
}

/// Metadata values that no checkpoint writes, or writes for another state: past f32, not
/// numbers, the initial running values, the edges of f32.
const VALUES: [&str; 10] = [
    "nan", "inf", "-inf", "1e39", "-1", "", "0", "1e-50", "none", "true",
];
const RUNNING_VALUES: [&str; 9] = [
    "1",
    "-0",
    "1e-45",
    "-1e-45",
    "-3.4028235e38",
    "3.4028235e38",
    "-0.5",
    "0.5",
    "-100",
];

/// Every attack on one target, as its effort says.
fn attack_all(ctx: &Context, target: &mut Target, counts: &mut Counts) {
    let good = target.good.clone();
    let effort = target.effort;
    let (json, data) = header(&good);
    let tensors: Vec<String> = json
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let metadata: BTreeMap<String, String> =
        serde_json::from_value(json["__metadata__"].clone()).unwrap();

    // Truncations and header bits: everywhere, or in the focused entries (and a sample of
    // lengths).
    let spans: Vec<Range<usize>> = if effort.focus.is_empty() {
        std::iter::once(0..data).collect()
    } else {
        let spans: Vec<Range<usize>> = tensors
            .iter()
            .chain(metadata.keys())
            .filter(|key| effort.focus.iter().any(|f| key.starts_with(f)))
            .map(|key| entry_span(&good, key))
            .collect();
        assert!(
            !spans.is_empty(),
            "nothing in the header matches {:?}",
            effort.focus
        );
        spans
    };
    for len in 0..good.len() {
        let sampled = len < 16 || len.is_multiple_of(61) || len + 4 > good.len();
        if effort.focus.is_empty() || sampled || spans.iter().any(|s| s.contains(&len)) {
            target.attack(ctx, &format!("truncated to {len}"), &good[..len], counts);
        }
    }
    for span in &spans {
        for bit in span.start * 8..span.end * 8 {
            let mut bytes = good.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            target.attack(ctx, &format!("header bit {bit}"), &bytes, counts);
        }
    }

    // The control blocks: bits, and each word at its edge values.
    let control = &json["wgpu_optim.control"]["data_offsets"];
    let start = data + control[0].as_u64().unwrap() as usize;
    let end = data + control[1].as_u64().unwrap() as usize;
    let block = std::mem::size_of::<Control>();
    for bit in 0..(end - start) * 8 {
        let field = Control::FIELDS
            .iter()
            .rev()
            .find(|&&(_, offset)| offset <= (bit / 8) % block)
            .unwrap()
            .0;
        let mut bytes = good.clone();
        bytes[start + bit / 8] ^= 1 << (bit % 8);
        let what = format!("control bit {bit} ({field} of block {})", bit / 8 / block);
        target.attack(ctx, &what, &bytes, counts);
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
    // A population's blocks swapped: each replica's checked against the other's processing
    // and running values.
    for k in 1..(end - start) / block {
        let mut bytes = good.clone();
        let (a, b) = (start + (k - 1) * block, start + k * block);
        let first = bytes[a..b].to_vec();
        bytes.copy_within(b..b + block, a);
        bytes[b..b + block].copy_from_slice(&first);
        let what = format!("control blocks {} and {k} swapped", k - 1);
        target.attack(ctx, &what, &bytes, counts);
    }

    let mut rng = Rng::new(1234);
    for _ in 0..effort.random_bytes {
        let mut bytes = good.clone();
        let at = (rng.next_u64() % bytes.len() as u64) as usize;
        bytes[at] = rng.next_u64() as u8;
        target.attack(ctx, &format!("byte {at} = {}", bytes[at]), &bytes, counts);
    }

    // 8-bit states: a block's scale at the edges of what a load takes (0, 1e-12 and the float
    // below, subnormal, negative, infinite, NaN, the largest finite), and codes at any value.
    let is_state = |n: &&String, suffix: &str| n.starts_with("state.") && n.ends_with(suffix);
    for name in tensors.iter().filter(|n| is_state(n, ".scale")) {
        let offsets = &json[name]["data_offsets"];
        let (first, end) = (offsets[0].as_u64().unwrap(), offsets[1].as_u64().unwrap());
        let edges = [
            0.0,
            -0.0,
            1e-12,
            f32::from_bits(1e-12_f32.to_bits() - 1),
            1e-40,
            -1.0,
            f32::INFINITY,
            f32::NAN,
            f32::MAX,
            1.0,
        ];
        for block in [first, end - 4] {
            for value in edges {
                let mut bytes = good.clone();
                let at = data + block as usize;
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                let what = format!("{name} at byte {} = {value:e}", block - first);
                target.attack(ctx, &what, &bytes, counts);
            }
        }
    }
    for name in tensors.iter().filter(|n| is_state(n, ".codes")) {
        let offsets = &json[name]["data_offsets"];
        let (first, end) = (offsets[0].as_u64().unwrap(), offsets[1].as_u64().unwrap());
        for at in [first, first + 255, first + 256, end - 1] {
            for code in [0u8, 127, 128, 255] {
                let mut bytes = good.clone();
                bytes[data + at as usize] = code;
                let what = format!("{name} byte {} = {code}", at - first);
                target.attack(ctx, &what, &bytes, counts);
            }
        }
    }

    // Structured edits of the header: other dtypes and shapes for each tensor, the same bytes
    // as other dtypes and shapes, a tensor left out.
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
        for (dtype, shape) in reinterpretations(&json[name]) {
            let mut edited = json.clone();
            edited[name]["dtype"] = dtype.into();
            edited[name]["shape"] = serde_json::json!(shape);
            let what = format!("{name}'s bytes as {dtype} {shape:?}");
            target.attack(ctx, &what, &with_header(&good, &edited), counts);
        }
        let mut edited = json.clone();
        let entry = edited.as_object_mut().unwrap().remove(name).unwrap();
        edited[format!("unknown.{name}")] = entry;
        let what = format!("{name} left out");
        target.attack(ctx, &what, &with_header(&good, &edited), counts);
    }
    // The scalars a load ignores (the step is the control block's, mu_product the running
    // values'): any value.
    for name in tensors
        .iter()
        .filter(|n| n.ends_with(".step") || n.ends_with(".mu_product"))
    {
        let offsets = &json[name]["data_offsets"];
        let at = data + offsets[0].as_u64().unwrap() as usize;
        let len = offsets[1].as_u64().unwrap() as usize - (at - data);
        for value in [f64::NAN, -1.0, 2.5, 1e300] {
            let mut bytes = good.clone();
            let value = match len {
                8 => value.to_le_bytes().to_vec(),
                _ => (value as f32).to_le_bytes().to_vec(),
            };
            bytes[at..at + len].copy_from_slice(&value);
            target.attack(ctx, &format!("{name} = {value:?}"), &bytes, counts);
        }
    }

    // Metadata values past f32 or not numbers; running values at their edges and the other
    // groups'; the mode; keys left out; aliased keys.
    let running_names: Vec<&str> = target
        .optimizer
        .group_configs()
        .iter()
        .flat_map(|c| running_fields(c).iter().map(|&(name, _)| name))
        .collect();
    for (key, original) in &metadata {
        let name = key.rsplit('.').next().unwrap();
        let mut values: Vec<String> = VALUES.iter().map(|v| v.to_string()).collect();
        if running_names.contains(&name) {
            values.extend(RUNNING_VALUES.iter().map(|v| v.to_string()));
            values.extend(
                metadata
                    .iter()
                    .filter(|(k, v)| k.ends_with(&format!(".{name}")) && *v != original)
                    .map(|(_, v)| v.clone()),
            );
        }
        if key == "schedule_free.mode" {
            values.extend(["eval", "train", "Eval", "eval "].map(String::from));
        }
        for value in values {
            let mut edited = json.clone();
            edited["__metadata__"][key] = value.clone().into();
            let what = format!("metadata {key} = {value:?}");
            target.attack(ctx, &what, &with_header(&good, &edited), counts);
        }
        let mut edited = json.clone();
        edited["__metadata__"].as_object_mut().unwrap().remove(key);
        let what = format!("metadata {key} left out");
        target.attack(ctx, &what, &with_header(&good, &edited), counts);
        if let Some(rest) = key.strip_prefix("param_groups.0.") {
            for alias in ["00", "+0", "0 ", "٠"] {
                let mut edited = json.clone();
                edited["__metadata__"][format!("param_groups.{alias}.{rest}")] = "0.5".into();
                let what = format!("metadata alias {alias} of {key}");
                target.attack(ctx, &what, &with_header(&good, &edited), counts);
            }
        }
    }
    // Schedule-Free's mode said twice (`schedule_free.mode` and each group's `train_mode`):
    // both keys set to either mode, some groups' `train_mode` alone, and files written before
    // `train_mode` (the mode key alone, in either mode).
    if metadata.contains_key("schedule_free.mode") {
        let train_modes: Vec<&String> = metadata
            .keys()
            .filter(|k| k.ends_with(".train_mode"))
            .collect();
        for (mode, train_mode) in [("eval", "0"), ("train", "1")] {
            for written in [true, false] {
                let mut edited = json.clone();
                let entries = edited["__metadata__"].as_object_mut().unwrap();
                entries.insert("schedule_free.mode".into(), mode.into());
                for key in &train_modes {
                    match written {
                        true => entries.insert(key.to_string(), train_mode.into()),
                        false => entries.remove(key.as_str()),
                    };
                }
                let what = format!("mode {mode}, train_mode written: {written}");
                target.attack(ctx, &what, &with_header(&good, &edited), counts);
            }
            for key in &train_modes {
                let mut edited = json.clone();
                edited["__metadata__"][key.as_str()] = train_mode.into();
                let what = format!("{key} = {train_mode} alone");
                target.attack(ctx, &what, &with_header(&good, &edited), counts);
            }
        }
    }
}

/// The targets: the optimizers of issue 12 (every attack), then the state kinds of issue 25
/// (focused attacks).
fn setups() -> Vec<(&'static str, Setup)> {
    let scaler = GradScalerConfig::default().with_growth_interval(3);
    let nadam = NAdamConfig::default().with_lr(0.01).with_weight_decay(0.01);
    // A loss scaler alone: a NaN gradient skips its step.
    let scaled = GradConfig::default().with_grad_scaler(scaler.clone());
    vec![
        (
            "AdamW, clip and scaler",
            Setup {
                grad: Some(vec![GradConfig::default()
                    .with_clip_value(0.5)
                    .with_grad_scaler(scaler.clone())]),
                ..Setup::of(AdamWConfig::default().with_lr(0.01).into(), 50)
            },
        ),
        (
            "SGD, momentum",
            Setup::of(
                SgdConfig::default().with_lr(0.1).with_momentum(0.9).into(),
                51,
            ),
        ),
        (
            "RMSprop, error_if_nonfinite",
            Setup {
                grad: Some(vec![GradConfig::default().with_error_if_nonfinite(true)]),
                ..Setup::of(RmsPropConfig::default().with_lr(0.01).into(), 52)
            },
        ),
        // Three steps at three beta1s: PyTorch's running mu_product leaves the closed form,
        // and every running value is non-trivial.
        (
            "NAdam, beta1 cycled",
            Setup {
                steps: 3,
                beta1s: &[0.9, 0.8, 0.95],
                effort: Effort {
                    focus: &[
                        "param_groups.0.mu_ln_",
                        "param_groups.0.beta1",
                        "param_groups.0.momentum_decay",
                        "state.0.mu_product",
                    ],
                    random_bytes: 200,
                },
                ..Setup::of(nadam.clone().into(), 53)
            },
        ),
        (
            "LAMB",
            Setup {
                steps: 3,
                effort: Effort {
                    focus: &[
                        "param_groups.0.trust_ratio",
                        "param_groups.0.eps_root",
                        "state.1.exp_avg_sq",
                    ],
                    random_bytes: 200,
                },
                ..Setup::of(
                    LambConfig::default()
                        .with_lr(0.01)
                        .with_weight_decay(0.01)
                        .into(),
                    54,
                )
            },
        ),
        (
            "AdamW, bf16 with master weights",
            Setup {
                param_dtype: Dtype::BF16,
                precision: Precision::default().with_master_weights(),
                effort: Effort {
                    focus: &["state.0.master_param", "state.1.master_param"],
                    random_bytes: 200,
                },
                ..Setup::of(
                    AdamWConfig::default()
                        .with_lr(0.01)
                        .with_weight_decay(0.01)
                        .into(),
                    55,
                )
            },
        ),
        // Three NAdam replicas at their own rates and cycled beta1s, each with its own
        // processing: replica 0 skips step 1 (a NaN under its scaler), replica 2 halts at step
        // 2 (error_if_nonfinite), so the replicas' step counts differ.
        (
            "population of NAdam",
            Setup {
                groups: (0..3)
                    .map(|r| nadam.clone().with_lr(0.01 * (r + 1) as f64).into())
                    .collect(),
                population: true,
                grad: Some(vec![
                    GradConfig::default()
                        .with_clip_value(0.5)
                        .with_grad_scaler(scaler),
                    GradConfig::default(),
                    GradConfig::default().with_error_if_nonfinite(true),
                ]),
                steps: 4,
                beta1s: &[0.9, 0.8, 0.95, 0.9],
                poison: &[(1, 0), (2, 4)],
                effort: Effort {
                    focus: &[
                        "wgpu_optim.control",
                        "groups",
                        "param_groups.1.mu_ln_",
                        "state.3.step",
                    ],
                    random_bytes: 200,
                },
                ..Setup::of(OptimizerConfig::NAdam(nadam), 56)
            },
        ),
        // 8-bit states (issue 29): AMSGrad's three states of a tensor of 16 blocks as codes and
        // scales, beside a tensor too small for them; a NaN skips the second step under the
        // scaler, which leaves codes and scales alone.
        (
            "AdamW, AMSGrad, 8-bit states",
            Setup {
                lens: &[4096, 17],
                precision: Precision::default().with_8bit_states(),
                grad: Some(vec![scaled.clone()]),
                steps: 3,
                poison: &[(1, 0)],
                effort: Effort {
                    focus: &["state.0.", "state.1.exp_avg_sq"],
                    random_bytes: 300,
                },
                ..Setup::of(
                    AdamWConfig::default()
                        .with_lr(0.01)
                        .with_weight_decay(0.01)
                        .with_amsgrad(true)
                        .into(),
                    58,
                )
            },
        ),
        // 8-bit states of the other two kernels that offer them: SGD's momentum buffer (the
        // signed map) under Nesterov with weight decay, and Lion's exp_avg beside bf16 parameters
        // with f32 master weights (which stay f32), a NaN skipping Lion's second step.
        (
            "SGD, Nesterov momentum, 8-bit states",
            Setup {
                lens: &[4352, 3],
                precision: Precision::default().with_8bit_states(),
                steps: 3,
                effort: Effort {
                    focus: &["state.0.", "state.1.momentum_buffer"],
                    random_bytes: 200,
                },
                ..Setup::of(
                    SgdConfig::default()
                        .with_lr(0.1)
                        .with_momentum(0.9)
                        .with_nesterov(true)
                        .with_weight_decay(0.01)
                        .into(),
                    59,
                )
            },
        ),
        (
            "Lion, bf16 with master weights, 8-bit states",
            Setup {
                lens: &[4096, 17],
                param_dtype: Dtype::BF16,
                precision: Precision::default()
                    .with_master_weights()
                    .with_8bit_states(),
                grad: Some(vec![scaled.clone()]),
                steps: 3,
                poison: &[(1, 0)],
                effort: Effort {
                    focus: &["state.0.", "state.1.exp_avg"],
                    random_bytes: 200,
                },
                ..Setup::of(
                    LionConfig::default()
                        .with_lr(0.001)
                        .with_weight_decay(0.01)
                        .into(),
                    60,
                )
            },
        ),
        // Saved in eval mode (x) after a warm-up: lr_max, weight_sum and the mode all matter.
        (
            "Schedule-Free AdamW, eval mode",
            Setup {
                steps: 3,
                eval: true,
                effort: Effort {
                    focus: &[
                        "schedule_free.mode",
                        "param_groups.0.lr_max",
                        "param_groups.0.weight_sum",
                        "param_groups.0.train_mode",
                    ],
                    random_bytes: 200,
                },
                ..Setup::of(
                    ScheduleFreeAdamWConfig::default()
                        .with_lr(0.01)
                        .with_warmup_steps(2.0)
                        .with_r(0.5)
                        .with_weight_decay(0.01)
                        .into(),
                    57,
                )
            },
        ),
    ]
}

#[test]
fn hostile_checkpoints_are_refused_or_step_correctly() {
    let ctx = context();
    let mut total = Counts::default();
    for (name, setup) in setups() {
        let started = Instant::now();
        let mut target = Target::new(ctx, setup);
        let mut counts = Counts::default();
        attack_all(ctx, &mut target, &mut counts);
        eprintln!(
            "{name}: {} loads tried, {} refused, {} accepted, {} accepted and wrong ({:.1} s)",
            counts.tried,
            counts.refused,
            counts.accepted,
            counts.wrong.len(),
            started.elapsed().as_secs_f64()
        );
        assert!(
            counts.accepted > 0 && counts.refused > 0,
            "{name}: {counts:?}"
        );
        total.tried += counts.tried;
        total.refused += counts.refused;
        total.accepted += counts.accepted;
        total
            .wrong
            .extend(counts.wrong.into_iter().map(|w| format!("{name}: {w}")));
    }
    eprintln!(
        "all: {} loads tried, {} refused, {} accepted, {} accepted and wrong",
        total.tried,
        total.refused,
        total.accepted,
        total.wrong.len()
    );
    assert!(
        total.wrong.is_empty(),
        "{} wrong outcomes, the first: {:#?}",
        total.wrong.len(),
        &total.wrong[..total.wrong.len().min(10)]
    );
}
