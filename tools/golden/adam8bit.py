"""Golden trajectories of torchao's 8-bit Adam and AdamW (torchao 0.18.0, torch 2.15.0, CPU),
for tests/quant8_golden.rs.

    pip install torchao==0.18.0
    python3 tools/golden/adam8bit.py tests/golden/adam8bit.json

Each case runs `torchao.optim.single_param_adam` (the function `Adam8bit`/`AdamW8bit.step`
compiles with torch.compile; called directly here, plain tensor code, so that no C compiler is
needed) on one tensor of 8-bit states built as `_AdamBase._new_buffer` builds them
(`OptimState8bit.zeros`, block size 256), for 120 steps. The quantization maps are recorded
too, so that the Rust map is checked against torchao's list, entry for entry.

Parameters and gradients come from a counter-based hash that the Rust replay computes in the
same f32 operations (`case_values` in tests/quant8_golden.rs), so nothing but the snapshots is
stored: the parameters, codes and scales after steps 1, 2, 10, 60 and 120. One block of every
gradient is zero (its states stay a zero block: scale 1e-12) and one element in 256 is 100
times larger than the rest (the blocks' outliers that make the dynamic map matter).
"""

import json
import sys

import numpy as np
import torch
from torchao.optim.adam import single_param_adam
from torchao.optim.quant_utils import create_dynamic_map
from torchao.optim.subclass_8bit import OptimState8bit

N = 4096
STEPS = 120
SNAPSHOTS = [1, 2, 10, 60, 120]
ZERO_BLOCK = 3


def mix32(x):
    """src/dtype.rs `mix32` on uint32 arrays."""
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x = (x * np.uint32(0x7FEB352D)).astype(np.uint32)
    x ^= x >> np.uint32(15)
    x = (x * np.uint32(0x846CA68B)).astype(np.uint32)
    x ^= x >> np.uint32(16)
    return x


def uniform(seed, t):
    """N values in [-0.5, 0.5) (f32) and the hash words they came from, for (seed, t)."""
    i = np.arange(N, dtype=np.uint32)
    key = mix32(np.array([seed * 0x9E3779B9 % 2**32 ^ t], dtype=np.uint32))[0]
    u = mix32(i ^ key)
    x = (u >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24) - np.float32(0.5)
    return x, u


def params0(seed):
    x, _ = uniform(seed, 0)
    return x * np.float32(0.1)


def grad(seed, t):
    """The gradient of step t (from 1): magnitudes cycling over 1e-3 .. 1e-1, one element in
    256 a hundred times larger, block ZERO_BLOCK all zero."""
    x, u = uniform(seed, t)
    amp = np.float32([1e-3, 3e-3, 1e-2, 3e-2, 1e-1][t % 5])
    g = x * amp
    g = np.where((u & np.uint32(0xFF)) == 0, g * np.float32(100.0), g).astype(np.float32)
    g[ZERO_BLOCK * 256 : (ZERO_BLOCK + 1) * 256] = 0.0
    return g


def hex_f32(a):
    return np.asarray(a, dtype="<f4").tobytes().hex()


CASES = {
    # torchao's defaults.
    "adamw_default": dict(adamw=True, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, wd=1e-2),
    "adam_l2": dict(adamw=False, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, wd=1e-2),
    # No AMSGrad case: torchao 0.18.0's 8-bit AMSGrad raises (`aten.maximum` is not
    # implemented for OptimState8bit: `.float()` keeps the subclass).
    "adamw_strong_decay": dict(adamw=True, lr=3e-3, betas=(0.9, 0.99), eps=1e-6, wd=0.1),
    "adam_fast_betas": dict(adamw=False, lr=1e-3, betas=(0.8, 0.95), eps=1e-8, wd=0.0),
}


def run(name, cfg, seed):
    p = torch.from_numpy(params0(seed)).clone()
    exp_avg = OptimState8bit.zeros(p.shape, signed=True, block_size=256)
    exp_avg_sq = OptimState8bit.zeros(p.shape, signed=False, block_size=256)
    amsgrad = cfg.get("amsgrad", False)
    max_sq = OptimState8bit.zeros(p.shape, signed=False, block_size=256) if amsgrad else None
    step = torch.tensor(0.0)
    lr = torch.tensor(cfg["lr"])
    snapshots = []
    for t in range(1, STEPS + 1):
        g = torch.from_numpy(grad(seed, t))
        step += 1
        single_param_adam(
            p, g, step, exp_avg, exp_avg_sq, max_sq, lr,
            cfg["betas"][0], cfg["betas"][1], cfg["wd"], cfg["eps"], cfg["adamw"], False,
        )
        if t in SNAPSHOTS:
            snap = {
                "step": t,
                "param": hex_f32(p.numpy()),
                "exp_avg_codes": exp_avg.codes.numpy().tobytes().hex(),
                "exp_avg_scale": hex_f32(exp_avg.scale.numpy()),
                "exp_avg_sq_codes": exp_avg_sq.codes.numpy().tobytes().hex(),
                "exp_avg_sq_scale": hex_f32(exp_avg_sq.scale.numpy()),
            }
            if amsgrad:
                snap["max_exp_avg_sq_codes"] = max_sq.codes.numpy().tobytes().hex()
                snap["max_exp_avg_sq_scale"] = hex_f32(max_sq.scale.numpy())
            snapshots.append(snap)
    return {
        "name": name,
        "seed": seed,
        "adamw": cfg["adamw"],
        "lr": cfg["lr"],
        "beta1": cfg["betas"][0],
        "beta2": cfg["betas"][1],
        "eps": cfg["eps"],
        "weight_decay": cfg["wd"],
        "amsgrad": amsgrad,
        "snapshots": snapshots,
    }


def main():
    out = {
        "torch": torch.__version__,
        "torchao": __import__("torchao").__version__,
        "n": N,
        "steps": STEPS,
        "zero_block": ZERO_BLOCK,
        "qmap_signed": hex_f32(create_dynamic_map(signed=True)),
        "qmap_unsigned": hex_f32(create_dynamic_map(signed=False)),
        "cases": [run(name, cfg, seed) for seed, (name, cfg) in enumerate(CASES.items(), 1)],
    }
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
