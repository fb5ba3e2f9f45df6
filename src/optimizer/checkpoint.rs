//! Optimizer-state checkpoints as safetensors files, with PyTorch's `state_dict` names.
//!
//! A checkpoint holds, for tensor `i` (in the order the optimizer was built with):
//! `state.<i>.<name>` (`[len]`, in the states' storage type: F32, F16 or BF16) for each state
//! buffer (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, ...), `state.<i>.master_param` (F32)
//! with master weights, and `state.<i>.step` (an f64 scalar: PyTorch keeps the step as a
//! floating-point tensor, and f64 holds every step count exactly, where f32 stops at 2^24);
//! for NAdam (PyTorch's form), `state.<i>.mu_product` (an f32 scalar, as PyTorch keeps it),
//! derived from the step and the group's running values and written for PyTorch's sake only:
//! loading ignores it and restores the running values;
//! for a tensor of a [Muon group](Optimizer::with_muon) (numbered after the others),
//! `state.<i>.momentum_buffer` (`[rows, cols]`, F32) and its step, and its group's
//! hyperparameters after the others' groups, with `muon_groups` (their count) in the metadata;
//! GradScaler's `grad_scaler.scale` (f32) and `grad_scaler._growth_tracker` (i32); and
//! `wgpu_optim.control`, the whole device [`Control`] block as u32 bits, which
//! is what loading restores. The metadata holds the optimizer's name, the tensor and group
//! counts and every hyperparameter as `param_groups.<g>.<name>` (betas as `beta1`, `beta2`);
//! the running values the prologue keeps on the device, read back when saving and written back
//! (checked as strictly as hyperparameters) when loading: for Schedule-Free AdamW and SGD
//! `param_groups.<g>.lr_max` and `param_groups.<g>.weight_sum` (as PyTorch's `param_groups`
//! holds them), for NAdam `param_groups.<g>.mu_ln_beta1`, `mu_ln_base` and `mu_ln_excess` (see
//! [`NAdamRunning`](crate::NAdamRunning)); for Schedule-Free also `schedule_free.mode`
//! (`eval` or `train`): the mode the parameters saved beside the file are in (x or y), which
//! loading restores, so that `schedule_free_train` after a load moves x back to y. Parameters
//! themselves are not in it: like PyTorch's `optimizer.state_dict()`, it is the optimizer's
//! state, saved beside the model's.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

#[cfg(any(feature = "burn", test))]
use super::quant8::ByteRange;
use super::quant8::StatePiece;
use super::Optimizer;
use crate::error::{Error, Result};
use crate::kernel::Control;
use crate::optim::{Fields, MuonConfig, OptimizerConfig};

/// The safetensors dtype of a storage type.
pub(super) fn safetensors_dtype(dtype: crate::dtype::Dtype) -> Dtype {
    match dtype {
        crate::dtype::Dtype::F32 => Dtype::F32,
        crate::dtype::Dtype::F16 => Dtype::F16,
        crate::dtype::Dtype::BF16 => Dtype::BF16,
    }
}

fn mismatch<T>(what: String) -> Result<T> {
    Err(Error::CheckpointMismatch(what))
}

const FORMAT: &str = "wgpu-optim optimizer checkpoint 1";
const CONTROL: &str = "wgpu_optim.control";
const SCHEDULE_FREE_MODE: &str = "schedule_free.mode";
const MUON_GROUPS: &str = "muon_groups";
const MOMENTUM_BUFFER: &str = "momentum_buffer";

/// Each group's configuration and running values, as a checkpoint gives them.
struct LoadedGroups {
    configs: Vec<OptimizerConfig>,
    muon: Vec<MuonConfig>,
    running: Vec<Vec<f32>>,
}

impl Optimizer {
    /// The optimizer's state as a safetensors file in memory (reads every state buffer back:
    /// blocking, for checkpoints between steps).
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let controls = self.read_controls()?;
        let running = self.read_running()?;
        let control = controls[0];
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        // Tensors of one span share their state buffers: read each buffer back once.
        // A Buffer hashes by its identity, not by anything its interior mutability touches.
        #[allow(clippy::mutable_key_type)]
        let mut buffers: HashMap<wgpu::Buffer, Vec<u8>> = HashMap::new();
        let mut read_at = |buffer: &wgpu::Buffer, start: u64, end: u64| -> Result<Vec<u8>> {
            if !buffers.contains_key(buffer) {
                let bytes = self.context().read_bytes(buffer, 0, buffer.size())?;
                buffers.insert(buffer.clone(), bytes);
            }
            Ok(buffers[buffer][start as usize..end as usize].to_vec())
        };
        for (i, _) in self.params().enumerate() {
            for name in self.state_names() {
                for piece in self.state_pieces(i, name)? {
                    let mut bytes = Vec::new();
                    for r in &piece.ranges {
                        bytes.extend(read_at(&r.buffer, r.offset, r.end)?);
                    }
                    tensors.push((piece.name, piece.dtype, piece.shape, bytes));
                }
            }
            // A population's replica steps by its own counter.
            let k = if self.is_population() {
                self.group_of(i).unwrap_or(0)
            } else {
                0
            };
            let step = f64::from(controls[k].step).to_le_bytes().to_vec();
            tensors.push((format!("state.{i}.step"), Dtype::F64, vec![], step));
            // Per-parameter f32 scalars of PyTorch's state_dict that are functions of the step
            // and the group's running values here (NAdam's mu_product), written for PyTorch
            // and not read back.
            let group = self.group_of(i).unwrap_or(0);
            let config = &self.group_configs()[group];
            for (name, value) in config.checkpoint_scalars(controls[k].step, &running[group]) {
                let bytes = value.to_le_bytes().to_vec();
                tensors.push((format!("state.{i}.{name}"), Dtype::F32, vec![], bytes));
            }
        }
        // Muon's tensors, numbered after the others: their momentum, shaped as the matrix.
        let first = self.params().count();
        let shapes = self.muon_shapes();
        for (j, &(rows, cols)) in shapes.iter().enumerate() {
            let i = first + j;
            // Every Muon tensor's momentum lies in one buffer: read back once.
            let range = self.state_range(i, MOMENTUM_BUFFER)?;
            let bytes = read_at(range.buffer(), range.offset(), range.end())?;
            tensors.push((
                format!("state.{i}.{MOMENTUM_BUFFER}"),
                Dtype::F32,
                vec![rows, cols],
                bytes,
            ));
            let step = f64::from(control.step).to_le_bytes().to_vec();
            tensors.push((format!("state.{i}.step"), Dtype::F64, vec![], step));
        }
        tensors.push((
            "grad_scaler.scale".into(),
            Dtype::F32,
            vec![],
            control.grad_scale.to_le_bytes().to_vec(),
        ));
        tensors.push((
            "grad_scaler._growth_tracker".into(),
            Dtype::I32,
            vec![],
            (control.growth_tracker as i32).to_le_bytes().to_vec(),
        ));
        let words = controls.len() * std::mem::size_of::<Control>() / 4;
        let control_bytes = bytemuck::cast_slice(&controls).to_vec();
        tensors.push((CONTROL.into(), Dtype::U32, vec![words], control_bytes));

        let mut metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("optimizer".to_string(), self.config().name().to_string()),
            ("tensors".to_string(), (first + shapes.len()).to_string()),
        ]);
        let groups = self.group_configs().len();
        metadata.insert(
            "groups".into(),
            (groups + self.muon_configs().len()).to_string(),
        );
        if !shapes.is_empty() {
            metadata.insert(MUON_GROUPS.into(), self.muon_configs().len().to_string());
        }
        for (m, config) in self.muon_configs().iter().enumerate() {
            for (name, value) in config.hyperparameters() {
                metadata.insert(format!("param_groups.{}.{name}", groups + m), value);
            }
        }
        for (group, config) in self.group_configs().iter().enumerate() {
            for (name, value) in config.hyperparameters() {
                metadata.insert(format!("param_groups.{group}.{name}"), value);
            }
        }
        // The running values the prologue keeps in each group's record (Schedule-Free's under
        // the keys PyTorch's `param_groups` gives them; NAdam's `mu_ln_*`), as f32 text that
        // parses back exactly.
        let names = self.running_names();
        for (group, values) in running.iter().enumerate() {
            for (name, value) in names.iter().zip(values) {
                metadata.insert(format!("param_groups.{group}.{name}"), value.to_string());
            }
        }
        // Schedule-Free's mode: the parameters saved beside this file are x in eval mode,
        // y in train mode. Each group's `train_mode` (the package keeps one in each param
        // group) is among the running values above; this key says it once, for readers.
        if self.has_switch() {
            let mode = if self.is_schedule_free_eval()? {
                "eval"
            } else {
                "train"
            };
            metadata.insert(SCHEDULE_FREE_MODE.into(), mode.into());
        }
        let views = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes).map(|view| (name.as_str(), view))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Checkpoint(e.to_string()))?;
        safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Checkpoint(e.to_string()))
    }

    /// Writes [`Optimizer::checkpoint`] to `path`.
    pub fn save_checkpoint(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        std::fs::write(path, self.checkpoint()?).map_err(|e| Error::Checkpoint(e.to_string()))
    }

    /// Restores a checkpoint of this optimizer: every state buffer, the step counter and the
    /// control block (loss scale, skip counts), and the hyperparameters. Stepping afterwards
    /// gives bit-identical results to never having stopped.
    ///
    /// A file that is not a checkpoint, or whose control block no optimizer can step from
    /// ([`Error::Checkpoint`]), or one of another optimizer, tensor count, tensor length,
    /// structural option, or with a hyperparameter spelled twice
    /// ([`Error::CheckpointMismatch`]), or with 8-bit states a block scale that is neither 0
    /// (before the first step) nor a finite f32 of at least 1e-12 (also `CheckpointMismatch`:
    /// a NaN would spread to its block's states), is refused before anything is written. The
    /// control block is checked against this optimizer's gradient processing (see
    /// `loaded_control` in src/optimizer/checkpoint.rs: a loss scale without a scaler is reset
    /// to 1, an `error_if_nonfinite` halt is cleared for an optimizer that skips).
    pub fn load_checkpoint(&mut self, bytes: &[u8]) -> Result<()> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| Error::Checkpoint(e.to_string()))?;
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| Error::Checkpoint(e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        self.check_header(&metadata)?;
        let metadata = self.with_train_modes(metadata)?;
        let groups = self.loaded_groups(&metadata)?;

        // Every state buffer, with its shape, before anything is written.
        let tensor = |name: &str, dtype: Dtype, shape: &[usize]| {
            let view = file
                .tensor(name)
                .map_err(|_| Error::CheckpointMismatch(format!("no tensor {name}")))?;
            if view.dtype() != dtype || view.shape() != shape {
                return mismatch(format!(
                    "{name} is {:?} {:?}, not {dtype:?} {shape:?}",
                    view.dtype(),
                    view.shape()
                ));
            }
            Ok(view.data())
        };
        let mut states = Vec::new();
        for i in 0..self.params().count() {
            for state in self.state_names() {
                for piece in self.state_pieces(i, state)? {
                    let data = tensor(&piece.name, piece.dtype, &piece.shape)?;
                    piece.check_loaded(data)?;
                    states.push((piece, data));
                }
            }
        }
        let first = self.params().count();
        for (j, (rows, cols)) in self.muon_shapes().into_iter().enumerate() {
            let name = format!("state.{}.{MOMENTUM_BUFFER}", first + j);
            let range = self.state_range(first + j, MOMENTUM_BUFFER)?;
            let data = tensor(&name, Dtype::F32, &[rows, cols])?;
            states.push((StatePiece::of_range(name, vec![rows, cols], range), data));
        }
        let words = self.control_blocks() * std::mem::size_of::<Control>() / 4;
        let control = tensor(CONTROL, Dtype::U32, &[words])?
            .chunks_exact(std::mem::size_of::<Control>())
            .enumerate()
            .map(|(k, bytes)| self.loaded_control(k, bytemuck::pod_read_unaligned(bytes)))
            .collect::<Result<Vec<Control>>>()?;
        // The running values, checked against the step of the control block each group steps
        // by (its own in a population), as strictly as the hyperparameters.
        for (group, (config, values)) in groups.configs.iter().zip(&groups.running).enumerate() {
            let k = if self.is_population() { group } else { 0 };
            config.check_running(control[k].step, values)?;
        }

        self.set_group_configs(groups.configs.into_iter().enumerate().collect())?;
        self.set_muon_configs(Some(groups.muon))?;
        for (group, values) in groups.running.iter().enumerate() {
            if !values.is_empty() {
                self.write_running(group, values);
            }
        }
        for (piece, mut data) in states {
            for r in &piece.ranges {
                let (bytes, rest) = data.split_at(((r.end - r.offset) as usize).min(data.len()));
                // A 16-bit state of odd length ends inside a word: the word's other half is
                // padding of the state buffer (the next tensor starts on an aligned offset).
                let mut bytes = bytes.to_vec();
                bytes.resize(((r.end - r.offset).next_multiple_of(4)) as usize, 0);
                self.context()
                    .queue()
                    .write_buffer(&r.buffer, r.offset, &bytes);
                data = rest;
            }
        }
        self.context().queue().write_buffer(
            self.control_buffer(),
            0,
            bytemuck::cast_slice(&control),
        );
        Ok(())
    }

    /// Refuses a file of another format, optimizer, tensor count or group count.
    fn check_header(&self, metadata: &HashMap<String, String>) -> Result<()> {
        let field = |key: &str| {
            metadata
                .get(key)
                .map(String::as_str)
                .ok_or_else(|| Error::Checkpoint(format!("no metadata {key:?}")))
        };
        if field("format")? != FORMAT {
            return Err(Error::Checkpoint(format!(
                "unknown format {:?}",
                field("format")?
            )));
        }
        let name = self.config().name();
        if field("optimizer")? != name {
            return mismatch(format!("a {} checkpoint, not {name}", field("optimizer")?));
        }
        let count = self.params().count() + self.muon_shapes().len();
        if field("tensors")? != count.to_string() {
            return mismatch(format!("{} tensors, not {count}", field("tensors")?));
        }
        let muon = self.muon_configs().len();
        let muon_groups = metadata.get(MUON_GROUPS).map_or("0", String::as_str);
        if muon_groups != muon.to_string() {
            return mismatch(format!("{muon_groups} Muon groups, not {muon}"));
        }
        let groups = self.group_configs().len() + muon;
        if field("groups")? != groups.to_string() {
            return mismatch(format!(
                "{} parameter groups, not {groups}",
                field("groups")?
            ));
        }
        Ok(())
    }

    /// The metadata with Schedule-Free's mode checked: `schedule_free.mode` (`eval` or
    /// `train`, the mode the parameters saved with the file are in) present exactly for
    /// optimizers with the switch, and every group's `train_mode` running value agreeing
    /// with it; a file written before the mode was a running value gets them from it.
    fn with_train_modes(
        &self,
        mut metadata: HashMap<String, String>,
    ) -> Result<HashMap<String, String>> {
        let mode = metadata.get(SCHEDULE_FREE_MODE).map(String::as_str);
        let train_mode = match (self.has_switch(), mode) {
            (true, Some("eval")) => "0",
            (true, Some("train")) => "1",
            (false, None) => return Ok(metadata),
            (_, mode) => return mismatch(format!("{SCHEDULE_FREE_MODE} = {mode:?}")),
        };
        for group in 0..self.group_configs().len() {
            let key = format!("param_groups.{group}.train_mode");
            let value = metadata
                .entry(key.clone())
                .or_insert_with(|| train_mode.into());
            if value.parse::<f32>().ok() != train_mode.parse::<f32>().ok() {
                return mismatch(format!("{key} = {value:?} beside {SCHEDULE_FREE_MODE}"));
            }
        }
        Ok(metadata)
    }

    /// The hyperparameters of each group, with the same structure (kernel, options, states)
    /// and new values, and each group's running values, from `param_groups.<g>.<name>`.
    fn loaded_groups(&self, metadata: &HashMap<String, String>) -> Result<LoadedGroups> {
        let groups = self.group_configs().len();
        let mut configs = self.group_configs().to_vec();
        let mut muon = self.muon_configs().to_vec();
        let running_names = self.running_names();
        let mut running = vec![vec![None; running_names.len()]; groups];
        for (key, value) in metadata {
            let Some(rest) = key.strip_prefix("param_groups.") else {
                continue;
            };
            // Only the canonical spelling of a group number (`0`, not `00` or `+0`): one key
            // per hyperparameter, whatever order the metadata map iterates in.
            let parsed = rest.split_once('.').and_then(|(group, name)| {
                let number = group.parse::<usize>().ok()?;
                (number.to_string() == group).then_some((number, name))
            });
            let applied = parsed.is_some_and(|(group, name)| {
                match running_names.iter().position(|&n| n == name) {
                    Some(i) => match (running.get_mut(group), value.parse::<f32>()) {
                        (Some(values), Ok(v)) => values[i].replace(v).is_none(),
                        _ => false,
                    },
                    None => match configs.get_mut(group) {
                        Some(config) => config.set_hyperparameter(name, value),
                        None => muon
                            .get_mut(group - groups)
                            .is_some_and(|config| config.set_hyperparameter(name, value)),
                    },
                }
            });
            if !applied {
                return mismatch(format!("hyperparameter {key} = {value:?}"));
            }
        }
        for config in &configs {
            self.check_structure(config)?;
        }
        for (config, current) in muon.iter().zip(self.muon_configs()) {
            config.validate()?;
            if config.iteration() != current.iteration() {
                return Err(Error::StructuralChange("Muon"));
            }
        }
        let running = running
            .into_iter()
            .enumerate()
            .map(|(group, values)| {
                values
                    .iter()
                    .zip(&running_names)
                    .map(|(v, name)| {
                        v.ok_or_else(|| {
                            Error::CheckpointMismatch(format!("no param_groups.{group}.{name}"))
                        })
                    })
                    .collect::<Result<Vec<f32>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LoadedGroups {
            configs,
            muon,
            running,
        })
    }

    /// The control block to restore from a checkpoint's, checked against this optimizer's
    /// gradient processing so that stepping afterwards is correct:
    ///
    /// - `step`: kept; `u32::MAX` is refused (the next step would wrap to 0), and so is a
    ///   `step + skipped_steps` past `u32::MAX` (a schedule counting iterations,
    ///   [`ScheduleCounter::Iterations`](crate::ScheduleCounter::Iterations), would wrap to an
    ///   early row);
    /// - `grad_scale` and `growth_tracker`: kept when this optimizer has a GradScaler, which
    ///   needs a finite scale > 0 (a normal f32) and a tracker below its `growth_interval`
    ///   (refused otherwise); without one, reset to 1 and 0, as
    ///   [`Optimizer::set_grad_processing`] sets them;
    /// - `nonfinite_step` (an `error_if_nonfinite` halt): kept when this optimizer halts on
    ///   non-finite gradients, cleared otherwise (an optimizer that skips never halts);
    /// - `skipped_steps` and `grad_norm`: kept (counts and the last logged norm);
    /// - `clip_value`: this optimizer's bound (configuration, not state); `found_inf`,
    ///   `clip_coef` and `inv_grad_scale`: reset to what a fresh step starts from (each step
    ///   recomputes them before use).
    ///
    /// A population's checkpoint holds one control block per replica (`wgpu_optim.control` of
    /// `replicas * 10` words), each checked against that replica's gradient processing.
    fn loaded_control(&self, k: usize, mut control: Control) -> Result<Control> {
        let invalid = |what: String| Err(Error::Checkpoint(format!("control block: {what}")));
        if control.step == u32::MAX {
            return invalid("step counter u32::MAX: the next step would wrap to 0".into());
        }
        if control
            .step
            .checked_add(control.skipped_steps)
            .is_none_or(|n| n == u32::MAX)
        {
            return invalid(format!(
                "{} steps and {} skipped: their sum, the iteration count, passes u32",
                control.step, control.skipped_steps
            ));
        }
        let processing = self.group_grad_processing(k);
        match processing.and_then(|c| c.grad_scaler.as_ref()) {
            Some(scaler) => {
                let scale = control.grad_scale;
                if !(scale.is_finite() && scale >= f32::MIN_POSITIVE) {
                    return invalid(format!("loss scale {scale} is not a finite f32 > 0"));
                }
                if control.growth_tracker >= scaler.growth_interval {
                    return invalid(format!(
                        "growth tracker {} at or past the growth interval {}",
                        control.growth_tracker, scaler.growth_interval
                    ));
                }
            }
            None => {
                control.grad_scale = 1.0;
                control.growth_tracker = 0;
            }
        }
        if !processing.is_some_and(|c| c.error_if_nonfinite) {
            control.nonfinite_step = 0;
        }
        control.clip_value = processing.map_or(f32::INFINITY, |c| c.clip_value_f32());
        control.found_inf = 0;
        control.clip_coef = 1.0;
        control.inv_grad_scale = 1.0 / control.grad_scale;
        Ok(control)
    }

    /// Reads `path` and [`Optimizer::load_checkpoint`]s it.
    pub fn load_checkpoint_file(&mut self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::Checkpoint(e.to_string()))?;
        self.load_checkpoint(&bytes)
    }
}

impl Optimizer {
    /// Records, into `encoder`, copies making this optimizer's device state `from`'s: every
    /// tensor's state ranges (8-bit states: codes and block scales), the control block (step
    /// counter, loss scale, skip flags) and the groups' records (learning rates, running
    /// values). For an optimizer built anew over the
    /// same tensors at other buffer ranges (the Burn adapter binding Burn's buffers): no host
    /// round trip, where a checkpoint would read every state back.
    ///
    /// Both must have been built from the same groups and configurations; what can be checked
    /// (tensor count, lengths, groups, states and their storage, buffer sizes) is, and a
    /// mismatch records nothing. 16-bit states must lie on whole 32-bit words (a copy moves
    /// words; a word shared by two tensors of one span could carry a neighbour's element).
    #[cfg(feature = "burn")]
    pub(crate) fn copy_state_from(
        &self,
        from: &Optimizer,
        encoder: &mut wgpu::CommandEncoder,
    ) -> Result<()> {
        let names = self.state_names();
        let same = self.tensors.len() == from.tensors.len()
            && names == from.state_names()
            && self.control.size() == from.control.size()
            && self.groups.size() == from.groups.size()
            && (self.tensors.iter().zip(&from.tensors))
                .all(|(a, b)| a.param.len() == b.param.len() && a.group == b.group);
        if !same {
            return mismatch("the optimizers differ in their tensors, states or groups".into());
        }
        // Each state's pieces: its range, or with 8-bit states its codes and block scales; alike
        // in both (names, storage types, shapes) or nothing is recorded.
        let mut copies = Vec::new();
        for i in 0..self.tensors.len() {
            for name in &names {
                let (to, src) = (self.state_pieces(i, name)?, from.state_pieces(i, name)?);
                let alike = to.len() == src.len()
                    && (to.iter().zip(&src))
                        .all(|(a, b)| (&a.name, a.dtype, &a.shape) == (&b.name, b.dtype, &b.shape));
                if !alike {
                    return mismatch(format!(
                        "state {name} of tensor {i} is stored otherwise (its type, or 8-bit codes)"
                    ));
                }
                let words = |p: &StatePiece| {
                    (p.ranges.iter()).all(|r| r.offset.is_multiple_of(4) && r.end.is_multiple_of(4))
                };
                if !to.iter().chain(&src).all(words) {
                    return mismatch(format!(
                        "state {name} of tensor {i} does not lie on whole 32-bit words"
                    ));
                }
                // An 8-bit state longer than a binding is in parts, cut where each optimizer's
                // chunks end: the two may cut it at other block edges.
                for (src, to) in src.iter().zip(&to) {
                    for (a, src_offset, b, to_offset, bytes) in paired(&src.ranges, &to.ranges) {
                        let (src, to) = (&src.ranges[a].buffer, &to.ranges[b].buffer);
                        copies.push((src.clone(), src_offset, to.clone(), to_offset, bytes));
                    }
                }
            }
        }
        for (src, src_offset, to, to_offset, bytes) in copies {
            // A range taken over from `from` (`with_precision_reusing`) is already in place.
            let taken_over = src == to && src_offset == to_offset;
            if bytes > 0 && !taken_over {
                encoder.copy_buffer_to_buffer(&src, src_offset, &to, to_offset, bytes);
            }
        }
        encoder.copy_buffer_to_buffer(&from.control, 0, &self.control, 0, self.control.size());
        encoder.copy_buffer_to_buffer(&from.groups, 0, &self.groups, 0, self.groups.size());
        Ok(())
    }
}

/// The copies that move the bytes of `from` into `to`, two lists of ranges holding the same
/// bytes in order but cut at other places: `(i, offset in from[i], j, offset in to[j],
/// bytes)`, each within one range of either side.
#[cfg(any(feature = "burn", test))]
fn paired(from: &[ByteRange], to: &[ByteRange]) -> Vec<(usize, u64, usize, u64, u64)> {
    let (mut i, mut j) = (0, 0);
    let (mut from_at, mut to_at) = (from.first().map(|r| r.offset), to.first().map(|r| r.offset));
    let mut copies = Vec::new();
    while let (Some(a), Some(b)) = (from_at, to_at) {
        let bytes = (from[i].end - a).min(to[j].end - b);
        copies.push((i, a, j, b, bytes));
        from_at = Some(a + bytes);
        to_at = Some(b + bytes);
        if a + bytes == from[i].end {
            i += 1;
            from_at = from.get(i).map(|r| r.offset);
        }
        if b + bytes == to[j].end {
            j += 1;
            to_at = to.get(j).map(|r| r.offset);
        }
    }
    copies
}

#[cfg(test)]
mod tests {
    use super::{paired, ByteRange};

    /// Byte ranges of one buffer cut at `cuts` (each range `[cuts[k], cuts[k + 1])`).
    fn ranges(buffer: &wgpu::Buffer, cuts: &[u64]) -> Vec<ByteRange> {
        cuts.windows(2)
            .map(|w| ByteRange {
                buffer: buffer.clone(),
                offset: w[0],
                end: w[1],
            })
            .collect()
    }

    #[test]
    fn parts_cut_at_other_places_pair_byte_for_byte() {
        let ctx = crate::Context::new_blocking()
            .unwrap_or_else(|e| panic!("the tests need a wgpu adapter: {e}"));
        let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 4096,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        // 1024 bytes: `from` in three parts from 0, `to` in two from 2048.
        let from = ranges(&buffer, &[0, 256, 768, 1024]);
        let to = ranges(&buffer, &[2048, 2560, 3072]);
        let copies = paired(&from, &to);
        assert_eq!(
            copies,
            [
                (0, 0, 0, 2048, 256),
                (1, 256, 0, 2304, 256),
                (1, 512, 1, 2560, 256),
                (2, 768, 1, 2816, 256),
            ]
        );
        // Every byte once, in order, on both sides.
        let mut next = (0, 2048);
        for &(_, a, _, b, bytes) in &copies {
            assert_eq!((a, b), next);
            next = (a + bytes, b + bytes);
        }
        assert_eq!(next, (1024, 3072));
        assert!(paired(&from, &[]).is_empty() && paired(&[], &to).is_empty());
    }
}
