//! Muon groups of an optimizer ([`Optimizer::with_muon`]) on the device: against the CPU
//! reference ([`reference::Muon`], [`reference::Optimizer`]) step by step, beside AdamW under
//! one control block (the global norm over every gradient, one skip for a NaN anywhere, one
//! loss scale), the momentum buffers' bits, a zero matrix, AdamW beside it with 8-bit states,
//! and what is refused.

mod common;

use common::{bits, context, Rng};
use wgpu_optim::reference;
use wgpu_optim::*;

/// Muon matrices of every kind (square, wide, tall, 1 x n, odd, across the product tiles) and
/// two vectors for AdamW, in one arena: Muon's first.
const SHAPES: [(usize, usize); 6] = [(8, 8), (4, 12), (12, 4), (1, 16), (7, 13), (65, 130)];
const VECTORS: [usize; 2] = [13, 64];

fn lens() -> Vec<usize> {
    let mut lens: Vec<usize> = SHAPES.iter().map(|&(r, c)| r * c).collect();
    lens.extend(VECTORS);
    lens
}

fn adamw() -> AdamWConfig {
    AdamWConfig::default().with_lr(1e-2).with_weight_decay(0.05)
}

/// Two Muon groups (Nesterov with the original adjustment and decay; plain momentum with
/// Moonshot's), so every per-matrix hyperparameter varies.
fn muon_configs() -> [MuonConfig; 2] {
    [
        MuonConfig::default().with_lr(2e-2).with_weight_decay(0.1),
        MuonConfig::default()
            .with_lr(1e-2)
            .with_nesterov(false)
            .with_momentum(0.9)
            .with_weight_decay(0.0)
            .with_adjust_lr(AdjustLr::MatchRmsAdamW),
    ]
}

/// Muon groups 0: matrices 0-2; 1: matrices 3-5.
const SPLIT: usize = 3;

struct Mixed {
    arena: Arena,
    optimizer: Optimizer,
}

fn mixed(with_adamw: bool) -> Mixed {
    let ctx = context();
    let arena = Arena::new(ctx, &lens()).unwrap();
    let params = arena.params();
    let shapes: Vec<Vec<usize>> = SHAPES.iter().map(|&(r, c)| vec![r, c]).collect();
    let [first, second] = muon_configs();
    let muon = vec![
        MuonGroup {
            config: first,
            params: params[..SPLIT].to_vec(),
            shapes: shapes[..SPLIT].to_vec(),
        },
        MuonGroup {
            config: second,
            params: params[SPLIT..SHAPES.len()].to_vec(),
            shapes: shapes[SPLIT..].to_vec(),
        },
    ];
    let groups = if with_adamw {
        vec![ParamGroup {
            config: adamw().into(),
            params: params[SHAPES.len()..].to_vec(),
        }]
    } else {
        Vec::new()
    };
    let optimizer = Optimizer::with_muon(ctx, groups, muon, Precision::default()).unwrap();
    Mixed { arena, optimizer }
}

/// The host's side: AdamW over the vectors, Muon over each group's matrices.
struct Host {
    adamw: reference::Optimizer,
    muon: [reference::Muon; 2],
}

impl Host {
    fn new() -> Host {
        let shapes: Vec<Vec<usize>> = SHAPES.iter().map(|&(r, c)| vec![r, c]).collect();
        let [first, second] = muon_configs();
        Host {
            adamw: reference::Optimizer::new(&adamw().into(), &VECTORS).unwrap(),
            muon: [
                reference::Muon::new(&first, &shapes[..SPLIT]).unwrap(),
                reference::Muon::new(&second, &shapes[SPLIT..]).unwrap(),
            ],
        }
    }

    /// One step from the gradients as the device's update sees them.
    fn step(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>]) {
        let n = SHAPES.len();
        let (matrices, vectors) = params.split_at_mut(n);
        let (first, second) = matrices.split_at_mut(SPLIT);
        self.muon[0].step(first, &grads[..SPLIT]).unwrap();
        self.muon[1].step(second, &grads[SPLIT..n]).unwrap();
        self.adamw.step(vectors, &grads[n..]).unwrap();
    }
}

fn write(m: &Mixed, params: &[Vec<f32>], grads: &[Vec<f32>]) {
    for (i, (p, g)) in params.iter().zip(grads).enumerate() {
        m.arena.write_param(i, p).unwrap();
        m.arena.write_grad(i, g).unwrap();
    }
}

fn step(m: &Mixed) {
    let ctx = context();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    m.optimizer.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
}

fn read_params(m: &Mixed) -> Vec<Vec<f32>> {
    (0..lens().len())
        .map(|i| m.arena.read_param(i).unwrap())
        .collect()
}

/// The optimizer's number of Muon matrix `j`: after the element-wise tensors.
fn muon_index(m: &Mixed, j: usize) -> usize {
    m.optimizer.params().count() + j
}

fn gradients(rng: &mut Rng) -> Vec<Vec<f32>> {
    lens().iter().map(|&len| rng.gradient(len)).collect()
}

/// How far a Muon parameter may be from the reference after `steps`: the orthogonalized
/// update's entries are within 1e-5 of the reference's (tests/newton_schulz.rs), each step
/// moves a parameter by the adjusted rate times one of them; plus the f32 rounding of the
/// values.
fn muon_tolerance(steps: usize, value: f32) -> f32 {
    let largest_rate = 2e-2 * 3.0_f32.sqrt().max(0.2 * 130f32.sqrt());
    steps as f32 * largest_rate * 1e-5 + value.abs() * 4.0 * f32::EPSILON
}

fn assert_matrices_close(device: &[Vec<f32>], host: &[Vec<f32>], steps: usize) {
    for (i, (d, h)) in device.iter().zip(host).take(SHAPES.len()).enumerate() {
        for (k, (&d, &h)) in d.iter().zip(h).enumerate() {
            assert!(
                (d - h).abs() <= muon_tolerance(steps, h),
                "matrix {i} {:?} element {k} after {steps} steps: device {d}, reference {h}",
                SHAPES[i]
            );
        }
    }
}

#[test]
fn muon_beside_adamw_follows_the_reference_step_by_step() {
    let m = mixed(true);
    let mut host = Host::new();
    let mut rng = Rng::new(11);
    let mut params: Vec<Vec<f32>> = lens().iter().map(|&len| rng.vector(len)).collect();
    write(&m, &params, &gradients(&mut rng));
    for steps in 1..=6 {
        let grads = gradients(&mut rng);
        for (i, g) in grads.iter().enumerate() {
            m.arena.write_grad(i, g).unwrap();
        }
        step(&m);
        host.step(&mut params, &grads);
        let device = read_params(&m);
        assert_matrices_close(&device, &params, steps);
        // AdamW's tensors see nothing of Muon's: the reference's bits.
        for i in SHAPES.len()..lens().len() {
            assert_eq!(bits(&device[i]), bits(&params[i]), "AdamW tensor {i}");
        }
        // The momentum is a function of the gradients alone: the reference's bits.
        for (j, _) in SHAPES.iter().enumerate() {
            let (group, index) = if j < SPLIT { (0, j) } else { (1, j - SPLIT) };
            let device = m.optimizer.read_state(muon_index(&m, j), "momentum_buffer");
            let device = device.unwrap();
            let host = host.muon[group].momentum_buffer(index).unwrap();
            assert_eq!(bits(&device), bits(host), "momentum of matrix {j}");
        }
        // Keep the host on the device's values so that differences do not compound.
        params = device;
    }
    assert_eq!(
        m.optimizer.read_step().unwrap(),
        6,
        "one step counter for all"
    );
}

#[test]
fn muon_alone_needs_no_other_group() {
    let m = mixed(false);
    let mut host = Host::new();
    let mut rng = Rng::new(5);
    let mut params: Vec<Vec<f32>> = lens().iter().map(|&len| rng.vector(len)).collect();
    let grads = gradients(&mut rng);
    write(&m, &params, &grads);
    step(&m);
    host.step(&mut params, &grads);
    let device = read_params(&m);
    assert_matrices_close(&device, &params, 1);
    // The vectors belong to no group: untouched.
    for i in SHAPES.len()..lens().len() {
        assert_eq!(device[i], m.arena.read_param(i).unwrap());
        assert_ne!(
            bits(&device[i]),
            bits(&params[i]),
            "the host stepped vector {i}"
        );
    }
}

/// The clip coefficient comes from the norm of every gradient, Muon's and AdamW's, and scales
/// both: each side then matches its reference fed the gradients times the device's
/// coefficient (AdamW to the bit).
#[test]
fn one_global_norm_clips_muon_and_adamw_together() {
    let mut m = mixed(true);
    m.optimizer
        .set_grad_processing(Some(GradConfig::default().with_max_norm(0.5)))
        .unwrap();
    let mut host = Host::new();
    let mut rng = Rng::new(23);
    let mut params: Vec<Vec<f32>> = lens().iter().map(|&len| rng.vector(len)).collect();
    let grads = gradients(&mut rng);
    write(&m, &params, &grads);
    step(&m);
    let control = m.optimizer.read_control().unwrap();
    let exact: f64 = grads
        .iter()
        .flatten()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt();
    let norm = f64::from(control.grad_norm);
    assert!(
        (norm - exact).abs() <= 1e-5 * exact,
        "device norm {norm}, every gradient's {exact}"
    );
    let muon_only: f64 = grads[..SHAPES.len()]
        .iter()
        .flatten()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt();
    assert!(exact > muon_only * 1.0001, "AdamW's gradients count too");
    assert!(control.clip_coef < 1.0, "clipped: {}", control.clip_coef);
    let clipped: Vec<Vec<f32>> = grads
        .iter()
        .map(|g| g.iter().map(|&v| v * control.clip_coef).collect())
        .collect();
    host.step(&mut params, &clipped);
    let device = read_params(&m);
    assert_matrices_close(&device, &params, 1);
    for i in SHAPES.len()..lens().len() {
        assert_eq!(bits(&device[i]), bits(&params[i]), "AdamW tensor {i}");
    }
}

/// A NaN in any gradient skips the whole step: Muon's, AdamW's, the momentum and the counter.
#[test]
fn a_nan_anywhere_skips_every_group() {
    for poisoned in [0, SHAPES.len() - 1, SHAPES.len()] {
        let mut m = mixed(true);
        m.optimizer
            .set_grad_processing(Some(GradConfig::default()))
            .unwrap();
        let mut rng = Rng::new(3);
        let params: Vec<Vec<f32>> = lens().iter().map(|&len| rng.vector(len)).collect();
        let grads = gradients(&mut rng);
        write(&m, &params, &grads);
        step(&m);
        let before = read_params(&m);
        let momentum = m.optimizer.read_state(muon_index(&m, 0), "momentum_buffer");
        let momentum = momentum.unwrap();
        let mut bad = gradients(&mut rng);
        bad[poisoned][1] = f32::NAN;
        for (i, g) in bad.iter().enumerate() {
            m.arena.write_grad(i, g).unwrap();
        }
        step(&m);
        let control = m.optimizer.read_control().unwrap();
        assert!(control.skipped(), "tensor {poisoned}'s NaN skips");
        assert_eq!(control.step, 1);
        assert_eq!(
            read_params(&m),
            before,
            "nothing moved (NaN in tensor {poisoned})"
        );
        assert_eq!(
            bits(
                &m.optimizer
                    .read_state(muon_index(&m, 0), "momentum_buffer")
                    .unwrap()
            ),
            bits(&momentum)
        );
    }
}

/// A loss scale of 2^10 divides Muon's gradients as it does AdamW's: scaled gradients give the
/// bits unscaled ones give without a scaler.
#[test]
fn the_loss_scale_unscales_muon_gradients() {
    let mut rng = Rng::new(31);
    let params: Vec<Vec<f32>> = lens().iter().map(|&len| rng.vector(len)).collect();
    let grads = gradients(&mut rng);
    let plain = mixed(true);
    write(&plain, &params, &grads);
    step(&plain);
    let mut scaled = mixed(true);
    let scaler = GradScalerConfig {
        init_scale: 1024.0,
        ..GradScalerConfig::default()
    };
    scaled
        .optimizer
        .set_grad_processing(Some(GradConfig::default().with_grad_scaler(scaler)))
        .unwrap();
    let times: Vec<Vec<f32>> = grads
        .iter()
        .map(|g| g.iter().map(|&v| v * 1024.0).collect())
        .collect();
    write(&scaled, &params, &times);
    step(&scaled);
    let (a, b) = (read_params(&plain), read_params(&scaled));
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!(bits(a), bits(b), "tensor {i}");
    }
}

/// A zero matrix with a zero gradient: eps keeps the iteration finite, nothing moves.
#[test]
fn a_zero_matrix_stays_finite() {
    let ctx = context();
    let arena = Arena::new(ctx, &[6 * 10]).unwrap();
    let group = MuonGroup {
        config: MuonConfig::default(),
        params: arena.params(),
        shapes: vec![vec![6, 10]],
    };
    let optimizer =
        Optimizer::with_muon(ctx, Vec::new(), vec![group], Precision::default()).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    optimizer.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    assert_eq!(arena.read_param(0).unwrap(), vec![0.0; 60]);
}

#[test]
fn learning_rates_reach_muon_groups() {
    let mut m = mixed(true);
    m.optimizer.set_lr(3e-3).unwrap();
    assert!(m.optimizer.muon_configs().iter().all(|c| c.lr == 3e-3));
    assert_eq!(m.optimizer.config().lr(), 3e-3);
    // Group 1 is Muon's first (AdamW is group 0), tensor 2 its first (AdamW has 0 and 1).
    m.optimizer.set_group_lr(1, 7e-3).unwrap();
    assert_eq!(m.optimizer.muon_configs()[0].lr, 7e-3);
    assert_eq!(m.optimizer.group_of(0), Some(0));
    assert_eq!(m.optimizer.group_of(VECTORS.len()), Some(1));
    assert_eq!(m.optimizer.group_of(VECTORS.len() + SPLIT), Some(2));
    assert_eq!(m.optimizer.group_of(VECTORS.len() + SHAPES.len()), None);
    assert!(matches!(
        m.optimizer.set_group_lr(3, 1e-3),
        Err(Error::NoSuchGroup { group: 3, count: 3 })
    ));
    // All or none: a NaN rate for Muon leaves AdamW's as it was.
    assert!(m
        .optimizer
        .set_group_lrs(&[(0, 1e-4), (2, f64::NAN)])
        .is_err());
    assert_eq!(m.optimizer.config().lr(), 3e-3);
    let changed = m.optimizer.muon_configs()[1].clone().with_ns_steps(3);
    assert!(matches!(
        m.optimizer.set_muon_config(1, changed),
        Err(Error::StructuralChange("Muon"))
    ));
    let schedule = DeviceSchedule::new(
        LrSchedule::CosineAnnealing {
            t_max: 10,
            eta_min: 0.0,
        },
        10,
    );
    assert!(matches!(
        m.optimizer.set_schedule(Some(schedule)),
        Err(Error::InvalidOptions(_))
    ));
}

#[test]
fn refuses_what_muon_cannot_step() {
    let ctx = context();
    let arena = Arena::new(ctx, &[64, 64, 8]).unwrap();
    let params = arena.params();
    let muon = |shapes: Vec<Vec<usize>>, config: MuonConfig| {
        let group = MuonGroup {
            config,
            params: params[..shapes.len()].to_vec(),
            shapes,
        };
        Optimizer::with_muon(ctx, Vec::new(), vec![group], Precision::default())
    };
    let default = MuonConfig::default;
    for shape in [vec![64], vec![4, 4, 4], vec![]] {
        assert!(
            matches!(
                muon(vec![shape.clone()], default()),
                Err(Error::NotAMatrix { .. })
            ),
            "{shape:?}"
        );
    }
    assert!(matches!(
        muon(vec![vec![8, 9]], default()),
        Err(Error::WrongLength { .. })
    ));
    assert!(muon(vec![vec![8, 8]], default().with_ns_steps(0)).is_err());
    assert!(muon(vec![vec![8, 8]], default().with_lr(f64::NAN)).is_err());
    assert!(muon(vec![vec![8, 8]], default().with_momentum(-0.5)).is_err());
    let two = |a: MuonConfig, b: MuonConfig| {
        let group = |config, i: usize| MuonGroup {
            config,
            params: vec![params[i].clone()],
            shapes: vec![vec![8, 8]],
        };
        Optimizer::with_muon(
            ctx,
            Vec::new(),
            vec![group(a, 0), group(b, 1)],
            Precision::default(),
        )
    };
    assert!(two(default(), default().with_lr(0.5)).is_ok());
    assert!(matches!(
        two(default(), default().with_ns_steps(3)),
        Err(Error::StructuralChange("Muon"))
    ));
    // Shapes and parameters one for one.
    let group = MuonGroup {
        config: default(),
        params: params[..2].to_vec(),
        shapes: vec![vec![8, 8]],
    };
    assert!(matches!(
        Optimizer::with_muon(ctx, Vec::new(), vec![group], Precision::default()),
        Err(Error::WrongLength { .. })
    ));
    // A tensor in both kinds of group.
    let group = MuonGroup {
        config: default(),
        params: vec![params[0].clone()],
        shapes: vec![vec![8, 8]],
    };
    let adamw = ParamGroup {
        config: AdamWConfig::default().into(),
        params: vec![params[0].clone()],
    };
    assert!(matches!(
        Optimizer::with_muon(ctx, vec![adamw], vec![group], Precision::default()),
        Err(Error::Overlapping { .. })
    ));
    // 16-bit parameters.
    let half = Arena::with_dtypes(ctx, &[64], Dtype::BF16, Dtype::F32).unwrap();
    let group = MuonGroup {
        config: default(),
        params: half.params(),
        shapes: vec![vec![8, 8]],
    };
    assert!(matches!(
        Optimizer::with_muon(ctx, Vec::new(), vec![group], Precision::default()),
        Err(Error::UnsupportedDtype { .. })
    ));
}

/// A checkpoint of AdamW and Muon together (momentum shaped as its matrix, Muon's
/// hyperparameters after AdamW's group) resumes bit for bit, into an optimizer built anew.
#[test]
fn a_checkpoint_resumes_muon_and_adamw_bit_for_bit() {
    let mut rng = Rng::new(41);
    let params: Vec<Vec<f32>> = lens().iter().map(|&len| rng.vector(len)).collect();
    let grads: Vec<Vec<Vec<f32>>> = (0..4).map(|_| gradients(&mut rng)).collect();
    let steps = |m: &Mixed, range: std::ops::Range<usize>| {
        for g in &grads[range] {
            for (i, g) in g.iter().enumerate() {
                m.arena.write_grad(i, g).unwrap();
            }
            step(m);
        }
    };
    let straight = mixed(true);
    write(&straight, &params, &grads[0]);
    steps(&straight, 0..4);

    let first = mixed(true);
    write(&first, &params, &grads[0]);
    steps(&first, 0..2);
    let bytes = first.optimizer.checkpoint().unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let last = VECTORS.len() + SHAPES.len() - 1;
    let momentum = file
        .tensor(&format!("state.{last}.momentum_buffer"))
        .unwrap();
    assert_eq!(momentum.shape(), &[65, 130]);
    let mut resumed = mixed(true);
    // Another rate before the load: the file's comes back.
    resumed.optimizer.set_lr(0.5).unwrap();
    resumed.optimizer.load_checkpoint(&bytes).unwrap();
    assert_eq!(resumed.optimizer.muon_configs(), &muon_configs());
    write(&resumed, &read_params(&first), &grads[1]);
    steps(&resumed, 2..4);
    for (i, (a, b)) in read_params(&straight)
        .iter()
        .zip(&read_params(&resumed))
        .enumerate()
    {
        assert_eq!(bits(a), bits(b), "tensor {i}");
    }
    for j in 0..SHAPES.len() {
        let index = muon_index(&straight, j);
        let a = straight
            .optimizer
            .read_state(index, "momentum_buffer")
            .unwrap();
        let b = resumed
            .optimizer
            .read_state(index, "momentum_buffer")
            .unwrap();
        assert_eq!(bits(&a), bits(&b), "momentum {j}");
    }
    // Not into an optimizer without the Muon groups, nor with other iterations.
    let ctx = context();
    let plain = Optimizer::with_groups(
        ctx,
        vec![ParamGroup {
            config: adamw().into(),
            params: first.arena.params()[SHAPES.len()..].to_vec(),
        }],
    );
    assert!(matches!(
        plain.unwrap().load_checkpoint(&bytes),
        Err(Error::CheckpointMismatch(_))
    ));
}

/// A snapshot covers Muon's parameters and momentum with the rest.
#[test]
fn a_snapshot_rewinds_muon_too() {
    let ctx = context();
    let m = mixed(true);
    let mut rng = Rng::new(43);
    let params: Vec<Vec<f32>> = lens().iter().map(|&len| rng.vector(len)).collect();
    write(&m, &params, &gradients(&mut rng));
    step(&m);
    let snapshot = Snapshot::of_optimizer(ctx, &m.optimizer, &[]).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    snapshot.record_save(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let saved = read_params(&m);
    let index = muon_index(&m, 2);
    let momentum = m.optimizer.read_state(index, "momentum_buffer").unwrap();
    for (i, g) in gradients(&mut rng).iter().enumerate() {
        m.arena.write_grad(i, g).unwrap();
    }
    step(&m);
    assert_ne!(read_params(&m), saved);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    snapshot.record_restore(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    assert_eq!(read_params(&m), saved);
    let restored = m.optimizer.read_state(index, "momentum_buffer").unwrap();
    assert_eq!(bits(&restored), bits(&momentum));
    assert_eq!(m.optimizer.read_step().unwrap(), 1);
}

/// One Muon group over every matrix of `SHAPES`, on the device and on the host, stepped
/// together from the same gradients; the host restarts from the device's parameters after each
/// step (see `step`), so that differences do not compound.
struct Alone {
    arena: Arena,
    optimizer: Optimizer,
    host: reference::Muon,
    params: Vec<Vec<f32>>,
    rng: Rng,
}

impl Alone {
    fn new(config: &MuonConfig, seed: u64) -> Alone {
        let ctx = context();
        let shapes: Vec<Vec<usize>> = SHAPES.iter().map(|&(r, c)| vec![r, c]).collect();
        let arena = Arena::new(ctx, &Self::lens()).unwrap();
        let group = MuonGroup {
            config: config.clone(),
            params: arena.params(),
            shapes: shapes.clone(),
        };
        let optimizer =
            Optimizer::with_muon(ctx, Vec::new(), vec![group], Precision::default()).unwrap();
        let mut rng = Rng::new(seed);
        let params: Vec<Vec<f32>> = Self::lens().iter().map(|&len| rng.vector(len)).collect();
        for (i, p) in params.iter().enumerate() {
            arena.write_param(i, p).unwrap();
        }
        Alone {
            arena,
            optimizer,
            host: reference::Muon::new(config, &shapes).unwrap(),
            params,
            rng,
        }
    }

    fn lens() -> Vec<usize> {
        SHAPES.iter().map(|&(r, c)| r * c).collect()
    }

    /// One step of both from fresh gradients: (the device's parameters, the host's).
    fn step(&mut self) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let lens = Self::lens();
        let grads: Vec<Vec<f32>> = lens.iter().map(|&len| self.rng.gradient(len)).collect();
        for (i, g) in grads.iter().enumerate() {
            self.arena.write_grad(i, g).unwrap();
        }
        let ctx = context();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        self.optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        self.host.step(&mut self.params, &grads).unwrap();
        let device: Vec<Vec<f32>> = (0..lens.len())
            .map(|i| self.arena.read_param(i).unwrap())
            .collect();
        let host = std::mem::replace(&mut self.params, device.clone());
        (device, host)
    }
}

/// Optax's form on the device (bias-corrected momentum from the shared step counter, the norm
/// plus eps, Optax's decay) against the reference, Nesterov on and off; it cannot share a
/// batch with PyTorch's form (another norm floor).
#[test]
fn the_optax_form_follows_the_reference_on_the_device() {
    let ctx = context();
    for nesterov in [true, false] {
        let config = MuonConfig::default()
            .with_optax_form(true)
            .with_lr(2e-2)
            .with_eps(1e-8)
            .with_weight_decay(0.1)
            .with_nesterov(nesterov)
            .with_adjust_lr(AdjustLr::WidthTransfer);
        let mut alone = Alone::new(&config, 51);
        for steps in 1..=4 {
            let (device, host) = alone.step();
            assert_matrices_close(&device, &host, steps);
            for j in 0..SHAPES.len() {
                let device = alone.optimizer.read_state(j, "momentum_buffer").unwrap();
                let host = alone.host.momentum_buffer(j).unwrap();
                assert_eq!(bits(&device), bits(host));
            }
        }
    }
    let arena = Arena::new(ctx, &[64, 64]).unwrap();
    let params = arena.params();
    let group = |config: MuonConfig, i: usize| MuonGroup {
        config,
        params: vec![params[i].clone()],
        shapes: vec![vec![8, 8]],
    };
    let forms = vec![
        group(MuonConfig::default(), 0),
        group(MuonConfig::default().with_optax_form(true), 1),
    ];
    assert!(matches!(
        Optimizer::with_muon(ctx, Vec::new(), forms, Precision::default()),
        Err(Error::StructuralChange("Muon"))
    ));
    assert!(matches!(
        reference::Muon::new(
            &MuonConfig::default()
                .with_optax_form(true)
                .with_momentum(1.0),
            &[vec![8, 8]]
        ),
        Err(Error::InvalidHyperparameter {
            name: "momentum",
            ..
        })
    ));
}

/// The iterate in f16 inside a Muon step: each step's update within 1e-2 of the f32
/// reference's per entry (tests/newton_schulz.rs: an f16 iterate lands within 2.8e-3 of it,
/// PyTorch's bfloat16 one 3.4e-2 from float64), times the adjusted rate.
#[test]
fn an_f16_iterate_steps_near_the_reference() {
    let config = MuonConfig::default().with_lr(2e-2).with_f16_iterate(true);
    let mut alone = Alone::new(&config, 61);
    for _ in 0..3 {
        let (device, host) = alone.step();
        for (i, (d, h)) in device.iter().zip(&host).enumerate() {
            let (rows, cols) = SHAPES[i];
            let rate = config.adjusted_lr(rows, cols) as f32;
            for (&d, &h) in d.iter().zip(h) {
                let bound = rate * 1e-2 + h.abs() * 4.0 * f32::EPSILON;
                assert!((d - h).abs() <= bound, "{rows} x {cols}: {d} vs {h}");
            }
        }
    }
}

/// Muon beside AdamW with 8-bit states (issue 29): the element-wise group keeps codes and
/// scales (its tensor of 16 blocks; its small one f32 states) and steps as an 8-bit AdamW of
/// its own tensors alone, bit for bit; Muon's momentum (a matrix of 16 blocks' elements, which
/// torchao's rule would quantize) stays f32; a checkpoint carries both.
#[test]
fn muon_beside_eight_bit_adamw() {
    let ctx = context();
    // The matrix, then AdamW's tensors.
    let lens = [64 * 64, 4096, 13];
    let precision = Precision::default().with_8bit_states();
    let mut rng = Rng::new(43);
    let params: Vec<Vec<f32>> = lens.iter().map(|&len| rng.vector(len)).collect();
    let build = |with_muon: bool| {
        let arena = Arena::new(ctx, if with_muon { &lens } else { &lens[1..] }).unwrap();
        let skip = usize::from(!with_muon);
        for (i, values) in params.iter().enumerate().skip(skip) {
            arena.write_param(i - skip, values).unwrap();
        }
        let all = arena.params();
        let adamw = vec![ParamGroup {
            config: adamw().into(),
            params: all[all.len() - 2..].to_vec(),
        }];
        let muon = if with_muon {
            vec![MuonGroup {
                config: MuonConfig::default().with_lr(2e-2),
                params: vec![all[0].clone()],
                shapes: vec![vec![64, 64]],
            }]
        } else {
            Vec::new()
        };
        let optimizer = if with_muon {
            Optimizer::with_muon(ctx, adamw, muon, precision)
        } else {
            Optimizer::with_precision(ctx, adamw, precision)
        };
        Mixed {
            arena,
            optimizer: optimizer.unwrap(),
        }
    };
    let (both, alone) = (build(true), build(false));
    let steps = |m: &Mixed, grads: &[Vec<Vec<f32>>], skip: usize| {
        for g in grads {
            for (i, g) in g.iter().enumerate().skip(skip) {
                m.arena.write_grad(i - skip, g).unwrap();
            }
            step(m);
        }
    };
    let grads: Vec<Vec<Vec<f32>>> = (0..4)
        .map(|_| lens.iter().map(|&len| rng.gradient(len)).collect())
        .collect();
    steps(&both, &grads[..3], 0);
    steps(&alone, &grads[..3], 1);
    // The optimizer numbers AdamW's tensors first (0, 1), then Muon's (2).
    let quantized = |m: &Mixed, i: usize| m.optimizer.read_quantized_state(i, "exp_avg_sq");
    assert_eq!(quantized(&both, 0).unwrap(), quantized(&alone, 0).unwrap());
    assert!(quantized(&both, 1).is_err(), "13 elements keep f32 states");
    for i in 1..3 {
        assert_eq!(
            bits(&both.arena.read_param(i).unwrap()),
            bits(&alone.arena.read_param(i - 1).unwrap()),
            "tensor {i}"
        );
    }
    assert!(both
        .optimizer
        .read_quantized_state(2, "momentum_buffer")
        .is_err());
    let momentum = both.optimizer.read_state(2, "momentum_buffer").unwrap();
    assert!(
        momentum.iter().any(|&m| m != 0.0),
        "Muon's momentum stepped"
    );
    // The checkpoint: AdamW's codes and scales by torchao's names, Muon's momentum in f32;
    // a fresh optimizer that loads it takes the next step as the saved one does.
    let bytes = both.optimizer.checkpoint().unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        file.tensor("state.0.exp_avg.codes").unwrap().shape(),
        [4096]
    );
    let momentum = file.tensor("state.2.momentum_buffer").unwrap();
    assert_eq!(momentum.shape(), [64, 64]);
    assert_eq!(momentum.dtype(), safetensors::Dtype::F32);
    assert!(file.tensor("state.2.momentum_buffer.codes").is_err());
    let mut resumed = build(true);
    resumed.optimizer.load_checkpoint(&bytes).unwrap();
    for i in 0..lens.len() {
        let values = both.arena.read_param(i).unwrap();
        resumed.arena.write_param(i, &values).unwrap();
    }
    steps(&both, &grads[3..], 0);
    steps(&resumed, &grads[3..], 0);
    assert_eq!(
        quantized(&both, 0).unwrap(),
        quantized(&resumed, 0).unwrap()
    );
    for i in 0..lens.len() {
        assert_eq!(
            bits(&both.arena.read_param(i).unwrap()),
            bits(&resumed.arena.read_param(i).unwrap()),
            "resumed, tensor {i}"
        );
    }
}
