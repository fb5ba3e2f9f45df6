//! Data parallel and ZeRO-1 over MPI (feature `mpi`): `ranks` runs on every rank under
//! `mpirun -n 2` and `-n 4` (started by `two_and_four_ranks_equal_one_rank`), and once as a
//! single rank when cargo runs it. Each rank checks its parameters after 20 steps against a
//! single-rank run over the same global batch, on its own device.
//!
//! Gradients are multiples of 1/64 in [-1, 1]: divided by 2 or 4 ranks and summed in any order
//! they stay exact, so the averaged gradients, and every parameter after them, equal the
//! single-rank run's bit for bit, whatever order MPI sums in. With a global-norm clip, ZeRO-1's
//! norm is the sum of the shards' sums of squares (each a tree over its shard, added in MPI's
//! order), not one tree over the arena: the clip coefficient differs in the last places, so
//! those runs are held to the reference tolerance instead.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wgpu_optim::*;

const CHILD: &str = "WGPU_OPTIM_MPI_CHILD";

/// Held while this process initialises MPI (`ranks`, a singleton when cargo runs it) and while
/// it starts mpirun: a singleton's initialisation leaves Open MPI's variables in the process
/// environment, which `two_and_four_ranks_equal_one_rank` must not hand to mpirun (it would
/// take itself for part of the singleton's job and fail at once).
static MPI_ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
const LENS: [usize; 4] = [300, 1000, 7, 2048];
const STEPS: usize = 20;

/// Rank `rank`'s gradients at `step`: multiples of 1/64 in [-1, 1].
fn gradients(step: usize, rank: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new((1000 * step + rank) as u64);
    LENS.iter()
        .map(|&len| {
            (0..len)
                .map(|_| ((rng.next_u64() % 129) as f32 - 64.0) / 64.0)
                .collect()
        })
        .collect()
}

fn initial_params() -> Vec<Vec<f32>> {
    let mut rng = Rng::new(7);
    LENS.iter().map(|&len| rng.vector(len)).collect()
}

/// One scenario: optimizer, gradient processing, the (step, rank) whose gradients hold a NaN.
struct Scenario {
    name: &'static str,
    config: OptimizerConfig,
    grad: Option<GradConfig>,
    poison: Option<(usize, usize)>,
}

fn scenarios(ranks: usize) -> Vec<Scenario> {
    let adamw: OptimizerConfig = AdamWConfig::default()
        .with_lr(1e-2)
        .with_weight_decay(0.01)
        .into();
    vec![
        Scenario {
            name: "adamw",
            config: adamw.clone(),
            grad: None,
            poison: None,
        },
        Scenario {
            name: "sgd momentum, clipped",
            config: SgdConfig::default().with_lr(0.05).with_momentum(0.9).into(),
            grad: Some(GradConfig::default().with_max_norm(0.5)),
            poison: None,
        },
        Scenario {
            name: "adamw, one rank's gradients poisoned",
            config: adamw,
            grad: Some(GradConfig::default()),
            poison: Some((5, ranks - 1)),
        },
    ]
}

/// The single-rank run: one optimizer over the arena, stepped with the averaged gradients.
fn single_rank(ctx: &Context, scenario: &Scenario, ranks: usize) -> (Vec<Vec<f32>>, Control) {
    let arena = Arena::new(ctx, &LENS).unwrap();
    for (i, values) in initial_params().iter().enumerate() {
        arena.write_param(i, values).unwrap();
    }
    let mut optimizer = scenario.config.build(ctx, &arena.params()).unwrap();
    optimizer
        .set_grad_processing(scenario.grad.clone())
        .unwrap();
    let scale = 1.0 / ranks as f32;
    for step in 0..STEPS {
        let mut mean: Vec<Vec<f32>> = LENS.iter().map(|&len| vec![0.0; len]).collect();
        for rank in 0..ranks {
            let mut grads = gradients(step, rank);
            if scenario.poison == Some((step, rank)) {
                grads[1][3] = f32::NAN;
            }
            for (m, g) in mean.iter_mut().zip(&grads) {
                for (m, &g) in m.iter_mut().zip(g) {
                    *m += g * scale;
                }
            }
        }
        for (i, g) in mean.iter().enumerate() {
            arena.write_grad(i, g).unwrap();
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }
    let params = (0..LENS.len())
        .map(|i| arena.read_param(i).unwrap())
        .collect();
    (params, optimizer.read_control_unchecked().unwrap())
}

/// Every rank's part: each scenario under both shardings against the single-rank run, the
/// state each rank keeps, and refused configurations. Run by cargo as one rank, and by
/// `two_and_four_ranks_equal_one_rank` under mpirun.
#[test]
fn ranks() {
    let universe = {
        let _env = MPI_ENV.lock().unwrap_or_else(|e| e.into_inner());
        mpi::initialize().expect("MPI initializes (apt-get install libopenmpi-dev)")
    };
    let world = universe.world();
    use mpi::traits::{Communicator, CommunicatorCollectives};
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let ctx = context();
    for scenario in scenarios(ranks) {
        let (expected, expected_control) = single_rank(ctx, &scenario, ranks);
        for sharding in [Sharding::Replicated, Sharding::Zero1] {
            let arena = Arena::new(ctx, &LENS).unwrap();
            for (i, values) in initial_params().iter().enumerate() {
                arena.write_param(i, values).unwrap();
            }
            let groups = vec![(scenario.config.clone(), (0..LENS.len()).collect())];
            let config = DistributedConfig::default()
                .with_sharding(sharding)
                // Small buckets: several per step.
                .with_bucket_bytes(4096);
            let comm = world.duplicate();
            let mut optimizer = Distributed::new(ctx, comm, &arena, groups, config).unwrap();
            optimizer
                .set_grad_processing(scenario.grad.clone())
                .unwrap();
            for step in 0..STEPS {
                let mut grads = gradients(step, rank);
                if scenario.poison == Some((step, rank)) {
                    grads[1][3] = f32::NAN;
                }
                for (i, g) in grads.iter().enumerate() {
                    arena.write_grad(i, g).unwrap();
                }
                let encoder = ctx.device().create_command_encoder(&Default::default());
                optimizer.step(encoder).unwrap();
            }
            let what = format!("rank {rank}/{ranks}: {} ({sharding:?})", scenario.name);
            let clipped = scenario.grad.as_ref().is_some_and(|g| g.max_norm.is_some());
            let exact = sharding == Sharding::Replicated || !clipped;
            for (i, expected) in expected.iter().enumerate() {
                let device = arena.read_param(i).unwrap();
                if exact {
                    assert_eq!(bits(&device), bits(expected), "{what}: tensor {i}");
                } else {
                    assert_close(&format!("{what}: tensor {i}"), &device, expected);
                }
            }
            let control = optimizer.optimizer().read_control_unchecked().unwrap();
            assert_eq!(
                (control.step, control.skipped_steps),
                (expected_control.step, expected_control.skipped_steps),
                "{what}: steps taken and skipped"
            );
            // The state each rank keeps: all of it replicated, its shard's with ZeRO-1; the
            // ranks' shares add up to the single-rank optimizer's state exactly.
            let states = scenario.config.states().unwrap().len() as u64;
            let whole = states * LENS.iter().sum::<usize>() as u64;
            let mine = optimizer.state_elements();
            let mut total = 0_u64;
            world.all_reduce_into(&mine, &mut total, mpi::collective::SystemOperation::sum());
            match sharding {
                Sharding::Replicated => assert_eq!((mine, total), (whole, whole * ranks as u64)),
                Sharding::Zero1 => {
                    assert_eq!(total, whole, "{what}: the shards' states");
                    let (lo, hi) = optimizer.shard();
                    assert!(mine <= states * (hi - lo), "{what}: {mine} state elements");
                }
            }
            println!("[passed] {what}, state elements {mine} of {whole}");
        }
    }

    // Refused on every rank, none hanging: a rank with another layout, a rank with an
    // invalid configuration, LAMB under ZeRO-1.
    let adamw: OptimizerConfig = AdamWConfig::default().into();
    let other_lens = [300, 1000, 7, 2049];
    let lens: &[usize] = if rank == 0 && ranks > 1 {
        &other_lens
    } else {
        &LENS
    };
    let arena = Arena::new(ctx, lens).unwrap();
    let groups = vec![(adamw.clone(), (0..lens.len()).collect())];
    let result = Distributed::new(ctx, world.duplicate(), &arena, groups, Default::default());
    if ranks > 1 {
        assert!(
            matches!(result, Err(Error::DistributedMismatch { .. })),
            "rank {rank}: another layout on rank 0"
        );
    }
    let arena = Arena::new(ctx, &LENS).unwrap();
    let invalid = adamw.with_lr(-1.0);
    let config = if rank == ranks - 1 {
        invalid
    } else {
        adamw.clone()
    };
    let groups = vec![(config, (0..LENS.len()).collect())];
    let result = Distributed::new(ctx, world.duplicate(), &arena, groups, Default::default());
    match result {
        Err(Error::InvalidHyperparameter { name: "lr", .. }) => assert_eq!(rank, ranks - 1),
        Err(Error::DistributedMismatch { rank: bad, .. }) => assert_eq!(bad, ranks - 1),
        other => panic!(
            "rank {rank}: an invalid lr on the last rank gave {:?}",
            other.err()
        ),
    }
    let lamb = vec![(LambConfig::default().into(), (0..LENS.len()).collect())];
    let zero = DistributedConfig::default().with_sharding(Sharding::Zero1);
    assert!(matches!(
        Distributed::new(ctx, world.duplicate(), &arena, lamb, zero),
        Err(Error::InvalidOptions(_))
    ));
    println!("[passed] rank {rank}/{ranks}: refusals");
}

/// `ranks` under `mpirun -n 2` and `-n 4` on this machine (oversubscribed; as root where CI
/// runs as root): every rank passes, within a deadline (a hang fails).
#[test]
fn two_and_four_ranks_equal_one_rank() {
    if std::env::var_os(CHILD).is_some() {
        return; // A rank runs `ranks` only (mpirun passes --exact).
    }
    let exe = std::env::current_exe().unwrap();
    for n in [2, 4] {
        let mut command = Command::new("mpirun");
        command
            .args(["--oversubscribe", "-n", &n.to_string()])
            .arg(&exe)
            .args(["--exact", "ranks", "--nocapture", "--test-threads=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let env = MPI_ENV.lock().unwrap_or_else(|e| e.into_inner());
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if ["OMPI_", "PMIX_", "OPAL_", "ORTE_"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                command.env_remove(&*name);
            }
        }
        let mut child = command
            .env(CHILD, "1")
            // Open MPI refuses root unless told; CI runs as root.
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .spawn()
            .expect("mpirun runs (apt-get install openmpi-bin libopenmpi-dev)");
        drop(env);
        let deadline = Instant::now() + Duration::from_secs(600);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                panic!("{n} ranks: no result in 600 s (a hang)");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(status.success(), "{n} ranks failed:\n{stdout}\n{stderr}");
        // Every rank ran every scenario under both shardings, and the refusals.
        let passed = stdout.matches("[passed]").count();
        assert_eq!(passed, n * (2 * scenarios(n).len() + 1), "{stdout}");
        eprintln!("{n} ranks:\n{stdout}");
    }
}
