"""Records learning-rate schedules from PyTorch and Optax for tests/schedules.rs.

Run from the repository root, with torch, optax and jax installed (any machine; the output is
committed, so tests never need Python):

    python3 tools/golden/schedules.py > tests/golden/schedules.txt

Each line is `name value_0 ... value_199`: the learning rate (or, for `*.momentum`, the
momentum) after t = 0, 1, ..., 199 optimizer steps, as PyTorch's `get_last_lr()` reports it
after t calls of `scheduler.step()`, or as Optax's schedule returns it for count t. Optax runs
in float64 (jax_enable_x64). The names must match the table in tests/schedules.rs.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
from torch.optim import lr_scheduler as s  # noqa: E402

STEPS = 200
BASE_LR = 0.1


def torch_series(make, momentum=False):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=BASE_LR, momentum=0.9)
    scheduler = make(optimizer) if make else None
    key = "momentum" if momentum else "lr"
    values = []
    for _ in range(STEPS):
        values.append(optimizer.param_groups[0][key])
        optimizer.step()
        if scheduler:
            scheduler.step()
    return values


def optax_series(schedule):
    return [float(schedule(jnp.asarray(t, dtype=jnp.int64))) for t in range(STEPS)]


def sequential(o):
    warmup = s.LinearLR(o, start_factor=0.01, end_factor=1.0, total_iters=10)
    cosine = s.CosineAnnealingLR(o, T_max=190, eta_min=0.0)
    return s.SequentialLR(o, [warmup, cosine], milestones=[10])


def one_cycle_cos(o):
    return s.OneCycleLR(o, max_lr=0.5, total_steps=STEPS)


def one_cycle_linear(o):
    return s.OneCycleLR(o, max_lr=0.1, total_steps=STEPS, anneal_strategy="linear")


def past_the_cycle():
    """What PyTorch does when a loop steps OneCycleLR past total_steps: it raises."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=BASE_LR, momentum=0.9)
    scheduler = one_cycle_linear(optimizer)
    try:
        for _ in range(STEPS + 1):
            optimizer.step()
            scheduler.step()
    except ValueError as error:
        return f"ValueError: {error}"
    return "no error"


def one_cycle_linear_three(o):
    return s.OneCycleLR(
        o, max_lr=0.5, total_steps=STEPS, pct_start=0.25, anneal_strategy="linear", three_phase=True
    )


SERIES = {
    "constant": torch_series(None),
    "step": torch_series(lambda o: s.StepLR(o, step_size=30, gamma=0.1)),
    "multistep": torch_series(lambda o: s.MultiStepLR(o, milestones=[30, 80, 80, 150], gamma=0.5)),
    "exponential": torch_series(lambda o: s.ExponentialLR(o, gamma=0.97)),
    "polynomial": torch_series(lambda o: s.PolynomialLR(o, total_iters=150, power=2.0)),
    "polynomial_linear": torch_series(lambda o: s.PolynomialLR(o, total_iters=100, power=1.0)),
    "cosine": torch_series(lambda o: s.CosineAnnealingLR(o, T_max=50, eta_min=0.001)),
    "warm_restarts": torch_series(
        lambda o: s.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001)
    ),
    "warm_restarts_fixed": torch_series(
        lambda o: s.CosineAnnealingWarmRestarts(o, T_0=25, T_mult=1)
    ),
    "linear_warmup": torch_series(
        lambda o: s.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=20)
    ),
    "sequential": torch_series(sequential),
    "one_cycle": torch_series(one_cycle_cos),
    "one_cycle.momentum": torch_series(one_cycle_cos, momentum=True),
    "one_cycle_linear": torch_series(one_cycle_linear),
    "one_cycle_linear_three": torch_series(one_cycle_linear_three),
    "one_cycle_linear_three.momentum": torch_series(one_cycle_linear_three, momentum=True),
    "optax_warmup_cosine": optax_series(
        optax.warmup_cosine_decay_schedule(
            init_value=0.0, peak_value=0.1, warmup_steps=20, decay_steps=180, end_value=1e-4
        )
    ),
    "optax_piecewise": optax_series(
        optax.piecewise_constant_schedule(0.1, {50: 0.5, 120: 0.1})
    ),
}

print(f"# torch {torch.__version__}, optax {optax.__version__}, jax {jax.__version__}")
print("# python3 tools/golden/schedules.py > tests/golden/schedules.txt")
print(f"# one_cycle_linear stepped past total_steps: {past_the_cycle()}")
for name, values in SERIES.items():
    print(name, " ".join(repr(float(v)) for v in values))
