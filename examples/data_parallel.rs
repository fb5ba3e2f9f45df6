//! The credit-default network of `credit_risk` trained data-parallel over MPI, one wgpu device
//! per rank (feature `mpi`):
//!
//! ```sh
//! cargo build --release --features mpi --example data_parallel
//! mpirun -n 2 target/release/examples/data_parallel [--sharding replicated|zero1]
//!     [--precision f32|bf16-states|8bit-states] [--records N] [--batch B] [--epochs E]
//!     [--bucket-mb M]
//! ```
//!
//! Every rank generates the same synthetic customers (150 attributes, 2% defaults), takes its
//! share of each global batch of `B` records (B / ranks each), runs the forward and backward
//! passes on its device and hands the encoder to [`Distributed::step`]: gradients averaged
//! across ranks (DDP), or reduce-scattered with each rank updating its shard of the AdamW state
//! (ZeRO-1), parameters identical on every rank after each step. The learning rate follows a
//! warm-up + cosine schedule on the device. Rank 0 prints each rank's throughput, the share of
//! the step spent communicating (device-host copies and MPI), the bytes each rank sent per
//! step and the optimizer state each rank keeps (its elements, and their bytes: f32, bf16 or
//! 8-bit states), then the validation AUC.

#[path = "credit_risk/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "credit_risk/metrics.rs"]
#[allow(dead_code)]
mod metrics;
#[path = "credit_risk/mlp.rs"]
#[allow(dead_code)]
mod mlp;

use std::time::{Duration, Instant};

use mlp::{DeviceData, Kernels, Loss, Net, Pass};
use mpi::traits::*;
use wgpu_optim::{
    AdamWConfig, BufferRange, Context, DeviceSchedule, Distributed, DistributedConfig, Dtype,
    Error, LrSchedule, OptimizerConfig, Precision, Sharding, WarmupCosineDecay,
};

const WIDTHS: [usize; 6] = [data::FEATURES, 512, 256, 128, 64, 1];
const FOCAL: Loss = Loss {
    gamma: 2.0,
    alpha: Some(0.75),
};

/// The credit network trained data-parallel over MPI.
#[derive(clap::Parser)]
struct Args {
    /// How the ranks share the optimizer: PyTorch's DDP, or ZeRO-1's sharded state.
    #[arg(long, value_enum, default_value = "replicated")]
    sharding: ShardingArg,
    /// How each rank stores the optimizer's states.
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    /// Synthetic customers (90% training, 10% validation).
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// The global batch, a multiple of the ranks.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Passes over the training split.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// MB of gradients per all-reduce (replicated).
    #[arg(long, default_value_t = 4.0)]
    bucket_mb: f64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ShardingArg {
    #[value(alias = "ddp")]
    Replicated,
    Zero1,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PrecisionArg {
    F32,
    Bf16States,
    /// 8-bit block-quantized states where torchao's AdamW8bit keeps them.
    #[value(name = "8bit-states")]
    EightBitStates,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let sharding = match args.sharding {
        ShardingArg::Replicated => Sharding::Replicated,
        ShardingArg::Zero1 => Sharding::Zero1,
    };
    let precision = match args.precision {
        PrecisionArg::F32 => Precision::default(),
        PrecisionArg::Bf16States => Precision::default().with_states(Dtype::BF16),
        PrecisionArg::EightBitStates => Precision::default().with_8bit_states(),
    };
    let universe = mpi::initialize().expect("MPI initializes");
    let world = universe.world();
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    if !args.batch.is_multiple_of(ranks) || args.batch < ranks {
        if rank == 0 {
            eprintln!(
                "data_parallel: --batch {} is not a multiple of {ranks} ranks",
                args.batch
            );
        }
        std::process::exit(2);
    }
    let local = args.batch / ranks;
    let ctx = Context::new_blocking().expect("a wgpu adapter");

    // The same data on every rank: 90% training, 10% validation.
    let all = data::Generator::new(42).generate(args.records);
    let split = args.records * 9 / 10;
    let (mut train, mut val) = (all.slice(0..split), all.slice(split..args.records));
    let moments = train.moments();
    train.standardize(&moments);
    val.standardize(&moments);
    let prior = train.positives() as f64 / train.len() as f64;

    let kernels = Kernels::new(&ctx, Dtype::F32);
    let net = Net::new(&ctx, &WIDTHS, prior, 1, Dtype::F32).expect("the network");
    let train_data = DeviceData::upload(&ctx, &train.records, &train.labels, data::FEATURES, 1);
    let pass = Pass::new(&ctx, &kernels, &net, &train_data, local, Some(FOCAL)).expect("pass");

    // AdamW with weight decay on the weights (even tensors) only.
    let adamw = AdamWConfig::default().with_lr(1e-3).with_weight_decay(1e-2);
    let weights: OptimizerConfig = adamw.clone().into();
    let biases: OptimizerConfig = adamw.with_weight_decay(0.0).into();
    let tensors = 2 * (WIDTHS.len() - 1);
    let groups = vec![
        (weights, (0..tensors).step_by(2).collect()),
        (biases, (1..tensors).step_by(2).collect()),
    ];
    let config = DistributedConfig::default()
        .with_sharding(sharding)
        .with_precision(precision)
        .with_bucket_bytes((args.bucket_mb * 1048576.0) as u64);
    let mut optimizer = match Distributed::new(&ctx, world.duplicate(), &net.arena, groups, config)
    {
        Ok(optimizer) => optimizer,
        Err(e) => {
            // Every rank gets an error (the ranks agree before and after they build): each
            // says its own, except the mismatch every rank but the one at fault reports,
            // which rank 0 says once.
            if rank == 0 || !matches!(e, Error::DistributedMismatch { .. }) {
                eprintln!("data_parallel: rank {rank}: {e}");
            }
            std::process::exit(2);
        }
    };
    let steps_per_epoch = train.len() / args.batch;
    let total_steps = (steps_per_epoch * args.epochs).max(1) as u64;
    let schedule = WarmupCosineDecay {
        init_value: 0.0,
        peak_value: 1e-3,
        warmup_steps: total_steps / 10,
        decay_steps: total_steps,
        end_value: 1e-5,
        exponent: 1.0,
    };
    optimizer
        .optimizer()
        .set_schedule(Some(DeviceSchedule::new(
            LrSchedule::WarmupCosineDecay(schedule),
            total_steps,
        )))
        .expect("the schedule");

    let mut rng = data::Rng::new(7);
    let (mut compute, mut comm, mut sent) = (Duration::ZERO, Duration::ZERO, 0_u64);
    let mut counted = 0_usize;
    let started = Instant::now();
    for _ in 0..args.epochs {
        // The same permutation on every rank; rank r takes its slice of each global batch.
        train_data.set_order(&ctx, &rng.permutation(train.len()));
        for step in 0..steps_per_epoch {
            let t0 = Instant::now();
            pass.set_batch(&ctx, step * args.batch + rank * local);
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            {
                let mut compute_pass = encoder.begin_compute_pass(&Default::default());
                pass.record_forward(&kernels, &mut compute_pass);
                pass.record_backward(&kernels, &mut compute_pass);
            }
            let timings = optimizer.step(encoder).expect("a step");
            let step_time = t0.elapsed();
            if step > 0 || steps_per_epoch == 1 {
                // The first step builds pipelines: not counted in the shares.
                comm += timings.communication();
                compute += step_time.saturating_sub(timings.communication());
                counted += 1;
            }
            sent += timings.bytes_sent;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let steps = (steps_per_epoch * args.epochs).max(1);

    // Each rank's figures to rank 0.
    let mine = [
        (steps * local) as f64 / elapsed,
        1e3 * elapsed / steps as f64,
        1e3 * comm.as_secs_f64() / counted.max(1) as f64,
        comm.as_secs_f64() / (comm + compute).as_secs_f64().max(1e-12),
        sent as f64 / steps as f64,
        optimizer.state_elements() as f64,
        optimizer.optimizer().state_bytes() as f64,
    ];
    const FIGURES: usize = 7;
    let mut all = vec![0.0_f64; FIGURES * ranks];
    world.all_gather_into(&mine[..], &mut all[..]);
    if rank == 0 {
        let adapter = ctx
            .adapter_info()
            .map_or("unknown".to_string(), |i| i.name.clone());
        println!(
            "{ranks} ranks, {sharding:?}, {} states, adapter {adapter}, {} records, global batch \
             {}, {steps} steps",
            match args.precision {
                PrecisionArg::F32 => "f32",
                PrecisionArg::Bf16States => "bf16",
                PrecisionArg::EightBitStates => "8-bit",
            },
            train.len(),
            args.batch
        );
        println!(
            "| rank | records/s | ms/step | communication ms/step | communication share | \
             bytes sent/step | optimizer state elements | bytes |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in 0..ranks {
            let f = &all[FIGURES * r..FIGURES * (r + 1)];
            println!(
                "| {r} | {:.0} | {:.1} | {:.2} | {:.1}% | {:.0} | {:.0} | {:.0} |",
                f[0],
                f[1],
                f[2],
                100.0 * f[3],
                f[4],
                f[5],
                f[6]
            );
        }
        // Validation on rank 0 (every rank holds the same parameters).
        let val_data = DeviceData::upload(&ctx, &val.records, &val.labels, data::FEATURES, 1);
        let val_pass = Pass::new(&ctx, &kernels, &net, &val_data, val.len(), None).expect("pass");
        val_pass.set_batch(&ctx, 0);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut compute_pass = encoder.begin_compute_pass(&Default::default());
            val_pass.record_forward(&kernels, &mut compute_pass);
        }
        ctx.queue().submit([encoder.finish()]);
        let logits = ctx
            .read_f32(&BufferRange::new(&val_pass.logits, 0, val.len() as u64))
            .expect("logits");
        let evaluation = metrics::evaluate(&logits, &val.labels, 2.0, Some(0.75));
        println!(
            "validation: focal loss {:.5}, AUC {:.3} ({} records, {} defaults)",
            evaluation.loss,
            evaluation.auc,
            val.len(),
            val.positives()
        );
    }
}
