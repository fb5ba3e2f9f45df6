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

mod common;
mod grad;
mod muon;
mod step;

/// Mirrors of `shaders/common/math.wgsl`, operation for operation, in f32.
pub mod math {
    pub use crate::kernel::math::{bias_correction, expm1_nonpositive, lerp, sign};
}

pub use common::*;
pub use grad::*;
pub use muon::{newton_schulz, newton_schulz_with_floor, Matrix, Muon};

use crate::error::{Error, Result};
use crate::grad::GradConfig;
use crate::kernel::{Control, StateSpec, Storage, MASTER_PARAM};
use crate::optim::{OptimizerConfig, ScheduleFreeRunning};
use crate::quant::{quantizes, Quantized};
use step::{Mirror, Stores, Tensor, TrustSlot};

/// Generates, from the registry: each optimizer's mirror module (`src/reference/<name>.rs`,
/// its WGSL functions and its [`Mirror`]) and the dispatch of a configuration to its mirror.
macro_rules! mirrors {
    ($($(#[$doc:meta])* $variant:ident($config:ident) in $module:ident;)*) => {
        $(mod $module;
        #[allow(unused_imports)]
        pub use $module::*;)*

        impl Optimizer {
            /// The prologue and the update of the configuration's kernel over every tensor.
            fn run_kernel(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>]) {
                match self.config.clone() {
                    $(OptimizerConfig::$variant(config) => self.run(&config, params, grads),)*
                }
            }
        }

        /// Schedule-Free's `eval()` and `train()` weights of `config`'s kernel, if it has the
        /// switch.
        fn switch_weights(config: &OptimizerConfig) -> Option<SwitchWeights> {
            match config {
                $(OptimizerConfig::$variant(config) => config.switch_weights(),)*
            }
        }
    };
}
crate::optim::optimizers!(mirrors);

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
    // The running values the prologue carries (Schedule-Free's lr_max and weight_sum, NAdam's
    // running mu_product), as the device keeps them in its group record: f32 words.
    running: Vec<f32>,
    // LAMB's and LARS's trust ratios: those the last step computed, and those the next step
    // uses instead (`use_trust_ratios`).
    trust_ratios: Vec<f32>,
    trust_override: Option<Vec<f32>>,
    // [tensor][state, in `states` order]: with 8-bit states (`storage.quant8`), the codes and
    // scales the device keeps; `slots` then holds what they dequantize to.
    quantized: Vec<Vec<Quantized>>,
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
        let spec = config.lower()?;
        let states = spec.states;
        let running = bytemuck::pod_collect_to_vec(&spec.running);
        // 8-bit states for the tensors torchao quantizes; none (full precision) for the others.
        let quantized: Vec<Vec<Quantized>> = match storage.quant8 {
            Some(quant) => lens
                .iter()
                .map(|&len| {
                    let zeros = |s: &StateSpec| Quantized::zeros(len, !quant.unsigned[s.slot]);
                    if quantizes(len as u64) {
                        states.iter().map(zeros).collect()
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let slots = lens
            .iter()
            .enumerate()
            .map(|(t, &len)| {
                let mut slots: [Vec<f32>; 3] = Default::default();
                for (k, state) in states.iter().enumerate() {
                    slots[state.slot] = match quantized.get(t).and_then(|q| q.get(k)) {
                        Some(q) => q.dequantize(),
                        None => vec![storage.states.round(state.init); len],
                    };
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
            running,
            trust_ratios: vec![1.0; lens.len()],
            trust_override: None,
            quantized,
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
        // eval()'s and train()'s weights of z, as the kernel's hyperparameters have them.
        let weights = switch_weights(&self.config)
            .ok_or_else(|| Error::NotScheduleFree(self.config.name()))?;
        // The switch's optimizers carry Schedule-Free's running values, `train_mode` among
        // them: the mode, and whether this switch moves anything, as the device's prologue
        // derives them.
        let running: &mut ScheduleFreeRunning = step::running_of(&mut self.running);
        let step = self.control.step as f32;
        let (moves, train_mode) = schedule_free_mode(running.train_mode, step, Some(eval));
        running.train_mode = train_mode;
        if moves == 0.0 {
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

    /// The running values the prologue carries, as the device's group record holds them
    /// (the kernel's `Running` as f32 words: Schedule-Free's `lr_max` and `weight_sum`,
    /// NAdam's [`NAdamRunning`](crate::NAdamRunning)); empty for the other optimizers.
    pub fn running(&self) -> &[f32] {
        &self.running
    }

    /// Sets the running values (as [`Optimizer::running`] gives them), as a checkpoint of the
    /// device's would restore them; [`Error::WrongLength`] for another count.
    pub fn set_running(&mut self, values: &[f32]) -> Result<()> {
        if values.len() != self.running.len() {
            return Err(Error::WrongLength {
                what: "running values",
                expected: self.running.len(),
                actual: values.len(),
            });
        }
        self.running.copy_from_slice(values);
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
        if name == MASTER_PARAM && self.storage.master {
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
        stats: crate::grad::NormStats,
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
        self.run_kernel(params, grads);
        self.requantize();
    }

    /// With 8-bit states: each state quantized block by block from the f32 values the update
    /// left (which the parameters' update used), and replaced by what the codes stand for.
    fn requantize(&mut self) {
        for (slots, quantized) in self.slots.iter_mut().zip(&mut self.quantized) {
            for (state, q) in self.states.iter().zip(quantized.iter_mut()) {
                *q = Quantized::new(&slots[state.slot], q.signed);
                slots[state.slot] = q.dequantize();
            }
        }
    }

    /// With 8-bit states, the codes and scales of state `name` of tensor `index`, as the
    /// device's [`read_quantized_state`](crate::Optimizer::read_quantized_state) reads them.
    pub fn quantized_state(&self, index: usize, name: &str) -> Result<&Quantized> {
        let tensor = (self.quantized.get(index))
            .filter(|q| !q.is_empty())
            .ok_or(Error::Quantized(
                "no such tensor, or its states are full precision",
            ))?;
        let position = self.states.iter().position(|s| s.name == name);
        position
            .map(|k| &tensor[k])
            .ok_or_else(|| Error::NoSuchState {
                optimizer: self.config.name(),
                name: name.to_string(),
                available: self.states.iter().map(|s| s.name).collect(),
            })
    }

    /// With 8-bit states, sets the codes and scales of state `name` of tensor `index`, as a
    /// checkpoint restores them (say, what a device optimizer's
    /// [`read_quantized_state`](crate::Optimizer::read_quantized_state) reads after a load);
    /// the state's values are what they dequantize to. `state` must be the tensor's length,
    /// with a scale per block and the state's map.
    pub fn set_quantized_state(
        &mut self,
        index: usize,
        name: &str,
        state: Quantized,
    ) -> Result<()> {
        let current = self.quantized_state(index, name)?;
        if state.signed != current.signed {
            return Err(Error::Quantized(
                "the state's other map (signed or unsigned)",
            ));
        }
        for (what, expected, actual) in [
            ("reference codes", current.codes.len(), state.codes.len()),
            ("reference scales", current.scales.len(), state.scales.len()),
        ] {
            if expected != actual {
                return Err(Error::WrongLength {
                    what,
                    expected,
                    actual,
                });
            }
        }
        let k = (self.states.iter())
            .position(|s| s.name == name)
            .expect("found by quantized_state");
        self.slots[index][self.states[k].slot] = state.dequantize();
        self.quantized[index][k] = state;
        Ok(())
    }

    /// `mirror`'s prologue, then its update of each tensor, which sees the gradients as the
    /// device loads them: widened from their storage type, and processed (unscaled, clipped)
    /// with gradient processing on.
    fn run<M: Mirror>(&mut self, mirror: &M, params: &mut [Vec<f32>], grads: &[Vec<f32>]) {
        let step = self.control.step as f32;
        let prepared = mirror.prologue(step, &mut self.running);
        let control = self.grad.is_some().then_some(self.control);
        let storage = self.storage;
        let given = self.trust_override.take();
        let tensors = params.iter_mut().zip(grads).zip(&mut self.slots);
        let tensors = tensors.zip(&mut self.masters).zip(&mut self.trust_ratios);
        for (index, ((((param, grad), slots), master), computed)) in tensors.enumerate() {
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
            let mut tensor = Tensor {
                stores: Stores {
                    storage,
                    step: self.control.step,
                    tensor: index as u32,
                    master,
                },
                param,
                grad: &grad,
                slots,
                trust: TrustSlot {
                    computed,
                    given: given.as_ref().map(|ratios| ratios[index]),
                },
            };
            mirror.update(&prepared, &mut tensor);
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
