//! Replays golden trajectories (`tests/golden/*.json`, written by `tools/golden/generate.py`
//! from PyTorch, adabelief-pytorch and Optax) on an adapter. Shared by `tests/golden.rs` and
//! `examples/conformance.rs`.

use serde_json::Value;
use wgpu_optim::*;

/// `|device - golden| <= ATOL + RTOL * |golden|`: the tolerance (PyTorch's own
/// fused-vs-for-loop tolerance for f32 is rtol 1.3e-6 / atol 1e-5).
pub const RTOL: f64 = 1e-5;
pub const ATOL: f64 = 1e-6;

/// How one case went.
pub struct Report {
    pub name: String,
    pub library: String,
    pub optimizer: String,
    pub values: usize,
    pub worst_abs: f64,
    pub worst_rel: f64,
    /// The first values out of tolerance (or of another kind: NaN, inf), if any.
    pub failures: Vec<String>,
}

fn number(value: &Value) -> f32 {
    match value {
        Value::String(s) if s == "nan" => f32::NAN,
        Value::String(s) if s == "inf" => f32::INFINITY,
        Value::String(s) if s == "-inf" => f32::NEG_INFINITY,
        // The f64 written holds the f32 exactly.
        other => other.as_f64().expect("a number") as f32,
    }
}

pub fn vector(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(number)
        .collect()
}

pub fn tensors(value: &Value) -> Vec<Vec<f32>> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(vector)
        .collect()
}

pub fn config(case: &Value) -> OptimizerConfig {
    let name = case["optimizer"].as_str().expect("an optimizer");
    let mut config =
        OptimizerConfig::from_name(name).unwrap_or_else(|| panic!("unknown optimizer {name}"));
    for (name, value) in case["hyper"].as_object().expect("hyperparameters") {
        // Numbers and booleans as JSON writes them; strings ("none") without their quotes.
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        assert!(
            config.set_hyperparameter(name, &text),
            "hyperparameter {name} = {value}"
        );
    }
    config
}

/// `config` with a scheduled step's hyperparameters (`{"lr": .., "beta1": ..}`).
pub fn scheduled(config: &OptimizerConfig, hyper: &Value) -> OptimizerConfig {
    let mut config = config.clone();
    for (name, value) in hyper.as_object().expect("a step's hyperparameters") {
        assert!(
            config.set_hyperparameter(name, &value.to_string()),
            "hyperparameter {name} = {value}"
        );
    }
    config
}

fn grad_config(case: &Value) -> Option<GradConfig> {
    let (clip, scaler) = (&case["clip"], &case["scaler"]);
    if clip.is_null() && scaler.is_null() {
        return None;
    }
    let mut config = GradConfig::default();
    if let Some(max_norm) = clip["max_norm"].as_f64() {
        let norm_type = match &clip["norm_type"] {
            Value::Null => 2.0,
            other => f64::from(number(other)),
        };
        config = config.with_max_norm(max_norm).with_norm_type(norm_type);
        if clip["mode"].as_str() == Some("optax") {
            config = config.with_clip_mode(ClipMode::Optax);
        }
    }
    if let Some(value) = clip["clip_value"].as_f64() {
        config = config.with_clip_value(value);
    }
    if !scaler.is_null() {
        config = config.with_grad_scaler(
            GradScalerConfig::default()
                .with_init_scale(scaler["init_scale"].as_f64().expect("init_scale"))
                .with_growth_interval(scaler["growth_interval"].as_u64().expect("interval") as u32),
        );
    }
    Some(config)
}

impl Report {
    /// One table row: case, library, optimizer, values compared, worst abs and rel error.
    pub fn row(&self) -> String {
        format!(
            "{:<36} {:<18} {:<10} {:>7} {:>10.1e} {:>10.1e}",
            self.name, self.library, self.optimizer, self.values, self.worst_abs, self.worst_rel
        )
    }

    /// The header over [`Report::row`]s, in the same widths.
    pub fn header() -> String {
        format!(
            "{:<36} {:<18} {:<10} {:>7} {:>10} {:>10}",
            "case", "library", "optimizer", "values", "worst abs", "worst rel"
        )
    }

    fn check(&mut self, what: &str, device: &[f32], golden: &[f32]) {
        assert_eq!(device.len(), golden.len(), "{what}: lengths");
        for (i, (&d, &g)) in device.iter().zip(golden).enumerate() {
            self.values += 1;
            let (d, g) = (f64::from(d), f64::from(g));
            let fails = if g.is_finite() {
                let abs = (d - g).abs();
                self.worst_abs = self.worst_abs.max(abs);
                if g != 0.0 {
                    self.worst_rel = self.worst_rel.max(abs / g.abs());
                }
                // A NaN from the device fails too.
                abs.is_nan() || abs > ATOL + RTOL * g.abs()
            } else {
                // NaN meets NaN, inf meets inf of the same sign.
                !(g.is_nan() && d.is_nan()) && g != d
            };
            if fails && self.failures.len() < 5 {
                self.failures
                    .push(format!("{what}[{i}]: device {d:e} vs golden {g:e}"));
            }
        }
    }
}

/// Replays one case: the params after every step, the states after the last.
pub fn replay(ctx: &Context, case: &Value) -> Report {
    let name = case["name"].as_str().expect("a name").to_string();
    let params0 = tensors(&case["params"]);
    let lens: Vec<usize> = params0.iter().map(Vec::len).collect();
    let arena = Arena::new(ctx, &lens).expect("arena");
    for (i, values) in params0.iter().enumerate() {
        arena.write_param(i, values).expect("upload");
    }
    let mut optimizer = config(case).build(ctx, &arena.params()).expect("build");
    optimizer
        .set_grad_processing(grad_config(case))
        .expect("gradient processing");
    let mut report = Report {
        name: name.clone(),
        library: case["library"].as_str().unwrap_or("?").to_string(),
        optimizer: case["optimizer"].as_str().unwrap_or("?").to_string(),
        values: 0,
        worst_abs: 0.0,
        worst_rel: 0.0,
        failures: Vec::new(),
    };
    let steps = case["grads"].as_array().expect("grads");
    let after = case["params_after"].as_array().expect("params after");
    for (step, (grads, golden)) in steps.iter().zip(after).enumerate() {
        // A scheduled case: this step's lr and beta1, as the LR scheduler set them.
        if let Some(hyper) = case.get("hyper_steps").map(|h| &h[step]) {
            optimizer
                .set_config(scheduled(optimizer.config(), hyper))
                .expect("a scheduled configuration");
        }
        for (i, g) in tensors(grads).iter().enumerate() {
            arena.write_grad(i, g).expect("grads");
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        for (i, golden) in tensors(golden).iter().enumerate() {
            let device = arena.read_param(i).expect("read");
            report.check(
                &format!("step {} tensor {i} param", step + 1),
                &device,
                golden,
            );
        }
    }
    for (i, states) in case["states"]
        .as_array()
        .expect("states")
        .iter()
        .enumerate()
    {
        for (state, golden) in states.as_object().expect("a state map") {
            let device = optimizer
                .read_state(i, state)
                .expect("a state the optimizer keeps");
            report.check(&format!("tensor {i} {state}"), &device, &vector(golden));
        }
    }
    // NAdam: PyTorch's running mu_product of each tensor, as the checkpoint carries it.
    if let Some(products) = case.get("mu_product") {
        let bytes = optimizer.checkpoint().expect("a checkpoint");
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        for (i, golden) in vector(products).iter().enumerate() {
            let tensor = file
                .tensor(&format!("state.{i}.mu_product"))
                .expect("mu_product");
            let device = f32::from_le_bytes(tensor.data().try_into().expect("an f32 scalar"));
            report.check(&format!("tensor {i} mu_product"), &[device], &[*golden]);
            // Relative too: the product is small, and the absolute tolerance alone would pass
            // a closed form that forgot beta1's history. PyTorch's f32 product rounds once a
            // step; the device's logarithm to a few ulp of |ln mu_product|.
            let rel = (f64::from(device) / f64::from(*golden) - 1.0).abs();
            if rel.is_nan() || rel > 1e-5 {
                report.failures.push(format!(
                    "tensor {i} mu_product: device {device:e} vs golden {golden:e} (rel {rel:.1e})"
                ));
            }
        }
    }
    // Schedule-Free: the params at x after `optimizer.eval()`, and at y again after `train()`.
    if let Some(eval) = case.get("params_eval") {
        let mut check_after = |switch: fn(&Optimizer, &mut wgpu::CommandEncoder) -> Result<()>,
                               what: &str,
                               golden: &Value| {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            switch(&optimizer, &mut encoder).expect("a Schedule-Free optimizer");
            ctx.queue().submit([encoder.finish()]);
            for (i, golden) in tensors(golden).iter().enumerate() {
                let device = arena.read_param(i).expect("read");
                report.check(&format!("{what} tensor {i} param"), &device, golden);
            }
        };
        check_after(Optimizer::schedule_free_eval, "eval", eval);
        let train = case
            .get("params_train")
            .unwrap_or(after.last().expect("a step"));
        check_after(Optimizer::schedule_free_train, "train", train);
    }
    report
}

/// Every case of a fixture file.
pub fn cases(text: &str) -> Vec<Value> {
    let document: Value = serde_json::from_str(text).expect("a golden fixture");
    document["cases"].as_array().expect("cases").clone()
}
