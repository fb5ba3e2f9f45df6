//! The same steps on two of wgpu's backends: every optimizer configuration of `all_configs()`
//! stepped on Vulkan and on GL from the same parameters with the same gradients, and their
//! parameters, states and norm statistics compared bit for bit.
//!
//! In CI both adapters are Mesa's: lavapipe behind Vulkan (naga's SPIR-V) and llvmpipe behind
//! EGL and OpenGL (naga's GLSL). Both front ends lower to NIR and one code generator (gallivm,
//! on LLVM), so whatever it makes of WGSL's latitude (fused multiply-adds, division and sqrt
//! within 2.5 ulp) it makes on both: the bits agree, and the test requires it of such a pair.
//! Between other drivers (a GPU's Vulkan beside its GL) two compilers may use that latitude
//! differently; only the tolerance of `tests/common` against the CPU reference holds then, and
//! the test checks that (it checks it on every pair) and prints how many values differ.

mod common;
use common::*;
use wgpu_optim::{Context, ContextOptions, GradConfig, OptimizerConfig, Tuning};

const LENS: [usize; 5] = [1, 3, 257, 1000, 4099];
const STEPS: usize = 4;

/// One context per backend, each on that backend alone whatever `WGPU_BACKEND` says.
struct Backends {
    vulkan: Context,
    gl: Context,
    /// Whether both adapters are the same Mesa build of llvmpipe, whose two front ends compile
    /// the same WGSL to the same arithmetic: the bits must then agree.
    same_code_generator: bool,
}

impl Backends {
    fn new() -> Backends {
        let vulkan = backend_context(
            wgpu::Backends::VULKAN,
            "install Mesa's software Vulkan driver: \
             `apt-get install -y mesa-vulkan-drivers libvulkan1`",
        );
        let gl = backend_context(
            wgpu::Backends::GL,
            "install EGL and Mesa's software GL driver (llvmpipe): \
             `apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri`",
        );
        let (a, b) = (adapter(&vulkan), adapter(&gl));
        let mesa = |info: &wgpu::AdapterInfo| {
            info.driver_info
                .split_whitespace()
                .skip_while(|word| *word != "Mesa")
                .nth(1)
                .map(str::to_owned)
        };
        let same_code_generator = a.name.starts_with("llvmpipe")
            && a.name == b.name
            && mesa(a).is_some()
            && mesa(a) == mesa(b);
        Backends {
            vulkan,
            gl,
            same_code_generator,
        }
    }

    /// Steps `config` on both backends, `grad_config` processing the gradients when given;
    /// returns how many values differ and how many were compared.
    fn compare(
        &self,
        n: usize,
        config: &OptimizerConfig,
        grad: Option<&GradConfig>,
    ) -> (usize, usize) {
        let mut on_vulkan = Run::new(&self.vulkan, config, &LENS, n as u64);
        let mut on_gl = Run::new(&self.gl, config, &LENS, n as u64);
        if let Some(grad) = grad {
            on_vulkan.set_grad_processing(Some(grad.clone()));
            on_gl.set_grad_processing(Some(grad.clone()));
        }
        let what = |backend: &str| match grad {
            Some(grad) => format!("{config:?} with {grad:?} on {backend}"),
            None => format!("{config:?} on {backend}"),
        };
        let (mut differing, mut compared) = (0, 0);
        for step in 1..=STEPS {
            // The same seed on both sides: the same parameters and the same gradients.
            on_vulkan.step(&self.vulkan);
            on_gl.step(&self.gl);
            on_vulkan.compare(&self.vulkan, &what("Vulkan"));
            on_gl.compare(&self.gl, &what("GL"));
            let mut a = on_vulkan.snapshot(&self.vulkan);
            let mut b = on_gl.snapshot(&self.gl);
            if let (Some(x), Some(y)) = (&on_vulkan.norm_stats, &on_gl.norm_stats) {
                a.push(bits(&self.vulkan.read_f32(x).unwrap()));
                b.push(bits(&self.gl.read_f32(y).unwrap()));
            }
            assert_eq!(a.len(), b.len());
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
                assert!(
                    differ == 0 || !self.same_code_generator,
                    "{}: after step {step}, {differ} of {} values of buffer {i} (params and \
                     states of each tensor in turn, then the norm stats) differ from Vulkan's",
                    what("GL"),
                    a.len()
                );
                differing += differ;
                compared += a.len();
            }
        }
        (differing, compared)
    }
}

/// A context on `backend` alone; without one, fails naming `fix`. Both get the same launch
/// settings: runs per invocation (both CPU adapters choose it) and the workgroup-memory tree
/// for reductions (GL has no subgroup operations).
fn backend_context(backend: wgpu::Backends, fix: &str) -> Context {
    let options = ContextOptions {
        backends: Some(backend),
        ..Default::default()
    };
    let ctx = pollster::block_on(Context::request(&options))
        .unwrap_or_else(|e| panic!("this test needs a {backend:?} adapter. Fix: {fix}.\n{e}"));
    let info = adapter(&ctx);
    assert_eq!(
        wgpu::Backends::from(info.backend),
        backend,
        "asked for {backend:?}, got {info:?}"
    );
    eprintln!("{:?}: {} ({})", info.backend, info.name, info.driver_info);
    ctx.with_tuning(Tuning {
        subgroups: false,
        runs_per_invocation: true,
        ..Tuning::default()
    })
}

fn adapter(ctx: &Context) -> &wgpu::AdapterInfo {
    ctx.adapter_info()
        .expect("a context of Context::request knows its adapter")
}

#[test]
fn every_optimizer_steps_to_the_same_bits_on_vulkan_and_gl() {
    let backends = Backends::new();
    let configs = all_configs();
    let (mut differing, mut compared) = (0, 0);
    for (n, config) in configs.iter().enumerate() {
        let (d, c) = backends.compare(n, config, None);
        differing += d;
        compared += c;
    }
    eprintln!(
        "{} configurations, {compared} values compared, {differing} differ (same code \
         generator: {})",
        configs.len(),
        backends.same_code_generator
    );
}

/// The gradient-norm reduction and the clip coefficient on both backends: the first
/// configuration of each optimizer, clipped to a norm the gradients exceed.
#[test]
fn clipped_steps_take_the_same_bits_on_vulkan_and_gl() {
    let backends = Backends::new();
    let grad = GradConfig::default().with_max_norm(1.0);
    let mut seen = Vec::new();
    let (mut differing, mut compared) = (0, 0);
    for (n, config) in all_configs().iter().enumerate() {
        if seen.contains(&config.name()) {
            continue;
        }
        seen.push(config.name());
        let (d, c) = backends.compare(n, config, Some(&grad));
        differing += d;
        compared += c;
    }
    eprintln!(
        "{} optimizers clipped, {compared} values compared, {differing} differ",
        seen.len()
    );
}
