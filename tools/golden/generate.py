"""Records golden optimizer trajectories from PyTorch, adabelief-pytorch, pytorch-optimizer
(ADOPT, the authors' form), schedulefree and Optax (Adamax, NAdam, RAdam, Adadelta, ADOPT and
Schedule-Free AdamW included) for
tests/golden.rs and examples/conformance.rs.

Regenerate (any machine with PyPI; CPU only):

    pip install torch==2.15.0 adabelief-pytorch==0.2.1 optax==0.2.8 jax==0.10.2 schedulefree==1.4.1
    pip install --no-deps pytorch-optimizer==4.1.0
    python3 tools/golden/generate.py tests/golden/optimizers.json

Every case: several tensors, their initial params, the gradients of each step (as the device
receives them: loss-scaled where a GradScaler runs), the params after every step, and each
state after the last. Values are f32, written as the shortest decimal that round-trips the
float64 that holds them exactly; NaN and infinities as the strings "nan", "inf", "-inf".
Hyperparameters use wgpu-optim's names (betas split into beta1, beta2).
"""

import json
import math
import sys

import numpy as np
import torch

LENS = [1, 5, 33]
STEPS = 8


def encode(values):
    out = []
    for v in np.asarray(values, dtype=np.float32).ravel().tolist():
        if math.isnan(v):
            out.append("nan")
        elif math.isinf(v):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(v)
    return out


def data(seed, scale=1.0, lens=LENS, zero_params=False, shift=0.0, steps=STEPS):
    rng = np.random.default_rng(seed)
    params = [np.zeros(n, np.float32) if zero_params else rng.uniform(-1, 1, n).astype(np.float32) for n in lens]
    # (+ shift only where there is one: it would turn -0.0 into 0.0.)
    grads = [[(rng.standard_normal(n) * scale + shift if shift else rng.standard_normal(n) * scale)
              .astype(np.float32) for n in lens] for _ in range(steps)]
    return params, grads


TORCH = {
    "SGD": lambda p, h: torch.optim.SGD(
        p, lr=h["lr"], momentum=h.get("momentum", 0.0), dampening=h.get("dampening", 0.0),
        nesterov=h.get("nesterov", False), weight_decay=h.get("weight_decay", 0.0),
        maximize=h.get("maximize", False), foreach=False),
    "Adagrad": lambda p, h: torch.optim.Adagrad(
        p, lr=h["lr"], lr_decay=h.get("lr_decay", 0.0), weight_decay=h.get("weight_decay", 0.0),
        initial_accumulator_value=h.get("initial_accumulator_value", 0.0), eps=h.get("eps", 1e-10),
        maximize=h.get("maximize", False), foreach=False),
    "RMSprop": lambda p, h: torch.optim.RMSprop(
        p, lr=h["lr"], alpha=h.get("alpha", 0.99), eps=h.get("eps", 1e-8),
        weight_decay=h.get("weight_decay", 0.0), momentum=h.get("momentum", 0.0),
        centered=h.get("centered", False), maximize=h.get("maximize", False), foreach=False),
    "Adam": lambda p, h: torch.optim.Adam(
        p, lr=h["lr"], betas=(h.get("beta1", 0.9), h.get("beta2", 0.999)), eps=h.get("eps", 1e-8),
        weight_decay=h.get("weight_decay", 0.0), amsgrad=h.get("amsgrad", False),
        maximize=h.get("maximize", False), foreach=False),
    "AdamW": lambda p, h: torch.optim.AdamW(
        p, lr=h["lr"], betas=(h.get("beta1", 0.9), h.get("beta2", 0.999)), eps=h.get("eps", 1e-8),
        weight_decay=h.get("weight_decay", 0.01), amsgrad=h.get("amsgrad", False),
        maximize=h.get("maximize", False), foreach=False),
    "Adamax": lambda p, h: torch.optim.Adamax(
        p, lr=h["lr"], betas=(h.get("beta1", 0.9), h.get("beta2", 0.999)), eps=h.get("eps", 1e-8),
        weight_decay=h.get("weight_decay", 0.0), maximize=h.get("maximize", False), foreach=False),
    "NAdam": lambda p, h: torch.optim.NAdam(
        p, lr=h["lr"], betas=(h.get("beta1", 0.9), h.get("beta2", 0.999)), eps=h.get("eps", 1e-8),
        weight_decay=h.get("weight_decay", 0.0), momentum_decay=h.get("momentum_decay", 4e-3),
        decoupled_weight_decay=h.get("decoupled_weight_decay", False),
        maximize=h.get("maximize", False), foreach=False),
    "RAdam": lambda p, h: torch.optim.RAdam(
        p, lr=h["lr"], betas=(h.get("beta1", 0.9), h.get("beta2", 0.999)), eps=h.get("eps", 1e-8),
        weight_decay=h.get("weight_decay", 0.0),
        decoupled_weight_decay=h.get("decoupled_weight_decay", False),
        maximize=h.get("maximize", False), foreach=False),
    "Adadelta": lambda p, h: torch.optim.Adadelta(
        p, lr=h.get("lr", 1.0), rho=h.get("rho", 0.9), eps=h.get("eps", 1e-6),
        weight_decay=h.get("weight_decay", 0.0), maximize=h.get("maximize", False), foreach=False),
    "ADOPT": lambda p, h: adopt(p, h),
    "Rprop": lambda p, h: torch.optim.Rprop(
        p, lr=h.get("lr", 1e-2), etas=(h.get("etaminus", 0.5), h.get("etaplus", 1.2)),
        step_sizes=(h.get("step_size_min", 1e-6), h.get("step_size_max", 50.0)),
        maximize=h.get("maximize", False), foreach=False),
}


def adopt(p, h):
    """The authors' ADOPT as pytorch-optimizer 4.1.0 carries it (clip_lambda: step ** 0.25)."""
    import math as _math
    from pytorch_optimizer.optimizer.adopt import ADOPT
    clip = (lambda step: _math.pow(step, 0.25)) if h.get("use_clipping", True) else None
    return ADOPT(p, lr=h["lr"], betas=(h.get("beta1", 0.9), h.get("beta2", 0.9999)),
                 clip_lambda=clip, weight_decay=h.get("weight_decay", 0.0),
                 weight_decouple=h.get("decoupled_weight_decay", False),
                 fixed_decay=h.get("fixed_decay", False), eps=h.get("eps", 1e-6),
                 maximize=h.get("maximize", False), foreach=False)

# torch state names -> wgpu-optim's (the same, except AdaBelief's; RMSprop's square_avg etc.).
# NAdam's scalar mu_product is not a state buffer here (the kernel derives it from the step):
# the params after every step check it.
STATE_NAMES = ["z", "momentum_buffer", "sum", "square_avg", "grad_avg", "exp_avg", "exp_avg_sq",
               "max_exp_avg_sq", "exp_avg_var", "max_exp_avg_var", "exp_inf", "acc_delta",
               "prev", "step_size"]


def adamw_schedule_free(p, h):
    import schedulefree
    opt = schedulefree.AdamWScheduleFree(
        p, lr=h["lr"], betas=(h.get("beta1", 0.9), h.get("beta2", 0.999)), eps=h.get("eps", 1e-8),
        weight_decay=h.get("weight_decay", 0.0), warmup_steps=int(h.get("warmup_steps", 0)),
        r=h.get("r", 0.0), weight_lr_power=h.get("weight_lr_power", 2.0), foreach=False)
    opt.train()  # the package starts in eval mode and refuses to step there
    return opt


def sgd_schedule_free(p, h):
    import schedulefree
    opt = schedulefree.SGDScheduleFree(
        p, lr=h["lr"], momentum=h.get("momentum", 0.9), weight_decay=h.get("weight_decay", 0.0),
        warmup_steps=int(h.get("warmup_steps", 0)), r=h.get("r", 0.0),
        weight_lr_power=h.get("weight_lr_power", 2.0), foreach=False)
    opt.train()  # as AdamWScheduleFree: it starts in eval mode
    return opt


SCHEDULE_FREE = {"AdamWScheduleFree": adamw_schedule_free, "SGDScheduleFree": sgd_schedule_free}

LIBRARY = {"AdaBelief": "adabelief-pytorch", "ADOPT": "pytorch-optimizer",
           "AdamWScheduleFree": "schedulefree", "SGDScheduleFree": "schedulefree"}


def adabelief(p, h):
    from adabelief_pytorch import AdaBelief
    return AdaBelief(p, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                     weight_decay=h["weight_decay"], amsgrad=h["amsgrad"],
                     weight_decouple=h["weight_decouple"], fixed_decay=h["fixed_decay"],
                     rectify=h.get("rectify", False),
                     degenerated_to_sgd=h.get("degenerated_to_sgd", True), print_change_log=False)


def torch_case(name, optimizer, hyper, seed, scale=1.0, zero_params=False, lens=LENS,
               clip=None, scaler=None, poison=None, shift=0.0, steps=STEPS, scheduler=None):
    """`scheduler(opt)`, if given, makes a torch LR scheduler stepped after every step: the
    case then records the lr and beta1 each step ran with (`hyper_steps`)."""
    params0, grads = data(seed, scale, lens, zero_params, shift, steps)
    if poison:
        for step, tensor, index, value in poison:
            grads[step][tensor][index] = value
    params = [torch.nn.Parameter(torch.tensor(p)) for p in params0]
    make = {"AdaBelief": adabelief, **SCHEDULE_FREE}.get(optimizer, TORCH.get(optimizer))
    opt = make(params, hyper)
    grad_scaler = None
    if scaler:
        grad_scaler = torch.amp.GradScaler("cpu", init_scale=scaler["init_scale"],
                                           growth_interval=scaler["growth_interval"])
    lr_scheduler = scheduler(opt) if scheduler else None
    given, after, norms, hyper_steps = [], [], [], []
    for step in range(steps):
        if lr_scheduler:
            group = opt.param_groups[0]
            hyper_steps.append({"lr": group["lr"], "beta1": group["betas"][0]})
        if grad_scaler:
            grad_scaler.scale(torch.ones(()))  # as scaler.scale(loss) would: the scale exists
        scale = grad_scaler.get_scale() if grad_scaler else 1.0
        step_grads = [torch.tensor(g) * scale for g in grads[step]]
        given.append([encode(g) for g in step_grads])
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        if grad_scaler:
            grad_scaler.unscale_(opt)
        if clip and "max_norm" in clip:
            norm = torch.nn.utils.clip_grad_norm_(params, clip["max_norm"], norm_type=clip["norm_type"], foreach=False)
            norms.append(encode([norm.item()])[0])
        if clip and "clip_value" in clip:
            torch.nn.utils.clip_grad_value_(params, clip["clip_value"], foreach=False)
        if grad_scaler:
            grad_scaler.step(opt)
            grad_scaler.update()
        else:
            opt.step()
        if lr_scheduler:
            lr_scheduler.step()
        after.append([encode(p.detach().numpy()) for p in params])
    states = []
    for p in params:
        state = opt.state[p]
        states.append({k: encode(state[k].numpy()) for k in STATE_NAMES if k in state and state[k] is not None})
    case = {"name": name, "library": LIBRARY.get(optimizer, "torch"),
            "optimizer": optimizer, "hyper": hyper, "params": [encode(p) for p in params0],
            "grads": given, "params_after": after, "states": states}
    if lr_scheduler:
        case["hyper_steps"] = hyper_steps
    if optimizer == "NAdam":
        # PyTorch's running mu_product per tensor, as checkpoints carry it.
        case["mu_product"] = [encode([opt.state[p]["mu_product"].item()])[0] for p in params]
    if optimizer in SCHEDULE_FREE:
        # The params at x after eval(), and at y again after train().
        opt.eval()
        case["params_eval"] = [encode(p.detach().numpy()) for p in params]
        opt.train()
        case["params_train"] = [encode(p.detach().numpy()) for p in params]
    if clip:
        case["clip"] = {k: encode([v])[0] for k, v in clip.items()}
        if norms:
            case["norms"] = norms
    if scaler:
        case["scaler"] = scaler
    return case


def optax_case(name, optimizer, hyper, tx, states, seed, clip=None, scale=1.0, zero_params=False):
    """An Optax transformation stepped in float32; `states(state)` picks, per tensor, the
    states to compare under wgpu-optim's names."""
    import jax.numpy as jnp
    import optax
    params0, grads = data(seed, scale, zero_params=zero_params)
    params = [jnp.asarray(p) for p in params0]
    state = tx.init(params)
    after = []
    for step in range(STEPS):
        g = [jnp.asarray(x) for x in grads[step]]
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        after.append([encode(np.asarray(p)) for p in params])
    case = {"name": name, "library": "optax", "optimizer": optimizer, "hyper": hyper,
            "params": [encode(p) for p in params0], "grads": [[encode(g) for g in s] for s in grads],
            "params_after": after,
            "states": [{k: encode(np.asarray(v)) for k, v in d.items()} for d in states(state)]}
    if clip:
        case["clip"] = clip
    return case


def per_tensor(**named):
    """{state: [per-tensor values]} -> [{state: values} per tensor]."""
    return [dict(zip(named, values)) for values in zip(*named.values())]


def optax_cases():
    import optax
    out = []
    # RMSprop: eps inside the square root (Optax's default form), with an eps large enough
    # that the two forms differ well past the tolerance.
    for centered in [False, True]:
        tx = optax.rmsprop(0.01, decay=0.9, eps=1e-2, eps_in_sqrt=True, centered=centered)
        hyper = {"lr": 0.01, "alpha": 0.9, "eps": 1e-2, "eps_in_sqrt": True, "centered": centered}
        if centered:
            states = lambda st: per_tensor(square_avg=st[0].nu, grad_avg=st[0].mu)
        else:
            states = lambda st: per_tensor(square_avg=st[0].nu)
        out.append(optax_case(f"optax_rmsprop_centered{int(centered)}", "RMSprop", hyper, tx, states, 200 + centered))
    # Momentum: Optax traces lr-scaled updates (its trace is -lr times PyTorch's buffer), so
    # only the params compare.
    tx = optax.rmsprop(0.01, decay=0.9, eps=1e-2, eps_in_sqrt=True, momentum=0.9)
    hyper = {"lr": 0.01, "alpha": 0.9, "eps": 1e-2, "eps_in_sqrt": True, "momentum": 0.9}
    out.append(optax_case("optax_rmsprop_momentum", "RMSprop", hyper, tx, lambda st: [{}, {}, {}], 202))
    # Adagrad: eps inside the sqrt, where(sum > 0), initial accumulator 0.1 (Optax's default;
    # eps raised from its 1e-7 so the forms differ past the tolerance).
    tx = optax.adagrad(0.05, initial_accumulator_value=0.1, eps=0.1)
    hyper = {"lr": 0.05, "initial_accumulator_value": 0.1, "eps": 0.1, "eps_in_sqrt": True}
    out.append(optax_case("optax_adagrad", "Adagrad", hyper, tx,
                          lambda st: per_tensor(sum=st[0].sum_of_squares), 203))
    # SGD with momentum: optax's trace is PyTorch's buffer (dampening 0).
    for nesterov in [False, True]:
        tx = optax.sgd(0.05, momentum=0.9, nesterov=nesterov)
        hyper = {"lr": 0.05, "momentum": 0.9, "nesterov": nesterov}
        out.append(optax_case(f"optax_sgd_momentum_nesterov{int(nesterov)}", "SGD", hyper, tx,
                              lambda st: per_tensor(momentum_buffer=st[0].trace), 204 + nesterov))
    # clip_by_global_norm (no 1e-6) then Adam, on ordinary gradients.
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01))
    out.append(optax_case("optax_clip_by_global_norm_adam", "Adam", {"lr": 0.01}, tx,
                          lambda st: per_tensor(exp_avg=st[1][0].mu, exp_avg_sq=st[1][0].nu), 206,
                          clip={"max_norm": 1.0, "norm_type": 2.0, "mode": "optax"}))
    # The 1e-6 matters for small norms: gradients of norm ~0.01 clipped to 0.005, then SGD
    # with a large step so the coefficient's 1e-4 relative difference shows in the params.
    tx = optax.chain(optax.clip_by_global_norm(0.005), optax.sgd(100.0))
    out.append(optax_case("optax_clip_by_global_norm_small_norm", "SGD", {"lr": 100.0}, tx,
                          lambda st: [{}, {}, {}], 207, scale=0.002,
                          clip={"max_norm": 0.005, "norm_type": 2.0, "mode": "optax"}))
    # AMSGrad: the max of the bias-corrected second moment, eps_root inside the sqrt. Betas
    # exact in f32 (1 - 2^-3, 1 - 2^-10): Optax computes 1 - b2^t in f32 from b2 rounded to
    # f32 (1.3e-5 off for 0.999 at t = 1), the kernels from ln(b2) in f64, as PyTorch does.
    b1, b2 = 0.875, 0.9990234375
    tx = optax.amsgrad(0.01, b1=b1, b2=b2, eps=1e-8, eps_root=1e-6)
    hyper = {"lr": 0.01, "beta1": b1, "beta2": b2, "amsgrad": True,
             "amsgrad_bias_corrected": True, "eps_root": 1e-6}
    out.append(optax_case("optax_amsgrad", "Adam", hyper, tx,
                          lambda st: per_tensor(exp_avg=st[0].mu, exp_avg_sq=st[0].nu,
                                                max_exp_avg_sq=st[0].nu_max), 208))
    # AdaBelief: eps_root inside the sqrt, eps outside (adabelief-pytorch: one eps for both).
    tx = optax.adabelief(0.01, b1=0.9, b2=0.999, eps=1e-8, eps_root=1e-4)
    hyper = {"lr": 0.01, "eps": 1e-8, "eps_root": 1e-4, "weight_decay": 0.0}
    out.append(optax_case("optax_adabelief", "AdaBelief", hyper, tx,
                          lambda st: per_tensor(exp_avg=st[0].mu, exp_avg_var=st[0].nu), 209))
    return out


def adamax_nadam_radam_cases():
    """Adamax, NAdam and RAdam from torch, and their Optax forms. Seeds from 300, so the cases
    above keep theirs. RAdam's 8 steps with beta2 = 0.999 (or 0.9, 0.875) cross rho_t = 5 at
    step 6: both of its branches are recorded."""
    import optax
    out = []
    torch_cases = [
        ("adamax", "Adamax", {"lr": 0.01}),
        ("adamax_wd_maximize", "Adamax", {"lr": 0.01, "weight_decay": 0.01, "maximize": True}),
        ("adamax_betas_eps", "Adamax", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3}),
        ("nadam", "NAdam", {"lr": 0.01}),
        ("nadam_l2", "NAdam", {"lr": 0.01, "weight_decay": 0.01}),
        ("nadam_decoupled_maximize", "NAdam",
         {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
        # mu_t near beta1 from the first steps: 1 - mu_product stays far from 1.
        ("nadam_momentum_decay_50", "NAdam", {"lr": 0.01, "beta1": 0.95, "momentum_decay": 50.0}),
        ("radam", "RAdam", {"lr": 0.01}),
        ("radam_l2", "RAdam", {"lr": 0.01, "weight_decay": 0.01}),
        ("radam_decoupled_maximize", "RAdam",
         {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
        ("radam_betas", "RAdam", {"lr": 0.01, "beta1": 0.8, "beta2": 0.9, "eps": 1e-6}),
    ]
    for n, (name, optimizer, hyper) in enumerate(torch_cases):
        out.append(torch_case(name, optimizer, hyper, seed=300 + n))
    # Edge values.
    out.append(torch_case("adamax_subnormal_grads", "Adamax", {"lr": 0.01}, seed=320, scale=1e-40))
    out.append(torch_case("nadam_huge_grads", "NAdam", {"lr": 0.01}, seed=321, scale=1e30))
    out.append(torch_case("radam_zero_grads", "RAdam", {"lr": 0.01}, seed=322, scale=0.0))
    # Optax, betas exact in f32 (as optax_amsgrad): Optax's 1 - b^t and rho_t are f32.
    b1, b2 = 0.875, 0.9990234375
    tx = optax.adamax(0.01, b1=b1, b2=b2, eps=1e-8)
    out.append(optax_case("optax_adamax", "Adamax", {"lr": 0.01, "beta1": b1, "beta2": b2}, tx,
                          lambda st: per_tensor(exp_avg=st[0].mu, exp_inf=st[0].nu), 330))
    tx = optax.nadam(0.01, b1=b1, b2=b2, eps=1e-8, eps_root=1e-6)
    hyper = {"lr": 0.01, "beta1": b1, "beta2": b2, "optax_form": True, "eps_root": 1e-6}
    out.append(optax_case("optax_nadam", "NAdam", hyper, tx,
                          lambda st: per_tensor(exp_avg=st[0].mu, exp_avg_sq=st[0].nu), 331))
    # beta2 = 0.875 (rho_inf = 15): Optax's f32 rho_t = 15 - 2 t b2^t / (1 - b2^t) cancels
    # little, where for 0.999 it is off by ~0.01 near the threshold. eps large enough that
    # the forms differ past the tolerance on the rectified steps (6 to 8).
    tx = optax.radam(0.01, b1=b1, b2=0.875, eps=1e-2, eps_root=1e-6)
    hyper = {"lr": 0.01, "beta1": b1, "beta2": 0.875, "eps": 1e-2, "optax_form": True,
             "eps_root": 1e-6}
    out.append(optax_case("optax_radam", "RAdam", hyper, tx,
                          lambda st: per_tensor(exp_avg=st[0].mu, exp_avg_sq=st[0].nu), 332))
    return out


def adadelta_adopt_rectify_cases():
    """Adadelta from torch and Optax, ADOPT from pytorch-optimizer (the authors' form) and
    Optax, AdaBelief with rectify from adabelief-pytorch. Seeds from 400, so the cases above
    keep theirs. AdaBelief's 8 steps with beta2 = 0.999 cross rho_t = 5 at step 6: both of its
    branches are recorded; with beta2 = 0.9 every step from the second is rectified."""
    import optax
    out = []
    adabelief = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-16, "weight_decay": 0.01,
                 "amsgrad": False, "weight_decouple": True, "fixed_decay": False, "rectify": True}
    torch_cases = [
        ("adadelta", "Adadelta", {"lr": 1.0}),
        ("adadelta_wd_maximize", "Adadelta", {"lr": 1.0, "weight_decay": 0.01, "maximize": True}),
        ("adadelta_rho_eps", "Adadelta", {"lr": 0.5, "rho": 0.5, "eps": 1e-3}),
        ("adopt", "ADOPT", {"lr": 0.01}),
        ("adopt_l2", "ADOPT", {"lr": 0.01, "weight_decay": 0.01}),
        ("adopt_decoupled_maximize", "ADOPT",
         {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
        ("adopt_no_clipping_betas", "ADOPT",
         {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3, "use_clipping": False}),
        ("adabelief_rectify", "AdaBelief", adabelief),
        ("adabelief_rectify_no_sgd", "AdaBelief", {**adabelief, "degenerated_to_sgd": False}),
        ("adabelief_rectify_amsgrad_l2", "AdaBelief",
         {**adabelief, "amsgrad": True, "weight_decouple": False}),
        ("adabelief_rectify_betas", "AdaBelief",
         {**adabelief, "beta1": 0.8, "beta2": 0.9, "eps": 1e-8, "fixed_decay": True}),
    ]
    for n, (name, optimizer, hyper) in enumerate(torch_cases):
        out.append(torch_case(name, optimizer, hyper, seed=400 + n))
    # Edge values.
    out.append(torch_case("adadelta_huge_grads", "Adadelta", {"lr": 1.0}, seed=420, scale=1e30))
    out.append(torch_case("adadelta_subnormal_grads", "Adadelta", {"lr": 1.0}, seed=421, scale=1e-40))
    out.append(torch_case("adopt_zero_grads", "ADOPT", {"lr": 0.01}, seed=422, scale=0.0))
    out.append(torch_case("adopt_huge_grads", "ADOPT", {"lr": 0.01}, seed=423, scale=1e30))
    out.append(torch_case("adopt_subnormal_grads", "ADOPT", {"lr": 0.01}, seed=424, scale=1e-40))
    out.append(torch_case("adabelief_rectify_huge_grads", "AdaBelief", adabelief, seed=425, scale=1e30))
    # Optax's Adadelta, with its L2 term; and with its default learning_rate=None, which scales
    # by nothing (not -1): an ascent, as maximize with lr 1.
    adadelta_states = lambda st: per_tensor(square_avg=st[1].e_g, acc_delta=st[1].e_x)
    tx = optax.adadelta(1.0, rho=0.9, eps=1e-6, weight_decay=0.01)
    out.append(optax_case("optax_adadelta", "Adadelta", {"lr": 1.0, "weight_decay": 0.01}, tx,
                          adadelta_states, 430))
    tx = optax.adadelta()
    out.append(optax_case("optax_adadelta_no_learning_rate", "Adadelta",
                          {"lr": 1.0, "maximize": True}, tx, adadelta_states, 431))
    # Optax's ADOPT: its clip (t - 1)^(1/4); L2 and Nesterov without clipping; decoupled decay
    # between the scaling and the learning rate.
    adopt_states = lambda at: (lambda st: per_tensor(exp_avg=at(st).mu, exp_avg_sq=at(st).nu))
    tx = optax.contrib.adopt(0.01)
    out.append(optax_case("optax_adopt", "ADOPT", {"lr": 0.01, "optax_form": True}, tx,
                          adopt_states(lambda st: st[0]), 432))
    tx = optax.chain(optax.add_decayed_weights(0.01),
                     optax.contrib.adopt(0.01, nesterov=True, use_clipping=False))
    hyper = {"lr": 0.01, "weight_decay": 0.01, "nesterov": True, "use_clipping": False,
             "optax_form": True}
    out.append(optax_case("optax_adopt_l2_nesterov_no_clipping", "ADOPT", hyper, tx,
                          adopt_states(lambda st: st[1][0]), 433))
    from optax.contrib._adopt import scale_by_adopt
    tx = optax.chain(scale_by_adopt(b1=0.8, b2=0.99), optax.add_decayed_weights(0.1),
                     optax.scale_by_learning_rate(0.01))
    hyper = {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "weight_decay": 0.1,
             "decoupled_weight_decay": True, "optax_form": True}
    out.append(optax_case("optax_adopt_decoupled", "ADOPT", hyper, tx, adopt_states(lambda st: st[0]), 434))
    return out


def schedule_free_cases():
    """The schedulefree package's AdamWScheduleFree and SGDScheduleFree (foreach=False), trained at y over 8 steps
    then switched to x (eval) and back (train). Seeds from 500. Warm-up of 5 steps (3 past it),
    of 8 (the last step reaches lr) and of 12 (never past it: lr_max keeps rising)."""
    cases = [
        ("schedule_free_adamw", {"lr": 0.01}),
        ("schedule_free_adamw_warmup", {"lr": 0.01, "warmup_steps": 5}),
        ("schedule_free_adamw_warmup_wd_r", {"lr": 0.01, "warmup_steps": 8, "weight_decay": 0.01,
                                             "r": 1.0}),
        ("schedule_free_adamw_long_warmup_betas",
         {"lr": 0.02, "warmup_steps": 12, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6,
          "weight_lr_power": 1.0, "r": 0.5}),
        ("schedule_free_adamw_no_lr_weight", {"lr": 0.01, "warmup_steps": 3, "weight_lr_power": 0.0,
                                              "weight_decay": 0.1}),
    ]
    out = [torch_case(name, "AdamWScheduleFree", hyper, seed=500 + n)
           for n, (name, hyper) in enumerate(cases)]
    out.append(torch_case("schedule_free_adamw_zero_grads", "AdamWScheduleFree",
                          {"lr": 0.01, "warmup_steps": 4}, seed=510, scale=0.0))
    # SGDScheduleFree, seeds from 520: the same schedule, ckp1 weighting and switch, with an
    # SGD base step (momentum is its beta).
    sgd = [
        ("schedule_free_sgd", {"lr": 0.1}),
        ("schedule_free_sgd_warmup", {"lr": 0.1, "warmup_steps": 5}),
        ("schedule_free_sgd_warmup_wd_r", {"lr": 0.05, "warmup_steps": 8, "weight_decay": 0.01,
                                           "r": 1.0}),
        ("schedule_free_sgd_long_warmup_momentum",
         {"lr": 0.2, "warmup_steps": 12, "momentum": 0.8, "weight_lr_power": 1.0, "r": 0.5}),
        ("schedule_free_sgd_no_lr_weight", {"lr": 0.1, "warmup_steps": 3, "weight_lr_power": 0.0,
                                            "weight_decay": 0.1, "momentum": 0.5}),
    ]
    out.extend(torch_case(name, "SGDScheduleFree", hyper, seed=520 + n)
               for n, (name, hyper) in enumerate(sgd))
    return out


def cases():
    out = []
    sgd = [("sgd", {"lr": 0.05}),
           ("sgd_momentum", {"lr": 0.05, "momentum": 0.9}),
           ("sgd_dampening", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
           ("sgd_nesterov", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
           ("sgd_weight_decay_maximize", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01, "maximize": True})]
    adagrad = [("adagrad", {"lr": 0.05}),
               ("adagrad_lr_decay_init_wd", {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.01}),
               ("adagrad_maximize", {"lr": 0.05, "maximize": True})]
    rmsprop = [("rmsprop", {"lr": 0.01}),
               ("rmsprop_centered_momentum_wd", {"lr": 0.01, "centered": True, "momentum": 0.9, "weight_decay": 0.01}),
               ("rmsprop_momentum", {"lr": 0.01, "momentum": 0.5}),
               ("rmsprop_centered_maximize", {"lr": 0.01, "centered": True, "maximize": True})]
    adam = [("adam", {"lr": 0.01}),
            ("adam_l2", {"lr": 0.01, "weight_decay": 0.01}),
            ("adam_amsgrad", {"lr": 0.01, "amsgrad": True}),
            ("adam_maximize", {"lr": 0.01, "maximize": True}),
            ("adam_betas", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6})]
    adamw = [("adamw", {"lr": 0.01, "weight_decay": 0.01}),
             ("adamw_amsgrad", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True})]
    n = 0
    for group, optimizer in [(sgd, "SGD"), (adagrad, "Adagrad"), (rmsprop, "RMSprop"), (adam, "Adam"), (adamw, "AdamW")]:
        for name, hyper in group:
            n += 1
            out.append(torch_case(name, optimizer, hyper, seed=n))
    for decouple, fixed, amsgrad in [(True, False, False), (False, False, False), (True, True, False), (True, False, True)]:
        n += 1
        hyper = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-12, "weight_decay": 0.01,
                 "amsgrad": amsgrad, "weight_decouple": decouple, "fixed_decay": fixed}
        out.append(torch_case(f"adabelief_decouple{int(decouple)}_fixed{int(fixed)}_amsgrad{int(amsgrad)}", "AdaBelief", hyper, seed=n))
    import optax
    for wd in [0.0, 0.1]:
        n += 1
        hyper = {"lr": 0.001, "beta1": 0.9, "beta2": 0.99, "weight_decay": wd}
        tx = optax.lion(hyper["lr"], b1=hyper["beta1"], b2=hyper["beta2"], weight_decay=wd)
        out.append(optax_case(f"optax_lion_wd{wd}", "Lion", hyper, tx,
                              lambda st: per_tensor(exp_avg=st[0].mu), seed=n))
    # Edge values.
    out.append(torch_case("adam_zero_grads", "Adam", {"lr": 0.01}, seed=90, scale=0.0))
    out.append(torch_case("adam_huge_grads", "Adam", {"lr": 0.01}, seed=91, scale=1e30))
    out.append(torch_case("sgd_huge_grads", "SGD", {"lr": 0.05, "momentum": 0.9}, seed=92, scale=1e30))
    out.append(torch_case("adam_subnormal_grads", "Adam", {"lr": 0.01}, seed=93, scale=1e-40))
    out.append(torch_case("rmsprop_subnormal_grads", "RMSprop", {"lr": 0.01}, seed=94, scale=1e-40))
    out.append(torch_case("adamw_zero_params", "AdamW", {"lr": 0.01, "weight_decay": 0.01}, seed=95, zero_params=True))
    out.append(torch_case("adam_length_1", "Adam", {"lr": 0.01}, seed=96, lens=[1]))
    # Clipping.
    out.append(torch_case("adamw_clip_norm_2", "AdamW", {"lr": 0.01, "weight_decay": 0.01}, seed=97, clip={"max_norm": 1.0, "norm_type": 2.0}))
    out.append(torch_case("adamw_clip_norm_inf", "AdamW", {"lr": 0.01, "weight_decay": 0.01}, seed=98, clip={"max_norm": 0.5, "norm_type": math.inf}))
    out.append(torch_case("sgd_clip_value", "SGD", {"lr": 0.05, "momentum": 0.9}, seed=99, clip={"clip_value": 0.3}))
    # Inf and NaN gradients under GradScaler: PyTorch skips those steps and backs off.
    out.append(torch_case("adamw_scaler_clip_inf_nan", "AdamW", {"lr": 0.01, "weight_decay": 0.01}, seed=100,
                          clip={"max_norm": 1.0, "norm_type": 2.0},
                          scaler={"init_scale": 1024.0, "growth_interval": 3},
                          poison=[(2, 1, 3, math.inf), (5, 2, 7, math.nan)]))
    out.extend(optax_cases())
    out.extend(adamax_nadam_radam_cases())
    out.extend(adadelta_adopt_rectify_cases())
    out.extend(norm_type_eps_root_overflow_cases())
    out.extend(schedule_free_cases())
    out.extend(trust_ratio_cases())
    out.extend(rprop_cases())
    out.extend(scheduled_nadam_cases())
    out.extend(adopt_fixed_decay_cases())
    return out


def scheduled_nadam_cases():
    """torch.optim.NAdam under OneCycleLR and CyclicLR cycling beta1 (cycle_momentum), over 12
    steps: PyTorch's mu_product multiplies each step's mu_t computed with that step's beta1,
    which the closed form of the current beta1 misses by 1.4% at step 2. Each step's lr and
    beta1 are recorded (`hyper_steps`), and the final running mu_product. Seeds from 580."""
    from torch.optim.lr_scheduler import CyclicLR, OneCycleLR
    steps = 12
    one_cycle = lambda opt: OneCycleLR(opt, max_lr=0.01, total_steps=steps, pct_start=0.3,
                                       base_momentum=0.85, max_momentum=0.95)
    cyclic = lambda opt: CyclicLR(opt, base_lr=0.001, max_lr=0.01, step_size_up=3,
                                  base_momentum=0.8, max_momentum=0.9)
    # momentum_decay 50: mu_t is near beta1 from the first steps, so the product stays large
    # and its history shows for longer.
    cases = [
        ("nadam_one_cycle", {"lr": 0.01}, one_cycle),
        ("nadam_one_cycle_decoupled", {"lr": 0.01, "weight_decay": 0.1,
                                       "decoupled_weight_decay": True}, one_cycle),
        ("nadam_cyclic", {"lr": 0.01}, cyclic),
        ("nadam_cyclic_momentum_decay_50", {"lr": 0.01, "momentum_decay": 50.0}, cyclic),
    ]
    return [torch_case(name, "NAdam", hyper, seed=580 + n, steps=steps, scheduler=scheduler)
            for n, (name, hyper, scheduler) in enumerate(cases)]


def adopt_fixed_decay_cases():
    """pytorch-optimizer's ADOPT with fixed_decay: p * (1 - weight_decay) with weight_decouple,
    ignored without it. Seeds from 590."""
    cases = [
        ("adopt_fixed_decay", {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True,
                               "fixed_decay": True}),
        ("adopt_fixed_decay_no_clipping", {"lr": 0.02, "weight_decay": 0.05,
                                           "decoupled_weight_decay": True, "fixed_decay": True,
                                           "use_clipping": False, "beta1": 0.8}),
        ("adopt_fixed_decay_l2", {"lr": 0.01, "weight_decay": 0.01, "fixed_decay": True}),
    ]
    return [torch_case(name, "ADOPT", hyper, seed=590 + n) for n, (name, hyper) in enumerate(cases)]


def rprop_cases():
    """torch.optim.Rprop: its defaults, other etas with step-size bounds the 8 steps reach,
    maximize, and the edges (zero, huge and subnormal gradients; a GradScaler skipping an inf).
    Seeds from 560, so the cases above keep theirs."""
    out = []
    cases = [
        ("rprop", {"lr": 0.01}, {}),
        ("rprop_etas_step_sizes", {"lr": 0.05, "etaminus": 0.3, "etaplus": 1.5,
                                   "step_size_min": 1e-3, "step_size_max": 0.1}, {}),
        ("rprop_maximize", {"lr": 0.01, "maximize": True}, {}),
        ("rprop_zero_grads", {"lr": 0.01}, {"scale": 0.0}),
        ("rprop_huge_grads", {"lr": 0.01}, {"scale": 1e30}),
        ("rprop_subnormal_grads", {"lr": 0.01}, {"scale": 1e-40}),
        ("rprop_scaler_inf", {"lr": 0.01}, {"scaler": {"init_scale": 1024.0, "growth_interval": 3},
                                            "poison": [(3, 2, 5, math.inf)]}),
    ]
    for n, (name, hyper, edges) in enumerate(cases):
        out.append(torch_case(name, "Rprop", hyper, seed=560 + n, **edges))
    return out


def trust_ratio_cases():
    """optax.lamb and optax.lars: per-tensor trust ratios over tensors of 1, 5 and 33
    elements, with their edges (zero parameters: ||p|| = 0; zero, huge and subnormal
    gradients). Seeds from 540, so the cases above keep theirs. Betas exact in f32 (Optax's
    1 - b^t is f32 from b rounded to f32)."""
    import optax
    out = []
    b1, b2 = 0.875, 0.9990234375
    lamb_states = lambda st: per_tensor(exp_avg=st[0].mu, exp_avg_sq=st[0].nu)
    lamb = [
        ("optax_lamb", {"lr": 0.01}, {}),
        ("optax_lamb_wd_eps_root", {"lr": 0.01, "weight_decay": 0.1, "eps_root": 1e-8}, {}),
        ("optax_lamb_zero_params", {"lr": 0.01, "weight_decay": 0.1}, {"zero_params": True}),
        ("optax_lamb_zero_grads_wd", {"lr": 0.01, "weight_decay": 0.1}, {"scale": 0.0}),
        ("optax_lamb_huge_grads", {"lr": 0.01}, {"scale": 1e30}),
    ]
    for n, (name, hyper, edges) in enumerate(lamb):
        hyper = {"beta1": b1, "beta2": b2, **hyper}
        tx = optax.lamb(hyper["lr"], b1=b1, b2=b2, eps=1e-6, eps_root=hyper.get("eps_root", 0.0),
                        weight_decay=hyper.get("weight_decay", 0.0))
        out.append(optax_case(name, "LAMB", hyper, tx, lamb_states, 540 + n, **edges))

    def lars_states(st):
        trace = [s for s in st if hasattr(s, "trace")][0].trace
        return per_tensor(momentum_buffer=trace)
    lars = [
        ("optax_lars", {"lr": 1.0}, {}),
        ("optax_lars_wd_nesterov_eps", {"lr": 1.0, "weight_decay": 0.01, "nesterov": True,
                                        "eps": 1e-3, "trust_coefficient": 0.01}, {}),
        ("optax_lars_no_trust_ratio", {"lr": 0.01, "trust_ratio": False, "momentum": 0.5}, {}),
        ("optax_lars_subnormal_grads", {"lr": 1.0}, {"scale": 1e-40}),
        ("optax_lars_zero_params", {"lr": 1.0, "weight_decay": 0.01}, {"zero_params": True}),
    ]
    for n, (name, hyper, edges) in enumerate(lars):
        tx = optax.lars(hyper["lr"], weight_decay=hyper.get("weight_decay", 0.0),
                        trust_coefficient=hyper.get("trust_coefficient", 0.001),
                        eps=hyper.get("eps", 0.0), trust_ratio_mask=hyper.get("trust_ratio", True),
                        momentum=hyper.get("momentum", 0.9), nesterov=hyper.get("nesterov", False))
        out.append(optax_case(name, "LARS", hyper, tx, lars_states, 550 + n, **edges))
    return out


def norm_type_eps_root_overflow_cases():
    """clip_grad_norm_ with norm_type 1 and 3, Optax's RMSprop bias correction and Adam
    eps_root, and centered RMSprop with gradients near the f32 maximum. Seeds from 340, so the
    cases above keep theirs."""
    import optax
    out = []
    # Any finite norm_type > 0: the 1-norm and the 3-norm, both far above max_norm (clipped).
    for n, norm_type in enumerate([1.0, 3.0]):
        out.append(torch_case(f"adamw_clip_norm_{int(norm_type)}", "AdamW",
                              {"lr": 0.01, "weight_decay": 0.01}, seed=340 + n,
                              clip={"max_norm": 1.0, "norm_type": norm_type}))
    # Gradients of 1e19 to 1e20: square_avg overflows to inf at once, grad_avg^2 a few steps
    # later; addcmul's fused multiply-add keeps square_avg - grad_avg^2 = inf (no update)
    # where inf - inf would be NaN. alpha 0.9 so that grad_avg grows within the 8 steps.
    for n, momentum in enumerate([0.0, 0.9]):
        out.append(torch_case(f"rmsprop_centered_huge_grads_momentum{momentum}", "RMSprop",
                              {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": momentum},
                              seed=342 + n, scale=2e19, shift=5e19))
    # Optax's bias_correction of both averages; decay exact in f32 (Optax computes
    # 1 - decay^t in f32 from decay rounded to f32, the kernels from ln(decay) in f64).
    # Centered, the first step's variance is g^2 - g^2 = 0 up to rounding: an eps of 0.1
    # keeps the update from amplifying that rounding.
    for centered in [False, True]:
        eps = 0.1 if centered else 1e-8
        tx = optax.rmsprop(0.01, decay=0.875, eps=eps, centered=centered, bias_correction=True)
        hyper = {"lr": 0.01, "alpha": 0.875, "eps": eps, "eps_in_sqrt": True,
                 "centered": centered, "bias_correction": True}
        if centered:
            states = lambda st: per_tensor(square_avg=st[0].nu, grad_avg=st[0].mu)
        else:
            states = lambda st: per_tensor(square_avg=st[0].nu)
        out.append(optax_case(f"optax_rmsprop_bias_correction_centered{int(centered)}", "RMSprop",
                              hyper, tx, states, 344 + centered))
    # optax.adam's eps_root without AMSGrad: large enough that leaving it out fails.
    b1, b2 = 0.875, 0.9990234375
    tx = optax.adam(0.01, b1=b1, b2=b2, eps=1e-8, eps_root=1e-3)
    hyper = {"lr": 0.01, "beta1": b1, "beta2": b2, "eps_root": 1e-3}
    out.append(optax_case("optax_adam_eps_root", "Adam", hyper, tx,
                          lambda st: per_tensor(exp_avg=st[0].mu, exp_avg_sq=st[0].nu), 346))
    return out


if __name__ == "__main__":
    import adabelief_pytorch  # noqa: F401
    import jax
    import optax
    import importlib.metadata
    document = {
        "generator": "python3 tools/golden/generate.py tests/golden/optimizers.json",
        "versions": {"torch": torch.__version__, "optax": optax.__version__, "jax": jax.__version__,
                     "adabelief-pytorch": "0.2.1", "pytorch-optimizer": "4.1.0",
                     "schedulefree": importlib.metadata.version("schedulefree")},
        "cases": cases(),
    }
    with open(sys.argv[1], "w") as f:
        json.dump(document, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
