"""Small objectives shared by the optref-linesearch tests (float64 is on for the oracle)."""

from __future__ import annotations

import types
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

_DIAG = np.array([1.0, 2.0, 5.0, 10.0, 0.5])
_CENTER = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
_ILL_DIAG = np.logspace(0, 4, 6)
_X = np.random.default_rng(0).normal(size=(24, 3))
_LABELS = (_X @ np.array([1.0, -2.0, 0.5]) + 0.3 * np.random.default_rng(1).normal(size=24)) > 0


def quadratic(params):
    """A separable quadratic with condition number 20, minimum at ``_CENTER`` and ``b = 1``."""
    w, b = params["w"], params["b"]
    return (
        0.5 * jnp.sum(jnp.asarray(_DIAG, w.dtype) * (w - _CENTER.astype(w.dtype)) ** 2)
        + (b - 1) ** 2
    )


def quadratic_init(dtype=jnp.float64):
    return {"w": jnp.asarray([0.3, -0.7, 1.5, -0.2, 2.0], dtype), "b": jnp.asarray(0.5, dtype)}


def ill_conditioned(x):
    """A quadratic with condition number 1e4."""
    return 0.5 * jnp.sum(jnp.asarray(_ILL_DIAG, x.dtype) * (x - 1) ** 2)


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosenbrock_init(dtype=jnp.float64):
    return jnp.asarray([-1.2, 1.0, -0.5, 0.8], dtype)


def logistic(params):
    """L2-regularised logistic regression on 24 fixed points."""
    w, b = params["w"], params["b"]
    margins = jnp.where(jnp.asarray(_LABELS), 1.0, -1.0) * (jnp.asarray(_X, w.dtype) @ w + b)
    return jnp.mean(jax.nn.softplus(-margins)) + 5e-3 * jnp.sum(w**2)


def logistic_init(dtype=jnp.float64):
    return {"w": jnp.zeros(3, dtype), "b": jnp.zeros((), dtype)}


def mlp(params):
    x = jnp.asarray(_X, params["w1"].dtype)
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] - jnp.sin(x[:, :1])) ** 2)


def mlp_init(dtype=jnp.float64):
    rng = np.random.default_rng(2)
    return {
        "w1": jnp.asarray(rng.normal(size=(3, 4)) / 2, dtype),
        "b1": jnp.zeros(4, dtype),
        "w2": jnp.asarray(rng.normal(size=(4, 1)) / 2, dtype),
    }


PROBLEMS: dict[str, tuple[Callable, Callable]] = {
    "quadratic": (quadratic, quadratic_init),
    "ill_conditioned": (ill_conditioned, lambda dtype=jnp.float64: jnp.zeros(6, dtype)),
    "rosenbrock": (rosenbrock, rosenbrock_init),
    "logistic": (logistic, logistic_init),
    "mlp": (mlp, mlp_init),
}


def run_solver(tx, fn, params, steps, *, from_state=True):
    """``steps`` steps of ``tx`` on ``fn`` (value and grad reused from the state), in one scan.

    Returns the final params and state and the loss after each step.
    """
    from optref.core import apply_updates
    from optref.linesearch import value_and_grad_from_state

    value_and_grad = value_and_grad_from_state(fn) if from_state else jax.value_and_grad(fn)

    def step(carry, _):
        params, state = carry
        if from_state:
            value, grad = value_and_grad(params, state=state)
        else:
            value, grad = value_and_grad(params)
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=fn)
        params = apply_updates(params, updates)
        return (params, state), fn(params)

    (params, state), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return params, state, losses


@eqx.filter_jit
def one_search(tx, fn, params, direction, state=None):
    """One line search by ``tx`` along ``direction`` from ``params`` (a fresh state if none)."""
    value, grad = jax.value_and_grad(fn)(params)
    state = tx.init(params) if state is None else state
    return tx.update(direction, state, params, value=value, grad=grad, value_fn=fn)


def all_finite(tree) -> bool:
    return all(
        bool(jnp.all(jnp.isfinite(x)))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    )


@pytest.fixture(scope="session")
def lib() -> types.SimpleNamespace:
    """The objectives and helpers above, for the test modules (conftest is not importable)."""
    names = [
        "quadratic",
        "quadratic_init",
        "ill_conditioned",
        "rosenbrock",
        "rosenbrock_init",
        "logistic",
        "logistic_init",
        "mlp",
        "mlp_init",
        "PROBLEMS",
        "run_solver",
        "one_search",
        "all_finite",
    ]
    return types.SimpleNamespace(**{name: globals()[name] for name in names})
