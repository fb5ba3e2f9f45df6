//! [`Plan::new`]: spans cut into chunks, segments numbered, and the table laid out: each
//! dispatch's segments, the regular ends, the reduction's work and folds.

use super::segments::{
    assign_slots, regular_ends, segments, vec4_layout, ChunkCut, ChunkSegments, ControlRun,
};
use super::spans::{spans, PlanRange, Span};
use super::{
    Chunk, ControlMode, Fold, Plan, PlanGroups, PlanLimits, QuantRegions, ReduceWork, Segment,
    TableSlice, TensorGroups, PARTIAL_SIZE, REDUCE_MAX_WORKGROUPS, REDUCE_MIN_SEGMENTS,
    SEGMENT_SIZE, TAIL_WORKGROUP,
};

impl Plan {
    /// Plans `tensors` (each a range per role, the first role's positions defining the spans),
    /// tensor `i` in parameter group `groups.of_tensor[i]`, the groups sharing one control
    /// block or each with its own. With a control block per group, each span's chunks are cut
    /// at the first of a group's tensors in that span where one lies within the binding limit,
    /// so that a group's part of a span smaller than a binding is reduced in one chunk, as it
    /// would be alone; and segments name tensors by their index within the group.
    pub fn new(
        tensors: &[Vec<PlanRange>],
        groups: PlanGroups<'_>,
        control: ControlMode,
        limits: &PlanLimits,
    ) -> Plan {
        let spans = spans(tensors, groups.quantized);
        let controls = match control {
            ControlMode::Shared => 1,
            ControlMode::PerGroup => groups.count.max(1),
        };
        let tensor_groups = TensorGroups::new(groups, control);
        let mut cut = cut_chunks(&spans, tensors, &tensor_groups, control, limits);
        let tensor_folds = assign_slots(&mut cut, groups.of_tensor, tensors.len());
        let slots = tensor_folds.last().map_or(0, |f| u64::from(f.end));

        let mut table = Table::new(limits.align);
        // A 2-D grid of max_workgroups^2 workgroups takes that many segments (or 64 tails
        // each) at most.
        let grid = limits.max_workgroups * limits.max_workgroups;
        // Each main dispatch's ends, where it is regular. A regular plan's update reads two
        // entries per dispatch instead of one per workgroup.
        let ends: Vec<Vec<Option<[Segment; 2]>>> = cut
            .iter()
            .map(|c| c.main.chunks(grid as usize).map(regular_ends).collect())
            .collect();
        let regular = ends.iter().flatten().all(Option::is_some);
        // The segment slices first; the reduction's work needs the tails' position in `all`.
        let mut slices = Vec::new();
        let mut runs = Vec::new();
        for c in &cut {
            let chunk = table.push_chunk(c, grid);
            runs.push(c.control_runs(
                control,
                &chunk.positions(&chunk.main),
                &chunk.positions(&chunk.tails),
            ));
            slices.push(chunk);
        }
        let ends: Vec<Vec<TableSlice>> = ends
            .into_iter()
            .map(|pieces| {
                pieces
                    .into_iter()
                    .flatten()
                    .filter(|_| regular)
                    .map(|ends| table.push_segments(&ends))
                    .collect()
            })
            .collect();
        let reduction = Reduction::plan(&runs, controls, limits);
        let mut chunks = cut
            .iter()
            .zip(slices)
            .zip(reduction.work)
            .zip(ends)
            .map(|(((c, slices), work), regular)| Chunk {
                span: c.span,
                quantized: spans[c.span].quantized,
                quant: QuantRegions::default(),
                quant_states: if spans[c.span].quantized {
                    groups.quant_states
                } else {
                    0
                },
                offset: c.cut.offset,
                len: c.cut.len,
                layout: c.cut.layout,
                unit: c.cut.unit,
                main: slices.main,
                tails: slices.tails,
                regular,
                all: slices.all,
                reduce: table.push(&work),
            })
            .collect::<Vec<_>>();
        place_quant_regions(&mut chunks, limits.align);
        let folds = table.push(&reduction.folds);
        let tensor_slots = tensor_folds.iter().map(|f| [f.start, f.end]).collect();
        let tensor_folds = table.push(&tensor_folds);
        Plan {
            spans,
            chunks,
            partials: reduction.partials.clamp(1, reduction.max_partials),
            controls,
            folds,
            slots,
            tensor_slots,
            tensor_folds,
            regular,
            wraps: reduction.partials > reduction.max_partials,
            table: table.bytes,
        }
    }

    /// The plan's table as a storage buffer on `device`.
    pub fn upload(&self, device: &wgpu::Device) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-optim segments"),
            contents: &self.table,
            usage: wgpu::BufferUsages::STORAGE,
        })
    }

    /// Role `role`'s range of `chunk`: `len` elements, or the bound length of its layout.
    pub fn range(&self, chunk: &Chunk, role: usize, len: u64) -> PlanRange {
        self.spans[chunk.span].ranges[role].slice(chunk.offset, len)
    }

    /// Whether the plan has chunks and every one keeps 8-bit states: no kernel of
    /// full-precision states is then built (with master weights it may bind more storage
    /// buffers than the device allows), and the prologue comes from the 8-bit module.
    pub fn all_quantized(&self) -> bool {
        !self.chunks.is_empty() && self.chunks.iter().all(|c| c.quantized)
    }

    /// The extent of span `span`'s 8-bit codes (bytes) and block scales (entries): the end of
    /// its last chunk's regions.
    pub fn quant_extent(&self, span: usize) -> QuantRegions {
        let last = self.chunks.iter().rfind(|c| c.span == span);
        last.map_or_else(QuantRegions::default, |c| QuantRegions {
            codes: c.quant.codes + c.quant_len().codes,
            scales: c.quant.scales + c.quant_len().scales,
        })
    }
}

/// Lays out the 8-bit codes and block scales of each quantized span's chunks (every state's)
/// one after another in the span's buffers, each region at a multiple of `align` bytes, so
/// that every chunk binds its own at an aligned offset wherever the chunk starts in the span.
fn place_quant_regions(chunks: &mut [Chunk], align: u64) {
    let mut next = (usize::MAX, QuantRegions::default());
    for chunk in chunks.iter_mut().filter(|c| c.quantized) {
        if next.0 != chunk.span {
            next = (chunk.span, QuantRegions::default());
        }
        chunk.quant = next.1;
        // A quantized span keeps states (`quant8::quantized_tensors` marks none without).
        debug_assert!(chunk.quant_states > 0);
        let len = chunk.quant_len();
        next.1 = QuantRegions {
            codes: (chunk.quant.codes + len.codes).next_multiple_of(align),
            scales: (4 * (chunk.quant.scales + len.scales)).next_multiple_of(align) / 4,
        };
    }
}

/// Cuts every span into chunks of at most one binding (at the first of a group's tensors in
/// the span, with a control block per group; at a block's edge, with 8-bit states), and each
/// chunk into segments.
fn cut_chunks(
    spans: &[Span],
    tensors: &[Vec<PlanRange>],
    groups: &TensorGroups<'_>,
    control: ControlMode,
    limits: &PlanLimits,
) -> Vec<ChunkSegments> {
    let mut cut = Vec::new();
    for (n, span) in spans.iter().enumerate() {
        let mut offset = 0;
        while offset < span.len() {
            let limit = offset + limits.chunk_len;
            let mut len = limits.chunk_len.min(span.len() - offset);
            if limit < span.len() {
                // The last position within (offset, limit] at which every role's binding can
                // start (a 16-bit state of an f32 parameter needs twice the parameter's
                // element alignment) among `cuts`.
                let last_cut = |cuts: &mut dyn Iterator<Item = u64>| {
                    cuts.filter(|&at| at > offset && at <= limit)
                        .filter(|&at| at.is_multiple_of(limits.cut_unit))
                        .max()
                };
                let of_tensor = groups.of_tensor;
                let starts = span.tensors.iter().map(|&i| span.offset_of(&tensors[i][0]));
                // With a control block per group, the first of a group's tensors in this span
                // (a tensor whose predecessor in the span is another group's) where one lies
                // within the limit: with 8-bit states a replica's large tensors lie in one
                // span and its small ones in another, so its first tensor may not be in this
                // one. (The span's tensors are in index order, each group's consecutive, and
                // an optimizer's tensors lie in the buffers in that order, as an arena lays
                // them out; a population laid out otherwise may be cut inside a replica.)
                // Else, with 8-bit states, a block's edge, so that no block is split between
                // chunks (`check_quantized_plan` refuses a plan where none is).
                let group_start = match control {
                    ControlMode::PerGroup => last_cut(
                        &mut (span.tensors.iter().zip(starts).enumerate())
                            .filter(|&(k, (&i, _))| {
                                k == 0 || of_tensor[span.tensors[k - 1]] != of_tensor[i]
                            })
                            .map(|(_, (_, start))| start),
                    ),
                    ControlMode::Shared => None,
                };
                let at = group_start.or_else(|| {
                    span.quantized
                        .then(|| block_cut(span, tensors, offset, limit, limits.cut_unit))
                        .flatten()
                });
                if let Some(at) = at {
                    len = at - offset;
                }
            }
            let unit = if limits.packed { 8 } else { 4 };
            let layout = vec4_layout(span, tensors, offset, len, unit, limits.max_binding);
            let chunk_cut = ChunkCut {
                offset,
                len,
                layout,
                unit,
            };
            let (main, tails) = segments(span, tensors, groups, chunk_cut, limits);
            if !main.is_empty() || !tails.is_empty() {
                cut.push(ChunkSegments {
                    span: n,
                    cut: chunk_cut,
                    main,
                    tails,
                });
            }
            offset += len;
        }
    }
    cut
}

/// The last position within (offset, limit] at which a chunk of a span of 8-bit tensors can
/// end: the edge of one of their blocks of 256 (a tensor's start and end among them), at which
/// every role's binding can start (a multiple of `cut_unit`).
fn block_cut(
    span: &Span,
    tensors: &[Vec<PlanRange>],
    offset: u64,
    limit: u64,
    cut_unit: u64,
) -> Option<u64> {
    let block = crate::quant::BLOCK as u64;
    let tensor_cut = |i: usize| {
        let start = span.offset_of(&tensors[i][0]);
        let end = start + tensors[i][0].len;
        let last = start + limit.min(end).checked_sub(start)? / block * block;
        // Block edges repeat their remainder by `cut_unit` within `cut_unit` blocks.
        (0..cut_unit)
            .map_while(|k| last.checked_sub(k * block))
            .take_while(|&at| at >= start && at > offset)
            .find(|at| at.is_multiple_of(cut_unit))
    };
    span.tensors.iter().filter_map(|&i| tensor_cut(i)).max()
}

/// A table being laid out: slices at aligned offsets, whole segments apart from each other,
/// so that a chunk's `all` slice reads its main slices, the zeroed padding and its tails as
/// one array of segments.
struct Table {
    bytes: Vec<u8>,
    padding: usize,
}

/// One chunk's segment slices in the table.
struct ChunkSlices {
    /// One per main dispatch.
    main: Vec<TableSlice>,
    /// One per tail dispatch.
    tails: Vec<TableSlice>,
    /// `main`, the padding between and `tails`, as one slice.
    all: TableSlice,
}

impl ChunkSlices {
    /// Each segment's position in `all`, for `slices` of it.
    fn positions(&self, slices: &[TableSlice]) -> Vec<u32> {
        slices
            .iter()
            .flat_map(|slice| {
                let first = (slice.offset - self.all.offset) / SEGMENT_SIZE;
                (first..first + slice.count).map(|j| j as u32)
            })
            .collect()
    }
}

impl Table {
    fn new(align: u64) -> Self {
        Table {
            bytes: Vec::new(),
            padding: lcm(align, SEGMENT_SIZE) as usize,
        }
    }

    /// Appends `entries` at an aligned offset: their slice.
    fn push<T: bytemuck::Pod>(&mut self, entries: &[T]) -> TableSlice {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(bytemuck::cast_slice(entries));
        self.bytes
            .resize(self.bytes.len().next_multiple_of(self.padding), 0);
        TableSlice {
            offset,
            count: entries.len() as u64,
            size: std::mem::size_of::<T>() as u64,
        }
    }

    /// Appends `segments`, one slice.
    fn push_segments(&mut self, segments: &[Segment]) -> TableSlice {
        self.push(segments)
    }

    /// Appends `segments` in slices of at most `per_dispatch`.
    fn push_dispatches(&mut self, segments: &[Segment], per_dispatch: u64) -> Vec<TableSlice> {
        segments
            .chunks(per_dispatch as usize)
            .map(|piece| self.push_segments(piece))
            .collect()
    }

    /// Appends a chunk's main segments (a slice per dispatch of at most `grid` workgroups),
    /// then its tails (64 per workgroup).
    fn push_chunk(&mut self, chunk: &ChunkSegments, grid: u64) -> ChunkSlices {
        let start = self.bytes.len() as u64;
        let main = self.push_dispatches(&chunk.main, grid);
        let tails = self.push_dispatches(&chunk.tails, grid * TAIL_WORKGROUP);
        let end = tails.last().or(main.last()).expect("a segment");
        let all = TableSlice {
            offset: start,
            count: (end.offset - start) / SEGMENT_SIZE + end.count,
            size: SEGMENT_SIZE,
        };
        ChunkSlices { main, tails, all }
    }
}

/// The gradient-norm reduction's work per chunk and each control block's fold.
struct Reduction {
    /// Per chunk, one entry per workgroup.
    work: Vec<Vec<ReduceWork>>,
    /// One per control block.
    folds: Vec<Fold>,
    /// Partials written over the plan.
    partials: u64,
    /// Partials one binding holds.
    max_partials: u64,
}

impl Reduction {
    /// Each control group's reduction: its segments of a chunk, in order (main, then tail),
    /// are cut into runs of `run` segments, one per workgroup: at least
    /// REDUCE_MIN_SEGMENTS each, and at most REDUCE_MAX_WORKGROUPS workgroups (or the
    /// device's grid). A function of the group's own segments only, so a group reduces the
    /// same way in a population as alone. Its partials are consecutive, chunk after chunk,
    /// control group after control group.
    fn plan(runs: &[Vec<ControlRun>], controls: u32, limits: &PlanLimits) -> Reduction {
        let max_partials = (limits.max_binding / PARTIAL_SIZE).max(1);
        let mut work: Vec<Vec<ReduceWork>> = vec![Vec::new(); runs.len()];
        let mut folds = Vec::new();
        let mut partials = 0_u64;
        for k in 0..controls {
            let first = partials;
            for (c, chunk_runs) in runs.iter().enumerate() {
                let Some(run) = chunk_runs.iter().find(|r| r.control == k) else {
                    continue;
                };
                let (main, tail) = (run.main, run.tail);
                let (main_count, tail_count) = (main[1] - main[0], tail[1] - tail[0]);
                let count = u64::from(main_count + tail_count);
                let most = REDUCE_MAX_WORKGROUPS.min(limits.max_workgroups);
                let per_workgroup = count.div_ceil(most).max(REDUCE_MIN_SEGMENTS);
                let workgroups = count.div_ceil(per_workgroup);
                for w in 0..workgroups {
                    // Positions [from, to) of the group's list: main segments, then tails.
                    let (from, to) = (
                        (w * per_workgroup).min(count) as u32,
                        ((w + 1) * per_workgroup).min(count) as u32,
                    );
                    let main_part = |p: u32| main[0] + p.min(main_count);
                    let tail_part = |p: u32| tail[0] + p.saturating_sub(main_count);
                    work[c].push(ReduceWork {
                        main_first: main_part(from),
                        main_end: main_part(to),
                        tail_first: tail_part(from),
                        tail_end: tail_part(to),
                        partial: partials as u32,
                        control: k,
                    });
                    partials += 1;
                }
            }
            folds.push(Fold {
                first: first.min(max_partials) as u32,
                end: partials.min(max_partials) as u32,
            });
        }
        Reduction {
            work,
            folds,
            partials,
            max_partials,
        }
    }
}

/// The least common multiple.
fn lcm(a: u64, b: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    a / gcd(a, b) * b
}
