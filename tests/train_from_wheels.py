"""What ``pip install optref-core optref-linesearch`` gives a user: train a small model.

Run by ``nox -s build`` with the interpreter of a fresh environment that holds only the
two built wheels and what they declare. Checks that optref comes from that environment
(not from a source checkout), that Optax is not installed, and that Adam on a small
Equinox MLP and L-BFGS on a least-squares problem both lower the loss.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys

import equinox as eqx
import jax
import jax.numpy as jnp

import optref.core as oc
import optref.linesearch as ls


def _check_installed_from_wheels(shares_dependencies: bool) -> None:
    prefix = pathlib.Path(sys.prefix).resolve()
    for module in (oc, ls):
        origin = pathlib.Path(module.__file__ or "").resolve()
        if prefix not in origin.parents:
            raise SystemExit(f"{module.__name__} comes from {origin}, not from {prefix}.")
    if not shares_dependencies and importlib.util.find_spec("optax") is not None:
        raise SystemExit("optax is installed, but neither optref-core nor -linesearch needs it.")


def _train_mlp_with_adam(steps: int = 100) -> tuple[float, float]:
    x = jnp.linspace(-1.0, 1.0, 64)[:, None]
    y = jnp.sin(3.0 * x)
    model = eqx.nn.MLP(1, 1, 16, 2, key=jax.random.key(0))
    optimizer = oc.adam(1e-2)
    state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))

    def loss(m: eqx.nn.MLP) -> jax.Array:
        return jnp.mean((jax.vmap(m)(x) - y) ** 2)

    @eqx.filter_jit
    def step(m, s):
        value, grads = eqx.filter_value_and_grad(loss)(m)
        updates, s = optimizer.update(grads, s, eqx.filter(m, eqx.is_inexact_array))
        return eqx.apply_updates(m, updates), s, value

    first = float(loss(model))
    for _ in range(steps):
        model, state, _ = step(model, state)
    return first, float(loss(model))


def _fit_least_squares_with_lbfgs(steps: int = 20) -> tuple[float, float, float]:
    a = jax.random.normal(jax.random.key(1), (20, 5))
    b = jax.random.normal(jax.random.key(2), (20,))

    def loss(w: jax.Array) -> jax.Array:
        return 0.5 * jnp.sum((a @ w - b) ** 2)

    optimizer = ls.lbfgs()
    params = jnp.zeros(5)
    state = optimizer.init(params)
    value_and_grad = ls.value_and_grad_from_state(loss)

    @jax.jit
    def step(w, s):
        value, grad = value_and_grad(w, state=s)
        updates, s = optimizer.update(grad, s, w, value=value, grad=grad, value_fn=loss)
        return oc.apply_updates(w, updates), s

    first = float(loss(params))
    for _ in range(steps):
        params, state = step(params, state)
    optimum = float(loss(jnp.linalg.lstsq(a, b)[0]))
    return first, float(loss(params)), optimum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shares-dependencies",
        action="store_true",
        help="the env reuses another env's packages (offline), so Optax may be there",
    )
    _check_installed_from_wheels(parser.parse_args().shares_dependencies)
    first, last = _train_mlp_with_adam()
    print(f"adam on an MLP: loss {first:.4g} -> {last:.4g}")
    if not last < 0.5 * first:
        raise SystemExit(f"adam: the loss did not fall by half ({first} -> {last}).")
    first, last, optimum = _fit_least_squares_with_lbfgs()
    print(f"lbfgs on least squares: loss {first:.4g} -> {last:.4g} (optimum {optimum:.4g})")
    if not (last < first and abs(last - optimum) <= 1e-4 * optimum):
        raise SystemExit(f"lbfgs: {last} is not the least-squares optimum {optimum}.")


if __name__ == "__main__":
    main()
