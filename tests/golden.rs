//! Golden trajectories recorded from PyTorch, adabelief-pytorch, pytorch-optimizer, schedulefree
//! and Optax, replayed on the adapter: params after every step and final states within rtol
//! 1e-5 + atol 1e-6, non-finite values matching in kind; for Schedule-Free, the params after
//! eval() and train().

mod common;
mod replay;

use wgpu_optim::{Arena, Context};

#[test]
fn every_golden_case_replays_within_tolerance() {
    let ctx = common::context();
    let cases = replay::cases(include_str!("golden/optimizers.json"));
    assert!(cases.len() >= 120, "the fixture lost cases");
    let schedule_free = cases
        .iter()
        .filter(|c| c["library"] == "schedulefree" && c.get("params_eval").is_some())
        .count();
    assert!(
        schedule_free >= 11,
        "the Schedule-Free cases with eval/train are gone"
    );
    let schedule_free_sgd = cases
        .iter()
        .filter(|c| c["optimizer"] == "SGDScheduleFree")
        .count();
    assert!(
        schedule_free_sgd >= 5,
        "the Schedule-Free SGD cases are gone"
    );
    // Every registered optimizer has a golden trajectory from its reference library.
    for name in wgpu_optim::OptimizerConfig::names() {
        assert!(
            cases.iter().any(|c| c["optimizer"] == name),
            "no golden case of {name}"
        );
    }
    let libraries = [
        ("Adamax", "torch"),
        ("NAdam", "torch"),
        ("RAdam", "torch"),
        ("Adadelta", "torch"),
        ("ADOPT", "pytorch-optimizer"),
        ("LAMB", "optax"),
        ("LARS", "optax"),
    ];
    for (optimizer, torch) in libraries {
        for library in [torch, "optax"] {
            assert!(
                cases
                    .iter()
                    .any(|c| c["optimizer"] == optimizer && c["library"] == library),
                "no {library} case of {optimizer}"
            );
        }
    }
    let mut failures = Vec::new();
    eprintln!("{}", replay::Report::header());
    let (mut worst_abs, mut worst_rel) = (0.0_f64, 0.0_f64);
    for case in &cases {
        let report = replay::replay(ctx, case);
        worst_abs = worst_abs.max(report.worst_abs);
        worst_rel = worst_rel.max(report.worst_rel);
        eprintln!("{}", report.row());
        if !report.failures.is_empty() {
            failures.push(format!("{}: {}", report.name, report.failures.join("; ")));
        }
    }
    eprintln!(
        "{} cases; worst abs {worst_abs:.1e}, worst rel {worst_rel:.1e}",
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The Optax cases need their options: replayed with PyTorch's forms instead, each fails.
#[test]
fn the_optax_cases_fail_without_their_optax_options() {
    let ctx = common::context();
    let flipped = [
        "optax_rmsprop_centered0",
        "optax_rmsprop_centered1",
        "optax_adagrad",
        "optax_clip_by_global_norm_small_norm",
        "optax_amsgrad",
        "optax_adabelief",
        "optax_nadam",
        "optax_radam",
        "optax_adopt",
        "optax_adopt_decoupled",
        "optax_rmsprop_bias_correction_centered0",
        "optax_rmsprop_bias_correction_centered1",
        "optax_adam_eps_root",
    ];
    let cases = replay::cases(include_str!("golden/optimizers.json"));
    for name in flipped {
        let mut case = cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no case {name}"))
            .clone();
        let optimizer = case["optimizer"].clone();
        let hyper = &mut case["hyper"];
        if hyper["bias_correction"] == true {
            hyper["bias_correction"] = false.into();
        } else if optimizer == "Adam" && hyper.get("amsgrad").is_none() {
            // optax.adam's eps_root: PyTorch's denominator without it.
            hyper["eps_root"] = 0.0.into();
        } else if hyper["optax_form"] == true {
            hyper["optax_form"] = false.into();
            if hyper.get("eps_root").is_some() {
                hyper["eps_root"] = 0.0.into();
            }
        } else if hyper["eps_in_sqrt"] == true {
            hyper["eps_in_sqrt"] = false.into();
        } else if hyper["amsgrad_bias_corrected"] == true {
            hyper["amsgrad_bias_corrected"] = false.into();
            hyper["eps_root"] = 0.0.into();
        } else if hyper.get("eps_root").is_some() {
            // adabelief-pytorch's single eps.
            hyper["eps_root"] = "none".into();
        } else {
            case["clip"]["mode"] = "pytorch".into();
        }
        let report = replay::replay(ctx, &case);
        assert!(
            !report.failures.is_empty(),
            "{name} passes with PyTorch's form: the case cannot tell the forms apart"
        );
    }
}

/// The LAMB and LARS cases need the per-tensor trust ratio: replayed without it, each fails
/// (but where the direction is 0 and the ratio 1: gradients that overflow LAMB's second
/// moment, subnormal gradients that the adapter and XLA flush to zero).
#[test]
fn the_trust_ratio_cases_fail_without_the_ratio() {
    let ctx = common::context();
    let cases = replay::cases(include_str!("golden/optimizers.json"));
    let trust: Vec<_> = cases
        .iter()
        .filter(|c| c["optimizer"] == "LAMB" || c["optimizer"] == "LARS")
        .filter(|c| c["hyper"]["trust_ratio"] != false)
        .filter(|c| {
            !["optax_lamb_huge_grads", "optax_lars_subnormal_grads"]
                .contains(&c["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(trust.len(), 7);
    for case in trust {
        let mut case = case.clone();
        case["hyper"]["trust_ratio"] = false.into();
        let report = replay::replay(ctx, &case);
        assert!(
            !report.failures.is_empty(),
            "{} passes with a ratio of 1",
            case["name"]
        );
    }
}

/// The rectified AdaBelief cases need rectify (and the SGD steps' option): replayed without,
/// each fails.
#[test]
fn the_rectified_adabelief_cases_fail_without_rectify() {
    let ctx = common::context();
    let cases = replay::cases(include_str!("golden/optimizers.json"));
    let rectified: Vec<_> = cases
        .iter()
        .filter(|c| c["optimizer"] == "AdaBelief" && c["hyper"]["rectify"] == true)
        .collect();
    assert!(rectified.len() >= 4, "the fixture lost rectified cases");
    for case in rectified {
        let mut case = case.clone();
        let hyper = &mut case["hyper"];
        if hyper["degenerated_to_sgd"] == false {
            hyper["degenerated_to_sgd"] = true.into();
        } else {
            hyper["rectify"] = false.into();
        }
        let report = replay::replay(ctx, &case);
        assert!(
            !report.failures.is_empty(),
            "{} passes with its option flipped",
            report.name
        );
    }
}

/// ADOPT's `fixed_decay` (pytorch-optimizer's): the decoupled cases fail without it; without
/// `weight_decouple` it changes nothing, as in pytorch-optimizer.
#[test]
fn the_adopt_fixed_decay_cases_need_fixed_decay_where_decoupled() {
    let ctx = common::context();
    let cases = replay::cases(include_str!("golden/optimizers.json"));
    let fixed: Vec<_> = cases
        .iter()
        .filter(|c| c["optimizer"] == "ADOPT" && c["hyper"]["fixed_decay"] == true)
        .collect();
    assert!(fixed.len() >= 3, "the fixture lost the fixed_decay cases");
    for case in fixed {
        let mut case = case.clone();
        case["hyper"]["fixed_decay"] = false.into();
        let decoupled = case["hyper"]["decoupled_weight_decay"] == true;
        let report = replay::replay(ctx, &case);
        assert_eq!(
            report.failures.is_empty(),
            !decoupled,
            "{} without fixed_decay: {:?}",
            report.name,
            report.failures
        );
    }
}

/// The NAdam cases under OneCycleLR and CyclicLR, stopped after `stop` steps: checkpointed,
/// loaded into an optimizer built afresh with the case's first configuration on a fresh
/// arena holding the same parameters, and stepped on. The final parameters' bits and the
/// final checkpoint's `mu_product`.
fn scheduled_run(ctx: &Context, case: &serde_json::Value, stop: Option<usize>) -> Vec<Vec<u32>> {
    let params0 = replay::tensors(&case["params"]);
    let lens: Vec<usize> = params0.iter().map(Vec::len).collect();
    let fresh = |params: &[Vec<f32>]| {
        let arena = Arena::new(ctx, &lens).expect("arena");
        for (i, values) in params.iter().enumerate() {
            arena.write_param(i, values).expect("upload");
        }
        let optimizer = replay::config(case)
            .build(ctx, &arena.params())
            .expect("build");
        (arena, optimizer)
    };
    let (mut arena, mut optimizer) = fresh(&params0);
    let grads = case["grads"].as_array().expect("grads");
    for (step, grads) in grads.iter().enumerate() {
        if Some(step) == stop {
            let checkpoint = optimizer.checkpoint().expect("checkpoint");
            let params: Vec<_> = (0..lens.len())
                .map(|i| arena.read_param(i).expect("read"))
                .collect();
            (arena, optimizer) = fresh(&params);
            optimizer.load_checkpoint(&checkpoint).expect("load");
        }
        let hyper = &case["hyper_steps"][step];
        let config = replay::scheduled(optimizer.config(), hyper);
        optimizer
            .set_config(config)
            .expect("a scheduled configuration");
        for (i, g) in replay::tensors(grads).iter().enumerate() {
            arena.write_grad(i, g).expect("grads");
        }
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }
    let file = optimizer.checkpoint().expect("checkpoint");
    let file = safetensors::SafeTensors::deserialize(&file).expect("safetensors");
    let product = file.tensor("state.0.mu_product").expect("mu_product");
    let mut out: Vec<Vec<u32>> = (0..lens.len())
        .map(|i| common::bits(&arena.read_param(i).expect("read")))
        .collect();
    out.push(vec![u32::from_le_bytes(product.data().try_into().unwrap())]);
    out
}

/// NAdam resumed from a checkpoint in the middle of a OneCycleLR or CyclicLR cycle: the
/// running `mu_product` comes back with the file, and the trajectory goes on bit for bit as
/// the uninterrupted one (which the golden replay holds to PyTorch's).
#[test]
fn scheduled_nadam_resumes_mid_cycle_bit_for_bit() {
    let ctx = common::context();
    let cases = replay::cases(include_str!("golden/optimizers.json"));
    let scheduled: Vec<_> = cases
        .iter()
        .filter(|c| c["optimizer"] == "NAdam" && c.get("hyper_steps").is_some())
        .collect();
    assert!(
        scheduled.len() >= 4,
        "the fixture lost the scheduled NAdam cases"
    );
    for case in scheduled {
        let uninterrupted = scheduled_run(ctx, case, None);
        for stop in [1, 5, 9] {
            assert_eq!(
                scheduled_run(ctx, case, Some(stop)),
                uninterrupted,
                "{} resumed after {stop} steps",
                case["name"]
            );
        }
    }
}
