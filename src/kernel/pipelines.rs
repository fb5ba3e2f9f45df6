//! The pipelines of optimizer kernels: their bind group layouts, the entry points, what varies
//! between the pipelines of one module ([`Variant`]), and the cache keys they are built under.

use std::sync::Arc;

use super::bindings::{Binding, MAX_STATE_SLOTS};
use super::spec::Kernel;
use super::storage::{ElementLayout, Storage};
use crate::error::Result;
use crate::gpu::pipeline::{
    bind_group_layout, check_storage_buffers, compute_pipeline, create_module, flag, BufferEntry,
};
use crate::gpu::Context;

/// The gradient-processing stages a step's kernels compile in. A stage that is off is the
/// identity exactly (without a scaler the inverse scale is 1, without a bound the clamp is
/// none, without a max_norm the coefficient is 1), so leaving it out changes no bit and spares
/// the hot loops its instructions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct GradStages {
    /// Gradient processing is on: a step with non-finite gradients is skipped.
    pub on: bool,
    /// Divide by the loss scale (a GradScaler is on).
    pub unscale: bool,
    /// Clip by value.
    pub clip_value: bool,
    /// Multiply by the global-norm clip coefficient.
    pub clip_norm: bool,
    /// A finite norm other than the 2-norm: the reduction raises `|c|` to `p`.
    pub power_norm: bool,
}

impl GradStages {
    /// The stages either of `self` and `other` needs.
    pub fn union(self, other: GradStages) -> GradStages {
        GradStages {
            on: self.on || other.on,
            unscale: self.unscale || other.unscale,
            clip_value: self.clip_value || other.clip_value,
            clip_norm: self.clip_norm || other.clip_norm,
            power_norm: self.power_norm || other.power_norm,
        }
    }
}

/// A bind group and the grid of workgroups it is dispatched over (a second dimension only
/// past the device's limit per dimension).
pub(crate) struct Dispatch {
    pub group: wgpu::BindGroup,
    pub grid: (u32, u32),
}

impl Dispatch {
    /// Records the dispatch into `pass`, whose pipeline is set.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_bind_group(0, &self.group, &[]);
        pass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
    }
}

/// The bind group layouts of one kernel's entry points, shared by all its pipelines.
pub(crate) struct KernelLayouts {
    pub prologue: wgpu::BindGroupLayout,
    pub update: wgpu::BindGroupLayout,
}

/// An entry point of an optimizer kernel's module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Entry {
    /// Advances the step counter and derives per-step scalars (one invocation).
    Prologue,
    /// The fused update over a chunk's main segments.
    Update,
    /// The vec4 layout's partial vec4s at tensors' ends, stored lane by lane.
    UpdateTail,
    /// A trust-ratio kernel's first pass over main segments (`common/trust.wgsl`).
    UpdateNorms,
    /// A trust-ratio kernel's first pass over tail segments.
    UpdateTailNorms,
    /// A trust-ratio kernel's fold of each tensor's sums into its ratio.
    TrustFold,
}

impl Entry {
    fn name(self) -> &'static str {
        match self {
            Entry::Prologue => "prologue",
            Entry::Update => "update",
            Entry::UpdateTail => "update_tail",
            Entry::UpdateNorms => "update_norms",
            Entry::UpdateTailNorms => "update_tail_norms",
            Entry::TrustFold => "trust_fold",
        }
    }

    /// Whether it walks a main segment table (the update and its first pass).
    fn main(self) -> bool {
        matches!(self, Entry::Update | Entry::UpdateNorms)
    }

    /// Whether it stores the partial units at tensors' ends.
    fn tail(self) -> bool {
        matches!(self, Entry::UpdateTail | Entry::UpdateTailNorms)
    }
}

/// What varies between the pipelines of one kernel with one set of structural options: the
/// gradient-processing stages compiled in, whether there is one parameter group, whether
/// each group has a control block of its own (a population) and whether the plan's main
/// dispatches are regular (each workgroup derives its segment: `Plan::regular`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Variant {
    pub stages: GradStages,
    pub one_group: bool,
    pub group_control: bool,
    pub regular_tiles: bool,
}

/// A kernel's module in one element layout and storage: what a module is compiled from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ModuleKey {
    pub layout: ElementLayout,
    pub storage: Storage,
}

/// Cache key of a kernel's bind group layouts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct LayoutsKey {
    kernel: &'static str,
    master: bool,
    // With 8-bit states: whether the table is a uniform buffer.
    uniform_maps: Option<bool>,
}

/// Cache key of a kernel's module.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct SourceKey {
    kernel: &'static str,
    module: ModuleKey,
}

/// Cache key of one entry point's pipeline.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PipelineKey {
    kernel: &'static str,
    overrides: Vec<(&'static str, bool)>,
    module: ModuleKey,
    tuning: crate::gpu::Tuning,
    variant: Variant,
    entry: Entry,
}

/// The bind group layouts of `kernel` with `storage`'s bindings (the master copy's, the 8-bit
/// states' scales and maps), built on first use.
pub(crate) fn kernel_layouts(
    ctx: &Context,
    kernel: &'static Kernel,
    storage: Storage,
) -> Result<Arc<KernelLayouts>> {
    let master = storage.master;
    let key = LayoutsKey {
        kernel: kernel.name,
        master,
        uniform_maps: storage.quant8.map(|q| q.uniform_maps),
    };
    let entry = |binding: Binding, read_only| {
        if read_only {
            BufferEntry::read(binding.index())
        } else {
            BufferEntry::read_write(binding.index())
        }
    };
    let prologue = [
        entry(Binding::Control, false),
        entry(Binding::Groups, false),
    ];
    let mut update = vec![
        entry(Binding::Control, false),
        entry(Binding::Groups, false),
        entry(Binding::Param, false),
        entry(Binding::Grad, true),
        entry(Binding::Segments, true),
    ];
    if kernel.trust_ratio {
        update.push(entry(Binding::Trust, false));
    }
    debug_assert!(kernel.state_slots <= MAX_STATE_SLOTS);
    if let Some(quant8) = storage.quant8 {
        // One binding of codes and one of scales for every state, and the table: 8 storage
        // buffers for Adam's three slots, as with f32 states and WebGPU's default limit (SGD
        // and Lion, one slot, bind 8 where f32 states take 6); one fewer with the table a
        // uniform buffer.
        update.push(entry(Binding::Codes, false));
        update.push(entry(Binding::Scales, false));
        update.push(if quant8.uniform_maps {
            BufferEntry::uniform(Binding::QuantMaps.index())
        } else {
            entry(Binding::QuantMaps, true)
        });
    } else {
        update.extend((0..kernel.state_slots).map(|slot| entry(Binding::State(slot), false)));
    }
    if master {
        update.push(entry(Binding::Master, false));
    }
    let storage_buffers = update.iter().filter(|e| e.is_storage()).count();
    check_storage_buffers(ctx.device(), kernel.name, storage_buffers)?;
    ctx.cached(key, |device| KernelLayouts {
        prologue: bind_group_layout(device, kernel.name, &prologue),
        update: bind_group_layout(device, kernel.name, &update),
    })
}

/// What one pipeline of a kernel is built with: its structural options, module, variant and
/// entry point.
pub(crate) struct PipelineRequest<'a> {
    pub kernel: &'static Kernel,
    pub overrides: &'a [(&'static str, bool)],
    pub module: ModuleKey,
    pub variant: Variant,
    pub entry: Entry,
}

/// The pipeline `request` describes, built on first use.
pub(crate) fn kernel_pipeline(
    ctx: &Context,
    request: PipelineRequest<'_>,
) -> Result<Arc<wgpu::ComputePipeline>> {
    let PipelineRequest {
        kernel,
        overrides,
        module,
        variant,
        entry,
    } = request;
    let source_key = SourceKey {
        kernel: kernel.name,
        module,
    };
    let shader = ctx.cached(source_key, |device| {
        create_module(
            device,
            kernel.name,
            &kernel.source(module.layout, module.storage),
        )
    })?;
    let layouts = kernel_layouts(ctx, kernel, module.storage)?;
    let tuning = ctx.tuning();
    let key = PipelineKey {
        kernel: kernel.name,
        overrides: overrides.to_vec(),
        module,
        tuning,
        variant,
        entry,
    };
    ctx.cached(key, |device| {
        let stages = variant.stages;
        let mut constants: Vec<(&str, f64)> = overrides
            .iter()
            .map(|&(name, on)| (name, flag(on)))
            .collect();
        constants.push(("GRAD_PROCESSING", flag(stages.on)));
        constants.push(("GROUP_CONTROL", flag(variant.group_control)));
        let bind_layout = match entry {
            Entry::Prologue => &layouts.prologue,
            _ => {
                constants.extend([
                    ("UNSCALE", flag(stages.unscale)),
                    ("CLIP_VALUE", flag(stages.clip_value)),
                    ("CLIP_NORM", flag(stages.clip_norm)),
                    ("ONE_GROUP", flag(variant.one_group)),
                ]);
                &layouts.update
            }
        };
        if entry.main() {
            constants.push(("REGULAR_TILES", flag(variant.regular_tiles)));
        }
        if entry.main() || entry == Entry::TrustFold {
            let workgroup_size = module.storage.workgroup_size(&tuning);
            constants.push(("WORKGROUP_SIZE", f64::from(workgroup_size)));
            constants.push((
                "VEC4S_PER_INVOCATION",
                f64::from(tuning.vec4s_per_invocation),
            ));
        }
        if module.layout == ElementLayout::Vec4 && entry != Entry::Prologue {
            constants.push(("PARTIAL_VEC4S", flag(entry.tail())));
            constants.push(("RUNS", flag(tuning.runs_per_invocation)));
        }
        compute_pipeline(device, &shader, entry.name(), bind_layout, &constants)
    })
}
