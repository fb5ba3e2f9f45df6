//! Helpers shared by the integration tests: the adapter, deterministic data, the table of
//! configurations, and the tolerance every device result is held to.
#![allow(dead_code)]

use std::sync::OnceLock;
use wgpu_optim::*;

/// The adapter every test runs on. There is no skipping: without one the test fails, and the
/// error names the fix.
pub fn context() -> &'static Context {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    CONTEXT.get_or_init(|| match Context::new_blocking() {
        Ok(ctx) => {
            if let Some(info) = ctx.adapter_info() {
                eprintln!(
                    "adapter: {} ({:?}, {})",
                    info.name, info.backend, info.driver_info
                );
            }
            ctx
        }
        Err(e) => panic!("the tests need a wgpu adapter: {e}"),
    })
}

/// A context whose bindings are limited to `binding_bytes`, so small tensors exercise the
/// chunking that real ones need past 128 MiB.
pub fn context_with_binding_limit(binding_bytes: u64) -> Context {
    context_with_limits(wgpu::Limits {
        max_storage_buffer_binding_size: binding_bytes,
        ..wgpu::Limits::default()
    })
}

/// A context of a device created with `limits`.
pub fn context_with_limits(limits: wgpu::Limits) -> Context {
    let options = ContextOptions {
        limits: Some(limits),
        ..Default::default()
    };
    pollster::block_on(Context::request(&options))
        .unwrap_or_else(|e| panic!("the tests need a wgpu adapter: {e}"))
}

/// SplitMix64: the same stream on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Gradient-like values: mostly uniform in [-1, 1), with exact zeros and a spread of
    /// magnitudes from 1e-4 to 10, so that every branch of the math is taken.
    pub fn gradient(&mut self, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| match self.next_u64() % 16 {
                0 => 0.0,
                1 => self.uniform() * 1e-4,
                2 => self.uniform() * 10.0,
                _ => self.uniform(),
            })
            .collect()
    }

    pub fn vector(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.uniform()).collect()
    }
}

/// The tolerance of the device against the CPU reference: `|device - reference| <=
/// ATOL + RTOL * |reference|`. The reference performs the same f32 operations in the same
/// order; what differs is WGSL's latitude (division and sqrt within 2.5 ulp, and fused
/// multiply-adds the compiler may form), compounded over the steps of a test. Parameters
/// start in [-1, 1), so ATOL is a few ulp of their scale; elements that cancel to near zero
/// can differ by many ulp of themselves while staying within ATOL.
/// On lavapipe the largest share of this tolerance used over all 120 configurations is ~0.13.
pub const RTOL: f32 = 2e-6;
pub const ATOL: f32 = 2e-7;

/// Asserts `device` matches `reference` element-wise; NaN must meet NaN.
pub fn assert_close(what: &str, device: &[f32], reference: &[f32]) {
    assert_eq!(device.len(), reference.len(), "{what}: lengths differ");
    let mut worst = (0.0_f32, 0usize);
    for (i, (&d, &r)) in device.iter().zip(reference).enumerate() {
        if d.is_nan() || r.is_nan() {
            assert!(
                d.is_nan() && r.is_nan(),
                "{what}[{i}]: device {d} vs reference {r}"
            );
            continue;
        }
        let excess = (d - r).abs() - (ATOL + RTOL * r.abs());
        if excess > worst.0 || i == 0 {
            worst = (excess.max(worst.0), i);
        }
        assert!(
            excess <= 0.0,
            "{what}[{i}]: device {d} vs reference {r} (|diff| {} > tolerance {})",
            (d - r).abs(),
            ATOL + RTOL * r.abs()
        );
    }
}

/// Whether each value is the reference's bits, NaN beside NaN, or within the tolerance: the
/// check for values that may reach infinity (where `assert_close`'s difference is NaN).
pub fn matches_reference(device: &[f32], reference: &[f32]) -> bool {
    device.len() == reference.len()
        && device.iter().zip(reference).all(|(&d, &r)| {
            d.to_bits() == r.to_bits()
                || (d.is_nan() && r.is_nan())
                || (d - r).abs() <= ATOL + RTOL * r.abs()
        })
}

/// The largest |device - reference| / (ATOL + RTOL |reference|) seen: 1.0 is the tolerance.
pub fn tolerance_used(device: &[f32], reference: &[f32]) -> f32 {
    device
        .iter()
        .zip(reference)
        .filter(|(d, r)| !d.is_nan() && !r.is_nan())
        .map(|(&d, &r)| (d - r).abs() / (ATOL + RTOL * r.abs()))
        .fold(0.0, f32::max)
}

/// Every optimizer in every combination of its options, with non-default values where a
/// value switches a branch (weight decay, dampening, lr_decay, initial accumulator).
pub fn all_configs() -> Vec<OptimizerConfig> {
    let mut configs = Vec::new();
    let bools = [false, true];
    for wd in [0.0, 0.01] {
        for maximize in bools {
            // SGD: plain, momentum, momentum with dampening, Nesterov.
            for (momentum, dampening, nesterov) in [
                (0.0, 0.0, false),
                (0.9, 0.0, false),
                (0.9, 0.5, false),
                (0.9, 0.0, true),
            ] {
                configs.push(OptimizerConfig::Sgd(
                    SgdConfig::default()
                        .with_lr(0.05)
                        .with_momentum(momentum)
                        .with_dampening(dampening)
                        .with_nesterov(nesterov)
                        .with_weight_decay(wd)
                        .with_maximize(maximize),
                ));
            }
            // Optax's eps-inside-the-sqrt form with the non-default accumulator.
            for (lr_decay, init, eps_in_sqrt) in [(0.0, 0.0, false), (0.01, 0.1, true)] {
                configs.push(OptimizerConfig::Adagrad(
                    AdagradConfig::default()
                        .with_lr(0.05)
                        .with_lr_decay(lr_decay)
                        .with_initial_accumulator_value(init)
                        .with_eps_in_sqrt(eps_in_sqrt)
                        .with_weight_decay(wd)
                        .with_maximize(maximize),
                ));
            }
            for centered in bools {
                for momentum in [0.0, 0.9] {
                    // Optax's eps-inside-the-sqrt form on half the combinations, its bias
                    // correction on half the uncentered ones (centered, its first step's
                    // variance is g^2 - g^2: rounding decides it, on the device as in Optax;
                    // the golden optax_rmsprop_bias_correction_centered1 covers it).
                    configs.push(OptimizerConfig::RmsProp(
                        RmsPropConfig::default()
                            .with_centered(centered)
                            .with_momentum(momentum)
                            .with_eps_in_sqrt(centered != (momentum > 0.0))
                            .with_bias_correction(!centered && (momentum > 0.0) == maximize)
                            .with_weight_decay(wd)
                            .with_maximize(maximize),
                    ));
                }
            }
            for amsgrad in bools {
                // Optax's denominator when maximizing, with an eps_root: optax.adam's, and
                // optax.amsgrad's form with amsgrad.
                configs.push(OptimizerConfig::Adam(
                    AdamConfig::default()
                        .with_lr(0.01)
                        .with_amsgrad(amsgrad)
                        .with_amsgrad_bias_corrected(amsgrad && maximize)
                        .with_eps_root(if maximize { 1e-6 } else { 0.0 })
                        .with_weight_decay(wd)
                        .with_maximize(maximize),
                ));
                configs.push(OptimizerConfig::AdamW(
                    AdamWConfig::default()
                        .with_lr(0.01)
                        .with_amsgrad(amsgrad)
                        .with_weight_decay(wd * 10.0)
                        .with_maximize(maximize),
                ));
            }
            configs.push(OptimizerConfig::Lion(
                LionConfig::default()
                    .with_lr(0.01)
                    .with_weight_decay(wd)
                    .with_maximize(maximize),
            ));
            configs.push(OptimizerConfig::Adamax(
                AdamaxConfig::default()
                    .with_lr(0.01)
                    .with_weight_decay(wd)
                    .with_maximize(maximize),
            ));
            // PyTorch's and Optax's forms; decoupled decay when maximizing (so with and without
            // a decay to decouple); Optax's eps_root, and a momentum schedule that reaches beta1
            // within the steps, on some.
            for optax_form in bools {
                configs.push(OptimizerConfig::NAdam(
                    NAdamConfig::default()
                        .with_lr(0.01)
                        .with_momentum_decay(if maximize { 0.5 } else { 4e-3 })
                        .with_optax_form(optax_form)
                        .with_eps_root(if optax_form { 1e-6 } else { 0.0 })
                        .with_decoupled_weight_decay(maximize)
                        .with_weight_decay(wd)
                        .with_maximize(maximize),
                ));
                // The 12 steps cross rho_t = 5 at step 6: both branches run.
                configs.push(OptimizerConfig::RAdam(
                    RAdamConfig::default()
                        .with_lr(0.01)
                        .with_optax_form(optax_form)
                        .with_eps_root(if optax_form { 1e-6 } else { 0.0 })
                        .with_decoupled_weight_decay(maximize)
                        .with_weight_decay(wd)
                        .with_maximize(maximize),
                ));
                // Both clips, with and without clipping, Nesterov, decoupled decay: each option
                // on half the combinations.
                for use_clipping in bools {
                    configs.push(OptimizerConfig::Adopt(
                        AdoptConfig::default()
                            .with_lr(0.01)
                            .with_optax_form(optax_form)
                            .with_use_clipping(use_clipping)
                            .with_nesterov(use_clipping != optax_form)
                            .with_decoupled_weight_decay(maximize != use_clipping)
                            .with_weight_decay(wd)
                            .with_maximize(maximize),
                    ));
                }
            }
            configs.push(OptimizerConfig::Adadelta(
                AdadeltaConfig::default()
                    .with_rho(if maximize { 0.5 } else { 0.9 })
                    .with_weight_decay(wd)
                    .with_maximize(maximize),
            ));
        }
        // Schedule-Free AdamW: warm-up across the 12 steps, the step's power in the weight,
        // and no lr weighting at all (0^0 = 1 for every step's weight).
        for (warmup, r, weight_lr_power) in [(0.0, 0.0, 2.0), (5.0, 1.0, 2.0), (20.0, 0.5, 0.0)] {
            configs.push(OptimizerConfig::ScheduleFreeAdamW(
                ScheduleFreeAdamWConfig::default()
                    .with_lr(0.01)
                    .with_warmup_steps(warmup)
                    .with_r(r)
                    .with_weight_lr_power(weight_lr_power)
                    .with_weight_decay(wd),
            ));
        }
        for amsgrad in bools {
            for (decouple, fixed) in [(false, false), (true, false), (true, true)] {
                let mut adabelief = AdaBeliefConfig::default();
                if fixed {
                    // Optax's own eps_root on one variant.
                    adabelief = adabelief.with_eps_root(1e-6);
                }
                configs.push(OptimizerConfig::AdaBelief(
                    adabelief
                        .with_lr(0.01)
                        .with_eps(1e-12)
                        .with_amsgrad(amsgrad)
                        .with_weight_decouple(decouple)
                        .with_fixed_decay(fixed)
                        .with_weight_decay(wd),
                ));
            }
            // Rectified (the 12 steps cross rho_t = 5 at step 6), with and without the SGD
            // steps before it.
            for degenerated_to_sgd in bools {
                configs.push(OptimizerConfig::AdaBelief(
                    AdaBeliefConfig::default()
                        .with_lr(0.01)
                        .with_eps(1e-12)
                        .with_rectify(true)
                        .with_degenerated_to_sgd(degenerated_to_sgd)
                        .with_amsgrad(amsgrad)
                        .with_weight_decouple(degenerated_to_sgd != amsgrad)
                        .with_weight_decay(wd),
                ));
            }
        }
    }
    // Schedule-Free SGD, after every other configuration (their seeds stay as they were): the
    // schedules of Schedule-Free AdamW's, momentum off its default on two.
    for wd in [0.0, 0.01] {
        for (warmup, r, weight_lr_power, momentum) in [
            (0.0, 0.0, 2.0, 0.9),
            (5.0, 1.0, 2.0, 0.5),
            (20.0, 0.5, 0.0, 0.8),
        ] {
            configs.push(OptimizerConfig::ScheduleFreeSgd(
                ScheduleFreeSgdConfig::default()
                    .with_lr(0.1)
                    .with_momentum(momentum)
                    .with_warmup_steps(warmup)
                    .with_r(r)
                    .with_weight_lr_power(weight_lr_power)
                    .with_weight_decay(wd),
            ));
        }
    }
    // LAMB and LARS, after the rest: with and without the trust ratio (a group left out of
    // the adaptation), Optax's eps_root, Nesterov, and LARS's eps.
    for wd in [0.0, 0.01] {
        for trust_ratio in [true, false] {
            configs.push(OptimizerConfig::Lamb(
                LambConfig::default()
                    .with_lr(0.01)
                    .with_eps_root(if trust_ratio { 0.0 } else { 1e-8 })
                    .with_trust_ratio(trust_ratio)
                    .with_weight_decay(wd),
            ));
            for nesterov in [false, true] {
                configs.push(OptimizerConfig::Lars(
                    // Without the ratio (about 1e-3 here) LARS is SGD: an SGD-sized rate.
                    LarsConfig::default()
                        .with_lr(if trust_ratio { 1.0 } else { 0.01 })
                        .with_eps(if nesterov { 1e-6 } else { 0.0 })
                        .with_nesterov(nesterov)
                        .with_trust_ratio(trust_ratio)
                        .with_weight_decay(wd),
                ));
            }
        }
    }
    // Rprop: PyTorch's etas and step sizes, and narrow bounds (and other etas) that clamp
    // within a test's steps; the L2 extension.
    for wd in [0.0, 0.01] {
        for maximize in [false, true] {
            let rprop = RpropConfig::default()
                .with_lr(0.05)
                .with_weight_decay(wd)
                .with_maximize(maximize);
            let rprop = if maximize == (wd > 0.0) {
                rprop.with_etas(0.4, 1.3).with_step_sizes(1e-3, 0.08)
            } else {
                rprop
            };
            configs.push(rprop.into());
        }
    }
    configs
}

/// The device's norm stats against the reference's (f64, rounded once): the same flag, and
/// values within 1e-6 relative (equal when not finite).
pub fn assert_stats_close(device: NormStats, exact: NormStats) {
    assert_eq!(
        device.nonfinite, exact.nonfinite,
        "norm stats: non-finite flag"
    );
    if exact.value.is_finite() && exact.value != 0.0 {
        let error = ((device.value - exact.value) / exact.value).abs();
        assert!(
            error < 1e-6,
            "norm stats: device {} vs reference {}",
            device.value,
            exact.value
        );
    } else {
        assert_eq!(
            device.value.is_nan(),
            exact.value.is_nan(),
            "norm stats: {} vs {}",
            device.value,
            exact.value
        );
        if !exact.value.is_nan() {
            assert_eq!(device.value, exact.value, "norm stats");
        }
    }
}

/// The bits of each value: NaN payloads and signed zeros included.
pub fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// The bits of the values outside `ranges` (element `(start, len)` pairs) of a whole buffer:
/// what a step or a clamp must leave as it was.
pub fn bits_outside(values: &[f32], ranges: &[(usize, usize)]) -> Vec<u32> {
    let inside = |i: usize| ranges.iter().any(|&(at, len)| (at..at + len).contains(&i));
    bits(values)
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| !inside(i))
        .map(|(_, b)| b)
        .collect()
}

/// Tensors on the device and their twins on the host, stepped together.
pub struct Run {
    pub params_buffer: wgpu::Buffer,
    pub params: Vec<Param>,
    pub host_params: Vec<Vec<f32>>,
    pub device: Optimizer,
    pub reference: reference::Optimizer,
    pub rng: Rng,
    // With gradient processing: the device's norm stats, which the reference then uses.
    pub norm_stats: Option<BufferRange>,
    ctx: Context,
}

impl Run {
    /// Parameters of the given lengths packed into one buffer at aligned offsets (as an arena
    /// would place them), each gradient in a buffer of its own.
    pub fn new(ctx: &Context, config: &OptimizerConfig, lens: &[usize], seed: u64) -> Run {
        let mut rng = Rng::new(seed);
        let align = ctx.device().limits().min_storage_buffer_offset_alignment as u64;
        let mut offsets = Vec::new();
        let mut end = 0u64;
        for &len in lens {
            offsets.push(end);
            end = (end + len as u64 * 4).div_ceil(align) * align;
        }
        let params_buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: end.max(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let host_params: Vec<Vec<f32>> = lens.iter().map(|&len| rng.vector(len)).collect();
        let params: Vec<Param> = lens
            .iter()
            .zip(&offsets)
            .zip(&host_params)
            .map(|((&len, &offset), values)| {
                let param = BufferRange::new(&params_buffer, offset, len as u64);
                ctx.write_f32(&param, values).unwrap();
                let grad = ctx.upload_f32("grad", &vec![0.0; len.max(1)]);
                Param::new(param, BufferRange::new(&grad, 0, len as u64))
            })
            .collect();
        let device = config.build(ctx, &params).unwrap();
        let reference = reference::Optimizer::new(config, lens).unwrap();
        Run {
            params_buffer,
            params,
            host_params,
            device,
            reference,
            rng,
            norm_stats: None,
            ctx: ctx.clone(),
        }
    }

    /// Draws fresh gradients and takes one step on both sides.
    pub fn step(&mut self, ctx: &Context) {
        let grads = self.gradients();
        self.step_with(ctx, &grads);
    }

    /// Fresh gradients, one vector per tensor.
    pub fn gradients(&mut self) -> Vec<Vec<f32>> {
        self.params
            .iter()
            .map(|p| self.rng.gradient(p.len() as usize))
            .collect()
    }

    /// Turns gradient processing on or off on both sides.
    ///
    /// The device's global norm is a sum in an order the host does not mirror (f32, tree
    /// shaped); the reference's is exact (f64). So each step checks the device's norm stats
    /// against the reference's to 1e-6, then hands the device's to the reference's finalize:
    /// the clip coefficient, and everything after it, are then mirrored operation for
    /// operation, as the optimizer kernels are.
    pub fn set_grad_processing(&mut self, config: Option<GradConfig>) {
        if config.is_some() && self.norm_stats.is_none() {
            let stats = BufferRange::whole(&self.ctx.upload_f32("norm stats", &[0.0; 2]));
            self.device.set_norm_stats_buffer(stats.clone()).unwrap();
            self.norm_stats = Some(stats);
        }
        self.device.set_grad_processing(config.clone()).unwrap();
        self.reference.set_grad_processing(config).unwrap();
    }

    /// Takes one step on both sides with these gradients.
    pub fn step_with(&mut self, ctx: &Context, grads: &[Vec<f32>]) {
        self.step_device(ctx, grads);
        match (&self.norm_stats, self.device.grad_processing()) {
            (Some(stats), Some(config)) => {
                let device = ctx.read_f32(stats).unwrap();
                let device = NormStats {
                    value: device[0],
                    nonfinite: device[1],
                };
                let exact = reference::norm_stats(
                    grads,
                    &self.reference.control(),
                    &config.hyper().unwrap(),
                );
                assert_stats_close(device, exact);
                self.reference
                    .step_with_stats(&mut self.host_params, grads, device)
                    .unwrap();
            }
            _ => self.reference.step(&mut self.host_params, grads).unwrap(),
        }
    }

    /// Uploads these gradients to the device, one vector per tensor.
    pub fn write_grads(&self, ctx: &Context, grads: &[Vec<f32>]) {
        for (param, grad) in self.params.iter().zip(grads) {
            ctx.write_f32(&param.grad, grad).unwrap();
        }
    }

    /// Takes one step on the device only, with these gradients.
    pub fn step_device(&self, ctx: &Context, grads: &[Vec<f32>]) {
        self.write_grads(ctx, grads);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        self.device.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }

    /// Every parameter and state, as bytes, in order: for bitwise comparisons.
    pub fn snapshot(&self, ctx: &Context) -> Vec<Vec<u32>> {
        let mut all = Vec::new();
        for (i, param) in self.params.iter().enumerate() {
            all.push(bits(&ctx.read_f32(&param.param).unwrap()));
            for state in self.device.state_specs() {
                all.push(bits(&self.device.read_state(i, state.name).unwrap()));
            }
        }
        all
    }

    /// Compares every parameter and every state with the reference; returns the largest share
    /// of the tolerance used.
    pub fn compare(&self, ctx: &Context, what: &str) -> f32 {
        let mut used = 0.0_f32;
        for (i, param) in self.params.iter().enumerate() {
            let device = ctx.read_f32(&param.param).unwrap();
            assert_close(
                &format!("{what}: tensor {i} param"),
                &device,
                &self.host_params[i],
            );
            used = used.max(tolerance_used(&device, &self.host_params[i]));
            for state in self.device.state_specs() {
                let device = self.device.read_state(i, state.name).unwrap();
                let reference = self.reference.state(i, state.name).unwrap();
                assert_close(
                    &format!("{what}: tensor {i} {}", state.name),
                    &device,
                    reference,
                );
                used = used.max(tolerance_used(&device, reference));
            }
        }
        assert_eq!(
            self.device.read_step().unwrap(),
            self.reference.step_count(),
            "{what}: step counter"
        );
        used
    }
}

/// LAMB and LARS: the device's trust ratios of the step just taken, handed to `reference` for
/// its step (the device sums the norms in f32 in a tree, the reference in f64, so the ratios
/// differ by rounding, and a 16-bit state rounded from either may differ by an ulp); `None`
/// for other optimizers. Check them with [`assert_trust_ratios_close`] after the reference's
/// step.
pub fn mirror_trust_ratios(
    device: &Optimizer,
    reference: &mut reference::Optimizer,
) -> Option<Vec<f32>> {
    let ratios = device.read_trust_ratios().ok()?;
    reference.use_trust_ratios(&ratios).unwrap();
    Some(ratios)
}

/// The device's trust ratios against the reference's own: within 1e-5 relative (sums of up to
/// 65537 squares in f32, each norm's relative error far below 1e-6 in practice).
pub fn assert_trust_ratios_close(device: &[f32], reference: &[f32]) {
    assert_eq!(device.len(), reference.len());
    for (i, (&d, &r)) in device.iter().zip(reference).enumerate() {
        let close = (d - r).abs() <= 1e-5 * r.abs() || (d.is_nan() && r.is_nan());
        assert!(
            close,
            "tensor {i}: trust ratio {d:e} on the device, {r:e} on the host"
        );
    }
}

/// A zeroed buffer of `bytes` bytes that kernels bind and the host reads and writes.
pub fn zeroed_buffer(ctx: &Context, bytes: u64) -> wgpu::Buffer {
    ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// How far apart two values of a 16-bit type are, in units in the last place of the larger
/// (at least the type's smallest subnormal step); 0 when they are the same bits or both NaN.
pub fn ulps_16bit(a: f32, b: f32, dtype: Dtype) -> f32 {
    if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) {
        return 0.0;
    }
    let (significand_bits, min_step) = match dtype {
        Dtype::F16 => (11, 2f32.powi(-24)),
        _ => (8, f32::from_bits(1 << 16)),
    };
    let larger = a.abs().max(b.abs());
    let ulp = 2f32
        .powi(larger.log2().floor() as i32 + 1 - significand_bits)
        .max(min_step);
    (a - b).abs() / ulp
}

/// Checkpoint `bytes` with each tensor's data passed to `tensor` (its name, its bytes) and the
/// metadata to `metadata` for editing, re-serialized: the files of bad-input tests.
pub fn rewrite_checkpoint(
    bytes: &[u8],
    tensor: impl Fn(&str, &mut Vec<u8>),
    metadata: impl Fn(&mut std::collections::HashMap<String, String>),
) -> Vec<u8> {
    use safetensors::SafeTensors;
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap_or_default();
    metadata(&mut meta);
    let file = SafeTensors::deserialize(bytes).unwrap();
    let tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let mut data = view.data().to_vec();
            tensor(&name, &mut data);
            (name, view.dtype(), view.shape().to_vec(), data)
        })
        .collect();
    let views = tensors.iter().map(|(name, dtype, shape, data)| {
        (
            name.as_str(),
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap(),
        )
    });
    safetensors::serialize(views, Some(meta)).unwrap()
}
