//! The dispatches of a step: each chunk's bind groups and grids, the pipelines they run with,
//! and LAMB's and LARS's trust-ratio fold.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::SpanStates;
use crate::error::{Error, Result};
use crate::gpu::pipeline::bind_group;
use crate::gpu::Context;
use crate::kernel::plan::{grid, DevicePlan, Plan, Role, TableSlice, TAIL_WORKGROUP};
use crate::kernel::{
    kernel_layouts, kernel_pipeline, Binding, Dispatch, ElementLayout, Entry, KernelSpec,
    ModuleKey, PipelineRequest, Storage, Variant,
};

/// The dispatches of one binding-size chunk: the update over its main segments and, in the
/// vec4 layout, the tail dispatch over its partial vec4s.
pub(super) struct ChunkDispatch {
    pub layout: ElementLayout,
    /// Whether its span keeps 8-bit states.
    pub quantized: bool,
    pub main: Vec<Dispatch>,
    pub tail: Vec<Dispatch>,
}

/// A trust-ratio kernel's fold over every tensor: its bind group (chunk 0's with the plan's
/// tensor folds as segments) and grid; with the buffer of per-slot sums and ratios.
pub(super) struct TrustFold {
    pub fold: Dispatch,
    pub sums: wgpu::Buffer,
}

/// The pipelines of one pass over every chunk: per layout, and the tails; and the vec4
/// layout's with 8-bit states.
pub(super) struct UpdatePipelines {
    pub vec4: Option<Arc<wgpu::ComputePipeline>>,
    pub tail: Option<Arc<wgpu::ComputePipeline>>,
    pub scalar: Option<Arc<wgpu::ComputePipeline>>,
    pub quantized: Option<Arc<wgpu::ComputePipeline>>,
}

/// The storage of the chunks whose spans keep 8-bit states (`quantized`: `storage` itself)
/// or full-precision ones (`storage` without 8-bit states).
pub(super) fn chunk_storage(storage: Storage, quantized: bool) -> Storage {
    if quantized {
        storage
    } else {
        Storage {
            quant8: None,
            ..storage
        }
    }
}

impl UpdatePipelines {
    /// The pipeline of the main dispatches of `layout`, with 8-bit states or without.
    pub fn of(&self, layout: ElementLayout, quantized: bool) -> &wgpu::ComputePipeline {
        let pipeline = match (layout, quantized) {
            (_, true) => &self.quantized,
            (ElementLayout::Vec4, false) => &self.vec4,
            (ElementLayout::Scalar, false) => &self.scalar,
        };
        pipeline
            .as_deref()
            .expect("built for every layout the plan uses")
    }
}

/// The pipelines a step records with, for the variant in force: those the plan's chunks need.
pub(super) struct Pipelines {
    pub prologue: Arc<wgpu::ComputePipeline>,
    pub update: UpdatePipelines,
    // A trust-ratio kernel's first pass and fold (LAMB, LARS); `update` is then its second.
    pub trust: Option<(UpdatePipelines, Arc<wgpu::ComputePipeline>)>,
}

impl Pipelines {
    /// The pipelines of `variant` that the chunks of `plan` need, built on first use.
    pub fn new(
        ctx: &Context,
        spec: &KernelSpec,
        storage: Storage,
        plan: &Plan,
        variant: Variant,
    ) -> Result<Pipelines> {
        let with_storage = |overrides: &[(&'static str, bool)], layout, entry, quantized| {
            let request = PipelineRequest {
                kernel: spec.kernel,
                overrides,
                module: ModuleKey {
                    layout,
                    storage: chunk_storage(storage, quantized),
                },
                variant,
                entry,
            };
            kernel_pipeline(ctx, request)
        };
        let with_overrides = |overrides: &[(&'static str, bool)], layout, entry| {
            with_storage(overrides, layout, entry, false)
        };
        let pipeline = |layout, entry| with_overrides(&spec.overrides, layout, entry);
        let needs = |layout, quantized| {
            (plan.chunks.iter()).any(|c| c.layout == layout && c.quantized == quantized)
        };
        let tails = plan.chunks.iter().any(|c| !c.tails.is_empty());
        // One pass over every chunk with these entry points.
        let pass = |main: Entry, tail: Entry, overrides: &[(&'static str, bool)]| {
            let build = |layout, entry| with_overrides(overrides, layout, entry);
            Ok::<_, Error>(UpdatePipelines {
                vec4: needs(ElementLayout::Vec4, false)
                    .then(|| build(ElementLayout::Vec4, main))
                    .transpose()?,
                tail: tails
                    .then(|| build(ElementLayout::Vec4, tail))
                    .transpose()?,
                scalar: needs(ElementLayout::Scalar, false)
                    .then(|| build(ElementLayout::Scalar, main))
                    .transpose()?,
                quantized: needs(ElementLayout::Vec4, true)
                    .then(|| with_storage(overrides, ElementLayout::Vec4, main, true))
                    .transpose()?,
            })
        };
        let trust = if spec.kernel.trust_ratio {
            let mut first = spec.overrides.clone();
            first.push(("TRUST_APPLY", false));
            let norms = pass(Entry::UpdateNorms, Entry::UpdateTailNorms, &first)?;
            Some((norms, pipeline(ElementLayout::Vec4, Entry::TrustFold)?))
        } else {
            None
        };
        let prologue = with_storage(
            &spec.overrides,
            ElementLayout::Vec4,
            Entry::Prologue,
            plan.all_quantized(),
        )?;
        Ok(Pipelines {
            prologue,
            update: pass(Entry::Update, Entry::UpdateTail, &spec.overrides)?,
            trust,
        })
    }
}

/// The optimizer's buffers every update bind group binds besides the plan's.
pub(super) struct BoundBuffers<'a> {
    pub control: &'a wgpu::Buffer,
    pub groups: &'a wgpu::Buffer,
    /// Each span's state buffers.
    pub span_states: &'a [SpanStates],
    /// With 8-bit states, the quantization table (`quant::device_table`).
    pub quant_maps: Option<&'a wgpu::Buffer>,
    /// How the states are stored (8-bit for the spans of quantized tensors).
    pub storage: Storage,
}

/// Each chunk's dispatches, and a trust-ratio kernel's fold with its per-slot sums (each slot
/// starting as a ratio of 1, what `read_trust_ratios` reports before the first fold).
pub(super) fn chunk_dispatches(
    ctx: &Context,
    spec: &KernelSpec,
    plan: &DevicePlan,
    bound: &BoundBuffers<'_>,
) -> Result<(Vec<ChunkDispatch>, Option<TrustFold>)> {
    // The layouts of the kinds of chunk the plan has (with master weights and 8-bit states,
    // full-precision states may bind more storage buffers than the device allows, and need
    // not be built where every tensor's states are quantized).
    let layouts = [false, true].map(|quantized| {
        let needed = plan.plan.chunks.iter().any(|c| c.quantized == quantized);
        needed.then(|| kernel_layouts(ctx, spec.kernel, chunk_storage(bound.storage, quantized)))
    });
    let layouts: Vec<Option<_>> = layouts
        .into_iter()
        .map(Option::transpose)
        .collect::<Result<_>>()?;
    let device = ctx.device();
    // LAMB's and LARS's per-slot sums (p^2, u^2), then ratios: 8 bytes a segment.
    let trust = spec.kernel.trust_ratio.then(|| {
        let initial = vec![[1.0_f32, 0.0]; plan.plan.slots.max(1) as usize];
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-optim trust"),
            contents: bytemuck::cast_slice(&initial),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
    });
    let max_x = ctx.max_workgroups();
    let mut fold_group = None;
    let dispatches = plan
        .plan
        .chunks
        .iter()
        .map(|chunk| {
            let len = chunk.bound_len();
            let param = plan.range(chunk, Role::Param as usize, len);
            let grad = plan.range(chunk, Role::Grad as usize, len);
            let mut entries = vec![
                (Binding::Control, bound.control.as_entire_binding()),
                (Binding::Groups, bound.groups.as_entire_binding()),
                (Binding::Param, param.binding()),
                (Binding::Grad, grad.binding()),
            ];
            let span = &bound.span_states[chunk.span];
            let states = span.states.iter().map(|s| s.slice(chunk.offset, len));
            let mut states: Vec<_> = spec.states.iter().map(|s| s.slot).zip(states).collect();
            let master = span.master.as_ref().map(|m| m.slice(chunk.offset, len));
            if let Some(master) = &master {
                entries.push((Binding::Master, master.binding()));
            }
            if let Some(trust) = &trust {
                entries.push((Binding::Trust, trust.as_entire_binding()));
            }
            states.sort_by_key(|(slot, _)| *slot);
            if let Some(maps) = bound.quant_maps.filter(|_| chunk.quantized) {
                // 8-bit states: the chunk's regions of its span's codes and scales, every
                // kept state's in one binding of each (`allocate_states`).
                let region = |buffer, offset, size: u64| {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset,
                        size: std::num::NonZeroU64::new(size),
                    })
                };
                let (q, len) = (&span.quant[0][0], chunk.quant_len());
                let codes = region(&q.codes, chunk.quant.codes, len.codes);
                let scales = region(q.scales.buffer(), 4 * chunk.quant.scales, 4 * len.scales);
                entries.push((Binding::Codes, codes));
                entries.push((Binding::Scales, scales));
                entries.push((Binding::QuantMaps, maps.as_entire_binding()));
            } else {
                for slot in 0..spec.kernel.state_slots {
                    let resource = match states.iter().find(|(s, _)| *s == slot) {
                        Some((_, range)) => range.binding(),
                        // A slot the configuration does not keep binds 16 bytes of zeros.
                        None => ctx.placeholder(slot).as_entire_binding(),
                    };
                    entries.push((Binding::State(slot), resource));
                }
            }
            let group = |table: wgpu::BindingResource<'_>| {
                let mut entries: Vec<_> = entries
                    .iter()
                    .map(|(binding, resource)| (binding.index(), resource.clone()))
                    .collect();
                entries.push((Binding::Segments.index(), table));
                let layout = &layouts[usize::from(chunk.quantized)]
                    .as_ref()
                    .expect("built for every kind of chunk the plan has")
                    .update;
                bind_group(device, "wgpu-optim update", layout, &entries)
            };
            // Each dispatch's grid, and its table: its slice, or a regular plan's ends.
            let dispatches = |slices: &[TableSlice], tables: &[TableSlice], per_workgroup| {
                slices
                    .iter()
                    .zip(tables)
                    .map(|(slice, &table)| Dispatch {
                        group: group(plan.binding(table)),
                        grid: grid(slice.count.div_ceil(per_workgroup), max_x),
                    })
                    .collect()
            };
            if trust.is_some() && fold_group.is_none() {
                fold_group = Some(group(plan.binding(plan.plan.tensor_folds)));
            }
            let tables = if plan.plan.regular {
                &chunk.regular
            } else {
                &chunk.main
            };
            ChunkDispatch {
                layout: chunk.layout,
                quantized: chunk.quantized,
                main: dispatches(&chunk.main, tables, 1),
                tail: dispatches(&chunk.tails, &chunk.tails, TAIL_WORKGROUP),
            }
        })
        .collect();
    let trust_fold = trust.zip(fold_group).map(|(sums, group)| TrustFold {
        fold: Dispatch {
            group,
            grid: grid(plan.plan.tensor_folds.count, max_x),
        },
        sums,
    });
    Ok((dispatches, trust_fold))
}
