"""Golden trajectories of torch.optim.Muon (torch 2.15.0, CPU), for tests/muon_golden.rs.

    python3 tools/golden/muon.py tests/golden/muon.json

torch.optim.Muon orthogonalizes in bfloat16 (`_zeropower_via_newtonschulz` casts the update to
bf16). This crate's Newton-Schulz runs in f32, so each case is recorded three ways from the same
initial parameters and gradients:

- `f64`: torch's Muon with its Newton-Schulz in the update's own dtype, everything float64: the
  trajectory the f32 reference is compared with;
- `f32_spread`: per step, the largest |f32 - f64| over the parameters of the same code in
  float32: how far PyTorch's own float32 run is from float64, the basis of the tests' tolerance;
- `torch_bf16`: torch.optim.Muon exactly as shipped (bf16 Newton-Schulz), final parameters only,
  to show how far the library's own default sits.

Gradients are drawn once per case from a seeded generator (float32, stored), so the three runs
and the Rust replay see the same values.
"""

import json
import sys

import torch
import torch.optim._muon as muon_module

SHIPPED_NS = muon_module._zeropower_via_newtonschulz


def ns_in_own_dtype(grad, ns_coefficients, ns_steps, eps):
    """torch's `_zeropower_via_newtonschulz`, line for line, without the cast to bfloat16."""
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    a, b, c = ns_coefficients
    ortho_grad = grad.clone()
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram_matrix = ortho_grad @ ortho_grad.T
        gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
        ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    return ortho_grad


SHAPES = {
    "square": (8, 8),
    "wide": (4, 12),
    "tall": (12, 4),
    "row": (1, 16),
    "odd_wide": (7, 13),
    "odd_tall": (13, 7),
}

CONFIGS = {
    # torch's defaults, with a larger lr so that 10 steps move the parameters visibly.
    "default": dict(lr=0.02),
    "no_nesterov": dict(lr=0.02, nesterov=False),
    "match_rms_adamw": dict(lr=0.02, adjust_lr_fn="match_rms_adamw", weight_decay=0.01),
    "spectral_unclamped": dict(lr=0.02, adjust_lr_fn="spectral_unclamped"),
    "no_weight_decay": dict(lr=0.05, weight_decay=0.0, momentum=0.9),
    "three_ns_steps": dict(lr=0.02, ns_steps=3),
}

STEPS = 10


def run(init, grads, config, dtype, ns):
    muon_module._zeropower_via_newtonschulz = ns
    try:
        p = torch.nn.Parameter(init.to(dtype).clone())
        opt = torch.optim.Muon([p], **config)
        params = []
        for g in grads:
            p.grad = g.to(dtype).clone()
            opt.step()
            params.append(p.detach().clone())
        return params, opt.state[p]["momentum_buffer"].detach().clone()
    finally:
        muon_module._zeropower_via_newtonschulz = SHIPPED_NS


def flat(t):
    return [float(x) for x in t.to(torch.float64).flatten().tolist()]


def main(path):
    cases = []
    for s, (shape_name, shape) in enumerate(SHAPES.items()):
        gen = torch.Generator().manual_seed(1000 + s)
        init = torch.randn(shape, generator=gen, dtype=torch.float32) * 0.5
        grads = [torch.randn(shape, generator=gen, dtype=torch.float32) for _ in range(STEPS)]
        if shape_name == "square":
            # A zero gradient at step 3 (the momentum keeps the update nonzero) and, in the
            # zero-matrix case below, nothing but zeros: eps keeps the division finite.
            grads[3] = torch.zeros(shape)
        for config_name, config in CONFIGS.items():
            f64, buf64 = run(init, grads, config, torch.float64, ns_in_own_dtype)
            f32, _ = run(init, grads, config, torch.float32, ns_in_own_dtype)
            bf16, _ = run(init, grads, config, torch.float32, SHIPPED_NS)
            spread = [float((a.double() - b).abs().max()) for a, b in zip(f32, f64)]
            cases.append(
                {
                    "name": f"{shape_name}/{config_name}",
                    "shape": list(shape),
                    "config": config,
                    "init": flat(init),
                    "grads": [flat(g) for g in grads],
                    "f64": [flat(p) for p in f64],
                    "f64_momentum_buffer": flat(buf64),
                    "f32_spread": spread,
                    "torch_bf16_final": flat(bf16[-1]),
                    "torch_bf16_final_distance": float((bf16[-1].double() - f64[-1]).abs().max()),
                }
            )
    # The zero matrix: zero parameters, zero gradients, every step.
    shape = (5, 3)
    zeros = torch.zeros(shape)
    config = dict(lr=0.02)
    f64, buf64 = run(zeros, [zeros] * 3, config, torch.float64, ns_in_own_dtype)
    cases.append(
        {
            "name": "zero_matrix/default",
            "shape": list(shape),
            "config": config,
            "init": flat(zeros),
            "grads": [flat(zeros)] * 3,
            "f64": [flat(p) for p in f64],
            "f64_momentum_buffer": flat(buf64),
            "f32_spread": [0.0] * 3,
            "torch_bf16_final": flat(run(zeros, [zeros] * 3, config, torch.float32, SHIPPED_NS)[0][-1]),
            "torch_bf16_final_distance": 0.0,
        }
    )
    out = {
        "source": f"torch {torch.__version__}, torch.optim.Muon on the CPU (tools/golden/muon.py)",
        "cases": cases,
    }
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"{len(cases)} cases -> {path}")


if __name__ == "__main__":
    main(sys.argv[1])
