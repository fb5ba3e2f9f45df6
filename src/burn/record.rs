//! The optimizer's state in Burn's record format and as this crate's checkpoint.
//!
//! Burn's `ModuleOptimizer::to_record` writes a burnpack file whose tensors are named
//! `"{param_id}.{field}"` and carry the parameter's id, state tensors shaped like their
//! parameter, with each parameter's module path in the metadata under its id. A
//! [`FusedOptimizer`] record is that file for this crate's state: its safetensors checkpoint
//! (see [`Optimizer::checkpoint`](crate::Optimizer::checkpoint)) with `state.<i>.<name>`
//! renamed `"{param_id}.{name}"`, every other entry (the control block, the loss scale) under
//! its checkpoint name, and the checkpoint's metadata (the algorithm, the hyperparameters)
//! beside the paths. Loading maps the ids back to this optimizer's tensors and loads the
//! checkpoint, with every check [`Optimizer::load_checkpoint`](crate::Optimizer::load_checkpoint)
//! makes: a record of another model, algorithm or shape changes nothing.

use std::collections::HashMap;

use ::burn::module::ParamId;
use burn_pack::{Bytes, DType, Reader, Writer};
use safetensors::tensor::{Dtype as StDtype, TensorView};
use safetensors::SafeTensors;

use super::optimizer::{Built, FusedOptimizer, Pending};
use super::BurnError;
use crate::error::{Error, Result};
use crate::optimizer::MASTER_PARAM;

fn record_error(e: impl std::fmt::Display) -> Error {
    BurnError::Record(e.to_string()).into()
}

fn to_pack(dtype: StDtype) -> Result<DType> {
    Ok(match dtype {
        StDtype::F32 => DType::F32,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F64 => DType::F64,
        StDtype::U32 => DType::U32,
        StDtype::I32 => DType::I32,
        other => return Err(record_error(format!("no burnpack type for {other:?}"))),
    })
}

fn to_safetensors(dtype: DType) -> Result<StDtype> {
    Ok(match dtype {
        DType::F32 => StDtype::F32,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::F64 => StDtype::F64,
        DType::U32 => StDtype::U32,
        DType::I32 => StDtype::I32,
        other => return Err(record_error(format!("a tensor of type {other:?}"))),
    })
}

impl Built {
    /// The names of the per-tensor state arrays (`exp_avg`, ..., `master_param`).
    fn array_names(&self) -> Vec<&'static str> {
        let mut names = self.optimizer.state_names();
        if self.optimizer.state_range(0, MASTER_PARAM).is_ok() {
            names.push(MASTER_PARAM);
        }
        names
    }

    /// The checkpoint as a burnpack record keyed by parameter id.
    fn record(&self) -> Result<Vec<u8>> {
        let checkpoint = self.optimizer.checkpoint()?;
        let file = SafeTensors::deserialize(&checkpoint).map_err(record_error)?;
        let (_, header) = SafeTensors::read_metadata(&checkpoint).map_err(record_error)?;
        let arrays = self.array_names();
        let mut tensors = Vec::new();
        for (name, view) in file.tensors() {
            let parsed = name
                .strip_prefix("state.")
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(i, field)| Some((i.parse::<usize>().ok()?, field)));
            let bytes = Bytes::from_bytes_vec(view.data().to_vec());
            let dtype = to_pack(view.dtype())?;
            let tensor = match parsed {
                Some((i, field)) => {
                    let slot = self.slots.get(i).ok_or_else(|| record_error(&name))?;
                    let id = slot.info.id.val();
                    let shape = if arrays.contains(&field) {
                        slot.info.shape.clone()
                    } else {
                        view.shape().to_vec()
                    };
                    burn_pack::Tensor::new(format!("{id}.{field}"), dtype, shape, Some(id), bytes)
                }
                None => burn_pack::Tensor::new(name, dtype, view.shape().to_vec(), None, bytes),
            };
            tensors.push(tensor);
        }
        let mut writer = Writer::new(tensors);
        for (key, value) in header.metadata().iter().flatten() {
            writer = writer.with_metadata(key, value);
        }
        for slot in &self.slots {
            writer = writer.with_metadata(&slot.info.id.val().to_string(), &slot.info.path);
        }
        Ok(writer.into_bytes().map_err(record_error)?.to_vec())
    }

    /// A burnpack record back to this optimizer's checkpoint.
    pub(super) fn checkpoint_of_record(&self, record: &[u8]) -> Result<Vec<u8>> {
        let reader =
            Reader::from_bytes(Bytes::from_bytes_vec(record.to_vec())).map_err(record_error)?;
        // Burn's paths are keyed by the id alone; everything else is the checkpoint's.
        let metadata: HashMap<String, String> = reader
            .metadata()
            .iter()
            .filter(|(key, _)| key.parse::<u64>().is_err())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let index: HashMap<u64, usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.info.id.val(), i))
            .collect();
        let arrays = self.array_names();
        let mut entries: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for tensor in reader.into_tensors().map_err(record_error)? {
            let (name, dtype, shape, param_id, bytes) =
                tensor.into_parts().map_err(record_error)?;
            let dtype = to_safetensors(dtype)?;
            let shape = shape.to_vec();
            let (name, shape) = match param_id {
                Some(id) => {
                    let i = *index.get(&id).ok_or_else(|| {
                        record_error(format!(
                            "parameter {} of the record is not one this optimizer steps",
                            ParamId::from(id)
                        ))
                    })?;
                    let field = name.strip_prefix(&format!("{id}.")).ok_or_else(|| {
                        record_error(format!("{name} is not named by its id {id}"))
                    })?;
                    let shape = if arrays.contains(&field) {
                        vec![shape.iter().product()]
                    } else {
                        shape
                    };
                    (format!("state.{i}.{field}"), shape)
                }
                None => (name, shape),
            };
            entries.push((name, dtype, shape, bytes.to_vec()));
        }
        let views = entries
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes).map(|view| (name.as_str(), view))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(record_error)?;
        safetensors::serialize(views, Some(metadata)).map_err(record_error)
    }
}

impl FusedOptimizer {
    /// The optimizer's state in Burn's record format (burnpack, keyed by parameter id, as
    /// Burn's `ModuleOptimizer::to_record` writes its own): blocking, between steps. Refused
    /// before the first step, which builds the state.
    pub fn to_record_bytes(&self) -> Result<Vec<u8>> {
        self.built_ref()?.record()
    }

    /// Writes [`FusedOptimizer::to_record_bytes`] to `path`.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        std::fs::write(path, self.to_record_bytes()?).map_err(record_error)
    }

    /// Restores a record of [`FusedOptimizer::to_record_bytes`]: the next step continues bit
    /// for bit where the saved optimizer would have. Before the first step it is kept and
    /// loaded when the first step builds the optimizer (that step is refused if it does not
    /// fit); after, it is checked and loaded now. A record of another model (a parameter id
    /// this optimizer does not step), algorithm, group layout or shape changes nothing.
    pub fn load_record_bytes(&mut self, record: &[u8]) -> Result<()> {
        match self.built_mut() {
            Some(built) => {
                let checkpoint = built.checkpoint_of_record(record)?;
                built.load_checkpoint(&checkpoint)
            }
            None => {
                // At least a burnpack file, now; the rest when the optimizer is built.
                Reader::from_bytes(Bytes::from_bytes_vec(record.to_vec())).map_err(record_error)?;
                self.set_pending(Pending::Record(record.to_vec()));
                Ok(())
            }
        }
    }

    /// Reads `path` and [`FusedOptimizer::load_record_bytes`] it.
    pub fn load(&mut self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let bytes = std::fs::read(path).map_err(record_error)?;
        self.load_record_bytes(&bytes)
    }

    /// The optimizer's state as this crate's safetensors checkpoint
    /// ([`Optimizer::checkpoint`](crate::Optimizer::checkpoint); tensor `i` is
    /// [`FusedOptimizer::params`]'s `i`-th). Refused before the first step.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        self.built_ref()?.optimizer.checkpoint()
    }

    /// Restores a checkpoint of [`FusedOptimizer::checkpoint`], as
    /// [`FusedOptimizer::load_record_bytes`] restores a record.
    pub fn load_checkpoint(&mut self, bytes: &[u8]) -> Result<()> {
        match self.built_mut() {
            Some(built) => built.load_checkpoint(bytes),
            None => {
                SafeTensors::deserialize(bytes).map_err(|e| Error::Checkpoint(e.to_string()))?;
                self.set_pending(Pending::Checkpoint(bytes.to_vec()));
                Ok(())
            }
        }
    }
}
