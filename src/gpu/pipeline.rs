//! Building blocks of compute pipelines (modules, bind group layouts, pipelines, bind groups),
//! the cache every client of a [`Context`](super::Context) shares, and error capture.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Pipelines (or any objects built once per device) keyed by what they were built from. Each
/// client keys its objects with a type of its own, so the cache names no client: a map per
/// (key type, value type) pair, found by `TypeId`.
#[derive(Default)]
pub(crate) struct PipelineCache {
    maps: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl PipelineCache {
    /// The object `key` names, built by `build` on first use and shared afterwards. A build
    /// that raises a wgpu validation or out-of-memory error is returned as an error and not
    /// cached.
    pub fn get_or_build<K, T>(
        &self,
        device: &wgpu::Device,
        key: K,
        build: impl FnOnce(&wgpu::Device) -> T,
    ) -> Result<Arc<T>>
    where
        K: Hash + Eq + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        let mut maps = self
            .maps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let map = maps
            .entry(TypeId::of::<(K, T)>())
            .or_insert_with(|| Box::new(HashMap::<K, Arc<T>>::new()))
            .downcast_mut::<HashMap<K, Arc<T>>>()
            .expect("one map type per TypeId");
        if let Some(found) = map.get(&key) {
            return Ok(found.clone());
        }
        let built = Arc::new(capture_errors(device, || build(device))?);
        map.insert(key, built.clone());
        Ok(built)
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

/// One buffer entry of a bind group layout: a storage buffer (most) or a uniform one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BufferEntry {
    /// Its binding number.
    pub binding: u32,
    /// What kind of buffer the shader binds there.
    pub ty: wgpu::BufferBindingType,
}

impl BufferEntry {
    /// A storage buffer the shader reads and writes.
    pub const fn read_write(binding: u32) -> Self {
        BufferEntry {
            binding,
            ty: wgpu::BufferBindingType::Storage { read_only: false },
        }
    }

    /// A storage buffer the shader only reads.
    pub const fn read(binding: u32) -> Self {
        BufferEntry {
            binding,
            ty: wgpu::BufferBindingType::Storage { read_only: true },
        }
    }

    /// A uniform buffer.
    pub const fn uniform(binding: u32) -> Self {
        BufferEntry {
            binding,
            ty: wgpu::BufferBindingType::Uniform,
        }
    }

    /// Whether it is a storage buffer.
    pub fn is_storage(&self) -> bool {
        matches!(self.ty, wgpu::BufferBindingType::Storage { .. })
    }
}

/// Refuses a layout of `entries` storage buffers past the device's
/// `max_storage_buffers_per_shader_stage` with a typed error, before wgpu's validation would.
pub(crate) fn check_storage_buffers(
    device: &wgpu::Device,
    what: &'static str,
    entries: usize,
) -> Result<()> {
    let limit = device.limits().max_storage_buffers_per_shader_stage;
    let needed = entries as u32;
    if needed > limit {
        return Err(Error::TooManyStorageBuffers {
            what,
            needed,
            limit,
        });
    }
    Ok(())
}

/// A compute bind group layout of buffers.
pub(crate) fn bind_group_layout(
    device: &wgpu::Device,
    label: &str,
    entries: &[BufferEntry],
) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = entries
        .iter()
        .map(|entry| wgpu::BindGroupLayoutEntry {
            binding: entry.binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: entry.ty,
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

/// The compute pipeline of `entry` in `module`, with one bind group of layout `layout` and
/// the pipeline-overridable constants `constants`.
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
        // Every kernel writes each workgroup-memory slot before reading it (the reductions'
        // trees, the subgroup sums, the trust ratios' rows): no zeroing. On GL naga writes the
        // zeroing as one array constructor, which llvmpipe compiles 30 times slower than the
        // reduction itself.
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    })
}

/// A pipeline-overridable boolean's value.
pub(crate) fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
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
