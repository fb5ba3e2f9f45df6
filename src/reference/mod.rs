//! The CPU reference: every optimizer in plain Rust, with the same formulas, the same f32
//! operations in the same order and the same state names as the WGSL kernels.
//!
//! It is the oracle of this crate's tests, and a tool for users: run it beside the device to
//! check a new adapter or driver, or to debug a training run on the host.
//!
//! ```
//! use wgpu_optim::{reference, AdamWConfig, OptimizerConfig};
//!
//! let config = OptimizerConfig::AdamW(AdamWConfig::default().with_lr(0.1));
//! let mut adamw = reference::Optimizer::new(&config, &[2])?;
//! let mut params = vec![vec![1.0_f32, -2.0]];
//! adamw.step(&mut params, &[vec![0.5, 0.5]])?;
//! // The first Adam step moves each parameter by about lr against the gradient's sign.
//! assert!((params[0][0] - (1.0 * (1.0 - 0.1 * 0.01) - 0.1)).abs() < 1e-6);
//! assert_eq!(adamw.state(0, "exp_avg")?.len(), 2);
//! # Ok::<(), wgpu_optim::Error>(())
//! ```

mod grad;
mod kernels;
pub mod math;

pub use grad::*;
pub use kernels::*;

use crate::clip::GradConfig;
use crate::dtype::{bf16_bits_stochastic, bf16_to_f32, stochastic_bits, Dtype};
use crate::error::{Error, Result};
use crate::layout::Control;
use crate::optim::{OptimizerConfig, StateSpec};
use crate::shaders::{Rounding, Storage};

/// An optimizer on the host: the oracle the device kernels are checked against.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    states: Vec<StateSpec>,
    grad: Option<GradConfig>,
    // The device's control block, kept on the host.
    control: Control,
    // [tensor][slot][element]; an empty vector for a slot the configuration does not keep.
    slots: Vec<[Vec<f32>; 3]>,
    // The length of each tensor, as given to `new`.
    lens: Vec<usize>,
    // What every load widens from and every store rounds to.
    storage: Storage,
    // [tensor][element]: the f32 master copies, with master weights; empty otherwise.
    masters: Vec<Vec<f32>>,
    // Schedule-Free's running values (lr_max, weight_sum), as the device keeps them in its
    // hyperparameter struct; and whether the parameters are x (eval mode).
    schedule_free: ScheduleFreeRunning,
    // LAMB's and LARS's trust ratios: those the last step computed, and those the next step
    // uses instead (`use_trust_ratios`).
    trust_ratios: Vec<f32>,
    trust_override: Option<Vec<f32>>,
}

/// Schedule-Free's running values and mode, kept across steps and configurations.
#[derive(Clone, Copy, Debug)]
struct ScheduleFreeRunning {
    lr_max: f32,
    weight_sum: f32,
    eval: bool,
}

impl Optimizer {
    /// An optimizer for tensors of the given lengths, its states at their initial values.
    pub fn new(config: &OptimizerConfig, lens: &[usize]) -> Result<Self> {
        Self::with_storage(config, lens, Storage::F32)
    }

    /// An optimizer whose parameters, gradients and states are stored as `storage` says, as
    /// a device optimizer over ranges of those types: every value is held as the f32 its
    /// storage type widens to, each step's math is f32, and each store rounds to the type
    /// (nearest, ties to even: [`Dtype::round`](crate::Dtype::round)), as the kernels do. With
    /// `storage.master`, the step updates an f32 master copy (state `master_param`, copied
    /// from the parameters at the first step) and rounds the parameters from it; with
    /// stochastic rounding, parameter stores round with
    /// [`crate::dtype::stochastic_bits`], as the device does.
    pub fn with_storage(
        config: &OptimizerConfig,
        lens: &[usize],
        storage: Storage,
    ) -> Result<Self> {
        let states = config.states()?;
        let slots = lens
            .iter()
            .map(|&len| {
                let mut slots: [Vec<f32>; 3] = Default::default();
                for state in &states {
                    slots[state.slot] = vec![storage.states.round(state.init); len];
                }
                slots
            })
            .collect();
        Ok(Optimizer {
            config: config.clone(),
            states,
            grad: None,
            control: Control::INITIAL,
            slots,
            lens: lens.to_vec(),
            storage,
            masters: lens
                .iter()
                .map(|&len| {
                    if storage.master {
                        vec![0.0; len]
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            schedule_free: ScheduleFreeRunning {
                lr_max: -1.0,
                weight_sum: 0.0,
                eval: false,
            },
            trust_ratios: vec![1.0; lens.len()],
            trust_override: None,
        })
    }

    /// Schedule-Free's `optimizer.eval()` on `params` (as
    /// [`crate::Optimizer::schedule_free_eval`]): y to x; nothing in eval mode already.
    pub fn schedule_free_eval(&mut self, params: &mut [Vec<f32>]) -> Result<()> {
        self.switch_mode(params, true)
    }

    /// Schedule-Free's `optimizer.train()` on `params`: x to y; nothing in train mode already.
    pub fn schedule_free_train(&mut self, params: &mut [Vec<f32>]) -> Result<()> {
        self.switch_mode(params, false)
    }

    fn switch_mode(&mut self, params: &mut [Vec<f32>], eval: bool) -> Result<()> {
        // eval()'s and train()'s weights of z, as the kernel's hyperparameter struct has them.
        let weights = match &self.config {
            OptimizerConfig::ScheduleFreeAdamW(c) => {
                let h = c.hyper();
                (h.eval_weight, h.train_weight)
            }
            OptimizerConfig::ScheduleFreeSgd(c) => {
                let h = c.hyper();
                (h.eval_weight, h.train_weight)
            }
            _ => return Err(Error::NotScheduleFree(self.config.name())),
        };
        if std::mem::replace(&mut self.schedule_free.eval, eval) == eval {
            return Ok(());
        }
        let storage = self.storage;
        for (tensor, ((param, slots), master)) in params
            .iter_mut()
            .zip(&self.slots)
            .zip(&mut self.masters)
            .enumerate()
        {
            let mut stores = Stores {
                storage,
                step: self.control.step,
                tensor: tensor as u32,
                master,
            };
            for (i, p) in param.iter_mut().enumerate() {
                let mut value = stores.load_param(i, *p);
                schedule_free_switch(&mut value, slots[0][i], eval, self.control.step, weights);
                *p = stores.store_param(i, value);
            }
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Steps taken.
    pub fn step_count(&self) -> u32 {
        self.control.step
    }

    /// The control block, as the device's would read.
    pub fn control(&self) -> Control {
        self.control
    }

    /// Turns gradient processing on or off, as [`crate::Optimizer::set_grad_processing`].
    pub fn set_grad_processing(&mut self, config: Option<GradConfig>) -> Result<()> {
        let Some(config) = config else {
            self.grad = None;
            self.control.nonfinite_step = 0;
            return Ok(());
        };
        config.validate()?;
        if config.resets_scale(self.grad.as_ref()) {
            self.control.grad_scale = config.init_scale_f32();
            self.control.growth_tracker = 0;
        }
        self.control.clip_value = config.clip_value_f32();
        self.grad = Some(config);
        Ok(())
    }

    /// Each tensor's trust ratio as the last step taken computed it (LAMB, LARS: see
    /// [`crate::Optimizer::read_trust_ratios`]); 1 before the first step and for other
    /// optimizers.
    pub fn trust_ratios(&self) -> &[f32] {
        &self.trust_ratios
    }

    /// Makes the next step taken scale each tensor's update by `ratios` instead of the ratios
    /// it computes (which [`Optimizer::trust_ratios`] still reports): the device's ratios,
    /// read with [`crate::Optimizer::read_trust_ratios`], whose norms are summed in another
    /// order. Everything after the ratio is then mirrored operation for operation, as
    /// [`Optimizer::step_with_stats`] does for the clip coefficient.
    pub fn use_trust_ratios(&mut self, ratios: &[f32]) -> Result<()> {
        if ratios.len() != self.lens.len() {
            return Err(Error::WrongLength {
                what: "trust ratios",
                expected: self.lens.len(),
                actual: ratios.len(),
            });
        }
        self.trust_override = Some(ratios.to_vec());
        Ok(())
    }

    /// Clears an `error_if_nonfinite` halt, as [`crate::Optimizer::clear_nonfinite_error`].
    pub fn clear_nonfinite_error(&mut self) {
        self.control.nonfinite_step = 0;
        self.control.found_inf = 0;
    }

    /// Tensor `index`'s state `name` (`master_param`: the master copy, with master weights).
    pub fn state(&self, index: usize, name: &str) -> Result<&[f32]> {
        let slots = self.slots.get(index).ok_or(Error::NoSuchTensor {
            owner: "reference optimizer",
            index,
            count: self.slots.len(),
        })?;
        if name == crate::optim::MASTER_PARAM && self.storage.master {
            return Ok(&self.masters[index]);
        }
        let state =
            self.states
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| Error::NoSuchState {
                    optimizer: self.config.name(),
                    name: name.to_string(),
                    available: self.states.iter().map(|s| s.name).collect(),
                })?;
        Ok(&slots[state.slot])
    }

    /// Sets tensor `index`'s state `name`, as a checkpoint restores it (say, the values a
    /// device optimizer's [`read_state`](crate::Optimizer::read_state) returns after a load).
    pub fn set_state(&mut self, index: usize, name: &str, values: &[f32]) -> Result<()> {
        let expected = self.state(index, name)?.len();
        if values.len() != expected {
            return Err(Error::WrongLength {
                what: "reference state",
                expected,
                actual: values.len(),
            });
        }
        match self.states.iter().find(|s| s.name == name) {
            Some(state) => self.slots[index][state.slot] = values.to_vec(),
            // Found by `state()`: the master copy.
            None => self.masters[index] = values.to_vec(),
        }
        Ok(())
    }

    /// Sets the control block (step counter, loss scale, skip counts...), as a checkpoint
    /// restores it (say, a device optimizer's
    /// [`read_control_unchecked`](crate::Optimizer::read_control_unchecked) after a load).
    pub fn set_control(&mut self, control: Control) {
        self.control = control;
    }

    /// Replaces the hyperparameters, as [`crate::Optimizer::set_config`].
    pub fn set_config(&mut self, config: OptimizerConfig) -> Result<()> {
        if config.states()? != self.states || !config.same_algorithm(&self.config) {
            return Err(Error::StructuralChange(self.config.name()));
        }
        self.config = config;
        Ok(())
    }

    /// One step over every tensor: `params[i]` is updated in place from `grads[i]`, after the
    /// gradient processing when it is on (which may skip the step).
    pub fn step(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>]) -> Result<()> {
        self.check(params, grads)?;
        if let Some(config) = &self.grad {
            let hyper = config.hyper()?;
            // The norm of the gradients as stored.
            let dtype = self.storage.grad;
            let stored: Vec<Vec<f32>> = grads
                .iter()
                .map(|g| g.iter().map(|&x| dtype.round(x)).collect())
                .collect();
            let stats = norm_stats(&stored, &self.control, &hyper);
            self.step_with_stats(params, grads, stats)
        } else {
            self.update(params, grads);
            Ok(())
        }
    }

    /// The second half of a data-parallel step, as [`crate::Optimizer::record_update`]: the
    /// finalize from `stats` (all-reduced [`norm_stats`] of every device), then the update.
    pub fn step_with_stats(
        &mut self,
        params: &mut [Vec<f32>],
        grads: &[Vec<f32>],
        stats: crate::NormStats,
    ) -> Result<()> {
        self.check(params, grads)?;
        let config = self.grad.as_ref().ok_or(Error::NoGradProcessing)?;
        finalize(&mut self.control, &config.hyper()?, stats);
        if self.control.found_inf == 0 {
            self.update(params, grads);
        }
        Ok(())
    }

    // The prologue and the update.
    fn update(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>]) {
        self.control.step += 1;
        let step = self.control.step as f32;
        let first_step = self.control.step == 1;
        let control = self.grad.is_some().then_some(self.control);
        let storage = self.storage;
        // Schedule-Free's prologue, once per step: its running values carry on.
        let running = &mut self.schedule_free;
        let (mut schedule_free_adamw, mut schedule_free_sgd) = (None, None);
        match &self.config {
            OptimizerConfig::ScheduleFreeAdamW(c) => {
                let mut h = c.hyper();
                (h.lr_max, h.weight_sum) = (running.lr_max, running.weight_sum);
                prepare_schedule_free_adamw(&mut h, step);
                (running.lr_max, running.weight_sum) = (h.lr_max, h.weight_sum);
                schedule_free_adamw = Some(h);
            }
            OptimizerConfig::ScheduleFreeSgd(c) => {
                let mut h = c.hyper();
                (h.lr_max, h.weight_sum) = (running.lr_max, running.weight_sum);
                prepare_schedule_free_sgd(&mut h, step);
                (running.lr_max, running.weight_sum) = (h.lr_max, h.weight_sum);
                schedule_free_sgd = Some(h);
            }
            _ => {}
        }
        let trust_override = self.trust_override.take();
        let tensors = params.iter_mut().zip(grads).zip(&mut self.slots);
        for (tensor, (((param, grad), slots), master)) in tensors.zip(&mut self.masters).enumerate()
        {
            let stores = &mut Stores {
                storage,
                step: self.control.step,
                tensor: tensor as u32,
                master,
            };
            // Without gradient processing or rounding the gradients are used as they are,
            // uncopied.
            let widened = |g: f32| storage.grad.round(g);
            let grad: std::borrow::Cow<[f32]> = match &control {
                Some(control) => grad
                    .iter()
                    .map(|&g| load_grad(widened(g), control))
                    .collect(),
                None if storage.grad.is_16bit() => grad.iter().map(|&g| widened(g)).collect(),
                None => grad.into(),
            };
            let grad = &*grad;
            match &self.config {
                OptimizerConfig::Sgd(c) => {
                    let (h, o) = (c.hyper(), c.options());
                    each_element(stores, param, grad, slots, &mut |p, g, s| {
                        sgd_math(p, g, &mut s[0], first_step, &h, o)
                    });
                }
                OptimizerConfig::Adagrad(c) => {
                    let (mut h, o) = (c.hyper(), c.options());
                    prepare_adagrad(&mut h, step);
                    each_element(stores, param, grad, slots, &mut |p, g, s| {
                        adagrad_math(p, g, &mut s[0], &h, o)
                    });
                }
                OptimizerConfig::RmsProp(c) => {
                    let (mut h, o) = (c.hyper(), c.options());
                    prepare_rmsprop(&mut h, step, o);
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, s2]| {
                        rmsprop_math(p, g, s0, s1, s2, &h, o)
                    });
                }
                OptimizerConfig::Adam(c) => adam(c, step, stores, param, grad, slots),
                OptimizerConfig::AdamW(c) => adam(&c.to_adam(), step, stores, param, grad, slots),
                OptimizerConfig::AdaBelief(c) => {
                    let (mut h, o) = (c.hyper(), c.options());
                    prepare_adabelief(&mut h, step, o);
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, s2]| {
                        adabelief_math(p, g, s0, s1, s2, &h, o)
                    });
                }
                OptimizerConfig::Lion(c) => {
                    let (h, o) = (c.hyper(), c.options());
                    each_element(stores, param, grad, slots, &mut |p, g, s| {
                        lion_math(p, g, &mut s[0], &h, o)
                    });
                }
                OptimizerConfig::Adamax(c) => {
                    let (mut h, o) = (c.hyper(), c.options());
                    prepare_adam(&mut h, step);
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, _]| {
                        adamax_math(p, g, s0, s1, &h, o)
                    });
                }
                OptimizerConfig::NAdam(c) => {
                    let (mut h, o) = (c.hyper(), c.options());
                    prepare_nadam(&mut h, step, o);
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, _]| {
                        nadam_math(p, g, s0, s1, &h, o)
                    });
                }
                OptimizerConfig::RAdam(c) => {
                    let (mut h, o) = (c.hyper(), c.options());
                    prepare_radam(&mut h, step, o);
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, _]| {
                        radam_math(p, g, s0, s1, &h, o)
                    });
                }
                OptimizerConfig::Adadelta(c) => {
                    let (h, o) = (c.hyper(), c.options());
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, _]| {
                        adadelta_math(p, g, s0, s1, &h, o)
                    });
                }
                OptimizerConfig::Adopt(c) => {
                    let (mut h, o) = (c.hyper(), c.options());
                    prepare_adopt(&mut h, step, o);
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, _]| {
                        adopt_math(p, g, s0, s1, first_step, &h, o)
                    });
                }
                OptimizerConfig::ScheduleFreeAdamW(_) => {
                    let h = schedule_free_adamw.as_ref().expect("prepared above");
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, _]| {
                        schedule_free_begin(p, s0, first_step);
                        schedule_free_adamw_math(p, g, s0, s1, h)
                    });
                }
                OptimizerConfig::Lamb(c) => {
                    let mut h = c.hyper();
                    prepare_lamb(&mut h, step);
                    // First pass: the moments, and the norms of p and of the direction.
                    let mut sums = Squares::default();
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, _]| {
                        lamb_moments(g, s0, s1, &h);
                        sums.add(*p, lamb_direction(*p, *s0, *s1, &h));
                    });
                    let ratio = sums.ratio(h.trust_coefficient, h.trust_eps, h.trust_on);
                    self.trust_ratios[tensor] = ratio;
                    let ratio = trust_override.as_ref().map_or(ratio, |r| r[tensor]);
                    // Second: the update from the stored moments.
                    each_element(stores, param, grad, slots, &mut |p, _, [s0, s1, _]| {
                        *p -= h.lr * (lamb_direction(*p, *s0, *s1, &h) * ratio);
                    });
                }
                OptimizerConfig::Lars(c) => {
                    let h = c.hyper();
                    let mut sums = Squares::default();
                    each_element(stores, param, grad, slots, &mut |p, g, _| {
                        sums.add(*p, lars_direction(*p, g, &h));
                    });
                    let ratio = sums.ratio(h.trust_coefficient, h.trust_eps, h.trust_on);
                    self.trust_ratios[tensor] = ratio;
                    let ratio = trust_override.as_ref().map_or(ratio, |r| r[tensor]);
                    each_element(stores, param, grad, slots, &mut |p, g, s| {
                        lars_apply(p, g, &mut s[0], ratio, &h, c.nesterov)
                    });
                }
                OptimizerConfig::ScheduleFreeSgd(_) => {
                    let h = schedule_free_sgd.as_ref().expect("prepared above");
                    each_element(stores, param, grad, slots, &mut |p, g, [s0, _, _]| {
                        schedule_free_begin(p, s0, first_step);
                        schedule_free_sgd_math(p, g, s0, h)
                    });
                }
            }
        }
    }

    fn check(&self, params: &[Vec<f32>], grads: &[Vec<f32>]) -> Result<()> {
        for (what, actual) in [("params", params.len()), ("grads", grads.len())] {
            if actual != self.slots.len() {
                return Err(Error::WrongLength {
                    what,
                    expected: self.slots.len(),
                    actual,
                });
            }
        }
        for (index, (param, grad)) in params.iter().zip(grads).enumerate() {
            if param.len() != grad.len() {
                return Err(Error::LengthMismatch {
                    index,
                    param_len: param.len() as u64,
                    grad_len: grad.len() as u64,
                });
            }
            if param.len() != self.lens[index] {
                return Err(Error::WrongLength {
                    what: "param",
                    expected: self.lens[index],
                    actual: param.len(),
                });
            }
        }
        Ok(())
    }
}

fn adam(
    c: &crate::AdamConfig,
    step: f32,
    stores: &mut Stores,
    param: &mut [f32],
    grad: &[f32],
    slots: &mut [Vec<f32>; 3],
) {
    let (mut h, o) = (c.hyper(), c.options());
    prepare_adam(&mut h, step);
    each_element(stores, param, grad, slots, &mut |p, g, [s0, s1, s2]| {
        adam_math(p, g, s0, s1, s2, &h, o)
    });
}

/// The sums of squares of one tensor's parameters and directions (LAMB, LARS), in f64: the
/// device sums in f32 in a tree, so the two differ by rounding, well within the tolerance.
#[derive(Default)]
struct Squares {
    param: f64,
    direction: f64,
}

impl Squares {
    fn add(&mut self, p: f32, u: f32) {
        self.param += f64::from(p) * f64::from(p);
        self.direction += f64::from(u) * f64::from(u);
    }

    /// The tensor's trust ratio.
    fn ratio(&self, coefficient: f32, eps: f32, on: f32) -> f32 {
        let norm = |sum: f64| (sum as f32).sqrt();
        trust_ratio(
            norm(self.param),
            norm(self.direction),
            coefficient,
            eps,
            on != 0.0,
        )
    }
}

/// What the stores of one tensor's update do: round to the storage types, keep the master
/// copy, round the parameters stochastically.
struct Stores<'a> {
    storage: Storage,
    step: u32,
    tensor: u32,
    // The tensor's master copy, with master weights.
    master: &'a mut Vec<f32>,
}

impl Stores<'_> {
    /// Parameter `i` as the update reads it: from the master copy after the first step.
    fn load_param(&self, i: usize, param: f32) -> f32 {
        let param = self.storage.param.round(param);
        match self.master.get(i) {
            Some(&master) if self.step > 1 => master,
            _ => param,
        }
    }

    /// Stores parameter `i`: into the master copy, and rounded into the parameter.
    fn store_param(&mut self, i: usize, value: f32) -> f32 {
        if let Some(master) = self.master.get_mut(i) {
            *master = value;
        }
        match self.storage.rounding {
            Rounding::Stochastic { seed } if self.storage.param == Dtype::BF16 => {
                let random = stochastic_bits(seed, self.step, self.tensor, i as u32);
                bf16_to_f32(bf16_bits_stochastic(value, random))
            }
            _ => self.storage.param.round(value),
        }
    }
}

/// Calls `f` on each element (the parameter as its type widens it, or its master copy) with
/// its three state slots (zero for slots not kept), then stores the parameter and the slots
/// that are kept, as `stores` says.
fn each_element(
    stores: &mut Stores,
    param: &mut [f32],
    grad: &[f32],
    slots: &mut [Vec<f32>; 3],
    f: &mut dyn FnMut(&mut f32, f32, &mut [f32; 3]),
) {
    for (i, (p, &g)) in param.iter_mut().zip(grad).enumerate() {
        let mut s = [0.0_f32; 3];
        for (value, slot) in s.iter_mut().zip(slots.iter()) {
            if let Some(&v) = slot.get(i) {
                *value = v;
            }
        }
        let mut value = stores.load_param(i, *p);
        f(&mut value, g, &mut s);
        *p = stores.store_param(i, value);
        for (value, slot) in s.iter().zip(slots.iter_mut()) {
            if let Some(v) = slot.get_mut(i) {
                *v = stores.storage.states.round(*value);
            }
        }
    }
}
