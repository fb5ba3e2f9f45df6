//! 8-bit block-quantized states (`Precision::with_8bit_states`, docs/8bit.md): which
//! optimizers and layouts take them, and reading them back.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::{Optimizer, Precision};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
#[cfg(doc)]
use crate::gpu::Tuning;
use crate::gpu::{BufferRange, Context, Param};
use crate::kernel::plan::DevicePlan;
use crate::kernel::{ElementLayout, KernelSpec, Quant8, Storage};
use crate::quant::{device_table, quantizes, Quantized, BLOCK, MIN_SCALE, TABLE_WORDS};
#[cfg(feature = "mpi")]
use {super::ParamGroup, crate::gpu::capture_errors, crate::kernel::plan::ControlMode};

/// The kernels 8-bit states are offered for: torchao's `Adam8bit`/`AdamW8bit` (the `adam`
/// kernel, AMSGrad included) and bitsandbytes' `SGD8bit` and `Lion8bit`.
const QUANTIZED_KERNELS: [&str; 3] = ["adam", "sgd", "lion"];

/// `storage` with 8-bit states for `spec`, checked: an offered kernel, no other state type
/// asked for. Slots of squares take the unsigned map; the table is bound as
/// [`table_binding`] says.
pub(super) fn quantized_storage(
    ctx: &Context,
    storage: Storage,
    spec: &KernelSpec,
    precision: Precision,
) -> Result<Storage> {
    if !QUANTIZED_KERNELS.contains(&spec.kernel.name) {
        return Err(Error::Quantized(
            "offered for Adam, AdamW, SGD (momentum) and Lion, as torchao and bitsandbytes",
        ));
    }
    if precision.states.is_some() {
        return Err(Error::InvalidOptions(
            "8-bit states replace the states' storage type: ask for one or the other",
        ));
    }
    let mut unsigned = [false; 3];
    for state in &spec.states {
        unsigned[state.slot] = state.holds_squares();
    }
    Ok(Storage {
        states: Dtype::F32,
        quant8: Some(Quant8 {
            unsigned,
            uniform_maps: table_binding(ctx)?,
        }),
        ..storage
    })
}

/// Whether the quantization table (38 KiB) is bound as a uniform buffer: where
/// [`Tuning::uniform_maps`] asks for one and the device binds a uniform buffer that large
/// (WebGPU guarantees 64 KiB, wgpu's downlevel limits 16), or where it cannot bind a storage
/// buffer that large (wgpu's WebGL2 limits bind none; WebGPU guarantees 128 MiB). A device
/// that binds neither is refused.
fn table_binding(ctx: &Context) -> Result<bool> {
    let limits = ctx.device().limits();
    let bytes = (TABLE_WORDS * 4) as u64;
    let uniform = limits.max_uniform_buffer_binding_size >= bytes;
    let storage = limits.max_storage_buffer_binding_size >= bytes;
    match (uniform, storage) {
        (false, false) => Err(Error::Quantized(
            "the device binds neither a uniform nor a storage buffer of the quantization \
             table's 38 KiB",
        )),
        (true, true) => Ok(ctx.tuning().uniform_maps),
        (uniform, _) => Ok(uniform),
    }
}

/// The quantization table's buffer (`quant::device_table`) on `ctx`: one per context, never
/// written, shared by every 8-bit optimizer built on it (the Burn adapter rebuilds optimizers
/// on rebinds). Usable as either binding: the kernel binds it as `Quant8::uniform_maps` says
/// ([`table_binding`]).
pub(super) fn table_buffer(ctx: &Context) -> Result<Arc<wgpu::Buffer>> {
    /// The cache's key of the table buffer.
    #[derive(Hash, PartialEq, Eq)]
    struct TableBuffer;
    ctx.cached(TableBuffer, |device| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-optim quant maps"),
            contents: bytemuck::cast_slice(device_table()),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::COPY_SRC,
        })
    })
}

/// Whether each tensor keeps 8-bit states: those torchao quantizes ([`quantizes`]), with
/// 8-bit states asked for and states to keep (SGD without momentum has none); none without.
/// Where the tensors are pieces of others (`whole_lens`, each piece's tensor's length), a
/// non-empty piece keeps them when its tensor would.
pub(super) fn quantized_tensors(
    storage: Storage,
    spec: &KernelSpec,
    params: &[Param],
    whole_lens: Option<&[u64]>,
) -> Vec<bool> {
    match (storage.quant8, whole_lens) {
        (Some(_), _) if spec.states.is_empty() => Vec::new(),
        (Some(_), None) => params.iter().map(|p| quantizes(p.len())).collect(),
        (Some(_), Some(whole)) => params
            .iter()
            .zip(whole)
            .map(|(p, &whole)| !p.is_empty() && quantizes(whole))
            .collect(),
        (None, _) => Vec::new(),
    }
}

#[cfg(feature = "mpi")]
impl Optimizer {
    /// [`Optimizer::with_precision`] over pieces of tensors (a ZeRO-1 rank's shard of an
    /// arena), `whole_lens[i]` the length of the tensor parameter `i` is a piece of: with 8-bit
    /// states a piece keeps them when its tensor does, however short, so that its blocks are
    /// stepped as the whole tensor's would be. Pieces of such tensors must start at a block's
    /// edge within their tensor (the caller's part) and hold whole blocks
    /// ([`Error::Quantized`] otherwise).
    pub(crate) fn with_precision_of_pieces(
        ctx: &Context,
        groups: Vec<ParamGroup>,
        precision: Precision,
        whole_lens: Vec<u64>,
    ) -> Result<Self> {
        let mut checked = Self::check_groups(ctx, groups, precision, ControlMode::Shared)?;
        if whole_lens.len() != checked.params.len() {
            return Err(Error::WrongLength {
                what: "whole tensor lengths (one per piece)",
                expected: checked.params.len(),
                actual: whole_lens.len(),
            });
        }
        let partial =
            |(p, &whole): (&Param, &u64)| quantizes(whole) && !p.len().is_multiple_of(BLOCK as u64);
        if precision.eight_bit_states && checked.params.iter().zip(&whole_lens).any(partial) {
            return Err(Error::Quantized(
                "a piece of a tensor with 8-bit states must hold whole blocks of 256",
            ));
        }
        checked.whole_lens = Some(whole_lens);
        capture_errors(ctx.device(), || Self::create(ctx, checked, None))?
    }
}

/// Every chunk of 8-bit states must be in the vec4 layout and hold whole blocks of its
/// tensors: blocks are counted from each tensor's first element in the chunk's own scales,
/// and a block's scale needs the whole block. A span longer than one binding is cut at a
/// block's edge (src/kernel/plan/table.rs, `block_cut`), which every role's binding can start
/// at wherever the tensors start at the offset alignment; a plan where one could not be is
/// refused.
pub(super) fn check_quantized_plan(plan: &DevicePlan, params: &[Param]) -> Result<()> {
    let plan = &plan.plan;
    if plan
        .chunks
        .iter()
        .any(|c| c.quantized && c.layout != ElementLayout::Vec4)
    {
        return Err(Error::Quantized(
            "tensors must start at multiples of 4 elements in their buffers (16 bytes for f32)",
        ));
    }
    for (n, span) in plan.spans.iter().enumerate().filter(|(_, s)| s.quantized) {
        for &i in &span.tensors {
            let param = &params[i].param;
            let start = span.offset_at(param.offset(), param.dtype());
            let end = start + param.len();
            let splits_a_block = plan.chunks.iter().any(|c| {
                c.span == n
                    && c.offset > start
                    && c.offset < end
                    && !(c.offset - start).is_multiple_of(BLOCK as u64)
            });
            if splits_a_block {
                return Err(Error::Quantized(
                    "8-bit tensors past one storage binding (max_storage_buffer_binding_size) \
                     whose blocks' edges no binding can start at (tensors at offsets that are \
                     not multiples of min_storage_buffer_offset_alignment bytes)",
                ));
            }
        }
    }
    Ok(())
}

impl Optimizer {
    /// Whether the optimizer keeps 8-bit states ([`Precision::with_8bit_states`]) for the
    /// tensors torchao quantizes ([`quantizes`](crate::quant::quantizes)); the others keep f32
    /// states.
    pub fn quantized_states(&self) -> bool {
        self.storage.quant8.is_some()
    }

    /// Reads the 8-bit state `name` of tensor `index` back as it is stored (blocking): its
    /// codes, its block scales and which map they index. [`Error::Quantized`] for an
    /// optimizer whose states are not 8-bit; [`Optimizer::read_state`] gives the values.
    pub fn read_quantized_state(&self, index: usize, name: &str) -> Result<Quantized> {
        let position = self.state_position(index, name)?;
        if self.tensors[index].quant.is_empty() {
            return Err(Error::Quantized(
                "this tensor's states are full precision (an optimizer without 8-bit states, \
                 or a tensor torchao keeps in full precision: fewer than 4096 elements or not \
                 whole blocks of 256; or an empty piece of a ZeRO-1 shard)",
            ));
        }
        // A quantized tensor holds at least one block (4096 elements, or a ZeRO-1 piece of
        // one): never an empty read. Its parts (one per chunk it lies in) in order.
        let (mut codes, mut scales) = (Vec::new(), Vec::new());
        for part in &self.tensors[index].quant[position] {
            codes.extend(self.ctx.read_bytes(&part.codes, part.offset, part.len)?);
            scales.extend(self.ctx.read_f32(&part.scales)?);
        }
        let signed = !self.spec.states[position].holds_squares();
        Ok(Quantized {
            codes,
            scales,
            signed,
        })
    }
}

impl Optimizer {
    /// The byte ranges state `name` of element-wise tensor `index` lives in, for copies that
    /// move bytes alone (snapshots): its range, or with 8-bit states its codes (as 32-bit
    /// words: a tensor's codes are whole words) and its block scales.
    pub(crate) fn state_copy_ranges(&self, index: usize, name: &str) -> Result<Vec<BufferRange>> {
        Ok(self
            .state_pieces(index, name)?
            .into_iter()
            .flat_map(|p| p.ranges)
            .map(|r| BufferRange::new(&r.buffer, r.offset, (r.end - r.offset).div_ceil(4)))
            .collect())
    }
}

/// The refusal of an operation that reads or writes states as one buffer range of a storage
/// type, for 8-bit states.
pub(super) fn not_a_range() -> Error {
    Error::Quantized(
        "the states are codes and block scales, not one range of a storage type: read them \
         with read_state or read_quantized_state",
    )
}

/// One tensor of a checkpoint that holds (part of) a state: its name, safetensors dtype and
/// shape, and where its bytes live, in order (an 8-bit state of a tensor longer than one
/// binding is in several chunks' regions).
pub(super) struct StatePiece {
    pub name: String,
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub ranges: Vec<ByteRange>,
    /// Whether the piece holds block scales of 8-bit states (checked on load: [`check_loaded`]).
    ///
    /// [`check_loaded`]: StatePiece::check_loaded
    pub block_scales: bool,
}

/// Bytes `[offset, end)` of `buffer` (the last word may be padding).
pub(super) struct ByteRange {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub end: u64,
}

impl StatePiece {
    /// The piece `name` of `shape` that is `range`, in its storage type.
    pub fn of_range(name: String, shape: Vec<usize>, range: &BufferRange) -> Self {
        StatePiece {
            name,
            dtype: super::checkpoint::safetensors_dtype(range.dtype()),
            shape,
            ranges: vec![ByteRange {
                buffer: range.buffer().clone(),
                offset: range.offset(),
                end: range.end(),
            }],
            block_scales: false,
        }
    }

    /// Refuses `data`, this piece's bytes in a file being loaded, where they hold a block
    /// scale no optimizer keeps: a scale is 0 before the first step (torchao's
    /// `OptimState8bit.zeros`) and a finite f32 of at least [`MIN_SCALE`] after (torchao clips
    /// its scales there too), so a file cannot bring a NaN, infinite, negative or smaller
    /// nonzero scale, which would make its block's states NaN or flip their signs at the next
    /// step. Other pieces take any bytes, as torch's `load_state_dict` does.
    pub fn check_loaded(&self, data: &[u8]) -> Result<()> {
        if !self.block_scales {
            return Ok(());
        }
        match Dtype::F32
            .decode(data)
            .into_iter()
            .enumerate()
            .find(|(_, s)| !(*s == 0.0 || (s.is_finite() && *s >= MIN_SCALE)))
        {
            Some((block, scale)) => Err(Error::CheckpointMismatch(format!(
                "{} holds {scale} for block {block}: 8-bit states' scales are 0 (before the \
                 first step) or finite and at least {MIN_SCALE:e}",
                self.name
            ))),
            None => Ok(()),
        }
    }
}

impl Optimizer {
    /// The checkpoint tensors of state `name` of element-wise tensor `index`: one,
    /// `state.<i>.<name>` in the states' type, or with 8-bit states (the master copy aside)
    /// torchao's `OptimState8bit` attributes, `state.<i>.<name>.codes` (U8, a byte per element)
    /// and `state.<i>.<name>.scale` (F32, one per block of 256).
    pub(super) fn state_pieces(&self, index: usize, name: &str) -> Result<Vec<StatePiece>> {
        let named = |suffix: &str| format!("state.{index}.{name}{suffix}");
        if self.tensors[index].quant.is_empty() || name == super::MASTER_PARAM {
            let range = self.state_range(index, name)?;
            let shape = vec![range.len() as usize];
            return Ok(vec![StatePiece::of_range(named(""), shape, range)]);
        }
        let parts = &self.tensors[index].quant[self.state_position(index, name)?];
        let codes = parts.iter().map(|p| ByteRange {
            buffer: p.codes.clone(),
            offset: p.offset,
            end: p.offset + p.len,
        });
        let scales = parts.iter().map(|p| ByteRange {
            buffer: p.scales.buffer().clone(),
            offset: p.scales.offset(),
            end: p.scales.end(),
        });
        let len = |ranges: &[ByteRange], size: u64| {
            ranges
                .iter()
                .map(|r| (r.end - r.offset) / size)
                .sum::<u64>() as usize
        };
        let (codes, scales): (Vec<_>, Vec<_>) = (codes.collect(), scales.collect());
        Ok(vec![
            StatePiece {
                name: named(".codes"),
                dtype: safetensors::Dtype::U8,
                shape: vec![len(&codes, 1)],
                ranges: codes,
                block_scales: false,
            },
            StatePiece {
                name: named(".scale"),
                dtype: safetensors::Dtype::F32,
                shape: vec![len(&scales, 4)],
                ranges: scales,
                block_scales: true,
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::table_buffer;
    use crate::quant::device_table;
    use crate::Context;

    fn context() -> Context {
        Context::new_blocking().unwrap_or_else(|e| panic!("the tests need a wgpu adapter: {e}"))
    }

    #[test]
    fn one_table_buffer_per_context_holding_the_table() {
        let (ctx, other) = (context(), context());
        let buffer = table_buffer(&ctx).unwrap();
        // Clones of a context share its cache, so the optimizers built on them one buffer.
        assert!(Arc::ptr_eq(&buffer, &table_buffer(&ctx.clone()).unwrap()));
        assert!(!Arc::ptr_eq(&buffer, &table_buffer(&other).unwrap()));
        let bytes = ctx.read_bytes(&buffer, 0, buffer.size()).unwrap();
        assert_eq!(bytes, bytemuck::cast_slice::<u32, u8>(device_table()));
    }

    /// Pieces of tensors (a ZeRO-1 shard's): a piece of a tensor that keeps 8-bit states keeps
    /// them however short, a piece of one that does not keeps f32 states; pieces that are not
    /// whole blocks, and lengths that are not one per piece, are refused.
    #[cfg(feature = "mpi")]
    #[test]
    fn pieces_keep_their_tensors_8bit_states() {
        use crate::error::Error;
        use crate::gpu::{Arena, BufferRange, Param};
        use crate::optimizer::{Optimizer, ParamGroup, Precision};
        let ctx = context();
        let arena = Arena::new(&ctx, &[4096, 8192]).unwrap();
        let params = arena.params();
        // Elements [lo, lo + len) of tensor `t`.
        let piece = |t: usize, lo: u64, len: u64| {
            let range = |r: &BufferRange| BufferRange::new(r.buffer(), r.offset() + 4 * lo, len);
            Param::new(range(&params[t].param), range(&params[t].grad))
        };
        let group = |params| {
            let config = crate::AdamWConfig::default().into();
            vec![ParamGroup { config, params }]
        };
        let eight_bit = Precision::default().with_8bit_states();
        let pieces = |pieces, lens, precision| {
            Optimizer::with_precision_of_pieces(&ctx, group(pieces), precision, lens)
        };
        let kept = |o: &Optimizer, i| o.read_quantized_state(i, "exp_avg").is_ok();

        let shard = pieces(
            vec![piece(0, 3840, 256), piece(1, 0, 512)],
            vec![4096, 8192],
            eight_bit,
        );
        let shard = shard.unwrap();
        assert!(
            kept(&shard, 0) && kept(&shard, 1),
            "pieces of tensors that keep 8-bit states"
        );
        let alone = Optimizer::with_precision(&ctx, group(vec![piece(0, 3840, 256)]), eight_bit);
        assert!(
            !kept(&alone.unwrap(), 0),
            "a tensor of 256 alone keeps f32 states"
        );
        let short = pieces(vec![piece(0, 0, 256)], vec![1000], eight_bit).unwrap();
        assert!(
            !kept(&short, 0),
            "a piece of a tensor that keeps f32 states"
        );

        let partial = pieces(vec![piece(0, 0, 300)], vec![4096], eight_bit);
        assert!(
            matches!(partial, Err(Error::Quantized(_))),
            "{:?}",
            partial.err()
        );
        let lens = pieces(vec![piece(0, 0, 256)], vec![], eight_bit);
        assert!(
            matches!(lens, Err(Error::WrongLength { .. })),
            "{:?}",
            lens.err()
        );
        // Without 8-bit states a piece may end anywhere.
        assert!(pieces(vec![piece(0, 0, 300)], vec![4096], Precision::default()).is_ok());
    }
}
