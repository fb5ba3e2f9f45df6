//! [`FusedOptimizer`]: Burn's `ModuleOptimizer` call shape over this crate's [`Optimizer`].

use std::collections::HashMap;
use std::fmt;

use ::burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use ::burn::module::{Module, ParamId};
use ::burn::optim::GradientsParams;
use ::burn::tensor::DType;

use super::tensors::{
    self, dtype_of, Found, FusionHandle, Held, ParamPlan, PlanInput, Resolved, TensorId,
};
use super::{BurnError, ParamInfo, SharedDevice};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{Arena, BufferRange, Param};
use crate::grad::GradConfig;
use crate::optim::OptimizerConfig;
use crate::optimizer::{Optimizer, ParamGroup, Precision, MASTER_PARAM};

mod binding;
mod encode;

pub use binding::DIRECT_MIN_ELEMENTS;

type Select = Box<dyn Fn(&ParamInfo) -> bool + Send + Sync>;

/// A parameter group rule: the parameters `select` holds for get `config`.
struct Rule {
    select: Select,
    config: OptimizerConfig,
}

/// A fused optimizer for a Burn module, with the call shape of Burn's `ModuleOptimizer`:
/// `model = optim.step(lr, model, grads)?`.
///
/// Built from any of this crate's configurations (AdamW, Adam, SGD, Lion, ...), with parameter
/// groups chosen by a predicate ([`FusedOptimizer::with_group`]), gradient processing on the
/// device ([`FusedOptimizer::with_grad`]: global-norm clipping, inf/NaN skip, loss scaling) and
/// storage options ([`FusedOptimizer::with_precision`]: bf16 parameters with f32 master
/// weights). The learning rate is Burn's argument to `step` (a scheduler's output), written to
/// the device when it changes. Its state saves in Burn's record format
/// ([`FusedOptimizer::save`]) and as this crate's safetensors checkpoint
/// ([`FusedOptimizer::checkpoint`]).
///
/// The optimizer is built at the first step, over the float parameters that have a gradient
/// then (see the [module documentation](super) for what a step does and refuses).
pub struct FusedOptimizer {
    shared: SharedDevice,
    config: OptimizerConfig,
    rules: Vec<Rule>,
    grad: Option<GradConfig>,
    precision: Precision,
    // Tensors of at least this many elements are bound in Burn's own buffers.
    direct_min: Option<usize>,
    built: Option<Built>,
    // A checkpoint or record loaded before the first step, applied when it builds the
    // optimizer.
    pending: Option<Pending>,
}

/// State loaded before the first step.
pub(super) enum Pending {
    Checkpoint(Vec<u8>),
    Record(Vec<u8>),
}

/// The optimizer over the module's parameters, from the first step on.
pub(super) struct Built {
    // Owns the buffers of `param_ranges` and `grad_ranges`.
    _arena: Arena,
    pub(super) optimizer: Optimizer,
    // One per tensor, in the arena's and the optimizer's order (group by group).
    pub(super) slots: Vec<Slot>,
    by_id: HashMap<ParamId, usize>,
    // The learning rate last written to each optimizer group, and this step's.
    lrs: Vec<f64>,
    next_lrs: Vec<f64>,
    // Each tensor's ranges: in the arena, and its master copy's.
    param_ranges: Vec<BufferRange>,
    grad_ranges: Vec<BufferRange>,
    master_ranges: Vec<Option<BufferRange>>,
    param_dtype: DType,
    grad_dtype: DType,
    // Each tensor's pair in the arena, and the pair the optimizer is built over now: Burn's
    // own ranges for a tensor bound directly, `None` for one copied through the arena.
    arena_params: Vec<Param>,
    bound: Vec<Option<Param>>,
    // The groups' configurations, to build the optimizer again over other ranges.
    group_configs: Vec<OptimizerConfig>,
    // Building over Burn's ranges failed once: every tensor is copied from then on.
    direct_failed: bool,
    stats: StepStats,
    // Widen a replaced parameter into the master copy (false right after a checkpoint load,
    // which restored the master copy itself).
    resync_master: bool,
}

pub(super) struct Slot {
    pub(super) info: ParamInfo,
    group: usize,
    // The tensor the optimizer last wrote the parameter to (held: Burn can neither free its
    // memory nor reuse it for another tensor, and CubeCL cannot move it).
    held: Option<Held>,
}

/// What the last step moved besides the update (see [`FusedOptimizer::last_step`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepStats {
    /// Tensors stepped.
    pub tensors: usize,
    /// Of them, tensors updated in Burn's own buffers ([`FusedOptimizer::with_direct_binding`]);
    /// the others' gradients were copied into the arena and their parameters out of it.
    pub bound: usize,
    /// Times the optimizer was built again over other ranges this step (0 or 1): Burn handed a
    /// directly bound tensor's gradient or parameter in another range than the step before.
    pub rebound: usize,
    /// Parameters copied into the arena because their Burn tensor was not the one the
    /// optimizer wrote last (all of them at the first step; then a loaded or edited one).
    pub copied_in: usize,
    /// Parameters written to a new Burn tensor because another tensor shared theirs (a clone of
    /// the model).
    pub copied_on_write: usize,
    /// Replaced parameters widened into their f32 master copy.
    pub widened: usize,
}

/// A step that was refused: the error, and the module, unchanged, handed back.
pub struct StepError<M> {
    error: Error,
    module: M,
}

impl<M> StepError<M> {
    /// Why the step was refused.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The module, as it was before the step.
    pub fn into_module(self) -> M {
        self.module
    }

    /// The error and the module.
    pub fn into_parts(self) -> (Error, M) {
        (self.error, self.module)
    }
}

impl<M> fmt::Debug for StepError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<M> fmt::Display for StepError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the optimizer step was refused: {}", self.error)
    }
}

impl<M> std::error::Error for StepError<M> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<M> From<StepError<M>> for Error {
    fn from(error: StepError<M>) -> Self {
        error.error
    }
}

impl FusedOptimizer {
    /// An optimizer of `config` for the parameters of a module on `shared`'s device.
    pub fn new(shared: &SharedDevice, config: impl Into<OptimizerConfig>) -> Self {
        FusedOptimizer {
            shared: shared.clone(),
            config: config.into(),
            rules: Vec::new(),
            grad: None,
            precision: Precision::default(),
            direct_min: Some(DIRECT_MIN_ELEMENTS),
            built: None,
            pending: None,
        }
    }

    /// A parameter group: the parameters `select` holds for (the first rule that holds wins;
    /// the others take the configuration of [`FusedOptimizer::new`]) are stepped with
    /// `config`, which must be of the same algorithm and structure (its values differ: no
    /// weight decay on biases and norms, say, with `|p| p.rank() == 1`). Decided at the first
    /// step.
    pub fn with_group(
        mut self,
        select: impl Fn(&ParamInfo) -> bool + Send + Sync + 'static,
        config: impl Into<OptimizerConfig>,
    ) -> Self {
        self.rules.push(Rule {
            select: Box::new(select),
            config: config.into(),
        });
        self
    }

    /// Gradient processing on the device: global-norm clipping over every parameter of the
    /// model (PyTorch's `clip_grad_norm_`, where Burn clips each tensor alone), clipping by
    /// value, loss scaling; a step whose gradients hold an inf or NaN is skipped.
    pub fn with_grad(mut self, grad: GradConfig) -> Self {
        self.grad = Some(grad);
        self
    }

    /// How states and parameters are stored: [`Precision::with_master_weights`] keeps an f32
    /// copy of bf16 or f16 parameters and writes them from it, rounded, each step.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Which tensors are updated in Burn's own buffers: f32 tensors of at least `min_elements`
    /// (default [`DIRECT_MIN_ELEMENTS`]), written in place, whose ranges the device can bind;
    /// `None` copies every tensor through the arena. A bound tensor's gradient is read where
    /// Burn's backward pass left it and its parameter updated where Burn keeps it: no copy in,
    /// no copy out (16 bytes an element of AdamW's 44). When Burn hands a bound tensor's
    /// gradient in another range than the step before (its memory pool chose another slot),
    /// the optimizer is built again over the new ranges and its state copied over on the
    /// device, once ([`StepStats::rebound`]); Burn's pool usually hands out the same slot.
    /// Not with master weights, 16-bit states or 16-bit parameters (those tensors are copied).
    pub fn with_direct_binding(mut self, min_elements: Option<usize>) -> Self {
        self.direct_min = min_elements;
        self
    }

    /// The device the optimizer steps on.
    pub fn shared_device(&self) -> &SharedDevice {
        &self.shared
    }

    /// The optimizer over the module's parameters, once the first step built it: its state
    /// ([`Optimizer::read_state`]), its control block (gradient norm, skipped steps), its
    /// tensors in the order of [`FusedOptimizer::params`].
    pub fn optimizer(&self) -> Option<&Optimizer> {
        self.built.as_ref().map(|b| &b.optimizer)
    }

    /// What the last step copied besides gradients and parameters out (`None` before the
    /// first step).
    pub fn last_step(&self) -> Option<StepStats> {
        self.built.as_ref().map(|b| b.stats)
    }

    /// The parameters the optimizer steps, in its order (each group's in the module's order),
    /// once the first step built it; empty before.
    pub fn params(&self) -> Vec<&ParamInfo> {
        self.built
            .iter()
            .flat_map(|b| b.slots.iter().map(|s| &s.info))
            .collect()
    }

    /// One optimizer step of every parameter of `module` from `grads`, recorded and submitted
    /// on the shared queue; `lr` is Burn's (an `f64`, or a `ModuleLearningRate` whose rates
    /// must agree within each of this optimizer's groups). The parameters are updated on the
    /// device: in place where no other Burn tensor shares them, as Burn's fused optimizers do,
    /// else into new tensors (a clone of the model taken before the step keeps its values).
    ///
    /// A refused step changes nothing and hands the module back inside the [`StepError`].
    pub fn step<M: Module>(
        &mut self,
        lr: impl Into<ModuleLearningRate>,
        module: M,
        mut grads: GradientsParams,
    ) -> std::result::Result<M, StepError<M>> {
        let found = tensors::collect(&module, &mut grads);
        let grads = match self.prepare(&lr.into(), &found) {
            Ok(grads) => grads,
            Err(error) => return Err(StepError { error, module }),
        };
        drop(found);
        let built = self.built.as_mut().expect("built by prepare");
        let held: Vec<Option<TensorId>> = built
            .slots
            .iter()
            .map(|s| s.held.as_ref().map(|h| h.id))
            .collect();
        let input = PlanInput {
            slots: &built.by_id,
            held: &held,
            widen: self.precision.master_weights && built.resync_master,
            device: &self.shared.device,
        };
        let (module, plans) = tensors::plan(module, &input);
        let plans = match plans {
            Ok(plans) => plans,
            Err(error) => {
                return Err(StepError {
                    error: error.into(),
                    module,
                })
            }
        };
        let direct = self
            .direct_min
            .filter(|_| !self.precision.master_weights)
            .filter(|_| matches!(self.precision.states, None | Some(Dtype::F32)));
        let wanted = built.wanted_bindings(&grads, &plans, direct, self.shared.context.device());
        let was_bound: Vec<bool> = built.bound.iter().map(Option::is_some).collect();
        let rebind = built.rebind(wanted, self.precision, &self.grad);
        if let Err(error) = rebind.and_then(|()| built.write_lrs()) {
            return Err(StepError { error, module });
        }
        let replacements = built.record_step(&grads, plans, &was_bound);
        Ok(tensors::swap(module, replacements))
    }

    /// Everything of a step that can be refused, before the module is touched: builds the
    /// optimizer at the first step, checks what was found against it, reads the learning
    /// rates, and resolves every gradient.
    fn prepare(&mut self, lr: &ModuleLearningRate, found: &[Found]) -> Result<Vec<Resolved>> {
        if self.built.is_none() {
            let mut built = self.build(found)?;
            match &self.pending {
                Some(Pending::Checkpoint(bytes)) => built.load_checkpoint(bytes)?,
                Some(Pending::Record(bytes)) => {
                    built.load_checkpoint(&built.checkpoint_of_record(bytes)?)?
                }
                None => {}
            }
            self.pending = None;
            self.built = Some(built);
        }
        let built = self.built.as_mut().expect("built above");
        let matched = built.match_found(found, &self.shared.device)?;
        built.next_lrs = built.learning_rates(lr)?;
        // Resolving runs and submits Burn's pending work on the gradients: the backward pass.
        let grads: Vec<_> = matched
            .iter()
            .zip(&built.slots)
            .map(|(found, slot)| {
                let grad = found.grad.as_ref().and_then(|g| g.value.as_ref().ok());
                let grad = grad.expect("checked by match_found");
                (grad, slot.info.path.as_str())
            })
            .collect();
        Ok(tensors::resolve_all(&grads, "gradient")?)
    }

    pub(super) fn built_ref(&self) -> Result<&Built> {
        self.built.as_ref().ok_or_else(|| {
            BurnError::Record("the optimizer has no state before its first step".into()).into()
        })
    }

    pub(super) fn built_mut(&mut self) -> Option<&mut Built> {
        self.built.as_mut()
    }

    pub(super) fn set_pending(&mut self, pending: Pending) {
        self.pending = Some(pending);
    }

    /// Builds the arena and the optimizer over the parameters with a gradient, group by group.
    fn build(&self, found: &[Found]) -> Result<Built> {
        let trained: Vec<&Found> = found.iter().filter(|f| f.grad.is_some()).collect();
        let first = trained.first().ok_or(BurnError::NothingToStep)?;
        let param_dtype = first.info.dtype;
        let grad_dtype = first.grad.as_ref().expect("filtered").dtype;
        let dtype = |found: DType, role, path: &str| {
            dtype_of(found).ok_or_else(|| BurnError::Dtype {
                path: path.to_string(),
                role,
                expected: "f32, f16 or bf16".into(),
                found,
            })
        };
        let storage = (
            dtype(param_dtype, "parameter", &first.info.path)?,
            dtype(grad_dtype, "gradient", &first.info.path)?,
        );
        // Each parameter's rule: 0 the default, r + 1 the r-th rule.
        let rule_of = |info: &ParamInfo| {
            self.rules
                .iter()
                .position(|rule| (rule.select)(info))
                .map_or(0, |r| r + 1)
        };
        let mut order: Vec<(usize, &Found)> =
            trained.iter().map(|f| (rule_of(&f.info), *f)).collect();
        order.sort_by_key(|&(rule, _)| rule); // stable: the module's order within a group
        let mut rule_groups = vec![None; self.rules.len() + 1];
        let mut slots = Vec::with_capacity(order.len());
        for &(rule, found) in &order {
            let groups = rule_groups.iter().flatten().count();
            let group = *rule_groups[rule].get_or_insert(groups);
            slots.push(Slot {
                info: found.info.clone(),
                group,
                held: None,
            });
        }
        let lens: Vec<usize> = slots.iter().map(|s| s.info.len()).collect();
        let arena = Arena::with_dtypes(&self.shared.context, &lens, storage.0, storage.1)?;
        let params = arena.params();
        let mut groups: Vec<ParamGroup> = Vec::new();
        for (rule, group) in rule_groups.iter().enumerate() {
            if let Some(group) = *group {
                debug_assert_eq!(group, groups.len());
                let config = match rule {
                    0 => self.config.clone(),
                    r => self.rules[r - 1].config.clone(),
                };
                let members = slots
                    .iter()
                    .zip(&params)
                    .filter(|(s, _)| s.group == group)
                    .map(|(_, p)| p.clone())
                    .collect();
                groups.push(ParamGroup {
                    config,
                    params: members,
                });
            }
        }
        let lrs: Vec<f64> = groups.iter().map(|g| g.config.lr()).collect();
        let group_configs = groups.iter().map(|g| g.config.clone()).collect();
        let mut optimizer =
            Optimizer::with_precision(&self.shared.context, groups, self.precision)?;
        optimizer.set_grad_processing(self.grad.clone())?;
        let by_id = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.info.id, i))
            .collect();
        let grad_ranges = (0..slots.len())
            .map(|i| arena.grad(i))
            .collect::<Result<_>>()?;
        let master_ranges = (0..slots.len())
            .map(|i| optimizer.state_range(i, MASTER_PARAM).ok().cloned())
            .collect();
        Ok(Built {
            _arena: arena,
            optimizer,
            slots,
            by_id,
            next_lrs: lrs.clone(),
            lrs,
            param_ranges: params.iter().map(|p| p.param.clone()).collect(),
            grad_ranges,
            master_ranges,
            param_dtype,
            grad_dtype,
            bound: vec![None; params.len()],
            arena_params: params,
            group_configs,
            direct_failed: false,
            resync_master: true,
            stats: StepStats::default(),
        })
    }
}

impl Built {
    /// Writes the learning rates that changed (validated: all or none).
    fn write_lrs(&mut self) -> Result<()> {
        let changed: Vec<(usize, f64)> = self
            .next_lrs
            .iter()
            .enumerate()
            .filter(|&(g, &lr)| self.lrs[g] != lr)
            .map(|(g, &lr)| (g, lr))
            .collect();
        if !changed.is_empty() {
            self.optimizer.set_group_lrs(&changed)?;
            self.lrs.clone_from(&self.next_lrs);
        }
        Ok(())
    }

    /// Loads a checkpoint of this optimizer (all or nothing); the master copy it restores is
    /// not widened from the parameters at the next step.
    pub(super) fn load_checkpoint(&mut self, bytes: &[u8]) -> Result<()> {
        self.optimizer.load_checkpoint(bytes)?;
        self.resync_master = false;
        Ok(())
    }

    /// Each slot's parameter as found in this step, checked: present, on the device, of the
    /// shape and dtype the optimizer steps, with a gradient of the same; and no gradient for a
    /// parameter the optimizer does not step.
    fn match_found<'f>(
        &self,
        found: &'f [Found],
        device: &::burn::tensor::Device,
    ) -> Result<Vec<&'f Found>> {
        let mut matched: Vec<Option<&Found>> = vec![None; self.slots.len()];
        for f in found {
            match self.by_id.get(&f.info.id) {
                Some(&i) => matched[i] = Some(f),
                None if f.grad.is_some() => {
                    return Err(BurnError::NewGradient {
                        path: f.info.path.clone(),
                    }
                    .into())
                }
                None => {}
            }
        }
        let mut out = Vec::with_capacity(self.slots.len());
        for (slot, f) in self.slots.iter().zip(matched) {
            let path = || slot.info.path.clone();
            let f = f.ok_or_else(|| BurnError::MissingParameter {
                path: path(),
                id: slot.info.id,
            })?;
            let on_device = |role, found: &::burn::tensor::Device| {
                if found == device {
                    Ok(())
                } else {
                    Err(BurnError::OtherDevice {
                        path: path(),
                        role,
                        expected: format!("{device:?}"),
                        found: format!("{found:?}"),
                    })
                }
            };
            let shape = |role, found: &[usize]| {
                if found == slot.info.shape.as_slice() {
                    Ok(())
                } else {
                    Err(BurnError::Shape {
                        path: path(),
                        role,
                        expected: slot.info.shape.clone(),
                        found: found.to_vec(),
                    })
                }
            };
            let dtype = |role, expected: DType, found: DType| {
                if found == expected {
                    Ok(())
                } else {
                    Err(BurnError::Dtype {
                        path: path(),
                        role,
                        expected: format!("{expected:?}, as every other {role}"),
                        found,
                    })
                }
            };
            let wgpu = |role, value: std::result::Result<(), &String>| {
                value
                    .as_ref()
                    .map(|_| ())
                    .map_err(|reason| BurnError::NotWgpu {
                        path: path(),
                        role,
                        reason: reason.to_string(),
                    })
            };
            on_device("parameter", &f.device)?;
            wgpu("parameter", f.value.as_ref().map(|_| ()))?;
            shape("parameter", &f.info.shape)?;
            dtype("parameter", self.param_dtype, f.info.dtype)?;
            let grad = f
                .grad
                .as_ref()
                .ok_or_else(|| BurnError::MissingGradient { path: path() })?;
            on_device("gradient", &grad.device)?;
            wgpu("gradient", grad.value.as_ref().map(|_| ()))?;
            shape("gradient", &grad.shape)?;
            dtype("gradient", self.grad_dtype, grad.dtype)?;
            out.push(f);
        }
        Ok(out)
    }

    /// Each optimizer group's learning rate from Burn's argument: the rate of its parameters,
    /// which must agree.
    fn learning_rates(&self, lr: &ModuleLearningRate) -> Result<Vec<f64>> {
        let mut lrs: Vec<Option<f64>> = vec![None; self.lrs.len()];
        for slot in &self.slots {
            let info = &slot.info;
            // Burn's own lookup panics on a `ModuleLearningRate` without a group.
            let rate = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                lr.lr_from_param(info.id, Some(&info.path))
            }))
            .map_err(|_| BurnError::LearningRate(format!("no rate for parameter {}", info.path)))?;
            match lrs[slot.group] {
                Some(other) if other != rate => {
                    return Err(BurnError::LearningRate(format!(
                        "parameter {} has rate {rate}, others of its group {other}: give a \
                         group of this optimizer one rate",
                        info.path
                    ))
                    .into())
                }
                _ => lrs[slot.group] = Some(rate),
            }
        }
        Ok(lrs.into_iter().map(|lr| lr.unwrap_or_default()).collect())
    }
}
