"""Compilations of a training step over a sequence of learning rates: Optax against optref.

An Optax ``GradientTransformation`` is a pair of closures over its hyperparameters: passed
to ``eqx.filter_jit`` it is a static argument, and to ``jax.jit`` it can only be static or
closed over, so each new value is a new program (Optax issue #577). An optref
transformation holds them as array leaves: one program for every value.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

import optref.core as oc

LEARNING_RATES = (1e-3, 3e-3, 1e-2)


def _step(tx, params):
    """One update on a small quadratic; the library's own ``apply_updates``."""
    grads = jax.tree.map(lambda p: 2 * (p - 1.0), params)
    updates, _ = tx.update(grads, tx.init(params), params)
    return jax.tree.map(lambda p, u: p + u, params, updates)


def _count_traces(run_all) -> int:
    traces: list[int] = []

    def step(tx, params):
        traces.append(1)
        return _step(tx, params)

    run_all(step)
    return len(traces)


@pytest.fixture
def params():
    return {"w": jnp.linspace(-1.0, 1.0, 4), "b": jnp.zeros(())}


def _as_filter_jit_argument(factory, params):
    def run_all(step):
        jitted = eqx.filter_jit(step)
        for lr in LEARNING_RATES:
            jitted(factory(lr), params)

    return run_all


def _as_jit_argument(factory, params):
    def run_all(step):
        jitted = jax.jit(step)
        for lr in LEARNING_RATES:
            jitted(factory(lr), params)

    return run_all


def _as_jit_static_argument(factory, params):
    def run_all(step):
        jitted = jax.jit(step, static_argnums=0)
        for lr in LEARNING_RATES:
            jitted(factory(lr), params)

    return run_all


def _closed_over(factory, params):
    def run_all(step):
        for lr in LEARNING_RATES:
            jax.jit(functools.partial(step, factory(lr)))(params)

    return run_all


def test_optax_compiles_once_per_learning_rate(params):
    """Each of Optax's ways of handing the optimizer to a jitted step traces once per
    learning rate."""
    for pattern in (_as_filter_jit_argument, _as_jit_static_argument, _closed_over):
        assert _count_traces(pattern(optax.adam, params)) == len(LEARNING_RATES), pattern
    # As a plain jax.jit argument it cannot be passed at all: its leaves are functions.
    with pytest.raises(TypeError):
        _as_jit_argument(optax.adam, params)(_step)
    # Optax's own remedy: the learning rate in the state, where it is an array.
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=LEARNING_RATES[0])
    traces: list[int] = []

    @jax.jit
    def step_with_state(state, params):
        traces.append(1)
        grads = jax.tree.map(lambda p: 2 * (p - 1.0), params)
        return tx.update(grads, state, params)[0]

    for lr in LEARNING_RATES:
        state = tx.init(params)
        state.hyperparams["learning_rate"] = jnp.asarray(lr)
        step_with_state(state, params)
    assert len(traces) == 1


def test_optref_compiles_once_for_every_learning_rate(params):
    """The same step with optref's ``adam`` as a ``jax.jit`` or ``eqx.filter_jit``
    argument traces once for all the learning rates."""
    assert _count_traces(_as_jit_argument(oc.adam, params)) == 1
    assert _count_traces(_as_filter_jit_argument(oc.adam, params)) == 1
