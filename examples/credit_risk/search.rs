//! `--search`: hyperparameter search whose trials train as one population. Every trial is a
//! replica of the network (its own initialisation, from the trial's seed) in one shared
//! arena; each training step records every live replica's forward and backward pass, then one
//! population step updates them all in one dispatch, each with its own learning rate, weight
//! decay and beta1 or momentum, its own global-norm clip and its own inf/NaN skip. Each
//! replica's gradient norm is watched by a `GradNormMonitor` of its own.
//!
//! A replica is one parameter group here (its control block is its group's), so the search
//! decays the biases too; the best configuration is then retrained the usual way, biases
//! undecayed.

use std::time::Instant;

use wgpu_optim::search::Trial;
use wgpu_optim::search::{Bayes, Objective, Search, SearchResults, SearchSpace, SuccessiveHalving};
use wgpu_optim::{
    AdamWConfig, Context, ControlReader, GradConfig, GradNormMonitor, MonitorConfig, Optimizer,
    OptimizerConfig, ParamGroup, Precision, Result, SgdConfig,
};

use super::data::Rng;
use super::mlp::{DeviceData, Kernels, Loss, Net, Pass};

/// What `--search` and its options asked for.
pub struct SearchArgs {
    /// `random`, `grid`, `bayes` or `halving`.
    pub driver: String,
    /// Configurations (for `grid`, points per dimension are chosen to stay within it).
    pub trials: usize,
    /// Random initialisations per configuration.
    pub restarts: usize,
    /// Training steps of a trial (successive halving: of its last rung).
    pub steps: u64,
    /// Records per step.
    pub batch_size: usize,
    /// Most replicas trained as one population.
    pub population: usize,
}

/// The hyperparameters searched for `optim` (adamw or sgd): log-uniform learning rate and
/// weight decay, and beta1 or momentum.
pub fn space(optim: &str) -> SearchSpace {
    match optim {
        "sgd" => SearchSpace::new()
            .with_log_uniform("lr", 1e-2, 2.0)
            .with_log_uniform("weight_decay", 1e-6, 1e-2)
            .with_uniform("momentum", 0.5, 0.99),
        _ => SearchSpace::new()
            .with_log_uniform("lr", 1e-3, 0.3)
            .with_log_uniform("weight_decay", 1e-5, 0.1)
            .with_uniform("beta1", 0.8, 0.95),
    }
}

/// A trial's optimizer configuration at learning rate `lr`.
pub fn config(optim: &str, trial: &Trial, lr: f64) -> OptimizerConfig {
    let value = |name| trial.get(name).expect("a dimension of the space");
    match optim {
        "sgd" => SgdConfig::default()
            .with_lr(lr)
            .with_momentum(value("momentum"))
            .with_weight_decay(value("weight_decay"))
            .into(),
        _ => AdamWConfig::default()
            .with_lr(lr)
            .with_betas(value("beta1"), 0.999)
            .with_weight_decay(value("weight_decay"))
            .into(),
    }
}

/// The trials being trained: their replicas, passes and one population over them.
struct Generation {
    ids: Vec<usize>,
    trials: Vec<Trial>,
    _nets: Vec<Net>,
    passes: Vec<Pass>,
    evals: Vec<Pass>,
    optimizer: Optimizer,
    live: Vec<bool>,
    done: u64,
    reader: ControlReader,
    monitors: Vec<GradNormMonitor>,
}

/// The search's objective: trains populations of replicas on the device and scores each by
/// its validation loss.
pub struct Replicas<'a> {
    pub ctx: &'a Context,
    pub kernels: &'a Kernels,
    pub train: &'a DeviceData,
    pub val: (&'a DeviceData, &'a [f32]),
    pub widths: Vec<usize>,
    pub prior: f64,
    pub optim: String,
    pub loss: Loss,
    pub seed: u64,
    pub log_every: usize,
    pub args: &'a SearchArgs,
    generation: Option<Generation>,
    logits: wgpu::Buffer,
    progress: indicatif::ProgressBar,
    /// Replica steps taken (steps times live replicas), for the throughput line.
    pub replica_steps: u64,
    pub seconds: f64,
}

impl<'a> Replicas<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &'a Context,
        kernels: &'a Kernels,
        train: &'a DeviceData,
        val: (&'a DeviceData, &'a [f32]),
        widths: Vec<usize>,
        (prior, optim, loss): (f64, &str, Loss),
        (seed, log_every): (u64, usize),
        args: &'a SearchArgs,
    ) -> Self {
        let eval_rows = 4096.min(val.0.n);
        let logits = ctx.upload_f32("logits", &vec![0.0; val.0.n.next_multiple_of(eval_rows)]);
        Replicas {
            ctx,
            kernels,
            train,
            val,
            widths,
            prior,
            optim: optim.to_string(),
            loss,
            seed,
            log_every,
            args,
            generation: None,
            logits,
            progress: super::progress_bar("search"),
            replica_steps: 0,
            seconds: 0.0,
        }
    }

    /// Clears the progress bar.
    pub fn finish(&self) {
        self.progress.finish_and_clear();
    }

    /// Replicas for `trials`, initialised from their seeds, and their population.
    fn generation(&self, trials: &[Trial]) -> Result<Generation> {
        let ctx = self.ctx;
        let seeds: Vec<u64> = trials.iter().map(|t| t.seed).collect();
        let nets = Net::replicas(ctx, &self.widths, self.prior, &seeds, super::Dtype::F32)?;
        let groups = nets
            .iter()
            .zip(trials)
            .map(|(net, trial)| ParamGroup {
                config: config(&self.optim, trial, 0.0),
                params: net.params(),
            })
            .collect();
        let mut optimizer = Optimizer::population(ctx, groups, Precision::default())?;
        // Each replica clips by its own global norm (AdamW) and skips its own inf/NaN steps.
        let grad = match self.optim.as_str() {
            "sgd" => GradConfig::default(),
            _ => GradConfig::default().with_max_norm(1.0),
        };
        optimizer.set_grad_processing(Some(grad))?;
        let eval_rows = 4096.min(self.val.0.n);
        let mut passes = Vec::new();
        let mut evals = Vec::new();
        for net in &nets {
            let batch = self.args.batch_size;
            passes.push(Pass::new(
                ctx,
                self.kernels,
                net,
                self.train,
                batch,
                Some(self.loss),
            )?);
            evals.push(Pass::new(
                ctx,
                self.kernels,
                net,
                self.val.0,
                eval_rows,
                None,
            )?);
        }
        let monitors = trials
            .iter()
            .map(|_| GradNormMonitor::new(MonitorConfig::default()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Generation {
            ids: trials.iter().map(|t| t.id).collect(),
            trials: trials.to_vec(),
            live: vec![true; trials.len()],
            reader: ControlReader::for_optimizer(&optimizer, 4),
            _nets: nets,
            passes,
            evals,
            optimizer,
            done: 0,
            monitors,
        })
    }

    /// Every trial's learning rate at `step`: linear warm-up over the first 5% of the steps,
    /// then cosine decay to 0 at `steps`.
    fn lr(peak: f64, step: u64, steps: u64) -> f64 {
        let warmup = (steps / 20).max(1);
        if step < warmup {
            return peak * (step + 1) as f64 / warmup as f64;
        }
        let t = (step - warmup) as f64 / (steps - warmup).max(1) as f64;
        peak * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
    }

    /// Trains the live replicas of the generation from its step to `budget`.
    fn train_to(&mut self, budget: u64) -> Result<()> {
        let ctx = self.ctx;
        let progress = &self.progress;
        let steps = self.args.steps;
        let g = self.generation.as_mut().expect("a generation");
        let per_epoch = (self.train.n / self.args.batch_size).max(1) as u64;
        let start = Instant::now();
        while g.done < budget {
            let step = g.done;
            if step.is_multiple_of(per_epoch) {
                // Every generation sees the same records in the same order.
                let mut rng = Rng::new(self.seed ^ 0x5EA2C4 ^ (step / per_epoch));
                self.train.set_order(ctx, &rng.permutation(self.train.n));
            }
            let at = (step % per_epoch) as usize * self.args.batch_size;
            for (r, trial) in g.trials.iter().enumerate() {
                let lr = if g.live[r] {
                    Self::lr(trial.get("lr").expect("an lr"), step, steps)
                } else {
                    0.0
                };
                g.optimizer.set_group_lr(r, lr)?;
            }
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            {
                let mut compute = encoder.begin_compute_pass(&Default::default());
                for (pass, &live) in g.passes.iter().zip(&g.live) {
                    if live {
                        pass.set_batch(ctx, at);
                        pass.record_forward(self.kernels, &mut compute);
                        pass.record_backward(self.kernels, &mut compute);
                    }
                }
            }
            g.optimizer.step(&mut encoder);
            if step.is_multiple_of(self.log_every as u64) {
                g.reader.record(&mut encoder, &g.optimizer)?;
            }
            ctx.queue().submit([encoder.finish()]);
            for blocks in g.reader.try_read_blocks()? {
                for (r, block) in blocks.iter().enumerate() {
                    if g.live[r] {
                        for event in g.monitors[r].observe(block) {
                            super::say(progress, format!("  trial {:>3}: {event}", g.trials[r].id));
                        }
                    }
                }
            }
            let live = g.live.iter().filter(|&&l| l).count();
            self.replica_steps += live as u64;
            g.done += 1;
            progress.set_length(budget);
            progress.set_position(g.done);
            progress.set_message(format!(
                "{live} replicas (trials {}..={})",
                g.ids[0],
                g.ids[g.ids.len() - 1]
            ));
        }
        ctx.device().poll(wgpu::PollType::wait_indefinitely())?;
        self.seconds += start.elapsed().as_secs_f64();
        Ok(())
    }
}

impl Objective for Replicas<'_> {
    fn run(&mut self, trials: &[Trial], budget: u64) -> Result<Vec<f64>> {
        let fresh = match &self.generation {
            Some(g) => !trials.iter().all(|t| g.ids.contains(&t.id)),
            None => true,
        };
        if fresh {
            self.generation = Some(self.generation(trials)?);
        }
        let g = self.generation.as_mut().expect("a generation");
        for (r, id) in g.ids.iter().enumerate() {
            g.live[r] = trials.iter().any(|t| t.id == *id);
        }
        self.train_to(budget)?;
        let g = self.generation.as_ref().expect("a generation");
        let mut scores = Vec::new();
        for trial in trials {
            let r = g
                .ids
                .iter()
                .position(|&id| id == trial.id)
                .expect("a replica");
            let (evaluation, _) = super::evaluate(
                self.ctx,
                self.kernels,
                &g.evals[r],
                self.val.0,
                self.val.1,
                &self.logits,
                self.loss,
            )?;
            // A diverged replica's logits are not finite: NaN, the search's failed trial.
            scores.push(evaluation.map_or(f64::NAN, |e| e.loss));
        }
        Ok(scores)
    }

    fn stop(&mut self, trials: &[Trial]) {
        if let Some(g) = &mut self.generation {
            for (r, id) in g.ids.iter().enumerate() {
                if trials.iter().any(|t| t.id == *id) {
                    g.live[r] = false;
                }
            }
        }
    }
}

/// Runs the search `args` asks for over `objective`.
pub fn run(
    args: &SearchArgs,
    optim: &str,
    seed: u64,
    objective: &mut Replicas<'_>,
) -> Result<SearchResults> {
    let space = space(optim);
    let search = Search::new(space.clone())
        .with_seed(seed)
        .with_restarts(args.restarts)
        .with_population(args.population);
    match args.driver.as_str() {
        "grid" => {
            // Points per dimension: the most whose grid stays within --trials.
            let dims = space.len() as u32;
            let points = (2..)
                .take_while(|p: &usize| p.pow(dims) <= args.trials)
                .last();
            search.grid(points.unwrap_or(2), args.steps, objective)
        }
        "bayes" => {
            // Half the configurations drawn at random, then rounds of at most 4 proposals.
            let rest = args.trials - args.trials / 2;
            let rounds = rest.div_ceil(4);
            let batch = rest.div_ceil(rounds.max(1)).max(1);
            let initial = (args.trials - rounds * batch).max(1);
            search.bayes(&Bayes::new(initial, rounds, batch), args.steps, objective)
        }
        "halving" => {
            // Rungs of trials, trials / 3, ... each 3 times longer, the last at --search-steps.
            let halving = SuccessiveHalving::new(args.trials, 1);
            let rungs = halving.rung_count() as u32;
            let min_budget = (args.steps / 3u64.pow(rungs - 1)).max(1);
            search.successive_halving(&SuccessiveHalving::new(args.trials, min_budget), objective)
        }
        _ => search.random(args.trials, args.steps, objective),
    }
}
