//! The `burn` feature: a Burn 0.22 model stepped by a [`FusedOptimizer`] on Burn's own wgpu
//! device, against Burn's AdamW (clip off), against this crate's CPU reference applied to
//! Burn's gradients (global-norm clip on), through its records, its memory pool, clones of the
//! model, and the inputs it refuses.

use std::sync::{Mutex, MutexGuard, OnceLock};

use burn::module::{Module, Param, ParamId};
use burn::optim::{AdamWConfig as BurnAdamW, GradientsParams};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use wgpu_optim::burn::{BurnError, FusedOptimizer, SharedDevice};
use wgpu_optim::reference;
use wgpu_optim::{AdamWConfig, Dtype, Error, GradConfig, Precision, SgdConfig, Storage};

/// One device for every test: Burn's runtime on this crate's device.
fn shared() -> &'static SharedDevice {
    static SHARED: OnceLock<SharedDevice> = OnceLock::new();
    SHARED.get_or_init(|| {
        SharedDevice::new_blocking().unwrap_or_else(|e| {
            panic!(
                "no wgpu adapter for the burn tests ({e}): install Mesa's software Vulkan driver \
                 with `apt-get install -y mesa-vulkan-drivers libvulkan1`"
            )
        })
    })
}

/// A two-layer perceptron, 8 -> 16 -> 1, with an output scale and an integer buffer
/// (which no optimizer touches).
#[derive(Module, Debug)]
struct Mlp {
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
    b2: Param<Tensor<1>>,
    scale: Param<Tensor<1>>,
    seen: Param<Tensor<1, Int>>,
}

const IN: usize = 8;
const HIDDEN: usize = 16;
const BATCH: usize = 32;

/// Deterministic values in [-1, 1): a 64-bit LCG.
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The host values of each float parameter, in the module's order: w1, b1, w2, b2, scale.
type Weights = [Vec<f32>; 5];

fn initial() -> Weights {
    [
        values(1, IN * HIDDEN).iter().map(|v| v * 0.5).collect(),
        values(2, HIDDEN).iter().map(|v| v * 0.1).collect(),
        values(3, HIDDEN).iter().map(|v| v * 0.5).collect(),
        vec![0.05],
        vec![1.0],
    ]
}

impl Mlp {
    /// The model with these weights and ids, on `device` (with autodiff).
    fn with(weights: &Weights, ids: [ParamId; 5], device: &Device) -> Self {
        Self::with_dtype(weights, ids, device, DType::F32)
    }

    /// The model with these weights and ids, its float parameters stored as `dtype` (cast on
    /// the device from f32).
    fn with_dtype(weights: &Weights, ids: [ParamId; 5], device: &Device, dtype: DType) -> Self {
        fn float<const D: usize>(
            values: &[f32],
            id: ParamId,
            shape: [usize; D],
            device: &Device,
            dtype: DType,
        ) -> Param<Tensor<D>> {
            let tensor = Tensor::<D>::from_data(TensorData::new(values.to_vec(), shape), device);
            let tensor = if dtype == DType::F32 {
                tensor
            } else {
                tensor.cast(dtype)
            };
            Param::initialized(id, tensor.require_grad())
        }
        let device = device.clone().autodiff();
        let float1 = |i: usize, len: usize| float(&weights[i], ids[i], [len], &device, dtype);
        Mlp {
            w1: float(&weights[0], ids[0], [IN, HIDDEN], &device, dtype),
            b1: float1(1, HIDDEN),
            w2: float(&weights[2], ids[2], [HIDDEN, 1], &device, dtype),
            b2: float1(3, 1),
            scale: float1(4, 1),
            seen: Param::initialized(
                ParamId::new(),
                Tensor::<1, Int>::from_data(TensorData::new(vec![7i32; 3], [3]), &device),
            ),
        }
    }

    fn new(device: &Device) -> Self {
        Self::with(&initial(), std::array::from_fn(|_| ParamId::new()), device)
    }

    fn ids(&self) -> [ParamId; 5] {
        [
            self.w1.id,
            self.b1.id,
            self.w2.id,
            self.b2.id,
            self.scale.id,
        ]
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = x.matmul(self.w1.val()) + self.b1.val().unsqueeze::<2>();
        let h = burn::tensor::activation::relu(h);
        let y = h.matmul(self.w2.val()) + self.b2.val().unsqueeze::<2>();
        y * self.scale.val().unsqueeze::<2>()
    }

    /// The weights, read back.
    fn weights(&self) -> Weights {
        let read = |t: Tensor<1>| t.cast(DType::F32).into_data().try_to_vec::<f32>().unwrap();
        [
            read(self.w1.val().flatten(0, 1)),
            read(self.b1.val()),
            read(self.w2.val().flatten(0, 1)),
            read(self.b2.val()),
            read(self.scale.val()),
        ]
    }
}

/// The gradients of a mean-squared error on batch `step` (the same data for any model, in the
/// model's dtype).
fn grads(model: &Mlp, step: u64) -> GradientsParams {
    let device = model.w1.val().device();
    let dtype = model.w1.val().dtype();
    let x = Tensor::<2>::from_data(
        TensorData::new(values(100 + step, BATCH * IN), [BATCH, IN]),
        &device,
    );
    let y = Tensor::<2>::from_data(
        TensorData::new(values(200 + step, BATCH), [BATCH, 1]),
        &device,
    );
    let loss = (model.forward(x.cast(dtype)) - y.cast(dtype))
        .powf_scalar(2.0)
        .mean();
    GradientsParams::from_grads(loss.backward(), model)
}

/// The gradients as host values, in the module's order.
fn host_grads(model: &Mlp, grads: &GradientsParams) -> Weights {
    let ids = model.ids();
    let read = |data: TensorData| data.convert::<f32>().try_to_vec::<f32>().unwrap();
    [
        read(grads.get::<2>(ids[0]).unwrap().into_data()),
        read(grads.get::<1>(ids[1]).unwrap().into_data()),
        read(grads.get::<2>(ids[2]).unwrap().into_data()),
        read(grads.get::<1>(ids[3]).unwrap().into_data()),
        read(grads.get::<1>(ids[4]).unwrap().into_data()),
    ]
}

/// How far two sets of weights are from numpy's `allclose(a, b, rtol=1e-5, atol=1e-6)` (as
/// `torch.testing.assert_close` compares): the largest `|a - b| / (1e-6 + 1e-5 |b|)`, at most 1
/// when they are within 1e-5 relative. The absolute term is for values near zero, where the
/// order of a rounding (Burn and this crate round their bias corrections differently) is a
/// large fraction of the value: a bias passing through 0 is 1 ulp of its neighbours away.
fn closeness(a: &Weights, b: &Weights) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs() / (1e-6 + 1e-5 * y.abs()))
        .fold(0.0, f32::max)
}

/// What a checkpoint holds, comparable: the step and every state of every tensor (the file's
/// bytes are not: its metadata is a map written in any order).
fn state(fused: &FusedOptimizer) -> (u32, Vec<Vec<f32>>) {
    let optimizer = fused.optimizer().unwrap();
    let states = (0..optimizer.params().count())
        .flat_map(|i| {
            optimizer
                .state_names()
                .into_iter()
                .map(move |name| optimizer.read_state(i, name).unwrap())
        })
        .collect();
    (optimizer.read_step().unwrap(), states)
}

fn burn_error(error: &Error) -> &BurnError {
    match error {
        Error::Burn(e) => e,
        other => panic!("expected a Burn error, got {other}"),
    }
}

const LR: f64 = 1e-2;

#[test]
fn twenty_steps_equal_burns_adamw_with_clip_off() {
    let device = shared().device();
    let mut theirs = Mlp::new(device);
    let mut ours = Mlp::with(&initial(), theirs.ids(), device);
    // torch's defaults, which Burn's AdamW takes when told (its own are eps 1e-5, wd 1e-4).
    let mut burn_adamw = BurnAdamW::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(1e-2)
        .init();
    let mut fused = FusedOptimizer::new(shared(), AdamWConfig::default());
    let mut worst = 0.0f32;
    for step in 0..20 {
        let g = grads(&theirs, step);
        theirs = burn_adamw.step(LR, theirs, g);
        let g = grads(&ours, step);
        ours = fused.step(LR, ours, g).unwrap();
        let closeness = closeness(&theirs.weights(), &ours.weights());
        worst = worst.max(closeness);
        assert!(
            closeness <= 1.0,
            "step {step}: {closeness} times the tolerance"
        );
    }
    // Burn and this crate round the bias corrections differently: equal, not identical.
    eprintln!("closest to the tolerance over 20 steps: {worst} of it");
    assert_eq!(fused.optimizer().unwrap().read_step().unwrap(), 20);
    assert_eq!(fused.last_step().unwrap().tensors, 5);
    // The integer buffer is left alone.
    assert_eq!(
        ours.seen.val().into_data().try_to_vec::<i32>().unwrap(),
        vec![7; 3]
    );
}

#[test]
fn global_norm_clipping_equals_the_reference_on_burns_gradients() {
    let device = shared().device();
    let mut model = Mlp::new(device);
    let config = AdamWConfig::default().with_lr(LR);
    let clip = GradConfig::default().with_max_norm(0.05);
    let mut fused = FusedOptimizer::new(shared(), config.clone()).with_grad(clip.clone());
    let lens: Vec<usize> = initial().iter().map(Vec::len).collect();
    let mut reference = reference::Optimizer::new(&config.clone().into(), &lens).unwrap();
    reference.set_grad_processing(Some(clip)).unwrap();
    let mut expected = initial().to_vec();
    for step in 0..20 {
        let g = grads(&model, step);
        let host = host_grads(&model, &g);
        reference.step(&mut expected, &host).unwrap();
        model = fused.step(LR, model, g).unwrap();
        let expected: Weights = expected.clone().try_into().unwrap();
        let closeness = closeness(&expected, &model.weights());
        assert!(
            closeness <= 1.0,
            "step {step}: {closeness} times the tolerance"
        );
    }
    let control = fused.optimizer().unwrap().read_control().unwrap();
    assert!(
        control.clip_coef < 1.0,
        "the clip never engaged: {control:?}"
    );
}

#[test]
fn a_record_resumes_bit_for_bit() {
    let device = shared().device();
    let config = AdamWConfig::default().with_lr(LR);
    let mut model = Mlp::new(device);
    let ids = model.ids();
    let mut fused = FusedOptimizer::new(shared(), config.clone())
        .with_group(|p| p.rank() <= 1, config.clone().with_weight_decay(0.0))
        .with_grad(GradConfig::default().with_max_norm(1.0));
    for step in 0..5 {
        let g = grads(&model, step);
        model = fused.step(LR, model, g).unwrap();
    }
    let record = fused.to_record_bytes().unwrap();
    let checkpoint = fused.checkpoint().unwrap();
    let saved = model.weights();
    for step in 5..10 {
        let g = grads(&model, step);
        model = fused.step(LR, model, g).unwrap();
    }
    let straight = model.weights();

    // From Burn's record, loaded before the first step, and from the checkpoint.
    for (name, resume) in [("record", true), ("checkpoint", false)] {
        let mut model = Mlp::with(&saved, ids, device);
        let mut fused = FusedOptimizer::new(shared(), config.clone())
            .with_group(|p| p.rank() <= 1, config.clone().with_weight_decay(0.0))
            .with_grad(GradConfig::default().with_max_norm(1.0));
        if resume {
            fused.load_record_bytes(&record).unwrap();
        } else {
            fused.load_checkpoint(&checkpoint).unwrap();
        }
        for step in 5..10 {
            let g = grads(&model, step);
            model = fused.step(LR, model, g).unwrap();
        }
        assert_eq!(model.weights(), straight, "resumed from the {name}");
    }

    // Burn's layout: one "{param_id}.{state}" tensor per state, shaped like its parameter.
    let reader =
        burn_pack::Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(record.clone())).unwrap();
    let names = reader
        .tensor_names()
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let w1 = ids[0].val();
    assert!(names.contains(&format!("{w1}.exp_avg")), "{names:?}");
    assert!(names.contains(&format!("{w1}.exp_avg_sq")), "{names:?}");
    assert_eq!(
        reader.metadata().get(&w1.to_string()).map(String::as_str),
        Some("w1")
    );

    // A record of another model is refused, and changes nothing.
    let other = Mlp::new(device);
    let mut fused = FusedOptimizer::new(shared(), config.clone());
    let g = grads(&other, 0);
    let other = fused.step(LR, other, g).unwrap();
    let before = state(&fused);
    let error = fused.load_record_bytes(&record).unwrap_err();
    assert!(
        matches!(burn_error(&error), BurnError::Record(_)),
        "{error}"
    );
    assert!(
        state(&fused) == before,
        "the refused record changed the state"
    );
    drop(other);
}

#[test]
fn a_clone_of_the_model_keeps_its_values() {
    let device = shared().device();
    let mut model = Mlp::new(device);
    let mut fused = FusedOptimizer::new(shared(), AdamWConfig::default().with_lr(LR));
    let g = grads(&model, 0);
    model = fused.step(LR, model, g).unwrap();
    assert_eq!(fused.last_step().unwrap().copied_in, 5);
    let g = grads(&model, 1);
    model = fused.step(LR, model, g).unwrap();
    // Nothing shares the parameters: updated in place, nothing copied in.
    let stats = fused.last_step().unwrap();
    assert_eq!(
        (stats.copied_in, stats.copied_on_write),
        (0, 0),
        "{stats:?}"
    );

    let snapshot = model.clone();
    let kept = snapshot.weights();
    let g = grads(&model, 2);
    model = fused.step(LR, model, g).unwrap();
    assert_eq!(fused.last_step().unwrap().copied_on_write, 5);
    assert_eq!(snapshot.weights(), kept, "the snapshot changed");
    assert_ne!(model.weights(), kept, "the model did not move");
    // The new tensors are the model's alone again.
    drop(snapshot);
    let g = grads(&model, 3);
    model = fused.step(LR, model, g).unwrap();
    assert_eq!(fused.last_step().unwrap().copied_on_write, 0);
    drop(model);
}

/// Allocates and frees tensors of many sizes (multiples of `unit` elements), then asks CubeCL
/// to compact its pools: live allocations may move to other pages.
fn churn_pool(device: &Device, unit: usize) {
    let junk: Vec<Tensor<1>> = (1..40)
        .map(|k| Tensor::<1>::ones([k * unit], device) * (k as f32))
        .collect();
    let _: f32 = junk[3].clone().sum().into_scalar();
    drop(junk);
    device.memory_cleanup();
}

#[test]
fn burns_memory_pool_moving_tensors_changes_nothing() {
    let device = shared().device();
    let run = |churn: bool| {
        let mut model = Mlp::new(device);
        let mut fused = FusedOptimizer::new(shared(), AdamWConfig::default().with_lr(LR));
        for step in 0..8 {
            if churn {
                churn_pool(device, 97);
            }
            let g = grads(&model, step);
            model = fused.step(LR, model, g).unwrap();
        }
        model.weights()
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn a_parameter_replaced_between_steps_is_read_from_its_new_tensor() {
    let device = shared().device();
    let mut model = Mlp::new(device);
    let mut fused = FusedOptimizer::new(shared(), SgdConfig::default().with_lr(LR));
    for step in 0..2 {
        let g = grads(&model, step);
        model = fused.step(LR, model, g).unwrap();
    }
    // An edit: a new tensor for b1 (Burn's tensors are values; this is what `map` and a loaded
    // record do).
    let id = model.b1.id;
    let autodiff = device.clone().autodiff();
    model.b1 = Param::initialized(
        id,
        Tensor::<1>::full([HIDDEN], 100.0, &autodiff).require_grad(),
    );
    let g = grads(&model, 2);
    let host = host_grads(&model, &g);
    model = fused.step(LR, model, g).unwrap();
    assert_eq!(fused.last_step().unwrap().copied_in, 1);
    let b1 = &model.weights()[1];
    for (value, grad) in b1.iter().zip(&host[1]) {
        let expected = 100.0 - LR as f32 * grad;
        assert!(
            (value - expected).abs() <= 1e-5 * 100.0,
            "{value} vs {expected}"
        );
    }
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let device = shared().device();
    let mut model = Mlp::new(device);
    let mut fused = FusedOptimizer::new(shared(), AdamWConfig::default().with_lr(LR));
    let g = grads(&model, 0);
    model = fused.step(LR, model, g).unwrap();
    let before = model.weights();
    let kept = state(&fused);

    // A gradient missing for a parameter the optimizer steps.
    let mut g = grads(&model, 1);
    let _ = g.remove::<1>(model.b2.id);
    let refused = fused.step(LR, model, g).unwrap_err();
    assert!(
        matches!(burn_error(refused.error()), BurnError::MissingGradient { path } if path == "b2")
    );
    let model = refused.into_module();
    assert_eq!(model.weights(), before);
    assert!(state(&fused) == kept, "a refused step changed the state");

    // A learning rate that is not finite in f32.
    let g = grads(&model, 1);
    let refused = fused.step(1e300, model, g).unwrap_err();
    assert!(
        matches!(refused.error(), Error::InvalidHyperparameter { .. }),
        "{}",
        refused.error()
    );
    let model = refused.into_module();
    assert_eq!(model.weights(), before);
    assert!(state(&fused) == kept, "a refused step changed the state");

    // A module on another device (another wgpu device registered with Burn).
    let elsewhere = SharedDevice::new_blocking().unwrap();
    let stranger = Mlp::with(&initial(), model.ids(), elsewhere.device());
    let g = grads(&stranger, 1);
    let refused = fused.step(LR, stranger, g).unwrap_err();
    assert!(
        matches!(
            burn_error(refused.error()),
            BurnError::OtherDevice {
                role: "parameter",
                ..
            }
        ),
        "{}",
        refused.error()
    );
    assert!(state(&fused) == kept, "a refused step changed the state");

    // A gradient for a parameter that had none at the first step.
    let fresh = Mlp::new(device);
    let mut partial = FusedOptimizer::new(shared(), AdamWConfig::default().with_lr(LR));
    let mut g = grads(&fresh, 0);
    let _ = g.remove::<1>(fresh.scale.id);
    let fresh = partial.step(LR, fresh, g).unwrap();
    assert_eq!(partial.params().len(), 4);
    let g = grads(&fresh, 1);
    let refused = partial.step(LR, fresh, g).unwrap_err();
    assert!(
        matches!(burn_error(refused.error()), BurnError::NewGradient { path } if path == "scale")
    );

    // No gradient at all.
    let empty = Mlp::new(device);
    let mut none = FusedOptimizer::new(shared(), AdamWConfig::default());
    let refused = none.step(LR, empty, GradientsParams::new()).unwrap_err();
    assert!(matches!(
        burn_error(refused.error()),
        BurnError::NothingToStep
    ));

    // The step still works after all of that.
    let g = grads(&model, 1);
    let model = fused.step(LR, model, g).unwrap();
    assert_ne!(model.weights(), before);
}

/// f16 parameters and gradients with an f32 master copy, bit for bit with the reference. (bf16
/// is what the issue names, but Burn's wgpu backend compiles WGSL, which has no bf16: CubeCL
/// refuses it, `UnsupportedType("cube.bf16")`; the adapter's path is the same for both.)
#[test]
fn half_precision_parameters_step_from_an_f32_master_copy() {
    let device = shared().device();
    let ids: [ParamId; 5] = std::array::from_fn(|_| ParamId::new());
    let mut model = Mlp::with_dtype(&initial(), ids, device, DType::F16);
    let config = AdamWConfig::default().with_lr(LR);
    let precision = Precision::default()
        .with_master_weights()
        .with_states(Dtype::F32);
    let mut fused = FusedOptimizer::new(shared(), config.clone()).with_precision(precision);
    let lens: Vec<usize> = initial().iter().map(Vec::len).collect();
    let storage = Storage {
        master: true,
        ..Storage::new(Dtype::F16, Dtype::F16, Dtype::F32)
    };
    let mut reference =
        reference::Optimizer::with_storage(&config.clone().into(), &lens, storage).unwrap();
    let mut expected = model.weights().to_vec();
    for step in 0..5 {
        let g = grads(&model, step);
        assert_eq!(g.get::<2>(ids[0]).unwrap().dtype(), DType::F16);
        let host = host_grads(&model, &g);
        reference.step(&mut expected, &host).unwrap();
        model = fused.step(LR, model, g).unwrap();
        assert_eq!(model.w1.val().dtype(), DType::F16);
        let found = model.weights();
        assert!(
            found.to_vec() == expected,
            "step {step}: the f16 parameters differ from the reference"
        );
    }
    let optimizer = fused.optimizer().unwrap();
    let master = optimizer.read_state(0, wgpu_optim::MASTER_PARAM).unwrap();
    let rounded: Vec<f32> = master.iter().map(|&v| Dtype::F16.round(v)).collect();
    assert_eq!(
        rounded,
        model.weights()[0],
        "the parameters are the master copy, rounded"
    );
    assert_ne!(
        master,
        model.weights()[0],
        "the master copy keeps more than f16 holds"
    );
}

/// A model with one large parameter (CubeCL gives it a buffer of its own, where the small
/// tensors above share pages with their gradients) and a small one.
#[derive(Module, Debug)]
struct Wide {
    w: Param<Tensor<2>>,
    b: Param<Tensor<1>>,
}

const WIDE: [usize; 2] = [1024, 1536];

/// Held by the tests that step `Wide`: Burn's pool hands a 1.5M-element gradient the slot the
/// last one freed unless another test's tensors of that size took it, and
/// `direct_binding_steps_the_same_bits_as_copies` counts the rebinds that follow.
static WIDE_POOL: Mutex<()> = Mutex::new(());

fn wide_pool() -> MutexGuard<'static, ()> {
    WIDE_POOL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Wide {
    /// Gives w a new tensor of 0.25s under the same id (a parameter replaced between steps).
    fn replace_w(&mut self, device: &Device) {
        let autodiff = device.clone().autodiff();
        let w = Tensor::<2>::full(WIDE, 0.25, &autodiff).require_grad();
        self.w = Param::initialized(self.w.id, w);
    }

    fn new(device: &Device) -> Self {
        let device = device.clone().autodiff();
        let n = WIDE[0] * WIDE[1];
        let w = Tensor::<2>::from_data(TensorData::new(values(5, n), WIDE), &device);
        let b = Tensor::<1>::from_data(TensorData::new(values(6, 64), [64]), &device);
        Wide {
            w: Param::initialized(ParamId::new(), w.require_grad()),
            b: Param::initialized(ParamId::new(), b.require_grad()),
        }
    }

    /// The gradients of `c (|w|^2 + |b|^2 + sum(w) sum(b))`, `c` changing with the step.
    fn grads(&self, step: u64) -> GradientsParams {
        let (w, b) = (self.w.val(), self.b.val());
        let loss =
            (w.clone() * w.clone()).sum() + (b.clone() * b.clone()).sum() + w.sum() * b.sum();
        GradientsParams::from_grads((loss * (1.0 + step as f32 * 0.25)).backward(), self)
    }

    fn weights(&self) -> [Vec<f32>; 2] {
        [
            self.w.val().into_data().try_to_vec::<f32>().unwrap(),
            self.b.val().into_data().try_to_vec::<f32>().unwrap(),
        ]
    }
}

/// Eight steps through everything that moves a tensor (a clone of the model, a replaced
/// parameter, Burn's pool compacted), with the large tensor bound in Burn's buffers or copied:
/// the same bits, the same state.
#[test]
fn direct_binding_steps_the_same_bits_as_copies() {
    let _pool = wide_pool();
    let device = shared().device();
    let run = |direct: Option<usize>| {
        let mut model = Wide::new(device);
        // Clipped (the gradients' norm is in the hundreds): the norm reduction reads Burn's
        // buffers too.
        let mut fused = FusedOptimizer::new(shared(), AdamWConfig::default().with_lr(LR))
            .with_grad(GradConfig::default().with_max_norm(1.0))
            .with_direct_binding(direct);
        let mut stats = Vec::new();
        for step in 0..8 {
            let snapshot = (step == 2).then(|| model.clone());
            if step == 4 {
                model.replace_w(device);
            }
            if step == 6 {
                churn_pool(device, 9700);
            }
            let exp_avg = |fused: &FusedOptimizer| {
                let optimizer = fused.optimizer().unwrap();
                optimizer
                    .state_range(0, "exp_avg")
                    .unwrap()
                    .buffer()
                    .clone()
            };
            let before = (step > 0).then(|| exp_avg(&fused));
            let g = model.grads(step);
            model = fused.step(LR, model, g).unwrap();
            let s = fused.last_step().unwrap();
            stats.push((s.bound, s.rebound, s.copied_in, s.copied_on_write));
            if step == 4 && direct.is_some() {
                // Rebound over the replaced w: its state stayed in its buffers, not copied.
                assert_eq!(before, Some(exp_avg(&fused)));
            }
            drop(snapshot);
        }
        (model.weights(), state(&fused), stats)
    };
    let (copied, copied_state, copied_stats) = run(None);
    let (bound, bound_state, bound_stats) = run(Some(1 << 16));
    assert!(copied_stats.iter().all(|s| s.0 == 0), "{copied_stats:?}");
    // (bound, rebound, copied in, copied on write) per step: w bound from the first step on
    // (the optimizer built again over Burn's ranges; b, in a page shared with its gradient, is
    // copied); copied on write while the snapshot shares it (its arena copy refreshed from
    // Burn's tensor first); bound again over the new tensor; again over the replaced one. Later
    // steps rebind whenever Burn's pool hands the gradient another range.
    let expected = [
        (1, 1, 1, 0),
        (1, 0, 0, 0),
        (0, 1, 1, 2),
        (1, 1, 0, 0),
        (1, 1, 0, 0),
    ];
    assert_eq!(bound_stats[..5], expected, "{bound_stats:?}");
    assert!(bound_stats[5..].iter().all(|s| s.0 == 1), "{bound_stats:?}");
    assert_eq!(bound, copied);
    assert_eq!(bound_state, copied_state);
}

/// 8-bit states through the adapter: w (1.5M elements, whole blocks) keeps 8-bit states, b
/// f32 ones, and each rebind (w bound over Burn's buffers, then over a replaced tensor, then
/// wherever the pool moves its gradient) copies codes and block scales to the optimizer built
/// anew. The same bits as the copying path, which never rebinds.
#[test]
fn eight_bit_states_move_with_direct_binding() {
    let _pool = wide_pool();
    let device = shared().device();
    let run = |direct: Option<usize>| {
        let mut model = Wide::new(device);
        let mut fused = FusedOptimizer::new(shared(), AdamWConfig::default().with_lr(LR))
            .with_precision(Precision::default().with_8bit_states())
            .with_direct_binding(direct);
        let mut rebinds = 0;
        for step in 0..6 {
            if step == 3 {
                model.replace_w(device);
            }
            if step == 4 {
                churn_pool(device, 9700);
            }
            let g = model.grads(step);
            model = fused.step(LR, model, g).unwrap();
            rebinds += fused.last_step().unwrap().rebound;
        }
        let optimizer = fused.optimizer().unwrap();
        assert!(optimizer.quantized_states());
        let codes =
            ["exp_avg", "exp_avg_sq"].map(|name| optimizer.read_quantized_state(0, name).unwrap());
        (model.weights(), state(&fused), codes, rebinds)
    };
    let (copied, copied_state, copied_codes, copied_rebinds) = run(None);
    let (bound, bound_state, bound_codes, bound_rebinds) = run(Some(1 << 16));
    assert_eq!(copied_rebinds, 0);
    assert!(bound_rebinds >= 2, "{bound_rebinds}");
    assert_eq!(bound, copied);
    assert_eq!(bound_state, copied_state);
    assert_eq!(bound_codes, copied_codes);
}
