"""Golden trajectories of bitsandbytes' 8-bit optimizers on the CPU (bitsandbytes 0.50.2,
torch 2.15.0), for tests/quant8_golden.rs: `SGD8bit` (momentum), `Lion8bit` and `AdamW8bit`,
the optimizers torchao has no 8-bit form of, and a second AdamW.

    pip install bitsandbytes==0.50.2
    python3 tools/golden/bnb8bit.py tests/golden/bnb8bit.json

The tensor, the gradients and the snapshots are those of tools/golden/adam8bit.py (its
`params0` and `grad`, 4096 elements, 120 steps); bitsandbytes' CPU backend runs its block-wise
update (`_optimizer_update_8bit_blockwise_cpu`: dequantize, f32 update, requantize with its C
`quantize_blockwise`), blocks of 256. Recorded: the maps (`qmap1`, `qmap2`), and after steps 1,
2, 10, 60 and 120 the parameters, codes (`state1`, `state2`) and scales (`absmax1`,
`absmax2`).
"""

import importlib.util
import json
import pathlib
import sys

import bitsandbytes as bnb
import torch

spec = importlib.util.spec_from_file_location(
    "adam8bit", pathlib.Path(__file__).with_name("adam8bit.py")
)
adam8bit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(adam8bit)

CASES = {
    "sgd_momentum": (bnb.optim.SGD8bit, dict(lr=1e-2, momentum=0.9, weight_decay=1e-2)),
    "lion": (bnb.optim.Lion8bit, dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1)),
    "adamw": (bnb.optim.AdamW8bit, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)),
}


def run(name, cls, kwargs, seed):
    p = torch.nn.Parameter(torch.from_numpy(adam8bit.params0(seed)).clone())
    opt = cls([p], **kwargs, min_8bit_size=4096)
    snapshots = []
    for t in range(1, adam8bit.STEPS + 1):
        p.grad = torch.from_numpy(adam8bit.grad(seed, t))
        opt.step()
        if t in adam8bit.SNAPSHOTS:
            state = opt.state[p]
            snap = {"step": t, "param": adam8bit.hex_f32(p.detach().numpy())}
            for k in ("1", "2"):
                if f"state{k}" in state:
                    snap[f"state{k}"] = state[f"state{k}"].numpy().tobytes().hex()
                    snap[f"absmax{k}"] = adam8bit.hex_f32(state[f"absmax{k}"].numpy())
            snapshots.append(snap)
    state = opt.state[p]
    maps = {k: adam8bit.hex_f32(state[k].numpy()) for k in ("qmap1", "qmap2") if k in state}
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    return {"name": name, "seed": seed, "config": config, "maps": maps, "snapshots": snapshots}


def main():
    out = {
        "torch": torch.__version__,
        "bitsandbytes": bnb.__version__,
        "n": adam8bit.N,
        "steps": adam8bit.STEPS,
        "cases": [
            run(name, cls, kwargs, seed)
            for seed, (name, (cls, kwargs)) in enumerate(CASES.items(), 11)
        ],
    }
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
