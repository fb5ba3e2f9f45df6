"""Records golden 16-bit trajectories from PyTorch's fused CPU optimizers for
tests/mixed_precision_golden.rs.

Regenerate (any machine with PyPI; CPU only):

    pip install torch==2.15.0 numpy
    python3 tools/golden/mixed_precision.py tests/golden/mixed_precision.json

Every case: one optimizer (`fused=True`: PyTorch's fused kernels, which compute in f32 and
round each store to the parameter's type) over tensors of one 16-bit type (parameters,
gradients and states: PyTorch keeps states in the parameter's type), its initial params, the
gradients of each step, and the params and every state after every step. Values are the
16-bit values widened to f32, written as the shortest decimal that round-trips them.
"""

import json
import sys

import numpy as np
import torch

LENS = [1, 5, 33, 100]
STEPS = 6
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}

OPTIMIZERS = {
    "SGD": lambda p, h: torch.optim.SGD(p, lr=h["lr"], momentum=h.get("momentum", 0.0),
                                        nesterov=h.get("nesterov", False),
                                        weight_decay=h.get("weight_decay", 0.0), fused=True),
    "Adagrad": lambda p, h: torch.optim.Adagrad(p, lr=h["lr"], lr_decay=h.get("lr_decay", 0.0),
                                                weight_decay=h.get("weight_decay", 0.0),
                                                eps=h.get("eps", 1e-10), fused=True),
    "Adam": lambda p, h: torch.optim.Adam(p, lr=h["lr"], betas=(h.get("beta1", 0.9), h.get("beta2", 0.999)),
                                          eps=h.get("eps", 1e-8), weight_decay=h.get("weight_decay", 0.0),
                                          amsgrad=h.get("amsgrad", False), fused=True),
    "AdamW": lambda p, h: torch.optim.AdamW(p, lr=h["lr"], betas=(h.get("beta1", 0.9), h.get("beta2", 0.999)),
                                            eps=h.get("eps", 1e-8), weight_decay=h.get("weight_decay", 0.01),
                                            amsgrad=h.get("amsgrad", False), fused=True),
}

STATE_NAMES = ["momentum_buffer", "sum", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]


def encode(tensor):
    return np.asarray(tensor.detach().float().numpy(), dtype=np.float32).ravel().tolist()


def case(name, optimizer, hyper, dtype, seed):
    rng = np.random.default_rng(seed)
    kind = DTYPES[dtype]
    params = [torch.nn.Parameter(torch.tensor(rng.uniform(-1, 1, n), dtype=kind)) for n in LENS]
    params0 = [encode(p) for p in params]
    opt = OPTIMIZERS[optimizer](params, hyper)
    grads, after, states = [], [], []
    for _ in range(STEPS):
        step_grads = [torch.tensor(rng.standard_normal(n) * 0.5, dtype=kind) for n in LENS]
        grads.append([encode(g) for g in step_grads])
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()
        after.append([encode(p) for p in params])
        states.append([{k: encode(opt.state[p][k]) for k in STATE_NAMES if k in opt.state[p]}
                       for p in params])
    return {"name": name, "optimizer": optimizer, "dtype": dtype, "hyper": hyper,
            "params": params0, "grads": grads, "params_after": after, "states_after": states}


def cases():
    configs = [
        ("sgd_momentum", "SGD", {"lr": 0.05, "momentum": 0.9}),
        ("sgd_nesterov_wd", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        ("adagrad", "Adagrad", {"lr": 0.05}),
        ("adagrad_lr_decay_wd", "Adagrad", {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01}),
        ("adam", "Adam", {"lr": 0.01}),
        ("adam_amsgrad_l2", "Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}),
        ("adamw", "AdamW", {"lr": 0.01, "weight_decay": 0.01}),
    ]
    out = []
    for n, (name, optimizer, hyper) in enumerate(configs):
        for dtype in DTYPES:
            out.append(case(f"{name}_{dtype}", optimizer, hyper, dtype, seed=200 + n))
    return out


if __name__ == "__main__":
    document = {
        "generator": "python3 tools/golden/mixed_precision.py tests/golden/mixed_precision.json",
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
        "cases": cases(),
    }
    with open(sys.argv[1], "w") as f:
        json.dump(document, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
