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


def cyclic(**kwargs):
    return lambda o: s.CyclicLR(o, base_lr=0.001, max_lr=0.1, **kwargs)


def chained(*makes):
    return lambda o: s.ChainedScheduler([make(o) for make in makes])


def warmup(total_iters):
    return lambda o: s.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=total_iters)


def cosine(t_max, eta_min=0.0):
    return lambda o: s.CosineAnnealingLR(o, T_max=t_max, eta_min=eta_min)


def exponential(gamma):
    return lambda o: s.ExponentialLR(o, gamma=gamma)


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
    "optax_exponential": optax_series(optax.exponential_decay(0.1, 10, 0.9)),
    "optax_exponential_staircase": optax_series(
        optax.exponential_decay(0.1, 25, 0.5, transition_begin=20, staircase=True)
    ),
    # decay_rate < 1: end_value is a floor.
    "optax_exponential_floor": optax_series(
        optax.exponential_decay(0.1, 5, 0.8, end_value=0.01)
    ),
    # decay_rate > 1: end_value is a ceiling.
    "optax_exponential_ceiling": optax_series(
        optax.exponential_decay(0.01, 20, 1.5, transition_begin=10, end_value=0.05)
    ),
    # decay_rate = 1 counts as > 1: end_value is a ceiling, below init_value here.
    "optax_exponential_rate_one": optax_series(
        optax.exponential_decay(0.1, 10, 1.0, end_value=0.05)
    ),
    # decay_rate = 0 and transition_steps = 0: init_value throughout, end_value ignored.
    "optax_exponential_rate_zero": optax_series(
        optax.exponential_decay(0.1, 10, 0.0, end_value=0.5)
    ),
    "optax_exponential_no_steps": optax_series(
        optax.exponential_decay(0.1, 0, 0.5, end_value=0.01)
    ),
    "optax_polynomial": optax_series(optax.polynomial_schedule(0.1, 0.001, 2.0, 150)),
    "optax_polynomial_begin": optax_series(
        optax.polynomial_schedule(0.1, 0.01, 0.5, 100, transition_begin=30)
    ),
    "optax_polynomial_rising": optax_series(
        optax.polynomial_schedule(0.001, 0.1, 3, 50, transition_begin=10)
    ),
    "optax_polynomial_no_steps": optax_series(optax.polynomial_schedule(0.1, 0.001, 2.0, 0)),
    "optax_linear": optax_series(optax.linear_schedule(0.0, 0.1, 40)),
    "optax_linear_begin": optax_series(
        optax.linear_schedule(0.1, 0.0, 100, transition_begin=50)
    ),
    "optax_cosine_decay": optax_series(optax.cosine_decay_schedule(0.1, 150)),
    "optax_cosine_decay_alpha": optax_series(
        optax.cosine_decay_schedule(0.1, 100, alpha=0.1, exponent=2.0)
    ),
    "optax_cosine_decay_short": optax_series(
        optax.cosine_decay_schedule(0.1, 1, alpha=0.5, exponent=0.5)
    ),
    "constant_factor": torch_series(lambda o: s.ConstantLR(o, factor=0.5, total_iters=4)),
    "constant_factor_default": torch_series(lambda o: s.ConstantLR(o)),
    "constant_factor_one": torch_series(lambda o: s.ConstantLR(o, factor=1.0, total_iters=10)),
    # total_iters past the series, so factor 0 never divides (PyTorch's 1 / factor).
    "constant_factor_zero": torch_series(lambda o: s.ConstantLR(o, factor=0.0, total_iters=300)),
    "cyclic": torch_series(cyclic(step_size_up=20)),
    "cyclic.momentum": torch_series(cyclic(step_size_up=20), momentum=True),
    "cyclic_triangular2": torch_series(
        cyclic(step_size_up=15, step_size_down=35, mode="triangular2")
    ),
    "cyclic_triangular2.momentum": torch_series(
        cyclic(step_size_up=15, step_size_down=35, mode="triangular2"), momentum=True
    ),
    "cyclic_exp_range": torch_series(
        cyclic(step_size_up=10, step_size_down=30, mode="exp_range", gamma=0.99)
    ),
    "cyclic_exp_range.momentum": torch_series(
        cyclic(
            step_size_up=10,
            step_size_down=30,
            mode="exp_range",
            gamma=0.99,
            base_momentum=0.85,
            max_momentum=0.95,
        ),
        momentum=True,
    ),
    # step_size_down = 0: a sawtooth.
    "cyclic_sawtooth": torch_series(cyclic(step_size_up=25, step_size_down=0)),
    "chained": torch_series(
        chained(
            lambda o: s.ConstantLR(o, factor=0.5, total_iters=4),
            lambda o: s.ExponentialLR(o, gamma=0.97),
        )
    ),
    "chained_three": torch_series(
        chained(
            lambda o: s.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=10),
            lambda o: s.StepLR(o, step_size=30, gamma=0.5),
            lambda o: s.ConstantLR(o, factor=0.8, total_iters=50),
        )
    ),
    "chained_polynomial": torch_series(
        chained(
            lambda o: s.ExponentialLR(o, gamma=0.99),
            lambda o: s.PolynomialLR(o, total_iters=150, power=2.0),
            lambda o: s.MultiStepLR(o, milestones=[40, 90], gamma=0.5),
        )
    ),
    # Chains with CosineAnnealingLR, each past T_max several times: the recursive cosine climbs
    # back after each zero, which drops the factors carried so far, and with eta_min != 0 its
    # update does not commute with the others' scaling (issue 25).
    "chained_linear_cosine": torch_series(chained(warmup(10), cosine(20))),
    "chained_linear_cosine_eta": torch_series(chained(warmup(10), cosine(20, 0.001))),
    "chained_exponential_cosine": torch_series(chained(exponential(0.99), cosine(30))),
    "chained_exponential_cosine_eta": torch_series(
        chained(exponential(0.99), cosine(30, 0.001))
    ),
    # The cosine first; a warm-up past T_max, to 0.5.
    "chained_cosine_linear": torch_series(
        chained(
            cosine(30),
            lambda o: s.LinearLR(o, start_factor=0.1, end_factor=0.5, total_iters=50),
        )
    ),
    "chained_cosine_exponential_eta": torch_series(
        chained(cosine(30, 0.002), exponential(0.99))
    ),
    # ConstantLR's 1 / factor at total_iters = 60, after the zero at 25 dropped its factor.
    "chained_constant_cosine_step": torch_series(
        chained(
            lambda o: s.ConstantLR(o, factor=0.5, total_iters=60),
            cosine(25),
            lambda o: s.StepLR(o, step_size=35, gamma=0.5),
        )
    ),
    "chained_multistep_cosine_polynomial": torch_series(
        chained(
            lambda o: s.MultiStepLR(o, milestones=[0, 10, 10, 70], gamma=0.5),
            cosine(17, 0.001),
            lambda o: s.PolynomialLR(o, total_iters=300, power=2.0),
        )
    ),
    # PolynomialLR reaches 0 at 150; the cosine's restart at 154, past its zero at 153, brings the
    # rate back.
    "chained_multistep_cosine_polynomial_zero": torch_series(
        chained(
            lambda o: s.MultiStepLR(o, milestones=[0, 10, 10, 70], gamma=0.5),
            cosine(17),
            lambda o: s.PolynomialLR(o, total_iters=150, power=2.0),
        )
    ),
    "chained_two_cosines": torch_series(
        chained(cosine(30, 0.001), exponential(0.995), cosine(45, 0.001))
    ),
    # A ChainedScheduler inside one steps its members in turn.
    "chained_nested_cosine": torch_series(
        chained(
            chained(warmup(10), cosine(20, 0.001)),
            lambda o: s.MultiStepLR(o, milestones=[50, 120], gamma=0.5),
        )
    ),
}

print(f"# torch {torch.__version__}, optax {optax.__version__}, jax {jax.__version__}")
print("# python3 tools/golden/schedules.py > tests/golden/schedules.txt")
print(f"# one_cycle_linear stepped past total_steps: {past_the_cycle()}")
for name, values in SERIES.items():
    print(name, " ".join(repr(float(v)) for v in values))
