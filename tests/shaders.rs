//! Every WGSL file validates with naga, and every Rust mirror of a WGSL struct has its layout.

use wgpu_optim::shaders::{self, Binding, ElementLayout, ShaderFile};
use wgpu_optim::*;

fn parse(source: &str, what: &str) -> naga::Module {
    naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)))
}

fn validate(module: &naga::Module, source: &str, what: &str) {
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        // Subgroups (the reductions' fast path, where the adapter has them) and
        // pack2x16float (the f16 Newton-Schulz iterate; wgpu grants it with
        // DownlevelFlags::SHADER_F16_IN_F32, which Vulkan, Metal, DX12 and GL ES 3 have).
        naga::valid::Capabilities::SUBGROUP | naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
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
fn other_modules() -> Vec<(String, String, Vec<ShaderFile>, Vec<&'static str>)> {
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
        shaders::clip_value_source(),
        shaders::clip_value_files(),
        vec!["clip_value_in_place"],
    ));
    modules.push((
        "schedule".to_string(),
        shaders::schedule_source(),
        shaders::schedule_files(),
        vec!["schedule"],
    ));
    for f16_iterate in [false, true] {
        modules.push((
            format!("newton_schulz (f16 iterate: {f16_iterate})"),
            shaders::newton_schulz_source(f16_iterate),
            shaders::newton_schulz_files(),
            vec!["sum_squares", "load", "multiply", "store"],
        ));
    }
    modules.push((
        "muon".to_string(),
        shaders::muon_source(),
        shaders::muon_files(),
        vec!["muon_momentum", "muon_apply", "muon_combine"],
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
    for kernel in shaders::kernels() {
        for layout in ElementLayout::ALL {
            for storage in storages() {
                let name = format!("{} ({layout:?}, {storage:?})", kernel.name);
                let source = kernel.source(layout, storage);
                let module = parse(&source, &name);
                validate(&module, &source, &name);
                let trust = ["update_norms", "update_tail_norms", "trust_fold"];
                let trust = if kernel.trust_ratio { &trust[..] } else { &[] };
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

/// The binding number of the global `name` in `module`, if declared with one.
fn binding_of(module: &naga::Module, name: &str) -> Option<u32> {
    module
        .global_variables
        .iter()
        .find(|(_, v)| v.name.as_deref() == Some(name))
        .and_then(|(_, v)| v.binding.as_ref())
        .map(|b| b.binding)
}

/// The storages of 8-bit states: every parameter type, master weights, stochastic rounding,
/// the table in a storage buffer and in a uniform one.
fn quantized_storages() -> Vec<Storage> {
    let bases = storages().into_iter().filter(|s| s.states == Dtype::F32);
    bases
        .flat_map(|s| {
            [false, true].map(|uniform_maps| Storage {
                quant8: Some(Quant8 {
                    unsigned: [false, true, true],
                    uniform_maps,
                }),
                ..s
            })
        })
        .collect()
}

/// The kernels 8-bit states are offered for.
const QUANTIZED_KERNELS: [&str; 3] = ["adam", "sgd", "lion"];

#[test]
fn quantized_modules_validate_and_bind_where_the_host_binds() {
    for kernel in shaders::kernels() {
        if !QUANTIZED_KERNELS.contains(&kernel.name) {
            continue;
        }
        for storage in quantized_storages() {
            let name = format!("{} (8-bit states, {storage:?})", kernel.name);
            let source = kernel.source(ElementLayout::Vec4, storage);
            let module = parse(&source, &name);
            validate(&module, &source, &name);
            let declared = |name: &str| binding_of(&module, name);
            assert_eq!(
                declared("qmaps"),
                Some(Binding::QuantMaps.index()),
                "{name}"
            );
            let uniform = storage.quant8.is_some_and(|q| q.uniform_maps);
            let space = module
                .global_variables
                .iter()
                .find(|(_, v)| v.name.as_deref() == Some("qmaps"))
                .map(|(_, v)| v.space);
            assert_eq!(
                space == Some(naga::AddressSpace::Uniform),
                uniform,
                "{name}: {space:?}"
            );
            // Every state's codes and scales in one binding each: no `state0`...
            assert_eq!(declared("codes"), Some(Binding::Codes.index()), "{name}");
            assert_eq!(declared("scales"), Some(Binding::Scales.index()), "{name}");
            for slot in 0..kernel.state_slots {
                assert_eq!(declared(&format!("state{slot}")), None, "{name}");
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
    let files = shaders::files();
    for path in STANDALONE {
        let file = files.iter().find(|f| f.path == path).unwrap();
        validate(&parse(file.text, path), file.text, path);
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
    let files = shaders::files();
    let mut listed: Vec<String> = files.iter().map(|f| f.path.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "shaders/ and shaders::files() differ");
    for file in &files {
        let disk = std::fs::read_to_string(root.join(file.path)).unwrap();
        assert_eq!(disk, file.text, "{} is stale in the build", file.path);
        // Every file is validated: on its own, or inside a module that includes it.
        let used = STANDALONE.contains(&file.path)
            || shaders::kernels().iter().any(|k| k.files().contains(file))
            || quantized_storages().iter().any(|&s| {
                shaders::kernels()
                    .iter()
                    .any(|k| k.module_files(s).contains(file))
            })
            || other_modules()
                .iter()
                .any(|(_, _, files, _)| files.contains(file));
        assert!(used, "{} is validated by no test", file.path);
    }
}

/// Asserts the WGSL struct `layout.name` in `module` has `layout`'s size and field offsets.
fn assert_struct(module: &naga::Module, layout: StructLayout, what: &str) {
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, ty)| ty.name.as_deref() == Some(layout.name))
        .unwrap_or_else(|| panic!("{what}: no struct {}", layout.name));
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{what}: {} is not a struct", layout.name)
    };
    let wgsl: Vec<(String, usize)> = members
        .iter()
        .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
        .collect();
    let rust: Vec<(String, usize)> = layout
        .fields
        .iter()
        .map(|(n, o)| (n.to_string(), *o))
        .collect();
    assert_eq!(wgsl, rust, "{what}: fields of {}", layout.name);
    assert_eq!(
        *span as usize, layout.size,
        "{what}: size of {}",
        layout.name
    );
}

/// Asserts the WGSL struct `T::WGSL_NAME` in `module` has T's size and field offsets.
fn assert_layout<T: WgslLayout>(module: &naga::Module, what: &str) {
    assert_struct(module, StructLayout::of::<T>(), what);
}

/// Asserts every struct of `kernel`'s group record (`Hyper`, `Derived`, `Running`) and the
/// record itself (`Group`: its members at the offsets the host writes) have the Rust side's
/// layout.
fn assert_record(module: &naga::Module, kernel: &Kernel) {
    let record = kernel.record;
    let parts = [Some(record.hyper), record.derived, record.running];
    for part in parts.into_iter().flatten() {
        assert_struct(module, part, kernel.name);
    }
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, ty)| ty.name.as_deref() == Some("Group"))
        .unwrap_or_else(|| panic!("{}: no struct Group", kernel.name));
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{}: Group is not a struct", kernel.name)
    };
    let wgsl: Vec<(String, usize)> = members
        .iter()
        .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
        .collect();
    let rust: Vec<(String, usize)> = record
        .members()
        .into_iter()
        .map(|(n, o)| (n.to_string(), o))
        .collect();
    assert_eq!(wgsl, rust, "{}: members of Group", kernel.name);
    assert_eq!(
        *span as usize,
        record.size(),
        "{}: size of Group",
        kernel.name
    );
}

#[test]
fn rust_structs_match_their_wgsl_layout() {
    // Muon's records, written by the host for shaders/muon.wgsl.
    let muon = parse(&shaders::muon_source(), "muon");
    assert_layout::<shaders::MuonMatrix>(&muon, "muon");
    assert_layout::<shaders::MuonTile>(&muon, "muon");
    let kernels = shaders::kernels();
    // Each kernel once, and one for each optimizer of the registry (AdamW runs Adam's).
    let mut names: Vec<&str> = kernels.iter().map(|k| k.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), kernels.len(), "a kernel listed twice");
    assert_eq!(kernels.len(), OptimizerConfig::names().len() - 1);
    for kernel in kernels {
        let module = parse(
            &kernel.source(ElementLayout::Vec4, Storage::F32),
            kernel.name,
        );
        assert_layout::<Control>(&module, kernel.name);
        assert_layout::<Segment>(&module, kernel.name);
        assert_record(&module, kernel);
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
    let schedule = parse(&shaders::schedule_source(), "schedule");
    assert_layout::<ScheduleShape>(&schedule, "schedule");
    assert_layout::<Control>(&schedule, "schedule");
    let clip_value = parse(&shaders::clip_value_source(), "clip_value");
    assert_layout::<Segment>(&clip_value, "clip_value");
}

/// Every binding the Rust side binds is the one the generated WGSL declares: the optimizer
/// kernels' declarations come from `Binding`, so a renumbering moves both.
#[test]
fn kernel_bindings_are_declared_where_the_host_binds_them() {
    for kernel in shaders::kernels() {
        let module = parse(
            &kernel.source(ElementLayout::Vec4, Storage::F32),
            kernel.name,
        );
        let declared = |name: &str| binding_of(&module, name);
        let mut expected = vec![
            ("control", Binding::Control),
            ("groups", Binding::Groups),
            ("param", Binding::Param),
            ("grad", Binding::Grad),
            ("segments", Binding::Segments),
        ];
        if kernel.trust_ratio {
            expected.push(("trust", Binding::Trust));
        }
        let slots = ["state0", "state1", "state2"];
        for (slot, name) in slots.iter().enumerate().take(kernel.state_slots) {
            expected.push((name, Binding::State(slot)));
        }
        for (name, binding) in expected {
            assert_eq!(
                declared(name),
                Some(binding.index()),
                "{}: {name}",
                kernel.name
            );
        }
    }
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
