//! Unit tests of the planner: plans of ranges in buffers that exist only as indices, so no
//! adapter is involved. What each asserts is what the kernels rely on: every element of every
//! tensor in exactly one segment, segments within one tile and one tensor, main segments on
//! unit boundaries, a tensor's slots consecutive, regular ends only where every segment
//! derives from them, and each control group's reduction covering its segments once, in order.

use super::segments::derived_segment;
use super::spans::{spans, PlanRange};
use super::{ControlMode, Plan, PlanGroups, PlanLimits, ReduceWork, Segment, TableSlice};
use crate::dtype::Dtype;
use crate::kernel::ElementLayout;

const ALIGN: u64 = 256;

/// A 256-byte-aligned f32 layout of tensors of `lens` in buffer `buffer`, as an arena lays
/// them out; the buffer holds them all, rounded up to whole vec4s.
fn arena(buffer: usize, lens: &[u64]) -> Vec<PlanRange> {
    let mut offset = 0;
    let mut ranges = Vec::new();
    for &len in lens {
        ranges.push(PlanRange {
            buffer,
            buffer_size: 0,
            offset,
            len,
            dtype: Dtype::F32,
        });
        offset = (offset + 4 * len).next_multiple_of(ALIGN);
    }
    let size = offset.max(16).next_multiple_of(16);
    ranges.iter_mut().for_each(|r| r.buffer_size = size);
    ranges
}

/// Tensors `[param, grad]` of an arena's two buffers.
fn tensors(lens: &[u64]) -> Vec<Vec<PlanRange>> {
    arena(0, lens)
        .into_iter()
        .zip(arena(1, lens))
        .map(|(p, g)| vec![p, g])
        .collect()
}

fn limits(chunk_len: u64, tile: u64) -> PlanLimits {
    PlanLimits {
        chunk_len,
        tile,
        quantized_tile: 64 * tile,
        packed: false,
        align: ALIGN,
        max_binding: 4 * chunk_len,
        max_workgroups: 65535,
        cut_unit: ALIGN / 4,
    }
}

fn plan(tensors: &[Vec<PlanRange>], groups: &[u32], control: ControlMode, l: &PlanLimits) -> Plan {
    let count = groups.iter().max().map_or(1, |g| g + 1);
    let groups = PlanGroups {
        of_tensor: groups,
        count,
        quantized: &[],
        quant_states: 0,
    };
    Plan::new(tensors, groups, control, l)
}

/// The entries of `slice` in the plan's table.
fn entries<T: bytemuck::Pod>(plan: &Plan, slice: TableSlice) -> Vec<T> {
    assert_eq!(slice.size, std::mem::size_of::<T>() as u64);
    assert_eq!(slice.offset % ALIGN, 0, "slices start aligned");
    let start = slice.offset as usize;
    let bytes = &plan.table[start..start + (slice.count * slice.size) as usize];
    bytes
        .chunks_exact(slice.size as usize)
        .map(bytemuck::pod_read_unaligned)
        .collect()
}

/// Every segment of every chunk, with its chunk's offset in its span: `(span, offset, segment)`.
fn all_segments(plan: &Plan) -> Vec<(usize, u64, Segment)> {
    let mut all = Vec::new();
    for chunk in &plan.chunks {
        for slice in chunk.main.iter().chain(&chunk.tails) {
            for s in entries::<Segment>(plan, *slice) {
                all.push((chunk.span, chunk.offset, s));
            }
        }
    }
    all
}

/// The tensor segment `s` (of a chunk at `offset` in span `span`) covers elements of.
fn tensor_of(
    plan: &Plan,
    tensors: &[Vec<PlanRange>],
    span: usize,
    offset: u64,
    s: &Segment,
) -> usize {
    let span = &plan.spans[span];
    let first = offset + u64::from(s.start);
    span.tensors
        .iter()
        .copied()
        .find(|&i| {
            let start = span.offset_of(&tensors[i][0]);
            first >= start && first < start + tensors[i][0].len
        })
        .expect("a segment lies in a tensor")
}

/// Asserts every element of every tensor lies in exactly one segment of its tensor, and that
/// each segment is within a tile and starts on a vec4.
fn assert_covers(plan: &Plan, tensors: &[Vec<PlanRange>], tile: u64) {
    let mut seen: Vec<Vec<u32>> = tensors.iter().map(|t| vec![0; t[0].len as usize]).collect();
    for (span, offset, s) in all_segments(plan) {
        assert!(
            s.end > s.start && u64::from(s.end - s.start) <= tile,
            "{s:?}"
        );
        assert_eq!(s.start % 4, 0, "segments start on a vec4: {s:?}");
        let tensor = tensor_of(plan, tensors, span, offset, &s);
        let first = offset + u64::from(s.start);
        let start = plan.spans[span].offset_of(&tensors[tensor][0]);
        assert_eq!(u64::from(s.tensor_offset), first - start, "{s:?}");
        for e in s.start..s.end {
            let element = offset + u64::from(e) - start;
            assert!(
                element < tensors[tensor][0].len,
                "{s:?} runs past its tensor"
            );
            seen[tensor][element as usize] += 1;
        }
    }
    for (i, counts) in seen.iter().enumerate() {
        assert!(counts.iter().all(|&c| c == 1), "tensor {i}: {counts:?}");
    }
}

#[test]
fn tensors_laid_out_alike_share_a_span_and_others_do_not() {
    let lens = [100, 3, 0, 64];
    let alike = tensors(&lens);
    let found = spans(&alike, &[]);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].tensors,
        vec![0, 1, 3],
        "the empty tensor belongs to no span"
    );
    // The gradient of tensor 1 elsewhere in its buffer: its own span.
    let mut apart = alike.clone();
    apart[1][1].offset += ALIGN;
    assert_eq!(spans(&apart, &[]).len(), 2);
    // Two small tensors far apart in one buffer (mostly gaps past 1 MiB): spans of their own.
    let mut thin = tensors(&[16, 16]);
    for role in &mut thin[1] {
        role.offset += 64 << 20;
        role.buffer_size += 64 << 20;
    }
    assert_eq!(spans(&thin, &[]).len(), 2);
    // Tensors laid out alike, some with 8-bit states and some without: a span each, in the
    // order of their first tensors.
    let classed = spans(&alike, &[true, false, false, true]);
    let members: Vec<Vec<usize>> = classed.iter().map(|s| s.tensors.clone()).collect();
    assert_eq!(members, vec![vec![0, 3], vec![1]]);
}

#[test]
fn every_element_lies_in_one_segment_whatever_the_cut() {
    for (lens, chunk_len, tile) in [
        (vec![1000, 7, 4096, 33], 1 << 20, 1024),
        (vec![5000, 1, 2], 2048, 256),
        (vec![3, 5, 6, 7], 64, 64),
        (vec![70_000], 16_384, 4096),
    ] {
        let t = tensors(&lens);
        let l = limits(chunk_len, tile);
        let p = plan(&t, &vec![0; lens.len()], ControlMode::Shared, &l);
        assert_covers(&p, &t, tile);
        for chunk in &p.chunks {
            assert!(chunk.len <= chunk_len, "a chunk is at most one binding");
            assert_eq!(chunk.offset % (ALIGN / 4), 0, "chunks start aligned");
            if chunk.layout == ElementLayout::Vec4 {
                for s in chunk.main.iter().flat_map(|m| entries::<Segment>(&p, *m)) {
                    assert_eq!(s.end % 4, 0, "main segments end on a unit: {s:?}");
                }
                for s in chunk.tails.iter().flat_map(|m| entries::<Segment>(&p, *m)) {
                    assert!(s.end - s.start < 4, "a tail is a partial unit: {s:?}");
                }
            } else {
                assert!(chunk.tails.is_empty(), "the scalar layout has no tails");
            }
        }
    }
}

#[test]
fn a_buffer_that_ends_inside_a_vec4_is_bound_scalar() {
    let mut t = tensors(&[6]);
    assert_eq!(
        plan(&t, &[0], ControlMode::Shared, &limits(1 << 20, 1024)).chunks[0].layout,
        ElementLayout::Vec4
    );
    // A parameter buffer of exactly 6 f32: its last vec4 is not in the buffer.
    t[0][0].buffer_size = 24;
    let p = plan(&t, &[0], ControlMode::Shared, &limits(1 << 20, 1024));
    assert_eq!(p.chunks[0].layout, ElementLayout::Scalar);
    assert_covers(&p, &t, 1024);
}

#[test]
fn a_tensors_segments_take_consecutive_slots() {
    let lens = [3000, 5, 4099, 0, 8];
    let t = tensors(&lens);
    let p = plan(
        &t,
        &[0, 0, 1, 1, 1],
        ControlMode::Shared,
        &limits(2048, 512),
    );
    let mut slots: Vec<Vec<u32>> = vec![Vec::new(); lens.len()];
    for (span, offset, s) in all_segments(&p) {
        slots[tensor_of(&p, &t, span, offset, &s)].push(s.slot);
    }
    let folds: Vec<Segment> = entries(&p, p.tensor_folds);
    assert_eq!(folds.len(), lens.len());
    for (i, tensor_slots) in slots.iter_mut().enumerate() {
        tensor_slots.sort();
        let [first, end] = p.tensor_slots[i];
        assert_eq!(
            *tensor_slots,
            (first..end).collect::<Vec<_>>(),
            "tensor {i}"
        );
        assert_eq!((folds[i].start, folds[i].end), (first, end));
        assert_eq!(folds[i].tensor, i as u32);
    }
    assert_eq!(p.slots, slots.iter().map(|s| s.len() as u64).sum::<u64>());
}

#[test]
fn only_a_lone_tensors_tiles_are_regular_and_they_derive_every_segment() {
    let l = limits(1 << 20, 1024);
    let alone = plan(&tensors(&[5000]), &[0], ControlMode::Shared, &l);
    assert!(alone.regular);
    for chunk in &alone.chunks {
        let main: Vec<Segment> = chunk
            .main
            .iter()
            .flat_map(|m| entries(&alone, *m))
            .collect();
        let ends: Vec<Segment> = entries(&alone, chunk.regular[0]);
        assert_eq!(ends, vec![main[0], *main.last().unwrap()]);
        let count = main.len() as u32;
        for (i, s) in main.iter().enumerate() {
            assert_eq!(derived_segment([ends[0], ends[1]], count, i as u32), *s);
        }
    }
    let arena = plan(&tensors(&[5000, 7]), &[0, 0], ControlMode::Shared, &l);
    assert!(
        !arena.regular,
        "an arena of several tensors loads its segments"
    );
    assert!(arena.chunks.iter().all(|c| c.regular.is_empty()));
}

/// Each control group's reduction work covers its segments (main, then tails) once, in
/// order, in runs of at least `REDUCE_MIN_SEGMENTS`, its partials consecutive and named by
/// its fold.
fn assert_reduction(plan: &Plan, control: ControlMode) {
    let folds: Vec<super::Fold> = entries(plan, plan.folds);
    assert_eq!(folds.len(), plan.controls as usize);
    let mut partial = 0;
    let mut per_control = vec![Vec::new(); plan.controls as usize];
    for chunk in &plan.chunks {
        let all: Vec<Segment> = entries(plan, chunk.all);
        let work: Vec<ReduceWork> = entries(plan, chunk.reduce);
        for w in work {
            per_control[w.control as usize].push((chunk.offset, w, all.clone()));
        }
    }
    for (k, runs) in per_control.iter().enumerate() {
        assert_eq!(folds[k].first, partial);
        let mut covered = Vec::new();
        for (offset, w, all) in runs {
            assert_eq!(w.partial, partial, "partials are consecutive");
            partial += 1;
            let ranges = [w.main_first..w.main_end, w.tail_first..w.tail_end];
            for j in ranges.into_iter().flatten() {
                let s = all[j as usize];
                if s.end > s.start {
                    if control == ControlMode::PerGroup {
                        assert_eq!(s.group as usize, k, "a group reduces its own segments");
                    }
                    covered.push((*offset, s.start, s.end));
                }
            }
        }
        assert_eq!(folds[k].end, partial);
        let mut sorted = covered.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            covered.len(),
            "group {k}: a segment reduced twice"
        );
    }
}

#[test]
fn reductions_cover_each_groups_segments_once() {
    let lens = [3000, 5, 4099, 8, 100, 100];
    let t = tensors(&lens);
    let groups = [0, 0, 1, 1, 2, 2];
    for control in [ControlMode::Shared, ControlMode::PerGroup] {
        for l in [limits(1 << 20, 256), limits(2048, 256)] {
            let p = plan(&t, &groups, control, &l);
            let expected = if control == ControlMode::Shared { 1 } else { 3 };
            assert_eq!(p.controls, expected);
            assert!(!p.wraps);
            assert_reduction(&p, control);
            // Every segment of the plan is reduced: the groups' runs together cover them all.
            let reduced: usize = p
                .chunks
                .iter()
                .flat_map(|c| entries::<ReduceWork>(&p, c.reduce))
                .map(|w| ((w.main_end - w.main_first) + (w.tail_end - w.tail_first)) as usize)
                .sum();
            assert!(reduced >= all_segments(&p).len());
        }
    }
}

/// Each workgroup's run of control group `k`'s reduction in plan `p`: its main and tail
/// segment counts.
fn work(p: &Plan, k: u32) -> Vec<(u32, u32)> {
    (p.chunks.iter())
        .flat_map(|c| entries::<ReduceWork>(p, c.reduce))
        .filter(|w| w.control == k)
        .map(|w| (w.main_end - w.main_first, w.tail_end - w.tail_first))
        .collect()
}

#[test]
fn a_population_cuts_chunks_at_its_replicas_and_reduces_each_as_alone() {
    // Three replicas of [700, 60] with a binding of 1024 elements: chunks are cut at a
    // replica's first tensor, and each replica's reduction is the one it has alone.
    let model = [700, 60];
    let lens: Vec<u64> = model.repeat(3);
    let t = tensors(&lens);
    let groups = [0, 0, 1, 1, 2, 2];
    let l = limits(1024, 256);
    let population = plan(&t, &groups, ControlMode::PerGroup, &l);
    let alone = plan(&tensors(&model), &[0, 0], ControlMode::PerGroup, &l);
    for k in 0..3 {
        assert_eq!(work(&population, k), work(&alone, 0), "replica {k}");
    }
    // Segments name tensors within their replica, as alone.
    for (_, _, s) in all_segments(&population) {
        assert!(s.tensor < 2, "{s:?}");
    }
    assert_covers(&population, &t, 256);
}

#[test]
fn a_population_of_eight_bit_replicas_is_cut_at_its_replicas_in_both_spans() {
    // Three replicas of [4352, 700, 60] with 8-bit states: each replica's first tensor lies in
    // the span of 8-bit tensors, its small ones in the other, which must still be cut at a
    // replica's first tensor in it (not at the binding's end, inside a replica, which then
    // reduces in another order than alone).
    let model = [17 * 256, 700, 60];
    let t = tensors(&model.repeat(3));
    let quantized: Vec<bool> = t
        .iter()
        .map(|r| crate::quant::quantizes(r[0].len))
        .collect();
    let l = PlanLimits {
        quantized_tile: 4 * 256,
        ..limits(8192, 1024)
    };
    let population = Plan::new(
        &t,
        PlanGroups {
            of_tensor: &[0, 0, 0, 1, 1, 1, 2, 2, 2],
            count: 3,
            quantized: &quantized,
            quant_states: 2,
        },
        ControlMode::PerGroup,
        &l,
    );
    let alone = Plan::new(
        &tensors(&model),
        PlanGroups {
            of_tensor: &[0, 0, 0],
            count: 1,
            quantized: &quantized[..3],
            quant_states: 2,
        },
        ControlMode::PerGroup,
        &l,
    );
    assert_covers(&population, &t, 1024);
    assert_eight_bit_chunks(&population, &t);
    // Two spans (8-bit tensors, small ones), each longer than a binding.
    assert_eq!(population.spans.len(), 2);
    for n in 0..2 {
        let chunks = population.chunks.iter().filter(|c| c.span == n).count();
        assert!(chunks >= 2, "span {n}: {chunks} chunks");
    }
    for (n, span) in population.spans.iter().enumerate() {
        // Every chunk of either span starts at a replica's first tensor in it.
        let firsts: Vec<u64> = (span.tensors.iter())
            .filter(|&&i| i % 3 == usize::from(!span.quantized))
            .map(|&i| span.offset_of(&t[i][0]))
            .collect();
        for c in population.chunks.iter().filter(|c| c.span == n) {
            assert!(c.offset == 0 || firsts.contains(&c.offset), "{}", c.offset);
        }
    }
    for k in 0..3 {
        assert_eq!(work(&population, k), work(&alone, 0), "replica {k}");
    }
}

/// Whether no chunk of a span of 8-bit tensors starts inside one of their blocks of 256, and
/// each chunk's codes and scales (two states' parts) start aligned, after the previous chunk's.
fn assert_eight_bit_chunks(p: &Plan, t: &[Vec<PlanRange>]) {
    for (n, span) in p.spans.iter().enumerate().filter(|(_, s)| s.quantized) {
        for &i in &span.tensors {
            let start = span.offset_of(&t[i][0]);
            let end = start + t[i][0].len;
            for c in p.chunks.iter().filter(|c| c.span == n) {
                let inside = c.offset > start && c.offset < end;
                assert!(
                    !inside || (c.offset - start) % 256 == 0,
                    "{} in {start}..{end}",
                    c.offset
                );
            }
        }
        let mut next = super::QuantRegions::default();
        for c in p.chunks.iter().filter(|c| c.span == n) {
            assert_eq!(c.layout, ElementLayout::Vec4);
            assert_eq!(
                (c.quant.codes % ALIGN, (4 * c.quant.scales) % ALIGN),
                (0, 0)
            );
            assert!(c.quant.codes >= next.codes && c.quant.scales >= next.scales);
            // Two states' parts, one after the other: the second's starts where the first's
            // ends, and the region ends where the second's does.
            assert_eq!(c.quant_states, 2);
            let (first, second) = (c.state_quant(0), c.state_quant(1));
            assert_eq!((first.codes, first.scales), (c.quant.codes, c.quant.scales));
            assert_eq!(second.codes - first.codes, c.codes_len());
            assert_eq!(second.scales - first.scales, c.scales_len());
            next = super::QuantRegions {
                codes: second.codes + c.codes_len(),
                scales: second.scales + c.scales_len(),
            };
        }
        assert_eq!(p.quant_extent(n), next);
    }
    // Chunks of full-precision spans hold no 8-bit state.
    for c in p.chunks.iter().filter(|c| !c.quantized) {
        assert_eq!((c.quant_states, c.quant_len()), (0, Default::default()));
    }
}

/// A plan of `lens` in one arena, the tensors torchao quantizes keeping 8-bit states.
fn eight_bit_plan(lens: &[u64], chunk_len: u64) -> (Plan, Vec<Vec<PlanRange>>) {
    let quantized: Vec<bool> = lens.iter().map(|&n| crate::quant::quantizes(n)).collect();
    let t = tensors(lens);
    let l = PlanLimits {
        quantized_tile: 4 * 256,
        ..limits(chunk_len, 1024)
    };
    let groups = PlanGroups {
        of_tensor: &vec![0; lens.len()],
        count: 1,
        quantized: &quantized,
        quant_states: 2,
    };
    let p = Plan::new(&t, groups, ControlMode::Shared, &l);
    assert_covers(&p, &t, 1024);
    assert_eight_bit_chunks(&p, &t);
    (p, t)
}

#[test]
fn eight_bit_spans_are_cut_at_block_edges_with_regions_of_their_own() {
    // 8-bit tensors (multiples of 256, at least 4096) between full-precision ones, one of
    // them longer than a binding of 16384 elements: each chunk ends at the last edge of a
    // block within the binding, of whichever tensor lies there.
    let lens = [8192, 300, 4096, 12288, 100, 40960, 8192];
    let (p, _) = eight_bit_plan(&lens, 16384);
    let span = p.spans.iter().position(|s| s.quantized).unwrap();
    let cuts: Vec<_> = (p.chunks.iter().filter(|c| c.span == span))
        .map(|c| (c.offset, c.len))
        .collect();
    // Tensors at 0, 8512, 12608, 25024 (the long one) and 65984: the third's blocks end at
    // 16192 (12608 + 14 * 256); then the fourth's at 32448, 48832 and 65216 (25024 + 29, 93
    // and 157 blocks), each the last edge within a binding of the chunk's start.
    assert_eq!(
        cuts,
        [
            (0, 16192),
            (16192, 16256),
            (32448, 16384),
            (48832, 16384),
            (65216, 8960)
        ]
    );
}

proptest::proptest! {
    /// Any arena of 8-bit tensors (multiples of 256 from 4096) and full-precision ones, under
    /// any binding: every element in one segment, no chunk starting inside a block, and each
    /// chunk's codes and scales aligned, after the previous chunk's of its span.
    #[test]
    fn eight_bit_chunks_never_split_a_block(
        sizes in proptest::collection::vec((0u64..2, 1u64..200), 1..12),
        chunk_len in proptest::sample::select(vec![4096u64, 8192, 16384, 1 << 20]),
    ) {
        let lens: Vec<u64> = sizes
            .iter()
            .map(|&(kind, n)| if kind == 0 { n * 256 } else { n * 37 })
            .collect();
        eight_bit_plan(&lens, chunk_len);
    }
}
