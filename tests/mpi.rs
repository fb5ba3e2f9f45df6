//! Data parallel and ZeRO-1 over MPI (feature `mpi`): `ranks` runs on every rank under
//! `mpirun -n 2` and `-n 4` (started by `two_and_four_ranks_equal_one_rank`), and once as a
//! single rank when cargo runs it. Each rank checks its parameters after 20 steps against a
//! single-rank run over the same global batch, on its own device (f32, bf16 and 8-bit states;
//! ZeRO-1's shards then end at the edges of a quantized tensor's blocks); then `refusals`: ranks that
//! differ (in configuration, in their devices' limits) are refused on every rank, none left
//! waiting in a collective.
//!
//! Gradients are multiples of 1/64 in [-1, 1]: divided by 2 or 4 ranks and summed in any order
//! they stay exact, so the averaged gradients, and every parameter after them, equal the
//! single-rank run's bit for bit, whatever order MPI sums in. With a global-norm clip, ZeRO-1's
//! norm is the sum of the shards' sums of squares (each a tree over its shard, added in MPI's
//! order), not one tree over the arena: the clip coefficient differs in the last places, so
//! those runs are held to the reference tolerance instead.

mod common;
use common::*;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wgpu_optim::*;

const CHILD: &str = "WGPU_OPTIM_MPI_CHILD";

/// Held while this process initialises MPI (`ranks`, a singleton when cargo runs it) and while
/// it starts mpirun: a singleton's initialisation leaves Open MPI's variables in the process
/// environment, which `two_and_four_ranks_equal_one_rank` must not hand to mpirun (it would
/// take itself for part of the singleton's job and fail at once).
static MPI_ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// The arena's tensors: the last, of 16 blocks of 256, keeps 8-bit states where asked.
const LENS: [usize; 5] = [300, 1000, 7, 2048, 4096];
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

/// One scenario: optimizer, gradient processing, the (step, rank) whose gradients hold a NaN,
/// how the states are stored, whether the processing is set through `optimizer()` on every
/// rank (rather than `Distributed::set_grad_processing`), whether the parameters are then
/// switched to Schedule-Free's `x` and back (each compared), and whether the run stops after
/// half its steps and resumes from a checkpoint (each rank its own optimizer's, the parameters
/// from its arena) in a new arena and `Distributed`.
struct Scenario {
    name: &'static str,
    config: OptimizerConfig,
    grad: Option<GradConfig>,
    poison: Option<(usize, usize)>,
    precision: Precision,
    through_optimizer: bool,
    switch_modes: bool,
    resumed: bool,
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
            precision: Precision::default(),
            through_optimizer: false,
            switch_modes: false,
            resumed: false,
        },
        Scenario {
            name: "sgd momentum, clipped, resumed from a checkpoint",
            config: SgdConfig::default().with_lr(0.05).with_momentum(0.9).into(),
            grad: Some(GradConfig::default().with_max_norm(0.5)),
            poison: None,
            precision: Precision::default(),
            through_optimizer: false,
            switch_modes: false,
            resumed: true,
        },
        Scenario {
            name: "adamw, one rank's gradients poisoned",
            config: adamw.clone(),
            grad: Some(GradConfig::default()),
            poison: Some((5, ranks - 1)),
            precision: Precision::default(),
            through_optimizer: false,
            switch_modes: false,
            resumed: false,
        },
        // ZeRO-1 cuts the tensor of 16 blocks at a block's edge, and a rank's piece of it
        // keeps 8-bit states however short.
        Scenario {
            name: "adamw, 8-bit states, one rank's gradients poisoned, resumed from a checkpoint",
            config: adamw,
            grad: Some(GradConfig::default()),
            poison: Some((7, 0)),
            precision: Precision::default().with_8bit_states(),
            through_optimizer: false,
            switch_modes: false,
            resumed: true,
        },
        Scenario {
            name: "sgd momentum, bf16 states",
            config: SgdConfig::default().with_lr(0.05).with_momentum(0.9).into(),
            grad: None,
            poison: None,
            precision: Precision::default().with_states(Dtype::BF16),
            through_optimizer: false,
            switch_modes: false,
            resumed: false,
        },
        // ZeRO-1's clip needs the shards' norm statistics reduced across ranks: set through
        // `optimizer()` too (each rank's optimizer has the statistics' buffer from the build),
        // or each rank would clip by its own shard's norm alone.
        Scenario {
            name: "sgd momentum, clipped, set through optimizer()",
            config: SgdConfig::default().with_lr(0.05).with_momentum(0.9).into(),
            grad: Some(GradConfig::default().with_max_norm(0.5)),
            poison: None,
            precision: Precision::default(),
            through_optimizer: true,
            switch_modes: false,
            resumed: false,
        },
        // With ZeRO-1 each rank moves its own shard to x; the others' must reach it too.
        Scenario {
            name: "schedule-free adamw, resumed from a checkpoint, evaluated at x, back to y, a step in eval mode",
            config: ScheduleFreeAdamWConfig::default()
                .with_lr(1e-2)
                .with_weight_decay(0.01)
                .into(),
            grad: None,
            poison: None,
            precision: Precision::default(),
            through_optimizer: false,
            switch_modes: true,
            resumed: true,
        },
    ]
}

/// The single-rank run: one optimizer over the arena, stepped with the averaged gradients;
/// its parameters after the steps (with `switch_modes`: after each of `SWITCHES`).
fn single_rank(ctx: &Context, scenario: &Scenario, ranks: usize) -> (Vec<Params>, Control) {
    let arena = Arena::new(ctx, &LENS).unwrap();
    for (i, values) in initial_params().iter().enumerate() {
        arena.write_param(i, values).unwrap();
    }
    let group = ParamGroup {
        config: scenario.config.clone(),
        params: arena.params(),
    };
    let mut optimizer = Optimizer::with_precision(ctx, vec![group], scenario.precision).unwrap();
    optimizer
        .set_grad_processing(scenario.grad.clone())
        .unwrap();
    for step in 0..STEPS {
        for (i, g) in mean_gradients(scenario, step, ranks).iter().enumerate() {
            arena.write_grad(i, g).unwrap();
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }
    let params = || -> Params {
        (0..LENS.len())
            .map(|i| arena.read_param(i).unwrap())
            .collect()
    };
    let mut kept = Vec::new();
    if scenario.switch_modes {
        for switch in SWITCHES {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            match switch {
                Switch::Eval | Switch::EvalThenStep => optimizer.schedule_free_eval(&mut encoder),
                Switch::Train => optimizer.schedule_free_train(&mut encoder),
            }
            .unwrap();
            ctx.queue().submit([encoder.finish()]);
            if switch == Switch::EvalThenStep {
                // A step taken in eval mode moves the parameters back to y first.
                for (i, g) in mean_gradients(scenario, STEPS, ranks).iter().enumerate() {
                    arena.write_grad(i, g).unwrap();
                }
                let mut encoder = ctx.device().create_command_encoder(&Default::default());
                optimizer.step(&mut encoder);
                ctx.queue().submit([encoder.finish()]);
            }
            kept.push(params());
        }
    } else {
        kept.push(params());
    }
    (kept, optimizer.read_control_unchecked().unwrap())
}

/// Every tensor's parameters.
type Params = Vec<Vec<f32>>;

/// What a `switch_modes` scenario does after its steps, comparing the parameters after each.
#[derive(Clone, Copy, PartialEq)]
enum Switch {
    Eval,
    Train,
    /// To eval mode, then a step taken there (which moves the parameters back to y first).
    EvalThenStep,
}

const SWITCHES: [Switch; 3] = [Switch::Eval, Switch::Train, Switch::EvalThenStep];

/// The ranks' gradients at `step` averaged (each divided by the ranks, then summed), with the
/// scenario's poison.
fn mean_gradients(scenario: &Scenario, step: usize, ranks: usize) -> Params {
    let scale = 1.0 / ranks as f32;
    let mut mean: Params = LENS.iter().map(|&len| vec![0.0; len]).collect();
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
    mean
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
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let ctx = context();
    for scenario in scenarios(ranks) {
        let (expected, expected_control) = single_rank(ctx, &scenario, ranks);
        for sharding in [Sharding::Replicated, Sharding::Zero1] {
            let what = format!("rank {rank}/{ranks}: {} ({sharding:?})", scenario.name);
            // A new arena of `params` and its `Distributed`, gradient processing set.
            let start = |params: &Params| {
                let arena = Arena::new(ctx, &LENS).unwrap();
                for (i, values) in params.iter().enumerate() {
                    arena.write_param(i, values).unwrap();
                }
                let groups = vec![(scenario.config.clone(), (0..LENS.len()).collect())];
                let config = DistributedConfig::default()
                    .with_sharding(sharding)
                    .with_precision(scenario.precision)
                    // Small buckets: several per step.
                    .with_bucket_bytes(4096);
                let comm = world.duplicate();
                let mut optimizer = Distributed::new(ctx, comm, &arena, groups, config).unwrap();
                if scenario.through_optimizer {
                    optimizer
                        .optimizer()
                        .set_grad_processing(scenario.grad.clone())
                } else {
                    optimizer.set_grad_processing(scenario.grad.clone())
                }
                .unwrap();
                (arena, optimizer)
            };
            let (mut arena, mut optimizer) = start(&initial_params());
            for step in 0..STEPS {
                if scenario.resumed && step == STEPS / 2 {
                    let checkpoint = optimizer.optimizer().checkpoint().unwrap();
                    let params: Params = (0..LENS.len())
                        .map(|i| arena.read_param(i).unwrap())
                        .collect();
                    drop(optimizer);
                    (arena, optimizer) = start(&params);
                    optimizer.optimizer().load_checkpoint(&checkpoint).unwrap();
                }
                let mut grads = gradients(step, rank);
                if scenario.poison == Some((step, rank)) {
                    grads[1][3] = f32::NAN;
                }
                for (i, g) in grads.iter().enumerate() {
                    arena.write_grad(i, g).unwrap();
                }
                empty_step(ctx, &mut optimizer).unwrap();
            }
            let clipped = scenario.grad.as_ref().is_some_and(|g| g.max_norm.is_some());
            let exact = sharding == Sharding::Replicated || !clipped;
            for (k, expected) in expected.iter().enumerate() {
                let switch = SWITCHES.get(k).filter(|_| scenario.switch_modes);
                let when = match switch {
                    None => "",
                    Some(Switch::Eval) => ", at x",
                    Some(Switch::Train) => ", back at y",
                    Some(Switch::EvalThenStep) => ", a step taken in eval mode",
                };
                let switched = match switch {
                    None => Ok(CommTimings::default()),
                    Some(Switch::Train) => optimizer.schedule_free_train(),
                    Some(Switch::Eval | Switch::EvalThenStep) => optimizer.schedule_free_eval(),
                };
                switched.unwrap();
                if switch == Some(&Switch::EvalThenStep) {
                    for (i, g) in gradients(STEPS, rank).iter().enumerate() {
                        arena.write_grad(i, g).unwrap();
                    }
                    empty_step(ctx, &mut optimizer).unwrap();
                }
                for (i, expected) in expected.iter().enumerate() {
                    let device = arena.read_param(i).unwrap();
                    let what = format!("{what}{when}: tensor {i}");
                    if exact {
                        assert_eq!(bits(&device), bits(expected), "{what}");
                    } else {
                        assert_close(&what, &device, expected);
                    }
                }
            }
            let control = optimizer.optimizer().read_control_unchecked().unwrap();
            assert_eq!(
                (control.step, control.skipped_steps),
                (expected_control.step, expected_control.skipped_steps),
                "{what}: steps taken and skipped"
            );
            // 8-bit states where asked: the tensor of 16 blocks keeps codes and scales, every
            // rank's piece of it (replicated, the whole), and the shard's ends inside it lie at
            // its blocks' edges.
            let quantized = arena.param(4).unwrap();
            let (start, end) = (quantized.offset() / 4, quantized.offset() / 4 + 4096);
            let eight_bit = scenario.precision.eight_bit_states;
            let (lo, hi) = optimizer.shard();
            for cut in [lo, hi]
                .into_iter()
                .filter(|c| (start + 1..end).contains(c))
            {
                assert!(
                    !eight_bit || (cut - start) % 256 == 0,
                    "{what}: a cut at {cut}"
                );
            }
            let inner = optimizer.optimizer();
            let pieces: Vec<Param> = inner.params().cloned().collect();
            for (i, piece) in pieces.iter().enumerate() {
                let offset = piece.param.offset() / 4;
                let in_it = !piece.is_empty() && (start..end).contains(&offset);
                let kept = inner.read_quantized_state(i, inner.state_names()[0]);
                assert_eq!(kept.is_ok(), eight_bit && in_it, "{what}: piece {i}");
            }
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

    for refusal in refusals(rank, ranks) {
        let what = format!("rank {rank}/{ranks}: {}", refusal.name);
        let result = (refusal.run)(&world);
        match (&refusal.expect, &result) {
            (Expect::Built, Ok(())) => {}
            (Expect::Mismatch(bad), Err(Error::DistributedMismatch { rank, .. })) => {
                assert_eq!(rank, bad, "{what}: the rank named")
            }
            (Expect::Own(own), Err(e)) if own(e) => {}
            _ => panic!("{what}: expected {:?}, got {result:?}", refusal.expect),
        }
        println!("[passed] {what}");
    }
}

/// What every rank runs in a [`Refusal`], given the world.
type Run = Box<dyn Fn(&SimpleCommunicator) -> Result<()>>;

/// What one rank must get from a [`Refusal`].
#[derive(Debug)]
enum Expect {
    /// Built (and one step taken, every rank alike).
    Built,
    /// `Error::DistributedMismatch` naming this rank.
    Mismatch(usize),
    /// This rank's own error.
    Own(fn(&Error) -> bool),
}

/// Hostile or careless use, and controls: what every rank runs (the same collectives in the
/// same order) and what rank `rank` of `ranks` must get. Every rank returns: a rank left in a
/// collective would hang the job, and `two_and_four_ranks_equal_one_rank` fails it at its
/// deadline.
struct Refusal {
    name: &'static str,
    run: Run,
    expect: Expect,
}

/// The adapter of [`context`] with some limits changed: another device of this rank.
fn context_with(change: impl FnOnce(&mut wgpu::Limits)) -> Context {
    let mut limits = context().device().limits();
    change(&mut limits);
    let options = ContextOptions {
        limits: Some(limits),
        ..Default::default()
    };
    pollster::block_on(Context::request(&options)).expect("a device with these limits")
}

/// An arena of [`LENS`] on this rank's context and a `Distributed` over it, with `groups`
/// (tensor indices) and `config`.
fn distributed(
    world: &SimpleCommunicator,
    groups: Vec<(OptimizerConfig, Vec<usize>)>,
    config: DistributedConfig,
) -> Result<(Arena, Distributed)> {
    let ctx = context();
    let arena = Arena::new(ctx, &LENS)?;
    let optimizer = Distributed::new(ctx, world.duplicate(), &arena, groups, config)?;
    Ok((arena, optimizer))
}

/// A `Distributed` over an arena of `lens` on `ctx`, one group of `group`; then, if it was
/// built, one step (zero gradients), which ranks that built alike take alike.
fn build_and_step(
    ctx: &Context,
    world: &SimpleCommunicator,
    lens: &[usize],
    group: OptimizerConfig,
    config: DistributedConfig,
) -> Result<()> {
    let arena = Arena::new(ctx, lens)?;
    let groups = vec![(group, (0..lens.len()).collect())];
    let mut optimizer = Distributed::new(ctx, world.duplicate(), &arena, groups, config)?;
    empty_step(ctx, &mut optimizer).map(drop)
}

/// A step of `optimizer` (on `ctx`'s device) with no passes of the caller's: the gradients
/// as they are.
fn empty_step(ctx: &Context, optimizer: &mut Distributed) -> Result<CommTimings> {
    let encoder = ctx.device().create_command_encoder(&Default::default());
    optimizer.step(encoder)
}

/// Two steps of `group` (with a global-norm clip) over an arena whose gradients (or, with
/// `params`, parameters) this rank destroys first where `destroy` says: the first step's
/// result. Where the gradients were destroyed no rank updates anything: every rank's
/// parameters and step counter stay as they were. Where the parameters were, with ZeRO-1,
/// no rank writes the gathered shards: the others' parameters outside their own shard stay.
fn destroyed_on(
    world: &SimpleCommunicator,
    destroy: bool,
    params: bool,
    group: OptimizerConfig,
    config: DistributedConfig,
) -> Result<()> {
    let groups = vec![(group, (0..LENS.len()).collect())];
    let config_sharding = config.sharding;
    let (arena, mut optimizer) = distributed(world, groups, config)?;
    optimizer.set_grad_processing(Some(GradConfig::default().with_max_norm(1.0)))?;
    for (i, values) in initial_params().iter().enumerate() {
        arena.write_param(i, values)?;
        arena.write_grad(i, &vec![0.5; values.len()])?;
    }
    if destroy {
        let range = if params {
            arena.param(0)?
        } else {
            arena.grad(0)?
        };
        range.buffer().destroy();
    }
    let first = empty_step(context(), &mut optimizer).map(drop);
    let second = empty_step(context(), &mut optimizer).map(drop);
    assert_eq!(
        first.is_ok(),
        second.is_ok(),
        "the next step goes as the first"
    );
    // The elements no rank may have written: every one where the gradients were destroyed;
    // with ZeRO-1 and the parameters destroyed on another rank, those outside this one's shard.
    let zero1 = config_sharding == Sharding::Zero1;
    let (lo, hi) = optimizer.shard();
    let unwritten = |at: u64| !params || (zero1 && !destroy && !(lo..hi).contains(&at));
    for (i, values) in initial_params().iter().enumerate() {
        let start = arena.param(i)?.offset() / 4;
        let device = arena.read_param(i)?;
        for (j, (d, v)) in device.iter().zip(values).enumerate() {
            if unwritten(start + j as u64) {
                assert_eq!(d.to_bits(), v.to_bits(), "tensor {i}, element {j}");
            }
        }
    }
    if !params {
        assert_eq!(optimizer.optimizer().read_control_unchecked()?.step, 0);
    }
    first
}

/// The refusals and their controls, as rank `rank` of `ranks` runs them.
fn refusals(rank: usize, ranks: usize) -> Vec<Refusal> {
    use Expect::*;
    let last = ranks - 1;
    let adamw: OptimizerConfig = AdamWConfig::default().into();
    // What a rank gets when another differs: the mismatch, or with one rank, nothing differs.
    let unless_alone = |bad: usize| if ranks > 1 { Mismatch(bad) } else { Built };
    // Rank 0 set apart from the others: the rank named is the odd one out, rank 0, where the
    // others are more than one; with two ranks, a tie, the one that differs from rank 0.
    let rank_0_apart = || unless_alone(if ranks > 2 { 0 } else { 1 });
    // When the last rank's device refuses its part: it says why (wgpu's error), the others
    // name it.
    let last_fails_on_its_device = || {
        if rank == last {
            Own(|e| matches!(e, Error::Wgpu(_)))
        } else {
            Mismatch(last)
        }
    };
    // The last rank's device: offsets aligned to 256 bytes (lavapipe's are 32). Its arenas
    // pad their end, and ZeRO-1 its shards, to 64 elements instead of 8.
    let aligned_256 = move || {
        if rank == last {
            context_with(|l| l.min_storage_buffer_offset_alignment = 256)
        } else {
            context().clone()
        }
    };
    let replicated = DistributedConfig::default();
    let zero1 = DistributedConfig::default().with_sharding(Sharding::Zero1);
    vec![
        Refusal {
            name: "another layout on rank 0",
            run: Box::new({
                let adamw = adamw.clone();
                move |world| {
                    let lens: &[usize] = if rank == 0 && ranks > 1 {
                        &[300, 1000, 7, 2049]
                    } else {
                        &LENS
                    };
                    build_and_step(context(), world, lens, adamw.clone(), Default::default())
                }
            }),
            expect: rank_0_apart(),
        },
        Refusal {
            name: "an invalid lr on the last rank",
            run: Box::new({
                let adamw = adamw.clone();
                move |world| {
                    let lr = if rank == last { -1.0 } else { 1e-3 };
                    let group = adamw.clone().with_lr(lr);
                    build_and_step(context(), world, &LENS, group, Default::default())
                }
            }),
            expect: if rank == last {
                Own(|e| matches!(e, Error::InvalidHyperparameter { name: "lr", .. }))
            } else {
                Mismatch(last)
            },
        },
        Refusal {
            name: "LAMB under ZeRO-1",
            run: Box::new({
                let zero1 = zero1.clone();
                move |world| {
                    let lamb = LambConfig::default().into();
                    build_and_step(context(), world, &LENS, lamb, zero1.clone())
                }
            }),
            expect: Own(|e| matches!(e, Error::InvalidOptions(_))),
        },
        // Issue 25, cause 15: the arena's device compares equal to the context's by id, but
        // ids are only unique within one wgpu::Instance.
        Refusal {
            name: "an arena of another wgpu::Instance",
            run: Box::new({
                let adamw = adamw.clone();
                move |world| {
                    let other = Context::new_blocking().expect("a second context");
                    let arena = Arena::new(&other, &LENS)?;
                    let groups = vec![(adamw.clone(), (0..LENS.len()).collect())];
                    Distributed::new(
                        context(),
                        world.duplicate(),
                        &arena,
                        groups,
                        Default::default(),
                    )
                    .map(drop)
                }
            }),
            expect: Own(|e| matches!(e, Error::OtherDevice { what: "arena" })),
        },
        // Issue 25, cause 1: the ranks agree, then the last one's device refuses its optimizer
        // (a prologue binding of 40 bytes past a 32-byte limit). Without the second agreement
        // the others built, and waited for it in the first all-reduce for ever.
        Refusal {
            name: "the last rank's device cannot build (a 32-byte binding limit)",
            run: Box::new({
                let adamw = adamw.clone();
                move |world| {
                    let ctx = if rank == last {
                        context_with(|l| l.max_storage_buffer_binding_size = 32)
                    } else {
                        context().clone()
                    };
                    build_and_step(&ctx, world, &LENS, adamw.clone(), Default::default())
                }
            }),
            expect: last_fails_on_its_device(),
        },
        // A rank whose forward and backward passes fail at submission (here an invalid copy in
        // its encoder) used to return before the gradients' collectives, leaving the others
        // waiting in them. The ranks agree on the passes first: none steps, the last says
        // why, the others name it, and the next step is taken alike.
        Refusal {
            name: "the last rank's passes fail (an invalid copy in its encoder)",
            run: Box::new({
                let (adamw, replicated) = (adamw.clone(), replicated.clone());
                move |world| {
                    let ctx = context();
                    let groups = vec![(adamw.clone(), (0..LENS.len()).collect())];
                    let (_, mut optimizer) = distributed(world, groups, replicated.clone())?;
                    let mut encoder = ctx.device().create_command_encoder(&Default::default());
                    if rank == last {
                        let buffer = |usage| {
                            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                                label: None,
                                size: 4,
                                usage,
                                mapped_at_creation: false,
                            })
                        };
                        let from = buffer(wgpu::BufferUsages::COPY_SRC);
                        let to = buffer(wgpu::BufferUsages::COPY_DST);
                        encoder.copy_buffer_to_buffer(&from, 0, &to, 0, 8);
                    }
                    let failed = optimizer.step(encoder).map(drop);
                    empty_step(ctx, &mut optimizer).expect("the next step, on every rank");
                    let control = optimizer.optimizer().read_control_unchecked()?;
                    assert_eq!(control.step, 1, "the failed step was taken nowhere");
                    failed
                }
            }),
            expect: last_fails_on_its_device(),
        },
        // A learning rate set through `optimizer()` on rank 0 only: the replicas would step
        // apart. The step refuses it on every rank before any collective; once the rate is
        // set alike, the next step is taken, the refused one nowhere.
        Refusal {
            name: "a learning rate set through optimizer() on rank 0 only",
            run: Box::new({
                let (adamw, replicated) = (adamw.clone(), replicated.clone());
                move |world| {
                    let ctx = context();
                    let groups = vec![(adamw.clone(), (0..LENS.len()).collect())];
                    let (_, mut optimizer) = distributed(world, groups, replicated.clone())?;
                    if rank == 0 {
                        optimizer.optimizer().set_lr(0.5)?;
                    }
                    let refused = empty_step(ctx, &mut optimizer).map(drop);
                    optimizer.optimizer().set_lr(0.5)?;
                    empty_step(ctx, &mut optimizer).expect("the next step, on every rank");
                    // Alone, nothing differs: both steps are taken.
                    let control = optimizer.optimizer().read_control_unchecked()?;
                    let taken = if ranks > 1 { 1 } else { 2 };
                    assert_eq!(control.step, taken, "the refused step was taken nowhere");
                    refused
                }
            }),
            expect: rank_0_apart(),
        },
        // A control: two groups under ZeRO-1, the second the last tensor (under 4 ranks the
        // first shard holds none of it, and the last none of the first group's). Every rank's
        // optimizer keeps both groups (an empty range for a group without a piece), so a
        // group's index means the same on every rank: the second group's rate, set by index,
        // decays its tensor as one device's optimizer of the same groups does (AdamW on zero
        // gradients: the decoupled decay alone, at each group's rate), and the step's
        // agreement on the configurations passes.
        Refusal {
            name: "two groups, a shard without the second, ZeRO-1",
            run: Box::new({
                let (adamw, zero1) = (adamw.clone(), zero1.clone());
                move |world| {
                    let ctx = context();
                    let last_tensor = LENS.len() - 1;
                    let groups = vec![
                        (adamw.clone(), (0..last_tensor).collect()),
                        (adamw.clone(), vec![last_tensor]),
                    ];
                    let (arena, mut optimizer) = distributed(world, groups, zero1.clone())?;
                    let single = Arena::new(ctx, &LENS)?;
                    for (i, values) in initial_params().iter().enumerate() {
                        arena.write_param(i, values)?;
                        single.write_param(i, values)?;
                    }
                    assert_eq!(optimizer.optimizer().group_configs().len(), 2);
                    optimizer.optimizer().set_group_lr(1, 0.5)?;
                    let params = single.params();
                    let one = Optimizer::with_groups(
                        ctx,
                        vec![
                            ParamGroup {
                                config: adamw.clone(),
                                params: params[..last_tensor].to_vec(),
                            },
                            ParamGroup {
                                config: adamw.clone().with_lr(0.5),
                                params: params[last_tensor..].to_vec(),
                            },
                        ],
                    )?;
                    for _ in 0..2 {
                        empty_step(ctx, &mut optimizer)?;
                        let mut encoder = ctx.device().create_command_encoder(&Default::default());
                        one.step(&mut encoder);
                        ctx.queue().submit([encoder.finish()]);
                    }
                    for (i, initial) in initial_params().iter().enumerate() {
                        let (a, b) = (arena.read_param(i)?, single.read_param(i)?);
                        assert_eq!(bits(&a), bits(&b), "tensor {i}");
                        assert_ne!(bits(&a), bits(initial), "tensor {i} decayed");
                    }
                    Ok(())
                }
            }),
            expect: Built,
        },
        // Precisions per rank: replicas that would drift apart (states quantized on one rank,
        // kept in f32 on the others), refused as another configuration.
        Refusal {
            name: "8-bit states on rank 0 only, replicated",
            run: Box::new({
                let (adamw, replicated) = (adamw.clone(), replicated.clone());
                move |world| {
                    let precision = Precision::default();
                    let precision = if rank == 0 {
                        precision.with_8bit_states()
                    } else {
                        precision
                    };
                    let config = replicated.clone().with_precision(precision);
                    build_and_step(context(), world, &LENS, adamw.clone(), config)
                }
            }),
            expect: rank_0_apart(),
        },
        // Issue 25, cause 2: buckets of other sizes are all-reduces of other counts
        // (MPI_ERR_TRUNCATE, or a rank left waiting for a bucket the others never send).
        Refusal {
            name: "bucket_bytes per rank, replicated",
            run: Box::new({
                let (adamw, replicated) = (adamw.clone(), replicated.clone());
                move |world| {
                    let config = replicated.clone().with_bucket_bytes(4096 << rank);
                    build_and_step(context(), world, &LENS, adamw.clone(), config)
                }
            }),
            expect: unless_alone(1),
        },
        Refusal {
            name: "bucket_bytes per rank, ZeRO-1 (no buckets: agreed)",
            run: Box::new({
                let (adamw, zero1) = (adamw.clone(), zero1.clone());
                move |world| {
                    let config = zero1.clone().with_bucket_bytes(4096 << rank);
                    build_and_step(context(), world, &LENS, adamw.clone(), config)
                }
            }),
            expect: Built,
        },
        // The same layout, but an arena end padded to 2104 elements on one rank and 2112 on
        // the last: buckets of other sizes.
        Refusal {
            name: "elements per rank (the last rank's alignment 256 bytes), replicated",
            run: Box::new({
                let (adamw, replicated) = (adamw.clone(), replicated.clone());
                move |world| {
                    let ctx = aligned_256();
                    build_and_step(&ctx, world, &[2100], adamw.clone(), replicated.clone())
                }
            }),
            expect: unless_alone(last),
        },
        // The same layout and elements (2112, a multiple of 64), but shards of 1056 elements
        // on one rank and 1088 on the last (two ranks): a reduce-scatter of other counts.
        Refusal {
            name: "shard length per rank (the last rank's alignment 256 bytes), ZeRO-1",
            run: Box::new({
                let (adamw, zero1) = (adamw.clone(), zero1.clone());
                move |world| {
                    let ctx = aligned_256();
                    build_and_step(&ctx, world, &[2112], adamw.clone(), zero1.clone())
                }
            }),
            expect: unless_alone(last),
        },
        // With ZeRO-1, gradient processing adds an all-reduce of the norm statistics to the
        // step: on one rank only, the ranks' collectives no longer pair up. Refused on every
        // rank, each keeps what it had, and the next step is taken alike.
        Refusal {
            name: "gradient processing on rank 0 only, ZeRO-1",
            run: Box::new({
                let (adamw, zero1) = (adamw.clone(), zero1.clone());
                move |world| {
                    let groups = vec![(adamw.clone(), (0..LENS.len()).collect())];
                    let (_, mut optimizer) = distributed(world, groups, zero1.clone())?;
                    let grad = (rank == 0).then(GradConfig::default);
                    let result = optimizer.set_grad_processing(grad.clone());
                    let kept = if result.is_ok() { grad.as_ref() } else { None };
                    assert_eq!(optimizer.optimizer().grad_processing(), kept);
                    empty_step(context(), &mut optimizer).expect("the step after a refusal");
                    result
                }
            }),
            expect: rank_0_apart(),
        },
        // A buffer destroyed on one rank fails its part inside the step, after the vote on
        // the passes: it sends zeros to the collectives left and the ranks agree before the
        // update, so none waits and none updates (twice: the next step is refused alike).
        // Clipped, so that ZeRO-1 reduces the norm statistics too.
        Refusal {
            name: "the last rank's gradients destroyed, replicated",
            run: Box::new({
                let (adamw, replicated) = (adamw.clone(), replicated.clone());
                move |world| {
                    destroyed_on(
                        world,
                        rank == last,
                        false,
                        adamw.clone(),
                        replicated.clone(),
                    )
                }
            }),
            expect: last_fails_on_its_device(),
        },
        Refusal {
            name: "the last rank's gradients destroyed, ZeRO-1",
            run: Box::new({
                let (adamw, zero1) = (adamw.clone(), zero1.clone());
                move |world| destroyed_on(world, rank == last, false, adamw.clone(), zero1.clone())
            }),
            expect: last_fails_on_its_device(),
        },
        // Its update fails: every rank learns it; with ZeRO-1 none writes the gathered shards
        // (the others keep theirs updated), replicated the others have stepped.
        Refusal {
            name: "the last rank's parameters destroyed, ZeRO-1",
            run: Box::new({
                let (adamw, zero1) = (adamw.clone(), zero1.clone());
                move |world| destroyed_on(world, rank == last, true, adamw.clone(), zero1.clone())
            }),
            expect: last_fails_on_its_device(),
        },
        Refusal {
            name: "the last rank's parameters destroyed, replicated",
            run: Box::new({
                let (adamw, replicated) = (adamw.clone(), replicated.clone());
                move |world| {
                    destroyed_on(world, rank == last, true, adamw.clone(), replicated.clone())
                }
            }),
            expect: last_fails_on_its_device(),
        },
        // Ranks in different collective calls: each switch's vote names its operation.
        Refusal {
            name: "Schedule-Free's eval on rank 0, train on the others, ZeRO-1",
            run: Box::new({
                let zero1 = zero1.clone();
                move |world| {
                    let config = ScheduleFreeAdamWConfig::default().into();
                    let groups = vec![(config, (0..LENS.len()).collect())];
                    let (_, mut optimizer) = distributed(world, groups, zero1.clone())?;
                    empty_step(context(), &mut optimizer)?;
                    match rank {
                        0 => optimizer.schedule_free_eval(),
                        _ => optimizer.schedule_free_train(),
                    }
                    .map(drop)
                }
            }),
            expect: rank_0_apart(),
        },
        // A refused change of gradient processing writes nothing: rank 0's new init_scale
        // would reset its loss scale, so the running scale survives only if no rank applies
        // the change before the ranks agree.
        Refusal {
            name: "a loss scaler's init_scale on rank 0 only: the running scale kept",
            run: Box::new({
                let (adamw, replicated) = (adamw.clone(), replicated.clone());
                move |world| {
                    let groups = vec![(adamw.clone(), (0..LENS.len()).collect())];
                    let (_, mut optimizer) = distributed(world, groups, replicated.clone())?;
                    let scaler = GradScalerConfig::default().with_growth_interval(1);
                    let scaled = GradConfig::default().with_grad_scaler(scaler.clone());
                    optimizer.set_grad_processing(Some(scaled.clone()))?;
                    let scale =
                        |o: &mut Distributed| o.optimizer().read_control().map(|c| c.grad_scale);
                    let initial = scale(&mut optimizer)?;
                    for _ in 0..2 {
                        empty_step(context(), &mut optimizer)?;
                    }
                    let grown = scale(&mut optimizer)?;
                    assert!(
                        grown > initial,
                        "finite steps grow the scale: {initial}, {grown}"
                    );
                    let other =
                        GradConfig::default().with_grad_scaler(scaler.with_init_scale(1024.0));
                    let config = if rank == 0 { other } else { scaled.clone() };
                    let result = optimizer.set_grad_processing(Some(config.clone()));
                    let (kept, expected) = match result {
                        Ok(()) => (config, 1024.0),
                        Err(_) => (scaled, grown),
                    };
                    assert_eq!(optimizer.optimizer().grad_processing(), Some(&kept));
                    assert_eq!(
                        scale(&mut optimizer)?,
                        expected,
                        "the loss scale after the change"
                    );
                    empty_step(context(), &mut optimizer).expect("the step after a refusal");
                    result
                }
            }),
            expect: rank_0_apart(),
        },
    ]
}

/// Everything `pipe` gives until it closes, read on a thread of its own.
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).ok();
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Seconds one mpirun of `ranks` may take: it takes seconds, but a rank left in a collective
/// waits for ever.
const RUN_LIMIT_S: u64 = 600;

/// `ranks` under `mpirun -n 2` and `-n 4` on this machine (oversubscribed; as root where CI
/// runs as root): every rank passes, within a deadline (a hang fails). mpirun's `--timeout`
/// tears the job down at `RUN_LIMIT_S` (every rank, a non-zero exit); should mpirun itself not
/// return, this test stops it 30 s later with SIGTERM, which mpirun forwards to the ranks
/// (SIGKILL would leave them spinning in their collective, each in a process group of its
/// own), then SIGKILL, and fails.
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
            .args(["--timeout", &RUN_LIMIT_S.to_string()])
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
        // Read while the ranks run: a full pipe would stall them, and look like a hang.
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(RUN_LIMIT_S + 30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let pid = child.id().to_string();
                Command::new("kill").args(["-TERM", &pid]).status().ok();
                let stopped = Instant::now() + Duration::from_secs(10);
                while child.try_wait().unwrap().is_none() && Instant::now() < stopped {
                    std::thread::sleep(Duration::from_millis(100));
                }
                child.kill().ok();
                child.wait().ok();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        let Some(status) = status else {
            panic!(
                "{n} ranks: mpirun outlived its --timeout (a hang), stopped:\n{stdout}\n{stderr}"
            );
        };
        assert!(
            status.success(),
            "{n} ranks failed ({status}; a hang ends at the --timeout):\n{stdout}\n{stderr}"
        );
        // Every rank ran every scenario under both shardings, and every refusal.
        let passed = stdout.matches("[passed]").count();
        let expected = n * (2 * scenarios(n).len() + refusals(0, n).len());
        assert_eq!(passed, expected, "{stdout}");
        eprintln!("{n} ranks:\n{stdout}");
    }
}
