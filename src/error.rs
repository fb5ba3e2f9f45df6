//! The crate's one error type.

/// Everything that can go wrong in wgpu-optim. Bad input is refused with one of these before
/// anything is recorded or written: parameters and optimizer state are left untouched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the request.
    #[error(
        "no wgpu adapter found ({0}). On Linux without a GPU install the software Vulkan driver \
         (`apt-get install -y mesa-vulkan-drivers libvulkan1`); choose a backend with \
         WGPU_BACKEND=vulkan|metal|dx12|gl and an adapter with WGPU_ADAPTER_NAME"
    )]
    NoAdapter(String),

    /// The adapter refused to create a device with the requested limits.
    #[error("requesting a device failed: {0}")]
    RequestDevice(#[from] wgpu::RequestDeviceError),

    /// A hyperparameter is outside the range PyTorch accepts (or is not finite).
    #[error("invalid hyperparameter {name} = {value}: expected {expected}")]
    InvalidHyperparameter {
        /// PyTorch's name of the hyperparameter.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The accepted range.
        expected: &'static str,
    },

    /// A hyperparameter search that cannot run: an empty search space, a dimension with
    /// `low >= high` or a log-uniform one reaching 0, a budget of 0, `eta < 2`, no restarts...
    /// (see [`search`](crate::search)).
    #[error("invalid search setting {setting} = {value}: expected {expected}")]
    InvalidSearch {
        /// The setting: `eta`, `restarts`, `budget`, or a dimension's field such as `lr.low`.
        setting: String,
        /// The value given (for a list, its length).
        value: f64,
        /// The accepted range.
        expected: &'static str,
    },

    /// A [`DeviceSchedule`](crate::DeviceSchedule) whose configuration at some step the
    /// optimizer refuses (a learning rate that is negative or not finite in f32, say).
    #[error(
        "the device schedule's configuration of group {group} at step {step} is invalid: {source}"
    )]
    InvalidScheduleStep {
        /// The parameter group.
        group: usize,
        /// The step (steps taken before it).
        step: u64,
        /// Why the configuration was refused.
        source: Box<Error>,
    },

    /// MPI ranks that cannot train together (feature `mpi`): their arena layouts, parameter
    /// groups, configurations or sharding differ, or one refused its own configuration. Every
    /// rank gets this error (the ranks compare a hash first), none hangs.
    #[error("rank {rank} cannot join: {what}")]
    DistributedMismatch {
        /// A rank that differs from rank 0, or that refused its configuration.
        rank: usize,
        /// What differs.
        what: &'static str,
    },

    /// A combination of options that PyTorch refuses, such as Nesterov momentum with dampening.
    #[error("invalid options: {0}")]
    InvalidOptions(&'static str),

    /// A parameter and its gradient differ in length.
    #[error("tensor {index}: param has {param_len} elements but grad has {grad_len}")]
    LengthMismatch {
        /// Position of the tensor in the list given to the optimizer.
        index: usize,
        /// Elements in the parameter.
        param_len: u64,
        /// Elements in the gradient.
        grad_len: u64,
    },

    /// A buffer lacks a usage the kernel needs.
    #[error("tensor {index}: the {role} buffer lacks the usage {missing:?}")]
    MissingUsage {
        /// Position of the tensor in the list given to the optimizer.
        index: usize,
        /// `param`, `grad` or a state name.
        role: &'static str,
        /// The usages the buffer must also have.
        missing: wgpu::BufferUsages,
    },

    /// A range does not start at a multiple of the alignment its use needs.
    #[error("tensor {index}: the {role} range starts at byte {offset}, not a multiple of {alignment} ({limit})")]
    MisalignedOffset {
        /// Position of the tensor in the list given to the optimizer.
        index: usize,
        /// `param`, `grad`, `read`, `write`, ...
        role: &'static str,
        /// The offset given, in bytes.
        offset: u64,
        /// The alignment, in bytes.
        alignment: u32,
        /// Where the alignment comes from: the device's `min_storage_buffer_offset_alignment`
        /// for bindings, `wgpu::COPY_BUFFER_ALIGNMENT` for host copies.
        limit: &'static str,
    },

    /// A range runs past the end of its buffer (or, for an [`Arena`](crate::Arena), the
    /// arena past the largest buffer the device allows).
    #[error("tensor {index}: the {role} range ends at byte {end}, past the buffer's {size} bytes")]
    OutOfBounds {
        /// Position of the tensor in the list given to the optimizer or the arena.
        index: usize,
        /// `param`, `grad`, `arena`, ...
        role: &'static str,
        /// One past the last byte of the range (`u64::MAX` when that does not fit in u64).
        end: u64,
        /// The buffer's size in bytes, or for an arena the device's `max_buffer_size`.
        size: u64,
    },

    /// A parameter and its gradient are in one buffer, even at disjoint ranges: the update
    /// binds the param read-write and the grad read-only in one dispatch, and WebGPU forbids
    /// both usages of one buffer there.
    #[error("tensor {index}: param and grad are in the same buffer; put them in two (WebGPU cannot bind one buffer read-write and read-only in one dispatch)")]
    Aliased {
        /// Position of the tensor in the list given to the optimizer.
        index: usize,
    },

    /// Two tensors' parameters overlap: one step would update the shared elements twice.
    #[error("tensors {first} and {second}: their params overlap in the same buffer")]
    Overlapping {
        /// The first tensor's position.
        first: usize,
        /// The second tensor's position.
        second: usize,
    },

    /// The buffer given for the norm stats overlaps a range the optimizer reads or writes:
    /// the stats would be written into it.
    #[error("the norm stats buffer overlaps {}", match tensor {
        Some(index) => format!("tensor {index}'s {with}"),
        None => format!("the optimizer's {with}"),
    })]
    NormStatsOverlap {
        /// What it overlaps: `param`, `grad`, a state's name or `control block`.
        with: &'static str,
        /// The tensor whose range it overlaps, if any.
        tensor: Option<usize>,
    },

    /// Two ranges given to a [`Snapshot`](crate::Snapshot) share a 32-bit word of one
    /// buffer: a restore would write it twice, from two copies.
    #[error("{first} and {second} overlap in one buffer; a snapshot copies each word once")]
    SnapshotOverlap {
        /// The first range: `range 2`, `tensor 0's exp_avg`, `extra range 1`, ...
        first: String,
        /// The second range.
        second: String,
    },

    /// One optimizer's tensors differ in the storage type of one role: every parameter of an
    /// optimizer shares one type, and every gradient one (build one optimizer per type).
    #[error("tensor {index}: its {role} is {found}, but tensor 0's is {expected}; one optimizer takes one type per role")]
    MixedDtypes {
        /// Position of the tensor in the list given to the optimizer.
        index: usize,
        /// `param` or `grad`.
        role: &'static str,
        /// Tensor 0's type.
        expected: crate::dtype::Dtype,
        /// This tensor's type.
        found: crate::dtype::Dtype,
    },

    /// A storage type this operation does not take.
    #[error("{what} does not take {dtype} buffers: {supported}")]
    UnsupportedDtype {
        /// The operation.
        what: &'static str,
        /// The type given.
        dtype: crate::dtype::Dtype,
        /// What it supports.
        supported: &'static str,
    },

    /// A kernel binds more storage buffers than the device allows one shader stage
    /// (`max_storage_buffers_per_shader_stage`: WebGPU guarantees 8; Mesa's llvmpipe on GL
    /// offers 16, lavapipe 32). The update kernels bind up to 9: control, groups, parameters,
    /// gradients, segments, up to three states (with 8-bit states: every state's codes, their
    /// block scales and the quantization maps), the f32 master copy, LAMB's and LARS's trust
    /// sums.
    #[error(
        "{what} binds {needed} storage buffers, past this device's \
         max_storage_buffers_per_shader_stage of {limit}: request an adapter's own limits \
         (Context::new_blocking does), or do without master weights"
    )]
    TooManyStorageBuffers {
        /// The kernel.
        what: &'static str,
        /// The storage buffers it binds.
        needed: u32,
        /// The device's limit.
        limit: u32,
    },

    /// The states of a span of tensors (those laid out alike in their buffers) would take a
    /// buffer past the device's `max_buffer_size`: f32 states or master weights of 16-bit
    /// parameters take twice the parameters' bytes, and 8-bit states keep every state's
    /// codes in one buffer.
    #[error(
        "the {what} of tensor {index} and those laid out with it take {bytes} bytes in one \
         buffer, past this device's max_buffer_size of {limit}"
    )]
    StateBufferTooLarge {
        /// `states`, `master weights` or `8-bit codes`.
        what: &'static str,
        /// The span's first tensor, in the optimizer's order.
        index: usize,
        /// The buffer's size.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },

    /// An object of another device than the context's was handed to it.
    #[error("{what} belongs to another device than this context's")]
    OtherDevice {
        /// What it was: `optimizer`, ...
        what: &'static str,
    },

    /// A matrix optimizer (Muon) was given a parameter that is not 2-D.
    #[error("{optimizer} takes 2-D parameters only; this one has shape {shape:?}")]
    NotAMatrix {
        /// The optimizer refusing it.
        optimizer: &'static str,
        /// The parameter's shape.
        shape: Vec<usize>,
    },

    /// Something 8-bit states do not support (yet): the optimizer, a layout, an operation.
    #[error("8-bit states: {0}")]
    Quantized(&'static str),

    /// A host slice handed to an upload or a reference step has the wrong length.
    #[error("{what}: expected {expected} values, got {actual}")]
    WrongLength {
        /// What was being written.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        actual: usize,
    },

    /// A tensor index past the tensors of an optimizer, an arena or a reference optimizer.
    #[error("tensor index {index} out of range: the {owner} has {count} tensors")]
    NoSuchTensor {
        /// The index asked for.
        index: usize,
        /// The number of tensors.
        count: usize,
        /// What was asked: `optimizer`, `arena` or `reference optimizer`.
        owner: &'static str,
    },

    /// A parameter-group index past the optimizer's groups.
    #[error("parameter group {group} out of range: the optimizer has {count} groups")]
    NoSuchGroup {
        /// The index asked for.
        group: usize,
        /// The number of groups.
        count: usize,
    },

    /// A state name this optimizer (with these options) does not keep.
    #[error("{optimizer} keeps no state named {name:?} (it keeps {available:?})")]
    NoSuchState {
        /// The optimizer's name.
        optimizer: &'static str,
        /// The name asked for.
        name: String,
        /// The names it keeps.
        available: Vec<&'static str>,
    },

    /// A new configuration changes the kernel or its state buffers: build a new optimizer.
    #[error("the new configuration changes the kernel or the state it keeps ({0}); build a new optimizer instead")]
    StructuralChange(&'static str),

    /// Schedule-Free's eval/train switch on another optimizer.
    #[error("{0} is not a Schedule-Free optimizer: it has no eval/train switch")]
    NotScheduleFree(&'static str),

    /// A call that needs gradient processing on an optimizer that has none.
    #[error(
        "the optimizer has no gradient processing: set it with Optimizer::set_grad_processing"
    )]
    NoGradProcessing,

    /// With `error_if_nonfinite`, a step's gradients held an inf or NaN: that step and every
    /// later one changed nothing, until [`crate::Optimizer::clear_nonfinite_error`].
    #[error("the gradients of step {step} hold an inf or NaN (grad_norm = {grad_norm}); with error_if_nonfinite the optimizer halted there")]
    NonFiniteGradients {
        /// The step whose gradients were non-finite (the step it would have become).
        step: u32,
        /// Steps taken before the halt (the control block's `step`).
        steps_taken: u32,
        /// The global gradient norm of that step, as the control block holds it: inf or NaN
        /// when a gradient was.
        grad_norm: f32,
    },

    /// A file that is not a readable checkpoint: truncated, not safetensors, or unwritable.
    #[error("not a readable checkpoint: {0}")]
    Checkpoint(String),

    /// A checkpoint of another optimizer: another algorithm, tensor count, tensor length or
    /// structural option. Nothing was changed.
    #[error("the checkpoint does not fit this optimizer: {0}")]
    CheckpointMismatch(String),

    /// A Burn module, its gradients or its device could not be stepped (feature `burn`).
    #[cfg(feature = "burn")]
    #[error(transparent)]
    Burn(#[from] BurnError),

    /// wgpu reported a validation or out-of-memory error, captured with an error scope.
    #[error("wgpu error: {0}")]
    Wgpu(String),

    /// Mapping a buffer for readback failed.
    #[error("buffer mapping failed: {0}")]
    Map(#[from] wgpu::BufferAsyncError),

    /// Waiting for the device failed.
    #[error("device poll failed: {0}")]
    Poll(#[from] wgpu::PollError),
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Err(Error::InvalidHyperparameter)` for `name`'s `value`, which should be `expected`.
pub(crate) fn invalid(name: &'static str, value: f64, expected: &'static str) -> Result<()> {
    Err(Error::InvalidHyperparameter {
        name,
        value,
        expected,
    })
}

/// Why Burn's module, gradients or device could not be stepped (feature `burn`; inside
/// [`Error::Burn`]). Re-exported as `wgpu_optim::burn::BurnError`.
#[cfg(feature = "burn")]
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BurnError {
    /// Burn's wgpu runtime refused to register the device.
    #[error("Burn's wgpu runtime refused the device: {0}")]
    Init(String),
    /// A context without an adapter ([`Context::from_device`](crate::Context::from_device))
    /// cannot be registered with Burn.
    #[error(
        "this Context wraps a caller's device, whose adapter Burn needs: create it with \
         SharedDevice::request (or Context::request with all_features), or share Burn's \
         device with SharedDevice::from_setup"
    )]
    NoAdapter,
    /// The context's device lacks features of its adapter that Burn's kernels may use.
    #[error(
        "the device lacks adapter features {missing:?} that Burn's kernels may use: create the \
         Context with ContextOptions {{ all_features: true, .. }} (SharedDevice::request does)"
    )]
    MissingFeatures {
        /// The adapter's features the device did not enable.
        missing: wgpu::Features,
    },
    /// A parameter or gradient on another device (or backend) than the optimizer's.
    #[error("{role} of parameter {path} is on {found}, not on the optimizer's device {expected}")]
    OtherDevice {
        /// The parameter's path.
        path: String,
        /// `parameter` or `gradient`.
        role: &'static str,
        /// The optimizer's Burn device.
        expected: String,
        /// The tensor's.
        found: String,
    },
    /// A tensor that is not on Burn's wgpu backend.
    #[error("{role} of parameter {path}: {reason}")]
    NotWgpu {
        /// The parameter's path.
        path: String,
        /// `parameter` or `gradient`.
        role: &'static str,
        /// What Burn said.
        reason: String,
    },
    /// A parameter that had a gradient at the first step has none in this one.
    #[error(
        "parameter {path} has no gradient in this step but had one at the first step: a fused \
         step cannot leave one tensor's state alone, so the whole step was refused (set \
         require_grad false on parameters that are never trained)"
    )]
    MissingGradient {
        /// The parameter's path.
        path: String,
    },
    /// A parameter without a gradient at the first step has one now.
    #[error(
        "parameter {path} has a gradient but had none when the optimizer was built at the first \
         step: build a new FusedOptimizer to train it"
    )]
    NewGradient {
        /// The parameter's path.
        path: String,
    },
    /// A parameter the optimizer steps is no longer in the module.
    #[error("parameter {path} ({id}) is no longer in the module")]
    MissingParameter {
        /// The parameter's path when the optimizer was built.
        path: String,
        /// Its id.
        id: ::burn::module::ParamId,
    },
    /// A parameter's or gradient's shape is not the one the optimizer was built for.
    #[error("{role} of parameter {path} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The parameter's path.
        path: String,
        /// `parameter` or `gradient`.
        role: &'static str,
        /// The shape the optimizer steps.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A dtype this crate does not store, or not the dtype of the other parameters (or
    /// gradients).
    #[error("{role} of parameter {path} is {found:?}: expected {expected}")]
    Dtype {
        /// The parameter's path.
        path: String,
        /// `parameter` or `gradient`.
        role: &'static str,
        /// What was expected.
        expected: String,
        /// The dtype found.
        found: ::burn::tensor::DType,
    },
    /// A tensor whose elements are not one contiguous range of its buffer.
    #[error("{role} of parameter {path} is not contiguous in its buffer")]
    NotContiguous {
        /// The parameter's path.
        path: String,
        /// `parameter` or `gradient`.
        role: &'static str,
    },
    /// CubeCL could not hand out a tensor's buffer range.
    #[error("{role} of parameter {path}: CubeCL's buffer range: {reason}")]
    Resource {
        /// The parameter's path.
        path: String,
        /// `parameter` or `gradient`.
        role: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Burn's learning-rate argument gives the parameters of one group different rates, or
    /// none.
    #[error("learning rate: {0}")]
    LearningRate(String),
    /// No parameter of the module had a gradient at the first step.
    #[error("no parameter of the module has a gradient: nothing to step")]
    NothingToStep,
    /// A record that is not one of this optimizer's states, or does not fit the model.
    #[error("record: {0}")]
    Record(String),
}
