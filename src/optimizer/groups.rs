//! Parameter groups' configurations: typed edits through the queue (never a rebuild), the
//! device schedule, and the running values the prologue keeps in each group's record.

use super::Optimizer;
use crate::error::{Error, Result};
use crate::gpu::BufferRange;
use crate::kernel::plan::ControlMode;
use crate::kernel::KernelSpec;
use crate::optim::OptimizerConfig;
use crate::schedule::{DeviceSchedule, ScheduleTable, ScheduleTarget};

impl Optimizer {
    /// The configuration in force (of parameter group 0).
    pub fn config(&self) -> &OptimizerConfig {
        &self.configs[0]
    }

    /// Each parameter group's configuration.
    pub fn group_configs(&self) -> &[OptimizerConfig] {
        &self.configs
    }

    /// The parameter group of tensor `index` (Muon's numbered after the others).
    pub fn group_of(&self, index: usize) -> Option<usize> {
        if let Some(group) = self.muon_group_of(index) {
            return Some(group);
        }
        self.tensors.get(index).map(|t| t.group)
    }

    /// Replaces the hyperparameters (learning rate, betas, weight decay...) of every
    /// parameter group for the steps submitted after this call: a buffer write through the
    /// queue, never a rebuild. Options that change the kernel or its state (amsgrad,
    /// nesterov, centered, momentum on or off...) are refused with
    /// [`Error::StructuralChange`]. With a [device schedule](Optimizer::set_schedule), the
    /// configuration is the base the schedule moves.
    pub fn set_config(&mut self, config: OptimizerConfig) -> Result<()> {
        let changes = (0..self.configs.len())
            .map(|g| (g, config.clone()))
            .collect();
        self.set_group_configs(changes)
    }

    /// Replaces parameter group `group`'s hyperparameters, as [`Optimizer::set_config`].
    pub fn set_group_config(&mut self, group: usize, config: OptimizerConfig) -> Result<()> {
        self.set_group_configs(vec![(group, config)])
    }

    /// Replaces the configurations of the groups listed, all or none: each is validated, and
    /// a device schedule's table is rebuilt for the new bases, before anything is written.
    pub(crate) fn set_group_configs(
        &mut self,
        changes: Vec<(usize, OptimizerConfig)>,
    ) -> Result<()> {
        let mut configs = self.configs.clone();
        let mut specs = Vec::with_capacity(changes.len());
        for (group, config) in changes {
            if group >= self.configs.len() {
                return Err(Error::NoSuchGroup {
                    group,
                    count: self.configs.len(),
                });
            }
            specs.push((group, self.check_structure(&config)?));
            configs[group] = config;
        }
        let schedule = match &self.schedule {
            Some(table) => Some(self.schedule_table(table.schedule.clone(), &configs)?),
            None => None,
        };
        for (group, spec) in specs {
            // Only the record's `hyper`: the derived scalars and the running values (Schedule-
            // Free's) are the prologue's.
            let offset = (group * self.spec.kernel.record.size()) as u64;
            self.ctx
                .queue()
                .write_buffer(&self.groups, offset, &spec.hyper);
        }
        self.configs = configs;
        if schedule.is_some() {
            self.schedule = schedule;
        }
        Ok(())
    }

    /// Sets parameter group `group`'s learning rate for the steps submitted after this call
    /// (a [Muon group](Optimizer::with_muon)'s too: they are numbered after the others).
    pub fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        self.set_group_lrs(&[(group, lr)])
    }

    /// Sets the learning rates of the groups listed, all or none: every new configuration is
    /// validated, and a device schedule's table rebuilt for the new rates, before anything is
    /// written ([`Error::NoSuchGroup`] for a group past the optimizer's).
    pub fn set_group_lrs(&mut self, lrs: &[(usize, f64)]) -> Result<()> {
        let elementwise = self.configs.len();
        let (muon, lrs): (Vec<_>, Vec<_>) = lrs.iter().partition(|(g, _)| *g >= elementwise);
        let muon = self.muon_lr_changes(&muon)?;
        let changes = lrs
            .iter()
            .map(|&&(group, lr)| {
                let config = self.configs.get(group).ok_or(Error::NoSuchGroup {
                    group,
                    count: self.configs.len(),
                })?;
                Ok((group, config.with_lr(lr)))
            })
            .collect::<Result<Vec<_>>>()?;
        self.set_group_configs(changes)?;
        self.set_muon_configs(muon)
    }

    /// Makes the device compute each step's learning rate from its own step counter
    /// (replacing any schedule before), or stops with `None`: a training loop then writes
    /// nothing per step, and a step skipped on the device cannot put the host's count out of
    /// step with it (PyTorch users ask for a tensor learning rate for this,
    /// pytorch/pytorch#106802). Each parameter group's configured learning rate is the
    /// schedule's `base_lr` (a population's replicas each follow the schedule from their own
    /// rate, by their own counters); [`Optimizer::set_lr`] and the other setters change that
    /// base. A step recorded from now on begins with one small dispatch, after the gradient
    /// finalize and before the prologue, that copies the step's hyperparameter words from a
    /// table built here (see [`DeviceSchedule`]): the run is bit for bit the one a loop gets
    /// calling `set_config(schedule.config_at(base, step))` before each step.
    ///
    /// Which counter: [`ScheduleCounter::Steps`](crate::ScheduleCounter::Steps) (the default,
    /// steps taken, Optax's `apply_if_finite`) or
    /// [`ScheduleCounter::Iterations`](crate::ScheduleCounter::Iterations) (skipped steps
    /// count too, PyTorch's `scheduler.step()` every iteration). The counter lives in the
    /// control block, so checkpoints and snapshots carry the schedule's position; the
    /// schedule itself is configuration, not saved (as PyTorch saves a scheduler apart), and
    /// stays in force across a load. `None` writes each group's configuration back, so the
    /// learning rate returns to the base.
    ///
    /// Refused, with nothing changed: a schedule [`LrSchedule::validate`](crate::LrSchedule::validate)
    /// refuses, a step whose configuration the optimizer refuses
    /// ([`Error::InvalidScheduleStep`]), 0 steps or a table past one storage binding
    /// ([`Error::InvalidOptions`]), an optimizer with [Muon groups](Optimizer::with_muon)
    /// ([`Error::InvalidOptions`]). The table holds 4 bytes per step, group and moved word
    /// (AdamW: the learning rate and `1 - lr * weight_decay`, 8 bytes a step), and building
    /// it evaluates the schedule for every step on the host.
    ///
    /// ```no_run
    /// # use wgpu_optim::{Context, DeviceSchedule, LrSchedule, Optimizer};
    /// # fn demo(ctx: &Context, adamw: &mut Optimizer) -> wgpu_optim::Result<()> {
    /// let cosine = LrSchedule::CosineAnnealing { t_max: 10_000, eta_min: 1e-5 };
    /// adamw.set_schedule(Some(DeviceSchedule::new(cosine, 10_000)))?;
    /// for _ in 0..10_000 {
    ///     let mut encoder = ctx.device().create_command_encoder(&Default::default());
    ///     // ... forward and backward ...
    ///     adamw.step(&mut encoder);
    ///     ctx.queue().submit([encoder.finish()]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn set_schedule(&mut self, schedule: Option<DeviceSchedule>) -> Result<()> {
        if schedule.is_some() && self.muon.is_some() {
            return Err(Error::InvalidOptions(
                "a device schedule does not move Muon groups' rates: set_lr before each step",
            ));
        }
        let Some(schedule) = schedule else {
            if self.schedule.take().is_some() {
                self.set_group_configs(self.configs.clone().into_iter().enumerate().collect())?;
            }
            return Ok(());
        };
        self.schedule = Some(self.schedule_table(schedule, &self.configs)?);
        Ok(())
    }

    /// The device schedule in force, if any.
    pub fn schedule(&self) -> Option<&DeviceSchedule> {
        self.schedule.as_ref().map(|table| &table.schedule)
    }

    fn schedule_table(
        &self,
        schedule: DeviceSchedule,
        configs: &[OptimizerConfig],
    ) -> Result<ScheduleTable> {
        let target = ScheduleTarget {
            control: &self.control,
            groups: &self.groups,
            record: self.spec.kernel.record,
            group_control: self.control_mode == ControlMode::PerGroup,
        };
        ScheduleTable::new(&self.ctx, schedule, configs, &target)
    }

    /// Validates `config` and checks it keeps this optimizer's algorithm, kernel, options and
    /// states (an Adam config with decoupled weight decay runs AdamW's kernel, but is another
    /// optimizer to PyTorch and to checkpoints).
    pub(crate) fn check_structure(&self, config: &OptimizerConfig) -> Result<KernelSpec> {
        let spec = config.lower()?;
        if !spec.same_structure(&self.spec) || !config.same_algorithm(self.config()) {
            return Err(Error::StructuralChange(self.config().name()));
        }
        Ok(spec)
    }

    /// Sets every parameter group's learning rate for the steps submitted after this call.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        let groups = self.configs.len() + self.muon_configs().len();
        let lrs: Vec<(usize, f64)> = (0..groups).map(|g| (g, lr)).collect();
        self.set_group_lrs(&lrs)
    }

    /// Each group's running values (Schedule-Free's `lr_max` and `weight_sum`: its record's
    /// `running`) as ranges of the records' buffer, for snapshots; empty for optimizers without
    /// any.
    pub(crate) fn running_ranges(&self) -> Vec<BufferRange> {
        let record = self.spec.kernel.record;
        let Some(running) = record.running else {
            return Vec::new();
        };
        (0..self.configs.len())
            .map(|group| {
                let offset = group * record.size() + record.running_offset();
                BufferRange::new(&self.groups, offset as u64, (running.size / 4) as u64)
            })
            .collect()
    }

    /// Each parameter group's running values, read back from the device, in the order of
    /// [`Optimizer::running_names`]; empty vectors for optimizers without any.
    pub(crate) fn read_running(&self) -> Result<Vec<Vec<f32>>> {
        let record = self.spec.kernel.record;
        let Some(running) = record.running else {
            return Ok(vec![Vec::new(); self.configs.len()]);
        };
        let bytes = self.ctx.read_bytes(&self.groups, 0, self.groups.size())?;
        let values = (0..self.configs.len())
            .map(|group| {
                let start = group * record.size() + record.running_offset();
                running
                    .fields
                    .iter()
                    .map(|&(_, offset)| {
                        let at = start + offset;
                        bytemuck::pod_read_unaligned(&bytes[at..at + 4])
                    })
                    .collect()
            })
            .collect();
        Ok(values)
    }

    /// The names of the running values, in the order of the kernel's `Running` struct.
    pub(crate) fn running_names(&self) -> Vec<&'static str> {
        self.spec.kernel.record.running.map_or(Vec::new(), |r| {
            r.fields.iter().map(|&(name, _)| name).collect()
        })
    }

    /// Writes group `group`'s running values, in the order of [`Optimizer::running_names`].
    pub(crate) fn write_running(&self, group: usize, values: &[f32]) {
        let record = self.spec.kernel.record;
        let offset = group * record.size() + record.running_offset();
        self.ctx
            .queue()
            .write_buffer(&self.groups, offset as u64, bytemuck::cast_slice(values));
    }
}
