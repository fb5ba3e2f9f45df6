//! Dispatch planning: which tensors share a dispatch, how a span of them is cut into
//! binding-size chunks, and the segment tables that tell each workgroup what to do (PyTorch's
//! `multi_tensor_apply` with its `block_to_tensor`).
//!
//! Tensors whose ranges share buffers at the same relative offsets (an
//! [`Arena`](crate::Arena)'s) form a *span*: an optimizer keeps their state in one buffer per
//! state at the same layout, binds the span once per binding-size chunk, and updates every
//! tensor of the chunk in one dispatch. Each workgroup reads one [`Segment`] (a piece of one
//! tensor, at most a tile, and its parameter group) from a table. The same table drives the
//! gradient-norm reduction and [`ClipValue`](crate::ClipValue), so the gaps between tensors
//! are never read as data nor written.
//!
//! In the vec4 layout a chunk's table has two parts. The *main* segments end on a vec4
//! boundary, so the update stores whole vec4s with no per-lane path in its loop; the *tail*
//! segments (the last 1 to 3 elements of each tensor that ends inside a vec4) go to a small
//! second dispatch that stores lane by lane. Reductions read both parts as one slice.
//!
//! Planning is pure: [`Plan::new`] takes the tensors as [`PlanRange`](spans::PlanRange)s (buffer indices, not
//! buffers) and returns the plan with its table's bytes, so it is tested without an adapter
//! (`tests.rs`); [`Plan::upload`] makes the table a buffer.

mod segments;
mod spans;
mod table;
#[cfg(test)]
mod tests;

pub(crate) use spans::{PlanBuffers, Span};

use crate::gpu::{BufferRange, Context};
use crate::kernel::layout::wgsl_struct;
use crate::kernel::{ElementLayout, Storage};

wgsl_struct! {
    /// One workgroup's work in an update dispatch: elements `[start, end)` of the bound chunk,
    /// all of one tensor, updated with parameter group `group`'s hyperparameters.
    pub struct Segment as "Segment" {
        /// First element, counted from the chunk's start.
        start: u32,
        /// One past the last element.
        end: u32,
        /// The parameter group.
        group: u32,
        /// The tensor's position in the optimizer's list (in a population, within its
        /// replica, so that a replica's stochastic rounding draws the bits it draws alone).
        tensor: u32,
        /// The index of element `start` within its tensor.
        tensor_offset: u32,
        /// Its slot among the per-tensor reductions' partials (LAMB's and LARS's trust
        /// ratios): each tensor's segments, main then tail, chunk after chunk, take
        /// consecutive slots, which the plan's tensor folds name.
        slot: u32,
    }
}

wgsl_struct! {
    /// One workgroup's work in the gradient-norm reduction (`grad_partials` in
    /// shaders/clip.wgsl): a run of one control group's segments, which lie in two ranges of
    /// the chunk's table (the group's main segments, then its tails), and where its partial
    /// goes.
    pub struct ReduceWork as "ReduceWork" {
        /// The first of its main segments (an index into the chunk's `all` slice).
        main_first: u32,
        /// One past its last main segment.
        main_end: u32,
        /// The first of its tail segments.
        tail_first: u32,
        /// One past its last tail segment.
        tail_end: u32,
        /// The partial it writes, counted over the plan (its slot is this modulo one binding
        /// of partials).
        partial: u32,
        /// Its control group: the control block whose loss scale and bound it reads.
        control: u32,
    }
}

wgsl_struct! {
    /// The partials of one control group, `[first, end)`: what `grad_local` folds into that
    /// group's [`NormStats`](crate::NormStats).
    pub struct Fold as "Fold" {
        /// The first partial.
        first: u32,
        /// One past the last.
        end: u32,
    }
}

/// `count` entries of `size` bytes from byte `offset` of a plan's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableSlice {
    pub offset: u64,
    pub count: u64,
    pub size: u64,
}

impl TableSlice {
    /// The slice as a binding of `table` (a slice of no entry binds one zeroed entry).
    pub fn binding(self, table: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: table,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.count.max(1) * self.size),
        })
    }
}

const SEGMENT_SIZE: u64 = std::mem::size_of::<Segment>() as u64;
/// Bytes of one reduction partial (`Partial` in src/grad/config.rs).
const PARTIAL_SIZE: u64 = 8;

/// One binding-size chunk of a span: the elements a dispatch binds and its segments.
pub(crate) struct Chunk {
    /// The span it belongs to.
    pub span: usize,
    /// First element, counted from the span's start.
    pub offset: u64,
    /// Elements of the span in the chunk.
    pub len: u64,
    /// How the update binds it. `Vec4` chunks bind `len` rounded up to whole units.
    pub layout: ElementLayout,
    /// Whether its span keeps 8-bit states.
    pub quantized: bool,
    /// With 8-bit states, where the chunk's codes (bytes) and block scales (entries) start in
    /// its span's buffers: each chunk has regions of its own, at aligned offsets, so that a
    /// chunk may start at any tensor of the span ([`QuantRegions`]); 0 without.
    pub quant: QuantRegions,
    /// The 8-bit states its regions hold ([`PlanGroups::quant_states`]); 0 without.
    pub quant_states: u64,
    /// Elements per iteration of the update in this layout (4, or 8 in the vec4 layout of a
    /// kernel with a 16-bit buffer): what main segments end on.
    pub unit: u64,
    /// The update's segments: every element of the chunk's tensors, ending on unit
    /// boundaries in the vec4 layout; one slice per dispatch, each within the device's grid
    /// (`PlanLimits::max_workgroups` in both dimensions).
    pub main: Vec<TableSlice>,
    /// The vec4 layout's tail segments (at most `unit - 1` elements each), stored element by
    /// element by a second dispatch (64 per workgroup); empty when no tensor of the chunk ends
    /// inside a unit.
    pub tails: Vec<TableSlice>,
    /// When the plan is [regular](Plan::regular), each main dispatch's first and last
    /// segment, which the update binds in place of its `main` slice; else empty.
    pub regular: Vec<TableSlice>,
    /// `main`, zeroed padding and `tails` as one slice: every element exactly once, for
    /// reductions, which loop over it with at most `max_workgroups` workgroups (a zeroed
    /// segment is empty).
    pub all: TableSlice,
    /// The gradient-norm reduction's workgroups over this chunk, one [`ReduceWork`] each
    /// (a 2-D grid past `max_workgroups`).
    pub reduce: TableSlice,
}

impl Chunk {
    /// Elements the update binds: `len`, rounded up to whole units in the vec4 layout.
    pub fn bound_len(&self) -> u64 {
        match self.layout {
            ElementLayout::Vec4 => self.len.next_multiple_of(self.unit),
            ElementLayout::Scalar => self.len,
        }
    }

    /// Bytes of codes the chunk binds with 8-bit states: one per bound element (whole
    /// `u32` words: the bound length is a whole number of units of 4 or 8).
    pub fn codes_len(&self) -> u64 {
        self.bound_len()
    }

    /// Block scales the chunk binds with 8-bit states: one per block of 256 from the chunk's
    /// first element (`idx / BLOCK` in the kernel), where a tensor's blocks are numbered
    /// from its own first element, so one more than the whole blocks the chunk holds.
    pub fn scales_len(&self) -> u64 {
        self.bound_len() / crate::quant::BLOCK as u64 + 1
    }

    /// The size of the chunk's regions (bytes of codes, entries of scales): every state's
    /// part, what the update binds.
    pub fn quant_len(&self) -> QuantRegions {
        QuantRegions {
            codes: self.quant_states * self.codes_len(),
            scales: self.quant_states * self.scales_len(),
        }
    }

    /// Where the part of the 8-bit state of rank `rank` (its place among the kept states, in
    /// slot order) starts in the span's buffers: the chunk's regions hold the states' parts
    /// one after another (`codes_base` and `scales_base` in the kernel).
    pub fn state_quant(&self, rank: u64) -> QuantRegions {
        QuantRegions {
            codes: self.quant.codes + rank * self.codes_len(),
            scales: self.quant.scales + rank * self.scales_len(),
        }
    }
}

/// Where a chunk's 8-bit codes and block scales start in its span's buffers (or how long they
/// are): the chunks of a span one after another, each region at a multiple of the offset
/// alignment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QuantRegions {
    /// Byte offset of the chunk's codes (element `x` of the chunk at `codes + x`).
    pub codes: u64,
    /// Entry offset of the chunk's block scales (block `x / 256` at `scales + x / 256`).
    pub scales: u64,
}

/// How the parameter groups of a plan share the control block (step counter, skip flag, clip
/// coefficient, loss scale) and the gradient norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ControlMode {
    /// One control block and one global norm over every group (PyTorch's `param_groups`).
    Shared,
    /// A control block and a norm per group: each group is a replica of its own (a
    /// population), stepped, clipped and skipped alone.
    PerGroup,
}

/// The dispatches over a set of tensors: spans, their chunks, and one segment table.
pub(crate) struct Plan {
    pub spans: Vec<Span>,
    pub chunks: Vec<Chunk>,
    /// Slots of the gradient-norm reduction's partials, one binding's worth at most. The
    /// reduction's workgroup with [`ReduceWork::partial`] `p` writes slot `p % partials`,
    /// combining with what is there once `p` has wrapped around (shared control only: a plan
    /// with a control block per group never wraps).
    pub partials: u64,
    /// Control blocks: 1, or one per parameter group.
    pub controls: u32,
    /// One [`Fold`] per control block: the partials `grad_local` folds into its norm stats.
    pub folds: TableSlice,
    /// Segment slots: one per segment of every chunk (see [`Segment::slot`]).
    pub slots: u64,
    /// Each tensor's slots `[first, end)`, in the optimizer's order.
    pub tensor_slots: Vec<[u32; 2]>,
    /// One entry per tensor, in the optimizer's order, written as a [`Segment`]: `start` and
    /// `end` are the tensor's slots `[start, end)` (empty for a tensor of length 0), `group`
    /// its parameter group, `tensor` its index. What a per-tensor reduction folds.
    pub tensor_folds: TableSlice,
    /// Whether every main dispatch is regular (see `regular_ends` in segments.rs): the update then binds
    /// [`Chunk::regular`] and derives each workgroup's segment (`REGULAR_TILES` in
    /// shaders/common/entry.wgsl).
    pub regular: bool,
    /// Whether some partials share a slot: never short of a binding's worth of partials
    /// (16M workgroups, over 2^40 gradients); a plan with a control block per group must not.
    pub wraps: bool,
    /// Every chunk's segments and reduction work and the folds, each slice at an aligned
    /// offset: the bytes to upload ([`Plan::upload`]).
    pub table: Vec<u8>,
}

/// What a plan is cut with: the device's binding limits and the update's tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlanLimits {
    /// Most elements one binding covers (a multiple of the offset alignment).
    pub chunk_len: u64,
    /// Most elements one segment covers (a multiple of 8).
    pub tile: u64,
    /// Most elements one segment of a span of 8-bit states covers: a whole number
    /// of blocks per invocation.
    pub quantized_tile: u64,
    /// Whether the kernel has a 16-bit buffer: its vec4 layout takes units of 8 elements.
    pub packed: bool,
    /// `min_storage_buffer_offset_alignment`.
    pub align: u64,
    /// `max_storage_buffer_binding_size`.
    pub max_binding: u64,
    /// Most workgroups per dimension of one dispatch.
    pub max_workgroups: u64,
    /// Elements a chunk's offset must be a multiple of for every role's binding (states and
    /// the master copy included) to start at an aligned offset: the alignment over the
    /// smallest storage size.
    pub cut_unit: u64,
}

impl PlanLimits {
    /// What plans of kernels with `storage` are cut with on `ctx`.
    pub fn new(ctx: &Context, storage: Storage) -> PlanLimits {
        let limits = ctx.device().limits();
        PlanLimits {
            chunk_len: ctx.max_chunk_len(),
            tile: update_tile(
                ctx,
                Storage {
                    quant8: None,
                    ..storage
                },
            ),
            quantized_tile: update_tile(ctx, storage),
            packed: storage.packed(),
            align: u64::from(limits.min_storage_buffer_offset_alignment),
            max_binding: limits.max_storage_buffer_binding_size,
            max_workgroups: ctx.max_workgroups(),
            cut_unit: u64::from(limits.min_storage_buffer_offset_alignment)
                / storage.smallest_size(),
        }
    }
}

/// Elements one workgroup of an update kernel with `storage` takes at most (a segment):
/// `vec4s_per_invocation` units of the vec4 layout per invocation (a unit of 8-bit states is a
/// block); where lanes share blocks, `vec4s_per_invocation` rounds of a block per
/// [`BLOCK_LANES`](crate::kernel::BLOCK_LANES) invocations.
pub(crate) fn update_tile(ctx: &Context, storage: Storage) -> u64 {
    let tuning = ctx.tuning();
    let workgroup_size = u64::from(storage.workgroup_size(&tuning));
    let per_round = if storage.blocks_shared(&tuning) {
        workgroup_size / crate::kernel::BLOCK_LANES
    } else {
        workgroup_size
    };
    storage.unit(ElementLayout::Vec4) * per_round * u64::from(tuning.vec4s_per_invocation)
}

/// The parameter group of each tensor of a plan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlanGroups<'a> {
    /// Tensor `i`'s group.
    pub of_tensor: &'a [u32],
    /// How many groups there are.
    pub count: u32,
    /// Whether tensor `i` keeps 8-bit states (empty: none does): tensors with and without
    /// never share a span, so that each span's states are stored one way (8-bit states for
    /// the tensors torchao quantizes, full precision for the others).
    pub quantized: &'a [bool],
    /// How many states each 8-bit tensor keeps: each chunk's regions hold every state's
    /// codes and scales, one state's part after another ([`Chunk::state_quant`]).
    pub quant_states: u64,
}

/// The groups of a plan's tensors as the segments name them.
pub(crate) struct TensorGroups<'a> {
    /// Tensor `i`'s group.
    pub of_tensor: &'a [u32],
    /// The first tensor of tensor `i`'s group (of its run of equal groups) with a control
    /// block per group, so that segments name tensors within their group; 0 otherwise.
    pub first_of: Vec<usize>,
}

impl<'a> TensorGroups<'a> {
    fn new(groups: PlanGroups<'a>, control: ControlMode) -> Self {
        let of_tensor = groups.of_tensor;
        let mut first_of = Vec::with_capacity(of_tensor.len());
        for i in 0..of_tensor.len() {
            let first = match control {
                ControlMode::PerGroup if i > 0 && of_tensor[i] == of_tensor[i - 1] => {
                    first_of[i - 1]
                }
                ControlMode::PerGroup => i,
                ControlMode::Shared => 0,
            };
            first_of.push(first);
        }
        TensorGroups {
            of_tensor,
            first_of,
        }
    }
}

/// Most workgroups of one control group's reduction in one chunk: enough to fill a large GPU,
/// few enough that each loops over several segments (workgroup barriers are costly on software
/// adapters) and that the single workgroup folding the group's partials has few to fold.
pub(crate) const REDUCE_MAX_WORKGROUPS: u64 = 1024;

/// Fewest segments per workgroup of a reduction (where there are that many): each workgroup
/// ends in a tree of barriers, which software adapters pay dearly for.
pub(crate) const REDUCE_MIN_SEGMENTS: u64 = 8;

/// Invocations per workgroup of the tail dispatch (`update_tail` in common/entry.wgsl).
pub(crate) const TAIL_WORKGROUP: u64 = 64;

/// A dispatch grid of `count` workgroups: 1-D up to `max_x`, 2-D past it (plans keep `count`
/// within `max_x` squared).
pub(crate) fn grid(count: u64, max_x: u64) -> (u32, u32) {
    let x = count.clamp(1, max_x);
    (x as u32, count.div_ceil(x) as u32)
}

/// The roles of an optimizer's tensors in its plan: each tensor is planned as
/// `[param, grad]`, its parameters' positions defining the spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Param = 0,
    Grad = 1,
}

/// A plan made for buffers on a device: the plan, its table uploaded, and the buffers its
/// ranges name.
pub(crate) struct DevicePlan {
    pub plan: Plan,
    pub table: wgpu::Buffer,
    pub buffers: PlanBuffers,
}

impl DevicePlan {
    /// Plans `tensors` (see [`Plan::new`]) and uploads the table.
    pub fn new(
        device: &wgpu::Device,
        tensors: &[Vec<BufferRange>],
        groups: PlanGroups<'_>,
        control: ControlMode,
        limits: &PlanLimits,
    ) -> DevicePlan {
        let (ranges, buffers) = PlanBuffers::of(tensors);
        let plan = Plan::new(&ranges, groups, control, limits);
        let table = plan.upload(device);
        DevicePlan {
            plan,
            table,
            buffers,
        }
    }

    /// Role `role`'s range of `chunk` (see [`Plan::range`]) in its buffer.
    pub fn range(&self, chunk: &Chunk, role: usize, len: u64) -> BufferRange {
        self.buffers.get(&self.plan.range(chunk, role, len))
    }

    /// `slice` of the table as a binding.
    pub fn binding(&self, slice: TableSlice) -> wgpu::BindingResource<'_> {
        slice.binding(&self.table)
    }
}
