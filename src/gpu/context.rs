//! The device an optimizer runs on: [`Context`], its launch settings and its pipeline cache.

use std::sync::Arc;

use super::pipeline::PipelineCache;
use crate::error::{Error, Result};

/// How the update kernels are launched. The defaults suit both GPUs and the software adapter;
/// tests and the roofline example change them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Where an update with 8-bit states reads its quantization table (the maps and the
    /// buckets' words, 38 KiB: `quant::device_table`): `false`,
    /// a read-only storage buffer; `true`, a uniform buffer. [`Context::request`] turns it on
    /// for CPU adapters: lavapipe gathers a uniform buffer's words for a batch of lanes at
    /// once, where it loops over the lanes for each storage access (AdamW at 16M with 8-bit
    /// states 1.45x faster, BENCHMARKS.md). On GPUs lanes of a subgroup reading different
    /// words of a uniform buffer may be served one address at a time (a constant cache).
    /// A device that cannot bind one kind of buffer of the table's size gets the other.
    /// Results are the same bits either way.
    pub uniform_maps: bool,
}

/// The most vec4s one invocation of an update kernel takes ([`Tuning::vec4s_per_invocation`]):
/// with 16-bit storage (8 elements a unit) and 1024 invocations, a tile of 2^23 elements.
pub const MAX_VEC4S_PER_INVOCATION: u32 = 1024;

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            workgroup_size: 256,
            vec4s_per_invocation: 4,
            max_workgroups_per_dispatch: 65535,
            subgroups: true,
            runs_per_invocation: false,
            uniform_maps: false,
        }
    }
}

/// How [`Context::request`] picks its adapter and device.
///
/// ```no_run
/// # fn main() -> wgpu_optim::Result<()> {
/// use wgpu_optim::{Context, ContextOptions};
/// // wgpu's GL backend only (on Linux: EGL, e.g. Mesa's llvmpipe), whatever `WGPU_BACKEND` says.
/// let options = ContextOptions {
///     backends: Some(wgpu::Backends::GL),
///     ..Default::default()
/// };
/// let gl = pollster::block_on(Context::request(&options))?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// The backends to look for an adapter on (`wgpu::Backends::VULKAN`,
    /// `wgpu::Backends::GL`, ...); `None` follows `WGPU_BACKEND`, else every backend wgpu was
    /// built with. An explicit value overrides `WGPU_BACKEND`; `WGPU_ADAPTER_NAME` then picks
    /// among these backends' adapters.
    pub backends: Option<wgpu::Backends>,
    /// Adapter preference; `None` follows `WGPU_POWER_PREF`, else wgpu's default.
    pub power_preference: Option<wgpu::PowerPreference>,
    /// Limits to request; `None` asks for everything the adapter offers.
    pub limits: Option<wgpu::Limits>,
    /// Request every feature the adapter has (but `MAPPABLE_PRIMARY_BUFFERS`), as Burn's
    /// CubeCL runtime does for a device of its own, instead of only `SUBGROUP` and
    /// `TIMESTAMP_QUERY`. A device shared with Burn needs it: CubeCL compiles its kernels for
    /// what the adapter offers (f16, subgroups, ...), whatever the device enabled.
    pub all_features: bool,
}

/// A wgpu device and queue, with the pipeline cache every optimizer built on it shares.
///
/// Create one with [`Context::new_blocking`] (its own device) or wrap the device of an
/// existing renderer or training loop with [`Context::from_device`]. Cloning is cheap and
/// clones share the cache.
#[derive(Clone)]
pub struct Context {
    device: wgpu::Device,
    queue: wgpu::Queue,
    // The instance a context of `request` created its device on: `wgpu::Device` compares by
    // an id that is only unique within one instance, so two contexts are the same device when
    // their devices compare equal and their instances are the same one. `None` for a caller's
    // device (`from_device`), whose instance wgpu cannot tell.
    instance: Option<Arc<wgpu::Instance>>,
    // The adapter a context of `request` chose, `None` for a caller's device: what a Burn
    // device on this context is registered with (feature `burn`).
    adapter: Option<wgpu::Adapter>,
    adapter_info: Option<wgpu::AdapterInfo>,
    tuning: Tuning,
    pipelines: Arc<PipelineCache>,
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
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(backends) = options.backends {
            descriptor.backends = backends;
        }
        let backends = descriptor.backends;
        let instance = wgpu::Instance::new(descriptor);
        let adapter = match std::env::var("WGPU_ADAPTER_NAME") {
            Ok(wanted) => {
                let wanted = wanted.to_lowercase();
                let adapters = instance.enumerate_adapters(backends).await;
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
                    .ok_or_else(|| {
                        Error::NoAdapter(format!(
                            "no adapter of backends {backends:?} has a name containing \
                             WGPU_ADAPTER_NAME={wanted:?}{}",
                            gl_hint(backends)
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
                .map_err(|e| {
                    Error::NoAdapter(format!("{e}; backends {backends:?}{}", gl_hint(backends)))
                })?,
        };
        let limits = options.limits.clone().unwrap_or_else(|| adapter.limits());
        // Subgroup operations speed up the gradient-norm reduction where there are any;
        // timestamp queries let the caller (and the benchmarks) time steps on the GPU.
        let features = if options.all_features {
            adapter.features() - wgpu::Features::MAPPABLE_PRIMARY_BUFFERS
        } else {
            adapter.features() & (wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY)
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-optim"),
                required_features: features,
                required_limits: limits,
                ..Default::default()
            })
            .await?;
        Ok(Self::from_parts(instance, adapter, device, queue))
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
            instance: None,
            adapter: None,
            adapter_info: None,
            tuning: Tuning::default(),
            pipelines: Arc::default(),
            placeholders,
        }
    }

    /// Whether `other` is a context of the same device: their `wgpu::Device`s compare equal
    /// (an id unique within one `wgpu::Instance`) and, where both were created by
    /// [`Context::request`], on the same instance. Two contexts of [`Context::from_device`]
    /// on devices of different instances cannot be told apart: wgpu 30 offers no way to.
    pub fn same_device(&self, other: &Context) -> bool {
        let same_instance = match (&self.instance, &other.instance) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => true,
        };
        same_instance && self.device == other.device
    }

    /// The same device with other launch settings, for optimizers built afterwards, clamped
    /// to what the device launches: `workgroup_size` to 1 ..= the device's
    /// `max_compute_invocations_per_workgroup` and `max_compute_workgroup_size_x`,
    /// `vec4s_per_invocation` to 1 ..= [`MAX_VEC4S_PER_INVOCATION`] (a tile's element count
    /// stays well inside the kernels' u32 indices), `max_workgroups_per_dispatch` to 1 ..= the
    /// device's `max_compute_workgroups_per_dimension`. [`Context::tuning`] reads back the
    /// settings in force.
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        let limits = self.device.limits();
        let most_invocations = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x)
            .max(1);
        self.tuning = Tuning {
            workgroup_size: tuning.workgroup_size.clamp(1, most_invocations),
            vec4s_per_invocation: tuning
                .vec4s_per_invocation
                .clamp(1, MAX_VEC4S_PER_INVOCATION),
            max_workgroups_per_dispatch: tuning
                .max_workgroups_per_dispatch
                .clamp(1, limits.max_compute_workgroups_per_dimension.max(1)),
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

    /// The instance and adapter of a context of [`Context::request`] (`None` for a caller's
    /// device): what registering this device with another wgpu runtime takes.
    #[cfg(feature = "burn")]
    pub(crate) fn instance_and_adapter(&self) -> Option<(&wgpu::Instance, &wgpu::Adapter)> {
        Some((self.instance.as_deref()?, self.adapter.as_ref()?))
    }

    /// A context of a device created on `adapter` of `instance` (by [`Context::request`], or
    /// by Burn's runtime with feature `burn`), with the launch settings for that adapter.
    pub(crate) fn from_parts(
        instance: wgpu::Instance,
        adapter: wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
    ) -> Self {
        let mut context = Self::from_device(device, queue);
        let info = adapter.get_info();
        let cpu = info.device_type == wgpu::DeviceType::Cpu;
        context.tuning.runs_per_invocation = cpu;
        context.tuning.uniform_maps = cpu;
        context.adapter_info = Some(info);
        context.instance = Some(Arc::new(instance));
        context.adapter = Some(adapter);
        context
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

    /// The object `key` names (a pipeline, a layout), built by `build` on first use and
    /// shared by every clone of this context afterwards. Each client keys its objects with a
    /// type of its own.
    pub(crate) fn cached<K, T>(
        &self,
        key: K,
        build: impl FnOnce(&wgpu::Device) -> T,
    ) -> Result<Arc<T>>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        self.pipelines.get_or_build(&self.device, key, build)
    }
}

/// The fix for a missing GL adapter, where only wgpu's GL backend was asked for: the Vulkan
/// fix that [`Error::NoAdapter`] names would not help.
fn gl_hint(backends: wgpu::Backends) -> &'static str {
    if backends.contains(wgpu::Backends::GL) && !backends.contains(wgpu::Backends::VULKAN) {
        "; for wgpu's GL backend on Linux without a GPU install EGL and Mesa's llvmpipe \
         (`apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri`)"
    } else {
        ""
    }
}
