"""Benchmark: the jitted training step of optref against Optax, as time ratios in one run.

Run with ``nox -s bench``. Each optimizer updates the params of a 4-layer, 256-wide MLP
(float32); the step includes the gradient, so the ratio is what a user sees.
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import optref.core as oc

PAIRS = {
    "sgd(momentum)": (lambda: oc.sgd(1e-2, 0.9), lambda: optax.sgd(1e-2, 0.9)),
    "adam": (lambda: oc.adam(1e-3), lambda: optax.adam(1e-3)),
    "adamw": (lambda: oc.adamw(1e-3), lambda: optax.adamw(1e-3)),
    "clip+adam": (
        lambda: oc.chain(oc.clip_by_global_norm(1.0), oc.adam(1e-3)),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)),
    ),
}


def _time_step(optimizer, repeats: int = 200) -> float:
    model = eqx.nn.MLP(64, 1, 256, 4, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (128, 64))
    y = jnp.sum(x[:, :4], axis=1, keepdims=True)

    @eqx.filter_jit
    def step(model, state):
        grads = eqx.filter_grad(lambda m: jnp.mean((jax.vmap(m)(x) - y) ** 2))(model)
        updates, state = optimizer.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state

    state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    model, state = step(model, state)
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(repeats):
        model, state = step(model, state)
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    print(f"backend: {jax.default_backend()}, optax {optax.__version__}")
    print(f"{'optimizer':<16}{'optref (µs)':>14}{'optax (µs)':>14}{'ratio':>8}")
    for name, (ours, theirs) in PAIRS.items():
        t_ours, t_theirs = _time_step(ours()), _time_step(theirs())
        print(f"{name:<16}{t_ours * 1e6:>14.1f}{t_theirs * 1e6:>14.1f}{t_ours / t_theirs:>8.2f}")


if __name__ == "__main__":
    main()
