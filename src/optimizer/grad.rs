//! Gradient processing of an optimizer: turning it on and off, per replica of a population,
//! and the norm stats a data-parallel caller all-reduces.

use std::sync::{Arc, Mutex};

use super::dispatch::Pipelines;
use super::muon::MuonGradSetup;
use super::Optimizer;
use crate::error::{Error, Result};
use crate::gpu::{storage_alignment, BufferRange};
use crate::grad::{GradConfig, GradProcessing, NormStats};
use crate::kernel::plan::ControlMode;
use crate::kernel::{control_field, ControlField, ControlOwners, GradStages, Variant};

/// Gradient processing built for an optimizer but not yet in force
/// ([`Optimizer::prepare_grad_processing`]).
pub(crate) struct GradSetup {
    pipelines: Pipelines,
    processing: Option<GradProcessing>,
    muon: Option<MuonGradSetup>,
}

impl Optimizer {
    /// Turns gradient processing on with `config` (replacing any before), or off with `None`.
    /// Its buffers are allocated here, never in a step. It applies to the steps recorded after
    /// this call; its buffer writes (bound, loss scale) land at the next submit, so submit the
    /// steps recorded before the call first. In a [population](Optimizer::population), every
    /// replica gets `config`, each applying it to its own gradients.
    ///
    /// Without gradient processing, steps use gradients as they are and never skip: the
    /// gradient fields of the control block are not read (and a halt of `error_if_nonfinite`
    /// is cleared). The loss scale is set to `init_scale` when a scaler is turned on or its
    /// `init_scale` changes, and to 1 without a scaler; otherwise the scale and growth tracker
    /// carry on. A refused configuration leaves the one in force unchanged.
    pub fn set_grad_processing(&mut self, config: Option<GradConfig>) -> Result<()> {
        let setup = self.prepare_grad_processing(config)?;
        self.commit_grad_setup(setup);
        Ok(())
    }

    /// Gradient processing of a [population](Optimizer::population), one configuration per
    /// replica (its own clip, loss scaler, `error_if_nonfinite`), as
    /// [`Optimizer::set_grad_processing`]; `None` turns it off for all. The kernels compile in
    /// every stage some replica uses; a replica without it runs it as the identity (a bound of
    /// inf, a clip coefficient of 1, a loss scale of 1), which changes no bit.
    /// [`Error::InvalidOptions`] for an optimizer whose groups share one control block,
    /// [`Error::WrongLength`] unless there is one configuration per replica.
    pub fn set_grad_processing_per_group(
        &mut self,
        configs: Option<Vec<GradConfig>>,
    ) -> Result<()> {
        if self.control_mode != ControlMode::PerGroup {
            return Err(Error::InvalidOptions(
                "gradient processing per group needs a population (Optimizer::population)",
            ));
        }
        if let Some(configs) = &configs {
            if configs.len() != self.configs.len() {
                return Err(Error::WrongLength {
                    what: "gradient-processing configurations (one per replica)",
                    expected: self.configs.len(),
                    actual: configs.len(),
                });
            }
        }
        self.set_grad_configs(configs)
    }

    fn set_grad_configs(&mut self, configs: Option<Vec<GradConfig>>) -> Result<()> {
        let setup = self.prepare_grad_configs(configs)?;
        self.commit_grad_setup(setup);
        Ok(())
    }

    /// Builds gradient processing with `config` for every control block (or its absence),
    /// changing nothing: [`Optimizer::commit_grad_setup`] puts it in force. For callers that
    /// must learn whether it can be set up before any write (ranks agreeing on it).
    pub(crate) fn prepare_grad_processing(&self, config: Option<GradConfig>) -> Result<GradSetup> {
        self.prepare_grad_configs(config.map(|c| vec![c; self.plan.plan.controls as usize]))
    }

    /// Everything `configs` needs (validation, pipelines, buffers), built without a write.
    fn prepare_grad_configs(&self, configs: Option<Vec<GradConfig>>) -> Result<GradSetup> {
        let Some(configs) = configs else {
            let muon = match &self.muon {
                Some(muon) => {
                    Some(muon.prepare_grad_processing(&self.ctx, None, &self.control, None)?)
                }
                None => None,
            };
            return Ok(GradSetup {
                pipelines: self.pipelines_with(GradStages::default())?,
                processing: None,
                muon,
            });
        };
        for config in &configs {
            config.validate()?;
        }
        let stats = match &self.norm_stats {
            Some(range) => range.clone(),
            None => {
                let buffer = self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgpu-optim norm stats"),
                    size: self.norm_stats_len() * 4,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                BufferRange::whole(&buffer)
            }
        };
        let pipelines = self.pipelines_with(GradConfig::union_of_stages(&configs))?;
        let processing =
            GradProcessing::new(&self.ctx, configs, &self.plan, &self.control, &stats)?;
        let muon = match &self.muon {
            Some(muon) => {
                let configs = Some(processing.configs.as_slice());
                Some(muon.prepare_grad_processing(
                    &self.ctx,
                    configs,
                    &self.control,
                    Some(&stats),
                )?)
            }
            None => None,
        };
        Ok(GradSetup {
            pipelines,
            processing: Some(processing),
            muon,
        })
    }

    /// Puts in force what [`Optimizer::prepare_grad_processing`] built: the pipelines, and
    /// the control words a change of processing writes (a loss scale turned on or given
    /// another `init_scale` starts from it; the clip value; a halt cleared where nothing
    /// halts any more). Cannot fail.
    pub(crate) fn commit_grad_setup(&mut self, setup: GradSetup) {
        self.pipelines = setup.pipelines;
        if let (Some(muon), Some(setup)) = (&mut self.muon, setup.muon) {
            muon.commit_grad_processing(setup);
        }
        let Some(processing) = setup.processing else {
            self.grad = None;
            for k in 0..self.control_blocks() {
                self.write_control(k, control_field!(nonfinite_step), &0);
            }
            self.set_control_owners(|_| ControlOwners::default());
            return;
        };
        let previous = self.grad.as_ref().map(|g| &g.configs);
        for (k, config) in processing.configs.iter().enumerate() {
            if config.resets_scale(previous.and_then(|p| p.get(k))) {
                self.write_control(k, control_field!(grad_scale), &config.init_scale_f32());
                self.write_control(k, control_field!(growth_tracker), &0);
            }
            self.write_control(k, control_field!(clip_value), &config.clip_value_f32());
            // A halt belongs to error_if_nonfinite: a configuration that skips clears it.
            if !config.error_if_nonfinite {
                self.write_control(k, control_field!(nonfinite_step), &0);
            }
        }
        let owners: Vec<ControlOwners> = processing
            .configs
            .iter()
            .map(|c| ControlOwners {
                scaler: c.grad_scaler.is_some(),
                halts: c.error_if_nonfinite,
            })
            .collect();
        self.set_control_owners(|k| owners[k]);
        self.grad = Some(processing);
    }

    /// Sets which control words block `k`'s processing owns, for snapshots' restores.
    fn set_control_owners(&self, owners: impl Fn(usize) -> ControlOwners) {
        let mut shared = self
            .control_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (k, slot) in shared.iter_mut().enumerate() {
            *slot = owners(k);
        }
    }

    /// Which control words each block's gradient processing owns, shared: a snapshot's
    /// restore reads it when recorded.
    pub(crate) fn control_owners(&self) -> Arc<Mutex<Vec<ControlOwners>>> {
        self.control_owners.clone()
    }

    /// The f32 words of the norm stats: one [`NormStats`] per control block.
    fn norm_stats_len(&self) -> u64 {
        u64::from(self.plan.plan.controls) * (std::mem::size_of::<NormStats>() / 4) as u64
    }

    /// The pipelines this optimizer steps with under gradient-processing `stages`.
    fn pipelines_with(&self, stages: GradStages) -> Result<Pipelines> {
        let variant = Variant {
            // The update kernels see only the clip coefficient, whatever the norm.
            stages: GradStages {
                power_norm: false,
                ..stages
            },
            one_group: self.configs.len() == 1,
            group_control: self.control_mode == ControlMode::PerGroup,
            regular_tiles: self.plan.plan.regular,
        };
        Pipelines::new(
            &self.ctx,
            &self.spec,
            self.storage,
            &self.plan.plan,
            variant,
        )
    }

    /// The gradient processing in force, if any (of replica 0 in a population).
    pub fn grad_processing(&self) -> Option<&GradConfig> {
        self.group_grad_processing(0)
    }

    /// The gradient processing of control block `k` (a population's replica `k`; 0 for any
    /// other optimizer), if any.
    pub fn group_grad_processing(&self, k: usize) -> Option<&GradConfig> {
        self.grad.as_ref().and_then(|g| g.configs.get(k))
    }

    /// Makes [`Optimizer::record_grad_stats`] write this device's [`NormStats`] into `range`
    /// (2 f32, or 2 per replica in a population; `STORAGE` usage, at an aligned offset,
    /// overlapping no param, grad, state or the control block: [`Error::NormStatsOverlap`])
    /// and [`Optimizer::record_update`] read them from there: the buffer a data-parallel caller
    /// all-reduces between the two.
    pub fn set_norm_stats_buffer(&mut self, range: BufferRange) -> Result<()> {
        let expected = self.norm_stats_len() as usize;
        if range.len() != expected as u64 {
            return Err(Error::WrongLength {
                what: "norm stats buffer",
                expected,
                actual: range.len() as usize,
            });
        }
        let alignment = storage_alignment(self.ctx.device());
        range.check(0, "norm stats", alignment, wgpu::BufferUsages::STORAGE)?;
        self.check_no_overlap(&range)?;
        let previous = self.norm_stats.replace(range);
        if let Some(configs) = self.grad.as_ref().map(|g| g.configs.clone()) {
            if let Err(e) = self.set_grad_configs(Some(configs)) {
                self.norm_stats = previous;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Refuses a norm stats range that overlaps any range the optimizer binds: a tensor's
    /// param, grad or state, or the control block.
    fn check_no_overlap(&self, range: &BufferRange) -> Result<()> {
        let overlap = |with, tensor| Err(Error::NormStatsOverlap { with, tensor });
        for (index, tensor) in self.tensors.iter().enumerate() {
            if range.overlaps(&tensor.param.param) {
                return overlap("param", Some(index));
            }
            if range.overlaps(&tensor.param.grad) {
                return overlap("grad", Some(index));
            }
            for (state, spec) in tensor.states.iter().zip(&self.spec.states) {
                if range.overlaps(state) {
                    return overlap(spec.name, Some(index));
                }
            }
        }
        if range.buffer() == &self.control {
            return overlap("control block", None);
        }
        Ok(())
    }

    /// Writes one field of control block `k` through the queue.
    pub(super) fn write_control<T: bytemuck::Pod>(
        &self,
        k: usize,
        field: ControlField<T>,
        value: &T,
    ) {
        self.ctx.queue().write_buffer(
            &self.control,
            field.offset_in_block(k),
            bytemuck::bytes_of(value),
        );
    }
}
