//! AdamW runs `shaders/adam.wgsl` with decoupled weight decay: its mirror is Adam's.

use super::step::{Mirror, Tensor};
use crate::optim::{AdamConfig, AdamWConfig};

impl Mirror for AdamWConfig {
    type Prepared = <AdamConfig as Mirror>::Prepared;

    fn prologue(&self, step: f32, running: &mut [f32]) -> Self::Prepared {
        self.to_adam().prologue(step, running)
    }

    fn update(&self, prepared: &Self::Prepared, tensor: &mut Tensor<'_>) {
        self.to_adam().update(prepared, tensor);
    }
}
