//! Schedules on the device: [`Optimizer::set_schedule`](crate::Optimizer::set_schedule).

use std::sync::Arc;

use super::LrSchedule;
use crate::error::{Error, Result};
use crate::gpu::pipeline::{
    bind_group, bind_group_layout, compute_pipeline, create_module, BufferEntry,
};
use crate::gpu::{capture_errors, Context};
use crate::kernel::{
    concatenate, prelude, shader_file, wgsl_struct, GroupRecord, ShaderFile, Slots, CONTROL,
};
use crate::optim::OptimizerConfig;

/// The device schedule's entry point.
pub const SCHEDULE: ShaderFile = shader_file!("schedule.wgsl");

/// The files of the device-schedule module.
pub fn schedule_files() -> Vec<ShaderFile> {
    vec![CONTROL, SCHEDULE]
}

/// The device-schedule module's WGSL source: its bindings' prelude and files.
pub fn schedule_source() -> String {
    concatenate(&prelude::<ScheduleBinding>(), &schedule_files())
}

/// The bindings of the device-schedule module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScheduleBinding {
    /// The control blocks (the counters).
    Control,
    /// The optimizer's group records, as words.
    Groups,
    /// The [`ScheduleShape`].
    Shape,
    /// The index of each moved word within a record.
    Words,
    /// The table of moved words, per group and step.
    Table,
}

impl Slots for ScheduleBinding {
    const ALL: &'static [Self] = &[
        ScheduleBinding::Control,
        ScheduleBinding::Groups,
        ScheduleBinding::Shape,
        ScheduleBinding::Words,
        ScheduleBinding::Table,
    ];

    fn index(self) -> u32 {
        match self {
            ScheduleBinding::Control => 0,
            ScheduleBinding::Groups => 1,
            ScheduleBinding::Shape => 2,
            ScheduleBinding::Words => 3,
            ScheduleBinding::Table => 4,
        }
    }

    fn constant(self) -> &'static str {
        match self {
            ScheduleBinding::Control => "CONTROL_BINDING",
            ScheduleBinding::Groups => "GROUPS_BINDING",
            ScheduleBinding::Shape => "SHAPE_BINDING",
            ScheduleBinding::Words => "WORDS_BINDING",
            ScheduleBinding::Table => "TABLE_BINDING",
        }
    }
}

/// Cache key of the device schedule's pipeline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ScheduleKey;

/// Which counter on the device picks a [`DeviceSchedule`]'s value for a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ScheduleCounter {
    /// The steps taken (the control block's `step`, the counter the bias corrections use): a
    /// step skipped for non-finite gradients does not advance the schedule, as Optax's
    /// `apply_if_finite` around a scheduled optimizer, whose inner count stays where it was.
    /// The default.
    #[default]
    Steps,
    /// The iterations: steps taken plus steps skipped for non-finite gradients (`step +
    /// skipped_steps`), as a PyTorch loop that calls `scheduler.step()` every iteration,
    /// whether `scaler.step(optimizer)` skipped or not.
    Iterations,
}

/// A learning-rate schedule the device follows on its own: see
/// [`Optimizer::set_schedule`](crate::Optimizer::set_schedule).
///
/// The host evaluates the schedule once, in f64, for each of the first `steps` steps (taking
/// them in order, [`LrSchedule::rates`]) and lowers each step's configuration to the bytes
/// [`Optimizer::set_config`] would write
/// (derived fields such as AdamW's `1 - lr * weight_decay` included, rounded as the host rounds
/// them); the device picks the row of its own counter each step. So the run is bit for bit the
/// one a loop gets by calling `set_lr(schedule.lr(base_lr, step))` before each step, for any
/// [`LrSchedule`] (a [`LrSchedule::Custom`] closure included), and the loop writes nothing.
/// After `steps` steps the last value holds. A [`OneCycle`](crate::OneCycle) or
/// [`Cyclic`](crate::Cyclic) schedule that cycles momentum moves the momentum (or `beta1`)
/// too, as [`OptimizerConfig::with_cycled_momentum`] does.
///
/// The table holds 4 bytes per step, group and moved word, and must fit one storage binding.
/// Before evaluating any step, a schedule is refused ([`Error::InvalidOptions`]) whose table
/// would not fit even at its least: the words that a change of the learning rate moves
/// (those that halving each group's rate moves; AdamW's `lr` and `1 - lr * weight_decay`),
/// so a schedule that never moves the rate is refused at that length too, though it would
/// need no table.
///
/// [`Optimizer::set_config`]: crate::Optimizer::set_config
#[derive(Clone, Debug)]
pub struct DeviceSchedule {
    /// The schedule, applied to each parameter group's learning rate as its base.
    pub schedule: LrSchedule,
    /// Steps tabulated (at least 1): the schedule's value at `steps - 1` holds after them.
    pub steps: u64,
    /// The counter that picks each step's value.
    pub counter: ScheduleCounter,
}

impl DeviceSchedule {
    /// `schedule` over the first `steps` steps, picked by the steps taken.
    pub fn new(schedule: LrSchedule, steps: u64) -> Self {
        DeviceSchedule {
            schedule,
            steps,
            counter: ScheduleCounter::Steps,
        }
    }

    /// The same schedule picked by `counter`.
    pub fn with_counter(mut self, counter: ScheduleCounter) -> Self {
        self.counter = counter;
        self
    }

    /// The configuration of a group whose own is `base` for the step after `step` steps: the
    /// learning rate `schedule.lr(base.lr(), step)` and, for a cycle that moves it, the
    /// momentum.
    pub fn config_at(&self, base: &OptimizerConfig, step: u64) -> Result<OptimizerConfig> {
        self.config_with(base, step, self.schedule.lr(base.lr(), step))
    }

    /// [`DeviceSchedule::config_at`] with the schedule's rate at `step`, `lr`, given.
    fn config_with(&self, base: &OptimizerConfig, step: u64, lr: f64) -> Result<OptimizerConfig> {
        let config = base.with_lr(lr);
        match &self.schedule {
            LrSchedule::OneCycle(cycle) if cycle.cycle_momentum => {
                config.with_cycled_momentum(cycle.momentum(step))
            }
            LrSchedule::Cyclic(cycle) if cycle.cycle_momentum => {
                config.with_cycled_momentum(cycle.momentum(step))
            }
            _ => Ok(config),
        }
    }

    /// Group `group`'s hyperparameter words (its record's `hyper`) at each step, the rates
    /// taken in order ([`LrSchedule::rates`]: what `config_at` computes, without a chain's walk
    /// starting again at every step).
    fn rows<'a>(
        &'a self,
        group: usize,
        base: &'a OptimizerConfig,
    ) -> impl Iterator<Item = Result<Vec<u32>>> + 'a {
        let rates = self.schedule.rates(base.lr());
        (0..self.steps).zip(rates).map(move |(step, lr)| {
            let invalid = |source| Error::InvalidScheduleStep {
                group,
                step,
                source: Box::new(source),
            };
            let config = self.config_with(base, step, lr).map_err(invalid)?;
            let spec = config.lower().map_err(invalid)?;
            Ok(bytemuck::pod_collect_to_vec(&spec.hyper))
        })
    }
}

/// The words where `a` and `b` differ, marked into `moved`.
fn mark_moved(moved: &mut [bool], a: &[u32], b: &[u32]) {
    for (m, (a, b)) in moved.iter_mut().zip(a.iter().zip(b)) {
        *m |= a != b;
    }
}

wgsl_struct! {
    /// What the device-schedule dispatch (shaders/schedule.wgsl) reads its table with.
    pub struct ScheduleShape as "ScheduleShape" {
        /// u32 words of one group's record (its `hyper` first).
        record_words: u32,
        /// Rows per group: the steps tabulated.
        steps: u32,
        /// Words per row: the words of the struct that some row moves.
        moved: u32,
        /// Parameter groups.
        groups: u32,
        /// 1: the counter is the iterations (steps taken + skipped), 0: the steps taken.
        iterations: u32,
        /// 1: group g reads control block g (a population), 0: every group block 0.
        group_control: u32,
    }
}

struct SchedulePipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// A device schedule in force: its table on the device and the dispatch that applies it.
pub(crate) struct ScheduleTable {
    pub schedule: DeviceSchedule,
    // None when the schedule moves no word (every step is the base configuration).
    dispatch: Option<(Arc<SchedulePipeline>, wgpu::BindGroup, u32)>,
}

/// What a table is built for: the optimizer's buffers and layout.
pub(crate) struct ScheduleTarget<'a> {
    pub control: &'a wgpu::Buffer,
    /// The groups' records.
    pub groups: &'a wgpu::Buffer,
    /// The layout of one group's record.
    pub record: GroupRecord,
    /// Whether each group has a control block of its own.
    pub group_control: bool,
}

impl ScheduleTable {
    /// Tabulates `schedule` for groups whose configurations are `configs`: validates every
    /// step's configuration and the table's size before allocating anything.
    pub fn new(
        ctx: &Context,
        schedule: DeviceSchedule,
        configs: &[OptimizerConfig],
        target: &ScheduleTarget<'_>,
    ) -> Result<Self> {
        schedule.schedule.validate()?;
        let limits = ctx.device().limits();
        let max_bytes = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let groups = configs.len() as u64;
        let too_long = |words: u64| {
            schedule.steps == 0
                || schedule.steps > u64::from(u32::MAX)
                || groups
                    .checked_mul(schedule.steps)
                    .and_then(|rows| rows.checked_mul(4 * words))
                    .is_none_or(|bytes| bytes > max_bytes)
        };
        let words_of = |config: &OptimizerConfig| -> Result<Vec<u32>> {
            Ok(bytemuck::pod_collect_to_vec(&config.lower()?.hyper))
        };
        let bases: Vec<Vec<u32>> = configs.iter().map(words_of).collect::<Result<_>>()?;
        // The least a row holds: the words a change of the learning rate moves (those halving
        // it moves, in any group), or one. Refusing a table too long for them before
        // evaluating any step spares seconds of tabulating millions of steps only to refuse
        // them (issue 25, cause 18); it refuses too a schedule that never moves the rate,
        // which would need no table.
        let mut least = vec![false; bases[0].len()];
        for (config, base) in configs.iter().zip(&bases) {
            if config.lr() != 0.0 {
                if let Ok(halved) = words_of(&config.with_lr(config.lr() / 2.0)) {
                    mark_moved(&mut least, &halved, base);
                }
            }
        }
        if too_long(least.iter().filter(|&&m| m).count().max(1) as u64) {
            return Err(Error::InvalidOptions(
                "a device schedule needs 1 to u32::MAX steps, whose table (4 bytes per step, \
                 group and word that the learning rate moves) fits one storage binding",
            ));
        }
        // The words some step moves away from the group's own configuration. The rows are
        // evaluated twice (here, then for the table below) so that only the moved words are
        // ever held: a population's full rows would be groups x steps x the whole struct.
        let mut moved = vec![false; bases[0].len()];
        for (g, (config, base)) in configs.iter().zip(&bases).enumerate() {
            for row in schedule.rows(g, config) {
                mark_moved(&mut moved, &row?, base);
            }
        }
        let words: Vec<u32> = (0..moved.len() as u32)
            .filter(|&w| moved[w as usize])
            .collect();
        if words.is_empty() {
            return Ok(ScheduleTable {
                schedule,
                dispatch: None,
            });
        }
        if too_long(words.len() as u64) {
            return Err(Error::InvalidOptions(
                "a device schedule's table (4 bytes per moved word, step and group) must fit \
                 one storage binding: tabulate fewer steps",
            ));
        }
        let mut table = Vec::with_capacity((groups * schedule.steps) as usize * words.len());
        for (g, config) in configs.iter().enumerate() {
            for row in schedule.rows(g, config) {
                let row = row?;
                table.extend(words.iter().map(|&w| row[w as usize]));
            }
        }
        let shape = ScheduleShape {
            record_words: (target.record.size() / 4) as u32,
            steps: schedule.steps as u32,
            moved: words.len() as u32,
            groups: groups as u32,
            iterations: u32::from(schedule.counter == ScheduleCounter::Iterations),
            group_control: u32::from(target.group_control),
        };
        let invocations = groups * words.len() as u64;
        if invocations.div_ceil(64) > ctx.max_workgroups() {
            return Err(Error::InvalidOptions(
                "a device schedule moves at most 64 * max_workgroups_per_dispatch words per step",
            ));
        }
        use ScheduleBinding as B;
        let pipeline = ctx.cached(ScheduleKey, |device| {
            let module = create_module(device, "schedule", &schedule_source());
            let layout = bind_group_layout(
                device,
                "schedule",
                &[
                    BufferEntry::read(B::Control.index()),
                    BufferEntry::read_write(B::Groups.index()),
                    BufferEntry::read(B::Shape.index()),
                    BufferEntry::read(B::Words.index()),
                    BufferEntry::read(B::Table.index()),
                ],
            );
            SchedulePipeline {
                pipeline: compute_pipeline(device, &module, "schedule", &layout, &[]),
                layout,
            }
        })?;
        let device = ctx.device();
        let bind = capture_errors(device, || {
            use wgpu::util::DeviceExt;
            let buffer = |label: &str, contents: &[u8]| {
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents,
                    usage: wgpu::BufferUsages::STORAGE,
                })
            };
            let shape = buffer("wgpu-optim schedule shape", bytemuck::bytes_of(&shape));
            let words = buffer("wgpu-optim schedule words", bytemuck::cast_slice(&words));
            let table = buffer("wgpu-optim schedule table", bytemuck::cast_slice(&table));
            bind_group(
                device,
                "wgpu-optim schedule",
                &pipeline.layout,
                &[
                    (B::Control.index(), target.control.as_entire_binding()),
                    (B::Groups.index(), target.groups.as_entire_binding()),
                    (B::Shape.index(), shape.as_entire_binding()),
                    (B::Words.index(), words.as_entire_binding()),
                    (B::Table.index(), table.as_entire_binding()),
                ],
            )
        })?;
        Ok(ScheduleTable {
            schedule,
            dispatch: Some((pipeline, bind, invocations.div_ceil(64) as u32)),
        })
    }

    /// Records the dispatch that writes this step's moved words (nothing when none moves).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Some((pipeline, group, workgroups)) = &self.dispatch {
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*workgroups, 1, 1);
        }
    }
}
