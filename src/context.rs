//! The device an optimizer runs on, its pipeline cache, and host upload/readback helpers.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::clip::GradStages;
use crate::error::{Error, Result};
use crate::plan::PlanLimits;
use crate::shaders::{ElementLayout, Kernel, Storage};
use crate::tensor::{BufferRange, COPY_ALIGNMENT};

/// How the update kernels are launched. The defaults suit both GPUs and the software adapter;
/// tests and the roofline example change them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Invocations per workgroup of the update kernels and reductions.
    pub workgroup_size: u32,
    /// Groups of four elements each invocation of an update kernel takes (one 16-byte load
    /// per buffer and group where the layout allows): a workgroup updates a tile of
    /// `4 * vec4s_per_invocation * workgroup_size` elements. More amortizes the per-workgroup
    /// reads of the segment, control block and hyperparameters; fewer spreads small tensors
    /// over more workgroups. At least 1.
    pub vec4s_per_invocation: u32,
    /// Most workgroups per dimension of one dispatch: an update with more segments runs a 2-D
    /// grid, a reduction loops over more tiles (grid-stride). Capped by the device's
    /// `max_compute_workgroups_per_dimension`.
    pub max_workgroups_per_dispatch: u32,
    /// Whether the gradient-norm reduction uses subgroup operations where the device has
    /// `Features::SUBGROUP` (default true). The workgroup-memory tree (false) gives the same
    /// bits run after run on any adapter. The subgroup path does so wherever a pipeline runs
    /// with one subgroup size (NVIDIA, Apple, lavapipe; AMD and Intel in practice), but Vulkan
    /// lets a driver vary it between dispatches: set false where bitwise reproducibility must
    /// not depend on the driver. The two paths may differ in the last place.
    pub subgroups: bool,
    /// How the update deals a workgroup's vec4s to its invocations: `false`, consecutive
    /// invocations take consecutive vec4s, row after row (coalesced 16-byte loads: what GPUs
    /// want); `true`, each invocation takes a run of `vec4s_per_invocation` consecutive vec4s.
    /// [`Context::request`] turns it on for CPU adapters (lavapipe, where an 8-lane batch then
    /// streams through contiguous memory: AdamW 1.08x faster at 16M, BENCHMARKS.md). Results
    /// are the same bits either way.
    pub runs_per_invocation: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            workgroup_size: 256,
            vec4s_per_invocation: 4,
            max_workgroups_per_dispatch: 65535,
            subgroups: true,
            runs_per_invocation: false,
        }
    }
}

/// How [`Context::request`] picks its adapter and device.
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Adapter preference; `None` follows `WGPU_POWER_PREF`, else wgpu's default.
    pub power_preference: Option<wgpu::PowerPreference>,
    /// Limits to request; `None` asks for everything the adapter offers.
    pub limits: Option<wgpu::Limits>,
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

/// What a cached pipeline set was built from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum PipelineKey {
    /// An optimizer kernel's module in one element layout and storage.
    Module {
        kernel: Kernel,
        layout: ElementLayout,
        storage: Storage,
    },
    /// An optimizer kernel's bind group layouts, with or without a master copy binding.
    Layouts { kernel: Kernel, master: bool },
    /// One entry point of an optimizer kernel with its structural options.
    Kernel {
        kernel: Kernel,
        overrides: Vec<(&'static str, bool)>,
        layout: ElementLayout,
        storage: Storage,
        workgroup_size: u32,
        vec4s_per_invocation: u32,
        runs_per_invocation: bool,
        variant: Variant,
        entry: Entry,
    },
    /// The gradient-processing module with or without subgroup operations, for gradients of
    /// one type, its reduction with these stages.
    Grad {
        subgroups: bool,
        grad: crate::Dtype,
        stages: GradStages,
    },
    /// The standalone clip-by-value module.
    ClipValue { workgroup_size: u32 },
    /// The device-schedule module.
    Schedule,
}

type Cache = HashMap<PipelineKey, Arc<dyn Any + Send + Sync>>;

/// A wgpu device and queue, with the pipeline cache every optimizer built on it shares.
///
/// Create one with [`Context::new_blocking`] (its own device) or wrap the device of an
/// existing renderer or training loop with [`Context::from_device`]. Cloning is cheap and
/// clones share the cache.
#[derive(Clone)]
pub struct Context {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter_info: Option<wgpu::AdapterInfo>,
    tuning: Tuning,
    pipelines: Arc<Mutex<Cache>>,
    // 16 bytes of zeros, never written: bound in place of the state buffers a configuration
    // does not keep (one per slot, so no buffer is bound twice in one dispatch), and as the
    // vec4 view of gradient chunks shorter than 4 elements.
    placeholders: Arc<[wgpu::Buffer; 3]>,
}

impl Context {
    /// Creates a device on the adapter wgpu's conventions choose (`WGPU_BACKEND`,
    /// `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`), blocking until it is ready.
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::request(&ContextOptions::default()))
    }

    /// Creates a device with explicit options. It enables `Features::SUBGROUP` and
    /// `Features::TIMESTAMP_QUERY` where the adapter has them.
    pub async fn request(options: &ContextOptions) -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = match std::env::var("WGPU_ADAPTER_NAME") {
            Ok(wanted) => {
                let wanted = wanted.to_lowercase();
                let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
                    .ok_or_else(|| {
                        Error::NoAdapter(format!(
                            "no adapter name contains WGPU_ADAPTER_NAME={wanted:?}"
                        ))
                    })?
            }
            Err(_) => instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: options
                        .power_preference
                        .or_else(wgpu::PowerPreference::from_env)
                        .unwrap_or_default(),
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::NoAdapter(e.to_string()))?,
        };
        let limits = options.limits.clone().unwrap_or_else(|| adapter.limits());
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-optim"),
                // Subgroup operations speed up the gradient-norm reduction where there are any;
                // timestamp queries let the caller (and the benchmarks) time steps on the GPU.
                required_features: adapter.features()
                    & (wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY),
                required_limits: limits,
                ..Default::default()
            })
            .await?;
        let mut context = Self::from_device(device, queue);
        let info = adapter.get_info();
        context.tuning.runs_per_invocation = info.device_type == wgpu::DeviceType::Cpu;
        context.adapter_info = Some(info);
        Ok(context)
    }

    /// Wraps a device and queue the caller already has.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let placeholder = |slot: usize| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("wgpu-optim unused state{slot}")),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let placeholders = Arc::new([placeholder(0), placeholder(1), placeholder(2)]);
        Context {
            device,
            queue,
            adapter_info: None,
            tuning: Tuning::default(),
            pipelines: Arc::default(),
            placeholders,
        }
    }

    /// The same device with other launch settings, for optimizers built afterwards. A
    /// `vec4s_per_invocation` of 0 is taken as 1.
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = Tuning {
            vec4s_per_invocation: tuning.vec4s_per_invocation.max(1),
            ..tuning
        };
        self
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter, when this context chose it.
    pub fn adapter_info(&self) -> Option<&wgpu::AdapterInfo> {
        self.adapter_info.as_ref()
    }

    /// The launch settings.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// Elements of f32 one binding may cover: the device's `max_storage_buffer_binding_size`,
    /// rounded down to a multiple of the storage offset alignment so chunks start aligned.
    pub fn max_chunk_len(&self) -> u64 {
        let limits = self.device.limits();
        let align = u64::from(limits.min_storage_buffer_offset_alignment);
        (limits.max_storage_buffer_binding_size / align * align / 4).max(1)
    }

    /// Most workgroups one dispatch launches: the tuning's cap within the device's limit.
    pub(crate) fn max_workgroups(&self) -> u64 {
        let limit = self.device.limits().max_compute_workgroups_per_dimension;
        u64::from(self.tuning.max_workgroups_per_dispatch.min(limit).max(1))
    }

    pub(crate) fn placeholder(&self, slot: usize) -> &wgpu::Buffer {
        &self.placeholders[slot]
    }

    /// Whether the gradient-norm reduction uses subgroup operations on this context.
    pub fn uses_subgroups(&self) -> bool {
        self.tuning.subgroups && self.device.features().contains(wgpu::Features::SUBGROUP)
    }

    /// The pipelines `key` names, built by `build` on first use and shared afterwards.
    pub(crate) fn cached<T: Send + Sync + 'static>(
        &self,
        key: PipelineKey,
        build: impl FnOnce(&wgpu::Device) -> T,
    ) -> Result<Arc<T>> {
        let mut cache = self
            .pipelines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = cache.get(&key) {
            return Ok(found.clone().downcast().expect("one type per key"));
        }
        let built = Arc::new(capture_errors(&self.device, || build(&self.device))?);
        cache.insert(key, built.clone());
        Ok(built)
    }

    /// The bind group layouts of `kernel` (with the master copy's binding when `master`),
    /// built on first use.
    pub(crate) fn kernel_layouts(
        &self,
        kernel: Kernel,
        master: bool,
    ) -> Result<Arc<KernelLayouts>> {
        self.cached(PipelineKey::Layouts { kernel, master }, |device| {
            let label = kernel.name();
            // 0: control, 1: hyper.
            let prologue = bind_group_layout(device, label, &[(0, false), (1, false)]);
            // 0: control, 1: hyper, 2: param, 3: grad, 4..7: state slots, 7: segments,
            // 8: the master copy, 9: the trust ratios' sums and ratios.
            let mut entries = vec![(0, false), (1, false), (2, false), (3, true), (7, true)];
            if kernel.has_trust_ratio() {
                entries.push((crate::shaders::TRUST_BINDING, false));
            }
            entries.extend((0..kernel.state_slots()).map(|slot| (4 + slot as u32, false)));
            if master {
                entries.push((crate::shaders::MASTER_BINDING, false));
            }
            let update = bind_group_layout(device, label, &entries);
            KernelLayouts { prologue, update }
        })
    }

    /// The pipeline of `entry` of `kernel` with these structural options, element layout,
    /// storage types and variant, built on first use.
    pub(crate) fn kernel_pipeline(
        &self,
        kernel: Kernel,
        overrides: &[(&'static str, bool)],
        (layout, storage): (ElementLayout, Storage),
        variant: Variant,
        entry: Entry,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let module_key = PipelineKey::Module {
            kernel,
            layout,
            storage,
        };
        let module = self.cached(module_key, |device| {
            create_module(device, kernel.name(), &kernel.source(layout, storage))
        })?;
        let layouts = self.kernel_layouts(kernel, storage.master)?;
        let tuning = self.tuning;
        let key = PipelineKey::Kernel {
            kernel,
            overrides: overrides.to_vec(),
            layout,
            storage,
            workgroup_size: tuning.workgroup_size,
            vec4s_per_invocation: tuning.vec4s_per_invocation,
            runs_per_invocation: tuning.runs_per_invocation,
            variant,
            entry,
        };
        self.cached(key, |device| {
            let flag = |on: bool| if on { 1.0 } else { 0.0 };
            let stages = variant.stages;
            let mut constants: Vec<(&str, f64)> = overrides
                .iter()
                .map(|&(name, on)| (name, flag(on)))
                .collect();
            constants.push(("GRAD_PROCESSING", flag(stages.on)));
            constants.push(("GROUP_CONTROL", flag(variant.group_control)));
            let bind_layout = match entry {
                Entry::Prologue => &layouts.prologue,
                Entry::Update
                | Entry::UpdateTail
                | Entry::UpdateNorms
                | Entry::UpdateTailNorms
                | Entry::TrustFold => {
                    constants.extend([
                        ("UNSCALE", flag(stages.unscale)),
                        ("CLIP_VALUE", flag(stages.clip_value)),
                        ("CLIP_NORM", flag(stages.clip_norm)),
                        ("ONE_GROUP", flag(variant.one_group)),
                    ]);
                    &layouts.update
                }
            };
            if matches!(entry, Entry::Update | Entry::UpdateNorms) {
                constants.push(("REGULAR_TILES", flag(variant.regular_tiles)));
            }
            if matches!(entry, Entry::Update | Entry::UpdateNorms | Entry::TrustFold) {
                constants.push(("WORKGROUP_SIZE", f64::from(tuning.workgroup_size)));
                constants.push((
                    "VEC4S_PER_INVOCATION",
                    f64::from(tuning.vec4s_per_invocation),
                ));
            }
            if layout == ElementLayout::Vec4 && entry != Entry::Prologue {
                let tail = matches!(entry, Entry::UpdateTail | Entry::UpdateTailNorms);
                constants.push(("PARTIAL_VEC4S", flag(tail)));
                constants.push(("RUNS", flag(tuning.runs_per_invocation)));
            }
            compute_pipeline(device, &module, entry.name(), bind_layout, &constants)
        })
    }

    /// What dispatch plans of kernels with `storage` are cut with on this context.
    pub(crate) fn plan_limits(&self, storage: Storage) -> PlanLimits {
        let limits = self.device.limits();
        PlanLimits {
            chunk_len: self.max_chunk_len(),
            tile: self.update_tile(storage),
            packed: storage.packed(),
            align: u64::from(limits.min_storage_buffer_offset_alignment),
            max_binding: limits.max_storage_buffer_binding_size,
            max_workgroups: self.max_workgroups(),
            cut_unit: u64::from(limits.min_storage_buffer_offset_alignment)
                / storage.smallest_size(),
        }
    }

    /// Elements one workgroup of an update kernel with `storage` takes at most (a segment):
    /// `vec4s_per_invocation` units of the vec4 layout per invocation.
    pub(crate) fn update_tile(&self, storage: Storage) -> u64 {
        storage.unit(ElementLayout::Vec4)
            * u64::from(self.tuning.workgroup_size)
            * u64::from(self.tuning.vec4s_per_invocation)
    }

    /// A new storage buffer holding `data`, usable as a parameter or gradient and readable
    /// with [`Context::read_f32`].
    pub fn upload_f32(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Writes `data` into `range` through the queue (ordered before the next submit), rounded
    /// to the range's storage type (nearest, ties to even). Copies are of whole 32-bit words: a
    /// 16-bit range of odd length also zeroes the 2 bytes after its last element, which no
    /// other range can start at (ranges start on aligned offsets).
    pub fn write_f32(&self, range: &BufferRange, data: &[f32]) -> Result<()> {
        if data.len() as u64 != range.len() {
            return Err(Error::WrongLength {
                what: "write_f32",
                expected: range.len() as usize,
                actual: data.len(),
            });
        }
        range.check(0, "write", COPY_ALIGNMENT, wgpu::BufferUsages::COPY_DST)?;
        let mut bytes = range.dtype().encode(data);
        bytes.resize((range.word_end() - range.offset()) as usize, 0);
        // A destroyed or mapped buffer is a validation error: returned, not panicked on.
        capture_errors(&self.device, || {
            self.queue
                .write_buffer(range.buffer(), range.offset(), &bytes)
        })
    }

    /// Reads `range` back to the host, widened to f32 from its storage type, blocking until
    /// the device has finished all submitted work. For tests, examples and tools: a training
    /// step never calls it. A destroyed or mapped buffer gives [`Error::Wgpu`].
    pub fn read_f32(&self, range: &BufferRange) -> Result<Vec<f32>> {
        range.check(0, "read", COPY_ALIGNMENT, wgpu::BufferUsages::COPY_SRC)?;
        let size = range.word_end() - range.offset();
        let bytes = self.read_bytes(range.buffer(), range.offset(), size)?;
        let mut values = range.dtype().decode(&bytes);
        values.truncate(range.len() as usize);
        Ok(values)
    }

    /// Reads `size` bytes at `offset` (both multiples of 4) of a buffer with `COPY_SRC`.
    pub(crate) fn read_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>> {
        if size == 0 {
            return Ok(Vec::new());
        }
        // A destroyed or mapped source is a validation error of the copy or the submit:
        // returned before waiting on a staging buffer that would hold zeros.
        let staging = capture_errors(&self.device, || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-optim readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = self.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
            self.queue.submit([encoder.finish()]);
            staging
        })?;
        self.read_staging(&staging, size, None)
    }

    /// The first `bytes` of `staging` (a `MAP_READ` buffer that work already submitted copies
    /// into), once `submission` (or the last submission) is done: mapped, copied out, unmapped.
    /// Blocking.
    pub(crate) fn read_staging(
        &self,
        staging: &wgpu::Buffer,
        bytes: u64,
        submission: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<u8>> {
        let slice = staging.slice(..bytes);
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            sender.send(result).ok();
        });
        self.device.poll(wgpu::PollType::Wait {
            submission_index: submission,
            timeout: None,
        })?;
        pollster::block_on(receiver.receive()).expect("map_async callback ran")?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| Error::Wgpu(e.to_string()))?
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }
}

/// The module of `source`, with every runtime check wgpu adds (bounds, integer division, loop
/// bounding). Building the modules without naga's loop-bounding counters
/// (`create_shader_module_trusted`) was measured and gave no speed-up on lavapipe
/// (BENCHMARKS.md, A/B log), so the crate has no `unsafe`.
pub(crate) fn create_module(
    device: &wgpu::Device,
    label: &str,
    source: &str,
) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    })
}

/// A compute bind group layout of storage buffers: `(binding, read_only)`.
pub(crate) fn bind_group_layout(
    device: &wgpu::Device,
    label: &str,
    entries: &[(u32, bool)],
) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = entries
        .iter()
        .map(|&(binding, read_only)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

/// The compute pipeline of `entry` in `module`, with one bind group of layout `layout`.
pub(crate) fn compute_pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    entry: &str,
    layout: &wgpu::BindGroupLayout,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(entry),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: Some(&pipeline_layout),
        module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            zero_initialize_workgroup_memory: true,
        },
        cache: None,
    })
}

/// Binds whole buffers or ranges: `(binding, resource)`.
pub(crate) fn bind_group(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    entries: &[(u32, wgpu::BindingResource<'_>)],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = entries
        .iter()
        .map(|(binding, resource)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: resource.clone(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// Runs `f` inside validation and out-of-memory error scopes and returns what they caught.
pub(crate) fn capture_errors<T>(device: &wgpu::Device, f: impl FnOnce() -> T) -> Result<T> {
    let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let validation = pollster::block_on(validation.pop());
    let out_of_memory = pollster::block_on(out_of_memory.pop());
    match validation.or(out_of_memory) {
        Some(error) => Err(Error::Wgpu(error.to_string())),
        None => Ok(value),
    }
}
