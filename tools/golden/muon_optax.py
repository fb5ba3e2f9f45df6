"""Golden trajectories of optax.contrib.muon (optax 0.2.8, JAX on the CPU) on a 2-D parameter,
for tests/muon_golden.rs (`MuonConfig::with_optax_form`).

    python3 tools/golden/muon_optax.py tests/golden/muon_optax.json

optax.contrib.muon labels every 2-D parameter 'muon' and steps it with `scale_by_muon` (EMA
momentum `(1 - beta) g + beta mu`, bias-corrected; Nesterov as `beta mu_hat(t + 1) + (1 - beta)
g_hat(t)`; the Frobenius norm plus eps), `scale_by_shape` (`sqrt(max(1, fan_out / fan_in))`
with fan_in the rows, or `sqrt(max(rows, cols)) * consistent_rms`), `add_decayed_weights` and
the learning rate. Each case is run twice from the same float32 initial parameters and
gradients: everything float64 (`jax_enable_x64`), the trajectory the f32 reference is compared
with, and float32, whose per-step largest |f32 - f64| over the parameters (`f32_spread`) is the
basis of the tests' tolerance.
"""

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

SHAPES = {
    "square": (8, 8),
    "wide": (4, 12),
    "tall": (12, 4),
    "odd_tall": (13, 7),
}

# Keyword arguments of optax.contrib.muon beside the learning rate.
CONFIGS = {
    "default": dict(learning_rate=0.02),
    "no_nesterov": dict(learning_rate=0.02, nesterov=False, beta=0.9),
    "weight_decay": dict(learning_rate=0.02, weight_decay=0.1),
    "consistent_rms": dict(learning_rate=0.02, consistent_rms=0.2, weight_decay=0.01),
    "three_ns_steps": dict(learning_rate=0.05, ns_steps=3, eps=1e-7),
}

STEPS = 10


def run(init, grads, config, dtype):
    opt = optax.contrib.muon(**config)
    params = {"w": jnp.asarray(init, dtype=dtype)}
    state = opt.init(params)
    out = []
    for g in grads:
        updates, state = opt.update({"w": jnp.asarray(g, dtype=dtype)}, state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params["w"], dtype=np.float64))
    mu = state.inner_states["muon"].inner_state[0].mu["w"]
    return out, np.asarray(mu, dtype=np.float64)


def flat(a):
    return [float(x) for x in np.asarray(a, dtype=np.float64).flatten()]


def main(path):
    cases = []
    for s, (shape_name, shape) in enumerate(SHAPES.items()):
        rng = np.random.default_rng(2000 + s)
        init = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(STEPS)]
        for config_name, config in CONFIGS.items():
            f64, mu64 = run(init, grads, config, jnp.float64)
            f32, _ = run(init, grads, config, jnp.float32)
            spread = [float(np.abs(a - b).max()) for a, b in zip(f32, f64)]
            cases.append(
                {
                    "name": f"{shape_name}/{config_name}",
                    "shape": list(shape),
                    "config": config,
                    "init": flat(init),
                    "grads": [flat(g) for g in grads],
                    "f64": [flat(p) for p in f64],
                    "f64_mu": flat(mu64),
                    "f32_spread": spread,
                }
            )
    out = {
        "source": f"optax {optax.__version__}, jax {jax.__version__}, optax.contrib.muon on the "
        "CPU (tools/golden/muon_optax.py)",
        "cases": cases,
    }
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"{len(cases)} cases -> {path}")


if __name__ == "__main__":
    main(sys.argv[1])
