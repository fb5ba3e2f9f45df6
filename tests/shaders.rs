//! Every WGSL file validates with naga, and every Rust mirror of a WGSL struct has its layout.

use wgpu_optim::shaders::{self, ElementLayout, Kernel, FILES};
use wgpu_optim::*;

fn parse(source: &str, what: &str) -> naga::Module {
    naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)))
}

fn validate(module: &naga::Module, source: &str, what: &str) {
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::SUBGROUP,
    )
    .validate(module)
    .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)));
}

/// The shared files that stand alone: declarations and pure functions.
const STANDALONE: [&str; 3] = [
    "common/control.wgsl",
    "common/segment.wgsl",
    "common/math.wgsl",
];

/// The modules besides the optimizer kernels: (name, source, files, entry points).
fn other_modules() -> Vec<(String, String, Vec<&'static str>, Vec<&'static str>)> {
    let grad_entries = vec!["grad_partials", "grad_local", "grad_finalize"];
    let mut modules = Vec::new();
    for subgroups in [false, true] {
        for sixteen_bit in [false, true] {
            modules.push((
                format!("clip (subgroups: {subgroups}, 16-bit gradients: {sixteen_bit})"),
                shaders::grad_source(subgroups, sixteen_bit),
                shaders::grad_files(subgroups, sixteen_bit),
                grad_entries.clone(),
            ));
        }
    }
    modules.push((
        "clip_value".to_string(),
        shaders::concatenate(&shaders::CLIP_VALUE_FILES),
        shaders::CLIP_VALUE_FILES.to_vec(),
        vec!["clip_value_in_place"],
    ));
    modules.push((
        "schedule".to_string(),
        shaders::concatenate(&shaders::SCHEDULE_FILES),
        shaders::SCHEDULE_FILES.to_vec(),
        vec!["schedule"],
    ));
    modules
}

/// Every storage type in every role, with master weights and stochastic rounding where
/// they apply.
fn storages() -> Vec<Storage> {
    let mut all = Vec::new();
    for param in Dtype::ALL {
        for grad in Dtype::ALL {
            for states in Dtype::ALL {
                let plain = Storage::new(param, grad, states);
                all.push(plain);
                if param.is_16bit() {
                    all.push(Storage {
                        master: true,
                        ..plain
                    });
                }
                if param == Dtype::BF16 {
                    all.push(Storage {
                        rounding: Rounding::Stochastic { seed: u64::MAX },
                        ..plain
                    });
                }
            }
        }
    }
    all
}

#[test]
fn every_kernel_module_validates() {
    for kernel in Kernel::ALL {
        for layout in ElementLayout::ALL {
            for storage in storages() {
                let name = format!("{} ({layout:?}, {storage:?})", kernel.name());
                let source = kernel.source(layout, storage);
                let module = parse(&source, &name);
                validate(&module, &source, &name);
                let trust = ["update_norms", "update_tail_norms", "trust_fold"];
                let trust = if kernel.has_trust_ratio() {
                    &trust[..]
                } else {
                    &[]
                };
                for &entry in ["prologue", "update", "update_tail"].iter().chain(trust) {
                    assert!(
                        module.entry_points.iter().any(|e| e.name == entry),
                        "{name} lacks the entry point {entry}"
                    );
                }
            }
        }
    }
}

#[test]
fn gradient_processing_modules_validate() {
    for (name, source, _, entries) in other_modules() {
        let module = parse(&source, &name);
        validate(&module, &source, &name);
        for entry in entries {
            assert!(
                module.entry_points.iter().any(|e| e.name == entry),
                "{name} lacks the entry point {entry}"
            );
        }
    }
}

#[test]
fn shared_files_validate_on_their_own() {
    for path in STANDALONE {
        let (_, text) = FILES.iter().find(|(p, _)| *p == path).unwrap();
        validate(&parse(text, path), text, path);
    }
}

#[test]
fn every_file_in_the_shaders_folder_is_listed_and_used() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk = Vec::new();
    for dir in [root.clone(), root.join("common")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wgsl") {
                on_disk.push(
                    path.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "shaders/ and shaders::FILES differ");
    for (path, text) in FILES {
        let disk = std::fs::read_to_string(root.join(path)).unwrap();
        assert_eq!(&disk, text, "{path} is stale in the build");
        // Every file is validated: on its own, or inside a kernel module that includes it.
        let used = STANDALONE.contains(path)
            || Kernel::ALL.iter().any(|k| k.files().contains(path))
            || other_modules()
                .iter()
                .any(|(_, _, files, _)| files.contains(path));
        assert!(used, "{path} is validated by no test");
    }
}

/// Asserts the WGSL struct `T::WGSL_NAME` in `module` has T's size and field offsets.
fn assert_layout<T: WgslLayout>(module: &naga::Module, what: &str) {
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, ty)| ty.name.as_deref() == Some(T::WGSL_NAME))
        .unwrap_or_else(|| panic!("{what}: no struct {}", T::WGSL_NAME));
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{what}: {} is not a struct", T::WGSL_NAME)
    };
    let wgsl: Vec<(String, usize)> = members
        .iter()
        .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
        .collect();
    let rust: Vec<(String, usize)> = T::FIELDS.iter().map(|(n, o)| (n.to_string(), *o)).collect();
    assert_eq!(wgsl, rust, "{what}: fields of {}", T::WGSL_NAME);
    assert_eq!(
        *span as usize,
        std::mem::size_of::<T>(),
        "{what}: size of {}",
        T::WGSL_NAME
    );
}

#[test]
fn rust_structs_match_their_wgsl_layout() {
    for kernel in Kernel::ALL {
        let module = parse(
            &kernel.source(ElementLayout::Vec4, Storage::F32),
            kernel.name(),
        );
        assert_layout::<Control>(&module, kernel.name());
        assert_layout::<Segment>(&module, kernel.name());
        match kernel {
            Kernel::Sgd => assert_layout::<SgdHyper>(&module, "sgd"),
            Kernel::Adagrad => assert_layout::<AdagradHyper>(&module, "adagrad"),
            Kernel::RmsProp => assert_layout::<RmsPropHyper>(&module, "rmsprop"),
            Kernel::Adam | Kernel::AdaBelief | Kernel::Adamax => {
                assert_layout::<AdamHyper>(&module, kernel.name())
            }
            Kernel::Lion => assert_layout::<LionHyper>(&module, "lion"),
            Kernel::NAdam => assert_layout::<NAdamHyper>(&module, "nadam"),
            Kernel::RAdam => assert_layout::<RAdamHyper>(&module, "radam"),
            Kernel::Adadelta => assert_layout::<AdadeltaHyper>(&module, "adadelta"),
            Kernel::Adopt => assert_layout::<AdoptHyper>(&module, "adopt"),
            Kernel::ScheduleFreeAdamW => {
                assert_layout::<ScheduleFreeAdamWHyper>(&module, "schedule_free_adamw")
            }
            Kernel::ScheduleFreeSgd => {
                assert_layout::<ScheduleFreeSgdHyper>(&module, "schedule_free_sgd")
            }
            Kernel::Lamb => assert_layout::<LambHyper>(&module, "lamb"),
            Kernel::Lars => assert_layout::<LarsHyper>(&module, "lars"),
        }
    }
    for subgroups in [false, true] {
        let module = parse(&shaders::grad_source(subgroups, false), "clip");
        assert_layout::<Control>(&module, "clip");
        assert_layout::<GradHyper>(&module, "clip");
        assert_layout::<Partial>(&module, "clip");
        assert_layout::<NormStats>(&module, "clip");
        assert_layout::<Segment>(&module, "clip");
        assert_layout::<ReduceWork>(&module, "clip");
        assert_layout::<Fold>(&module, "clip");
    }
    let schedule = parse(&shaders::concatenate(&shaders::SCHEDULE_FILES), "schedule");
    assert_layout::<ScheduleShape>(&schedule, "schedule");
    assert_layout::<Control>(&schedule, "schedule");
    let clip_value = parse(
        &shaders::concatenate(&shaders::CLIP_VALUE_FILES),
        "clip_value",
    );
    assert_layout::<Segment>(&clip_value, "clip_value");
}

#[test]
fn every_pipeline_builds_on_the_adapter() {
    // Every configuration, on tensors that take every entry point (the vec4 update, its tail
    // dispatch, the scalar update), without and with every gradient-processing stage: wgpu
    // compiles each overridden module for the real backend.
    let ctx = common::context();
    let grad = ctx.upload_f32("grad", &[0.0; 16]);
    let param = ctx.upload_f32("param", &[0.0; 16]);
    let scalar = [
        ctx.upload_f32("grad", &[0.0; 7]),
        ctx.upload_f32("param", &[0.0; 7]),
    ];
    let params = [
        Param::whole(&param, &grad),
        Param::whole(&scalar[1], &scalar[0]),
    ];
    let tail = [Param::new(
        BufferRange::new(&param, 0, 6),
        BufferRange::new(&grad, 0, 6),
    )];
    let every_stage = GradConfig::default()
        .with_max_norm(1.0)
        .with_clip_value(0.5)
        .with_grad_scaler(GradScalerConfig::default());
    for config in common::all_configs() {
        for tensors in [&params[..], &tail[..]] {
            let mut optimizer = config
                .build(ctx, tensors)
                .unwrap_or_else(|e| panic!("{config:?}: {e}"));
            optimizer
                .set_grad_processing(Some(every_stage.clone()))
                .unwrap_or_else(|e| panic!("{config:?} with gradient processing: {e}"));
        }
    }
    assert_eq!(
        config_tails(ctx, &tail),
        1,
        "a tensor of 6 elements ends inside a vec4"
    );
}

fn config_tails(ctx: &Context, params: &[Param]) -> usize {
    OptimizerConfig::AdamW(AdamWConfig::default())
        .build(ctx, params)
        .unwrap()
        .tail_dispatches()
}

mod common;
