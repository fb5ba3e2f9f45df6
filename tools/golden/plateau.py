"""Records torch.optim.lr_scheduler.ReduceLROnPlateau for tests/plateau.rs.

Run from the repository root with torch installed (any machine; the output is committed, so
tests never need Python):

    python3 tools/golden/plateau.py tests/golden/plateau.json

Each case gives the scheduler's arguments, the initial learning rate of every parameter group,
the metric passed to each `scheduler.step(metric)` and, after each call, every group's
`optimizer.param_groups[i]["lr"]`. Floats are written as Python's `repr` strings ("0.1",
"nan", "inf"), which Rust's `str::parse::<f64>` reads back to the same bits, so the test can
compare bit for bit. The metric sequences are deterministic (a seeded `random.Random`).
"""

import json
import math
import random
import sys

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau


def f(x):
    return repr(float(x))


def descent(rng, steps, start=1.0, plateau_every=15, plateau_len=8, noise=0.01):
    """A loss that improves, then stalls (exact repeats and sub-threshold wiggles), then
    improves again: every branch of `is_better`."""
    metrics, value = [], start
    for t in range(steps):
        phase = t % plateau_every
        if phase < plateau_every - plateau_len:
            value *= 0.9 + rng.uniform(-noise, noise)
            metrics.append(value)
        elif phase % 3 == 0:
            metrics.append(value)  # exactly the best: not better (strict comparison)
        else:
            metrics.append(value * (1 + rng.uniform(-1e-5, 2e-2)))
    return metrics


def ascent(rng, steps):
    """An accuracy-like metric for mode='max'."""
    return [1.0 - m for m in descent(rng, steps, start=0.9)]


def record(name, metrics, lrs, **kwargs):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    optimizer = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)])
    scheduler = ReduceLROnPlateau(optimizer, **kwargs)
    after = []
    for m in metrics:
        scheduler.step(m)
        after.append([f(g["lr"]) for g in optimizer.param_groups])
    config = dict(
        mode="min",
        factor=0.1,
        patience=10,
        threshold=1e-4,
        threshold_mode="rel",
        cooldown=0,
        min_lr=0.0,
        eps=1e-8,
    )
    config.update(kwargs)
    min_lr = config["min_lr"]
    config["min_lr"] = [f(x) for x in min_lr] if isinstance(min_lr, list) else f(min_lr)
    for key in ("factor", "threshold", "eps"):
        config[key] = f(config[key])
    return dict(
        name=name,
        config=config,
        initial_lrs=[f(x) for x in lrs],
        metrics=[f(m) for m in metrics],
        lrs=after,
    )


def cases():
    rng = random.Random(20240915)
    steps = 80
    out = []
    out.append(record("default", descent(rng, 150, plateau_every=30, plateau_len=16), [0.1]))
    out.append(record("min_rel_patience0", descent(rng, steps), [0.1], factor=0.5, patience=0))
    out.append(
        record(
            "min_rel_patience3_cooldown2",
            descent(rng, steps),
            [0.1, 0.01],
            factor=0.5,
            patience=3,
            cooldown=2,
        )
    )
    out.append(
        record(
            "min_abs_patience2",
            descent(rng, steps),
            [0.2],
            factor=0.7,
            patience=2,
            threshold=0.01,
            threshold_mode="abs",
        )
    )
    out.append(
        record(
            "max_rel_patience2",
            ascent(rng, steps),
            [0.05],
            mode="max",
            factor=0.5,
            patience=2,
            threshold=0.05,
        )
    )
    out.append(
        record(
            "max_abs_patience1_cooldown3",
            ascent(rng, steps),
            [0.3, 0.03],
            mode="max",
            factor=0.6,
            patience=1,
            threshold=0.02,
            threshold_mode="abs",
            cooldown=3,
        )
    )
    out.append(
        record(
            "max_abs_patience0",
            ascent(rng, steps),
            [0.1],
            mode="max",
            factor=0.9,
            patience=0,
            threshold=0.0,
            threshold_mode="abs",
        )
    )
    out.append(
        record(
            "per_group_min_lr",
            descent(rng, steps),
            [0.1, 0.5, 0.06],
            factor=0.3,
            patience=1,
            min_lr=[1e-3, 0.0, 0.05],
        )
    )
    out.append(
        record(
            "scalar_min_lr",
            descent(rng, steps),
            [1.0, 0.25],
            factor=0.5,
            patience=1,
            min_lr=0.02,
        )
    )
    # Group 1's reductions are smaller than eps and are skipped; group 0's are not. Group 2
    # sits just above min_lr: the reduction to min_lr is smaller than eps, so it never lands.
    out.append(
        record(
            "eps_suppresses",
            descent(rng, steps),
            [0.1, 1.5e-8, 0.0100000001],
            factor=0.5,
            patience=1,
            min_lr=[0.0, 0.0, 0.01],
        )
    )
    out.append(
        record(
            "large_eps",
            descent(rng, steps),
            [0.1, 0.015],
            factor=0.5,
            patience=0,
            eps=0.01,
        )
    )
    out.append(
        record(
            "threshold_large_rel",
            descent(rng, steps, noise=0.05),
            [0.1],
            factor=0.5,
            patience=2,
            threshold=0.1,
        )
    )
    out.append(
        record(
            "threshold_zero",
            descent(rng, steps),
            [0.1],
            factor=0.5,
            patience=1,
            threshold=0.0,
        )
    )
    # A loss that crosses zero: with best < 0, best * (1 - threshold) lies above best.
    shifted = [m - 0.05 for m in descent(rng, steps)]
    out.append(
        record("negative_metrics_rel", shifted, [0.1], factor=0.5, patience=2, threshold=0.05)
    )
    noisy = descent(rng, steps)
    for t in (3, 4, 20, 21, 22, 23, 40, 61):
        noisy[t] = math.nan
    out.append(record("nan_metric", noisy, [0.1, 0.2], factor=0.5, patience=2))
    non_finite = descent(rng, steps)
    non_finite[10] = math.inf
    non_finite[30] = math.nan
    non_finite[50] = -math.inf
    out.append(record("non_finite_min", non_finite, [0.1], factor=0.5, patience=3))
    max_nan = ascent(rng, steps)
    for t in (5, 6, 7, 33):
        max_nan[t] = math.nan
    out.append(
        record("nan_metric_max", max_nan, [0.1], mode="max", factor=0.5, patience=1, cooldown=1)
    )
    out.append(
        record(
            "factor_zero",
            descent(rng, steps),
            [0.1],
            factor=0.0,
            patience=2,
            min_lr=1e-4,
        )
    )
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/plateau.json"
    data = dict(torch=torch.__version__.split("+")[0], cases=cases())
    with open(path, "w") as out:
        json.dump(data, out, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main()
