//! What an optimizer with [Muon groups](super::Optimizer::with_muon) answers and takes about
//! them: their configurations and learning rates, their tensors, shapes and momentum buffers.

use crate::error::{Error, Result};
use crate::gpu::{BufferRange, Param};
use crate::optim::MuonConfig;

impl super::Optimizer {
    /// The configurations of the [Muon groups](super::Optimizer::with_muon), in order (group
    /// `group_configs().len() + i` is Muon group `i`); empty without any.
    pub fn muon_configs(&self) -> &[MuonConfig] {
        self.muon.as_ref().map_or(&[], |m| &m.configs)
    }

    /// Every parameter group's learning rate: the element-wise groups', then the Muon
    /// groups' (the numbers [`Optimizer::set_group_lrs`](super::Optimizer::set_group_lrs) takes).
    pub fn group_lrs(&self) -> Vec<f64> {
        let elementwise = self.configs.iter().map(|c| c.lr());
        elementwise
            .chain(self.muon_configs().iter().map(|c| c.lr))
            .collect()
    }

    /// Replaces Muon group `index`'s hyperparameters (its learning rate, weight decay,
    /// momentum, Nesterov, adjustment) for the steps submitted after this call: a buffer
    /// write, never a rebuild. The iteration's coefficients, steps and eps are the batch's:
    /// changing them is [`Error::StructuralChange`].
    pub fn set_muon_config(&mut self, index: usize, config: MuonConfig) -> Result<()> {
        let count = self.muon_configs().len();
        if index >= count {
            return Err(Error::NoSuchGroup {
                group: index,
                count,
            });
        }
        let mut configs = self.muon_configs().to_vec();
        configs[index] = config;
        let Some(muon) = &mut self.muon else {
            unreachable!("a Muon group exists")
        };
        muon.set_configs(&self.ctx, configs)
    }

    /// The Muon configurations with the learning rates of `lrs` (global group numbers, past
    /// the element-wise groups), validated; `None` when there is nothing to change.
    pub(super) fn muon_lr_changes(&self, lrs: &[&(usize, f64)]) -> Result<Option<Vec<MuonConfig>>> {
        if lrs.is_empty() {
            return Ok(None);
        }
        let first = self.configs.len();
        let mut configs = self.muon_configs().to_vec();
        for &&(group, lr) in lrs {
            let config = configs.get_mut(group - first).ok_or(Error::NoSuchGroup {
                group,
                count: first + self.muon_configs().len(),
            })?;
            config.lr = lr;
            config.validate()?;
        }
        Ok(Some(configs))
    }

    /// Writes validated Muon configurations (from [`Self::muon_lr_changes`]).
    pub(super) fn set_muon_configs(&mut self, configs: Option<Vec<MuonConfig>>) -> Result<()> {
        match (configs, &mut self.muon) {
            (Some(configs), Some(muon)) => muon.set_configs(&self.ctx, configs),
            _ => Ok(()),
        }
    }

    /// Tensors stepped by Muon (numbered after [`Optimizer::params`](super::Optimizer::params)' tensors).
    pub fn muon_params(&self) -> impl Iterator<Item = &Param> {
        self.muon
            .iter()
            .flat_map(|m| m.tensors.iter().map(|t| &t.param))
    }

    /// The shape `(rows, cols)` of each tensor stepped by Muon.
    pub fn muon_shapes(&self) -> Vec<(usize, usize)> {
        self.muon
            .iter()
            .flat_map(|m| m.tensors.iter().map(|t| (t.rows, t.cols)))
            .collect()
    }

    /// The Muon tensor `index` (a number past the element-wise tensors) and its state
    /// `momentum_buffer`, if `index` is one.
    pub(super) fn muon_state(&self, index: usize, name: &str) -> Option<Result<&BufferRange>> {
        let j = index.checked_sub(self.tensors.len())?;
        let muon = self.muon.as_ref()?;
        let tensor = muon.tensors.get(j)?;
        Some(if name == "momentum_buffer" {
            Ok(&tensor.momentum)
        } else {
            Err(Error::NoSuchState {
                optimizer: "Muon",
                name: name.to_string(),
                available: vec!["momentum_buffer"],
            })
        })
    }

    /// The Muon group of tensor `index` (global numbers), if it is a Muon tensor.
    pub(super) fn muon_group_of(&self, index: usize) -> Option<usize> {
        let j = index.checked_sub(self.tensors.len())?;
        let tensor = self.muon.as_ref()?.tensors.get(j)?;
        Some(self.configs.len() + tensor.group)
    }
}
