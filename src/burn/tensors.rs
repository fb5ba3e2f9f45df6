//! From a Burn module and its gradients to wgpu buffer ranges.
//!
//! A step walks the module twice, or three times:
//! 1. [`collect`] (a visitor: nothing changes) finds each float parameter (in the module's
//!    order, with its path), takes its gradient out of `GradientsParams`, and says what it is;
//! 2. [`plan`] (a mapper, once everything is checked) takes each stepped parameter's tensor
//!    out of the module, learns whether any other Burn tensor shares it (a clone of the model),
//!    resolves what must be resolved, and puts the same tensor back;
//! 3. after the submit, [`swap`] puts the new tensors of shared parameters in (copy on write).
//!
//! Every call into Burn that can fail is turned into a [`BurnError`] here; nothing in this file
//! panics on a module or gradient of the wrong kind.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ::burn::backend::fusion::stream::{Operation, StreamId};
use ::burn::backend::fusion::{ExecutionError, FusionBackend, FusionRuntime};
use ::burn::backend::ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
use ::burn::backend::wgpu::{CubeBackend, CubeTensor, WgpuResource};
use ::burn::backend::TensorMetadata;
use ::burn::backend::Wgpu;
use ::burn::cubecl::wgpu::{AutoCompiler, WgpuServer};
use ::burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use ::burn::optim::GradientsParams;
use ::burn::tensor::{BackendPrimitive, DType, Device, Float, Tensor};

use super::{BurnError, ParamInfo};
use crate::dtype::Dtype;

/// A fusion handle of a float tensor on Burn's wgpu backend. Its `id` names the tensor: a clone
/// shares it, any new value has another.
pub(crate) type FusionHandle = <Float as BackendPrimitive<Wgpu>>::Primitive;

/// The id of a fusion tensor.
pub(crate) type TensorId = ::burn::backend::ir::TensorId;

/// One float parameter of the module as this step found it.
pub(crate) struct Found {
    pub info: ParamInfo,
    pub device: Device,
    /// The id of its tensor, or why it is not a tensor of Burn's wgpu backend.
    pub value: Result<TensorId, String>,
    /// The gradient `GradientsParams` held for it, if any.
    pub grad: Option<FoundGrad>,
}

pub(crate) struct FoundGrad {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub device: Device,
    pub value: Result<FusionHandle, String>,
}

/// Walks `module` in Burn's order, taking each float parameter's gradient out of `grads`.
/// Integer and boolean parameters are left alone, as Burn's optimizers leave them.
pub(crate) fn collect<M: Module>(module: &M, grads: &mut GradientsParams) -> Vec<Found> {
    let mut visitor = Collect {
        grads,
        path: Vec::new(),
        found: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.found
}

struct Collect<'a> {
    grads: &'a mut GradientsParams,
    path: Vec<String>,
    found: Vec<Found>,
}

fn primitive<const D: usize>(tensor: Tensor<D>) -> Result<FusionHandle, String> {
    tensor
        .inner()
        .try_into_primitive::<Wgpu>()
        .map_err(|e| format!("not a tensor of Burn's wgpu backend ({e:?})"))
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // The stored value (`base`), not a reparameterization's materialization: the tensor
        // the forward pass reads the parameter from.
        let value = param.base().inner();
        let grad = self.grads.remove::<D>(param.id).map(|grad| FoundGrad {
            shape: grad.shape().to_vec(),
            dtype: grad.dtype(),
            device: grad.device(),
            value: primitive(grad),
        });
        self.found.push(Found {
            info: ParamInfo {
                id: param.id,
                path: self.path.join("."),
                shape: value.shape().to_vec(),
                dtype: value.dtype(),
            },
            device: value.device(),
            value: primitive(value).map(|handle| handle.id),
            grad,
        });
    }
}

/// This crate's storage type of a Burn float dtype, if it has one.
pub(crate) fn dtype_of(dtype: DType) -> Option<Dtype> {
    match dtype {
        // Flex32 is stored as f32 (its math may run in f16 in Burn's kernels).
        DType::F32 | DType::Flex32 => Some(Dtype::F32),
        DType::F16 => Some(Dtype::F16),
        DType::BF16 => Some(Dtype::BF16),
        _ => None,
    }
}

/// A tensor resolved to its wgpu buffer range, with what keeps that range valid: the CubeCL
/// tensor (its memory handle: while held, Burn neither frees the memory nor reuses it for
/// another tensor's output) and CubeCL's `ManagedResource` (while held, the pool never hands the
/// range out again nor relocates it).
pub(crate) struct Resolved {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    /// Bytes of the tensor's elements.
    pub bytes: u64,
    _tensor: CubeTensor,
    _resource: Box<dyn Any + Send + Sync>,
}

/// Resolves a fusion handle to its buffer range, running Burn's pending work on it first
/// (`resolve_tensor_float` drains the fusion stream; CubeCL's `get_resource` submits the
/// streams that write it). A clone is resolved, so Burn's tensor keeps its memory.
pub(crate) fn resolve(
    handle: &FusionHandle,
    role: &'static str,
    path: &str,
) -> Result<Resolved, BurnError> {
    let tensor: CubeTensor = handle
        .client
        .resolve_tensor_float::<CubeBackend>(handle.clone());
    check_contiguous(&tensor, role, path)?;
    let resource = range_resource(&tensor);
    range_of(tensor, resource, role, path)
}

/// [`resolve`] for many tensors of one device at once: a step's gradients.
///
/// Resolving one tensor costs two blocking hand-overs to Burn's device threads (the fusion
/// stream's and CubeCL's); a model of a thousand tensors would spend most of its step on them.
/// Here the whole list costs three: one operation queued on the fusion stream that takes the
/// CubeCL tensors out of Burn's handle container as the stream reaches it, one drain of the
/// stream, and one exclusive turn on CubeCL's device thread asking every range (calls made on
/// that thread run at once). Handles of different devices are resolved one by one.
pub(crate) fn resolve_all(
    handles: &[(&FusionHandle, &str)],
    role: &'static str,
) -> Result<Vec<Resolved>, BurnError> {
    let Some(((first, _), rest)) = handles.split_first() else {
        return Ok(Vec::new());
    };
    let client = &first.client;
    if rest
        .iter()
        .any(|(h, _)| h.client.device() != client.device())
    {
        return handles
            .iter()
            .map(|(handle, path)| resolve(handle, role, path))
            .collect();
    }
    let fail = |reason: String| BurnError::Resource {
        path: handles
            .iter()
            .map(|(_, p)| *p)
            .collect::<Vec<_>>()
            .join(", "),
        role,
        reason,
    };
    // Clones, as `resolve` takes: Burn's tensors stay readable (`ReadOnly` in the operation).
    let inputs: Vec<TensorIr> = handles
        .iter()
        .map(|(h, _)| (*h).clone().into_ir())
        .collect();
    let taken = Arc::new(Mutex::new(Vec::new()));
    let operation = TakeTensors {
        inputs: inputs.clone(),
        taken: Arc::clone(&taken),
    };
    let ir = OperationIr::Custom(CustomOpIr::new(TakeTensors::ID, &inputs, &[]));
    client.register(StreamId::current(), ir, operation);
    client
        .try_sync(|| ())
        .map_err(|e| fail(format!("Burn's fusion stream: {e:?}")))?;
    let tensors = std::mem::take(&mut *taken.lock().unwrap_or_else(|e| e.into_inner()));
    if tensors.len() != handles.len() {
        return Err(fail(format!(
            "Burn's fusion stream handed back {} of {} tensors",
            tensors.len(),
            handles.len()
        )));
    }
    for (tensor, (_, path)) in tensors.iter().zip(handles) {
        check_contiguous(tensor, role, path)?;
    }
    let cube = tensors[0].client.clone();
    let resources = cube
        .exclusive(|| tensors.iter().map(range_resource).collect::<Vec<_>>())
        .map_err(|e| fail(format!("CubeCL's device thread: {e:?}")))?;
    tensors
        .into_iter()
        .zip(resources)
        .zip(handles)
        .map(|((tensor, resource), (_, path))| range_of(tensor, resource, role, path))
        .collect()
}

/// The fusion operation of [`resolve_all`]: as the stream reaches it, it takes its inputs' CubeCL
/// tensors out of Burn's handle container (clones: its inputs are read-only) and hands them over.
#[derive(Debug)]
struct TakeTensors {
    inputs: Vec<TensorIr>,
    taken: Arc<Mutex<Vec<CubeTensor>>>,
}

impl TakeTensors {
    const ID: &'static str = "wgpu_optim::take_tensors";
}

impl Operation<FusionRuntimeOf> for TakeTensors {
    fn execute(
        &self,
        handles: &mut HandleContainer<<FusionRuntimeOf as FusionRuntime>::FusionHandle>,
    ) -> Result<(), ExecutionError> {
        let tensors = self
            .inputs
            .iter()
            .map(|ir| handles.get_float_tensor::<CubeBackend>(ir))
            .collect();
        *self.taken.lock().unwrap_or_else(|e| e.into_inner()) = tensors;
        Ok(())
    }
}

/// The fusion runtime of Burn's wgpu backend.
type FusionRuntimeOf = <CubeBackend as FusionBackend>::FusionRuntime;

fn check_contiguous(tensor: &CubeTensor, role: &'static str, path: &str) -> Result<(), BurnError> {
    if tensor.is_contiguous() {
        Ok(())
    } else {
        Err(BurnError::NotContiguous {
            path: path.to_string(),
            role,
        })
    }
}

/// A tensor's buffer range from CubeCL, with the `ManagedResource` that pins it.
type Pinned = (WgpuResource, Box<dyn Any + Send + Sync>);

/// Asks CubeCL for a tensor's buffer range (one blocking call on its device thread, run at once
/// when made on that thread).
fn range_resource(tensor: &CubeTensor) -> Result<Pinned, String> {
    tensor
        .client
        .get_resource::<WgpuServer<AutoCompiler>>(tensor.handle.clone())
        .map(|pin| {
            let range = pin.resource().clone();
            (range, Box::new(pin) as Box<dyn Any + Send + Sync>)
        })
        .map_err(|e| format!("{e:?}"))
}

/// The checked buffer range of a resolved tensor.
fn range_of(
    tensor: CubeTensor,
    resource: Result<Pinned, String>,
    role: &'static str,
    path: &str,
) -> Result<Resolved, BurnError> {
    let fail = |reason: String| BurnError::Resource {
        path: path.to_string(),
        role,
        reason,
    };
    let (range, pin) = resource.map_err(fail)?;
    if range.offset % wgpu::COPY_BUFFER_ALIGNMENT != 0 {
        return Err(fail(format!(
            "offset {} is not a multiple of 4 bytes, as a buffer copy needs",
            range.offset
        )));
    }
    let bytes = tensor.meta.shape().num_elements() as u64 * tensor.dtype.size() as u64;
    let end = range.offset + bytes.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
    if end > range.buffer.size() || range.size < bytes {
        return Err(fail(format!(
            "the range of {} bytes at {} of a {}-byte buffer does not hold the tensor's {bytes}",
            range.size,
            range.offset,
            range.buffer.size()
        )));
    }
    Ok(Resolved {
        buffer: range.buffer.clone(),
        offset: range.offset,
        bytes,
        _tensor: tensor,
        _resource: pin,
    })
}

/// What the optimizer holds of a parameter between steps: the id of the tensor it wrote last,
/// and that tensor's range.
pub(crate) struct Held {
    pub id: TensorId,
    pub range: Resolved,
}

/// Where a step writes a parameter, and where its values come from.
pub(crate) struct ParamPlan {
    /// A new range to write (the held one when `None`).
    pub dest: Option<Resolved>,
    /// The id of the tensor the module holds after the step.
    pub id: TensorId,
    /// Where the arena's copy of the parameter comes from: `None`, the arena already holds it
    /// (the optimizer wrote this tensor last); `Some(None)`, the destination itself;
    /// `Some(Some(range))`, another tensor (a shared one, written anew).
    pub source: Option<Option<Resolved>>,
    /// The parameter widened to f32, to refresh the master copy.
    pub widened: Option<Resolved>,
    /// A new tensor the module gets after the submit (copy on write).
    pub replacement: Option<FusionHandle>,
}

/// What [`plan`] needs of each stepped parameter: its slot's held tensor, whether to widen.
pub(crate) struct PlanInput<'a> {
    pub slots: &'a HashMap<ParamId, usize>,
    pub held: &'a [Option<TensorId>],
    pub widen: bool,
    pub device: &'a Device,
}

/// Takes each stepped parameter's tensor out of `module` and puts it back, planning its step
/// (see [`ParamPlan`]); the plans are in slot order. Errors leave every tensor as it was.
pub(crate) fn plan<M: Module>(
    module: M,
    input: &PlanInput<'_>,
) -> (M, Result<Vec<ParamPlan>, BurnError>) {
    let mut mapper = Plan {
        input,
        path: Vec::new(),
        plans: (0..input.held.len()).map(|_| None).collect(),
        error: None,
    };
    let module = module.map(&mut mapper);
    let result = match mapper.error {
        Some(error) => Err(error),
        None => mapper
            .plans
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(BurnError::Record(
                "a stepped parameter was not found in the module".into(),
            )),
    };
    (module, result)
}

struct Plan<'a> {
    input: &'a PlanInput<'a>,
    path: Vec<String>,
    plans: Vec<Option<ParamPlan>>,
    error: Option<BurnError>,
}

/// How Burn's `ModuleOptimizer` puts an updated tensor back: the same autodiff, gradient
/// requirement, distribution and checkpointing as the parameter had.
struct TensorContext {
    autodiff: bool,
    require_grad: bool,
    distributed: bool,
    checkpointing: Option<::burn::tensor::GradientCheckpointingStrategy>,
}

impl TensorContext {
    fn capture<const D: usize>(tensor: &Tensor<D>) -> Self {
        TensorContext {
            autodiff: tensor.is_autodiff(),
            require_grad: tensor.is_require_grad(),
            distributed: tensor.is_distributed(),
            checkpointing: tensor.gradient_checkpointing_strategy(),
        }
    }

    fn restore<const D: usize>(&self, inner: Tensor<D>, id: ParamId) -> Tensor<D> {
        if !self.autodiff {
            return inner;
        }
        let mut tensor = Tensor::from_inner(inner);
        if let Some(strategy) = self.checkpointing {
            tensor = tensor.with_gradient_checkpointing_strategy(strategy);
        }
        if self.require_grad {
            tensor = tensor.require_grad();
        }
        if self.distributed {
            tensor = tensor.set_distributed(id);
        }
        tensor
    }
}

impl Plan<'_> {
    fn plan_one<const D: usize>(
        &self,
        slot: usize,
        handle: &FusionHandle,
        shape: &[usize],
        dtype: DType,
    ) -> Result<ParamPlan, BurnError> {
        let path = self.path.join(".");
        let same = self.input.held[slot] == Some(handle.id);
        // Unique: no other Burn tensor (a clone of the model, a snapshot) shares this one, so
        // writing its memory in place is what Burn's own fused optimizers do.
        let unique = handle.can_mut();
        let widened = if self.input.widen && !same && self.input.held[slot].is_some() {
            let wide = Tensor::<D>::from_primitive::<Wgpu>(handle.clone()).cast(DType::F32);
            Some(resolve(
                &primitive(wide).map_err(|reason| BurnError::NotWgpu {
                    path: path.clone(),
                    role: "parameter",
                    reason,
                })?,
                "parameter",
                &path,
            )?)
        } else {
            None
        };
        if unique {
            let dest = (!same)
                .then(|| resolve(handle, "parameter", &path))
                .transpose()?;
            return Ok(ParamPlan {
                dest,
                id: handle.id,
                source: (!same).then_some(None),
                widened,
                replacement: None,
            });
        }
        // Shared: write a new tensor, leave the shared one as it is.
        let source = (!same)
            .then(|| resolve(handle, "parameter", &path))
            .transpose()?;
        let fresh = Tensor::<D>::empty(shape.to_vec(), (self.input.device, dtype));
        let fresh = primitive(fresh).map_err(|reason| BurnError::NotWgpu {
            path: path.clone(),
            role: "parameter",
            reason,
        })?;
        let dest = resolve(&fresh, "parameter", &path)?;
        Ok(ParamPlan {
            dest: Some(dest),
            id: fresh.id,
            source: (!same).then_some(source),
            widened,
            replacement: Some(fresh),
        })
    }
}

impl ModuleMapper for Plan<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(&slot) = self.input.slots.get(&param.id) else {
            return param;
        };
        if self.error.is_some() {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let context = TensorContext::capture(&tensor);
        let shape = tensor.shape().to_vec();
        let dtype = tensor.dtype();
        // The module's own reference, alone, so that `can_mut` counts the others.
        let handle = match primitive(tensor.clone()) {
            Ok(handle) => handle,
            Err(reason) => {
                self.error = Some(BurnError::NotWgpu {
                    path: self.path.join("."),
                    role: "parameter",
                    reason,
                });
                return Param::from_mapped_value(id, tensor, mapper);
            }
        };
        drop(tensor);
        let planned = self.plan_one::<D>(slot, &handle, &shape, dtype);
        match planned {
            Ok(plan) => self.plans[slot] = Some(plan),
            Err(error) => self.error = Some(error),
        }
        let inner = Tensor::<D>::from_primitive::<Wgpu>(handle);
        Param::from_mapped_value(id, context.restore(inner, id), mapper)
    }
}

/// Puts each replacement (copy on write) into the module, as [`plan`] found its parameters.
pub(crate) fn swap<M: Module>(module: M, replacements: HashMap<ParamId, FusionHandle>) -> M {
    if replacements.is_empty() {
        return module;
    }
    let mut mapper = Swap { replacements };
    module.map(&mut mapper)
}

struct Swap {
    replacements: HashMap<ParamId, FusionHandle>,
}

impl ModuleMapper for Swap {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(fresh) = self.replacements.remove(&param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let context = TensorContext::capture(&tensor);
        drop(tensor);
        let inner = Tensor::<D>::from_primitive::<Wgpu>(fresh);
        Param::from_mapped_value(id, context.restore(inner, id), mapper)
    }
}
