"""An Equinox model trained through ``to_optax``: in an Optax loop and with Optimistix."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optref.core as oc
from optref.compat import from_optax, to_optax

X = jnp.asarray(np.random.default_rng(0).normal(size=(16, 2)))
Y = jnp.sin(X @ jnp.array([1.0, -0.5]))[:, None]
STEPS = 5


def _model() -> eqx.nn.MLP:
    return eqx.nn.MLP(2, 1, 4, 1, key=jax.random.key(0), dtype=jnp.float64)


def _loss(model: Any, args: Any = None) -> jax.Array:
    del args
    return jnp.mean((jax.vmap(model)(X) - Y) ** 2)


def _train(opt: Any) -> jax.Array:
    """The usual Equinox + Optax loop: filtered params (``None`` where not arrays)."""
    model = _model()
    state = opt.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model: Any, state: Any) -> tuple[Any, Any]:
        grads = eqx.filter_grad(_loss)(model)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state

    for _ in range(STEPS):
        model, state = step(model, state)
    return _loss(model)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        pytest.param(
            lambda: to_optax(oc.adamw(1e-2, weight_decay=1e-3)),
            lambda: optax.adamw(1e-2, weight_decay=1e-3),
            id="adamw",
            marks=pytest.mark.slow,  # the default session trains through to_optax below
        ),
        pytest.param(
            lambda: optax.chain(
                optax.clip_by_global_norm(1.0), to_optax(oc.sgd(0.1, momentum=0.9))
            ),
            lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9)),
            id="chain-sgd",
        ),
    ],
)
def test_equinox_model_in_an_optax_loop(ours: Any, theirs: Any) -> None:
    expected = _train(theirs())
    assert float(expected) < float(_loss(_model()))
    np.testing.assert_allclose(_train(ours()), expected, rtol=1e-12)


def test_from_optax_in_an_optref_loop() -> None:
    expected = _train(optax.adam(1e-2))
    ours = oc.chain(from_optax(optax.clip_by_global_norm(10.0)), oc.adam(1e-2))
    np.testing.assert_allclose(_train(ours), expected, rtol=1e-12)


def test_optimistix_optax_minimiser() -> None:
    optx = pytest.importorskip("optimistix")

    def solve(opt: Any) -> jax.Array:
        solver = optx.OptaxMinimiser(opt, rtol=1e-12, atol=1e-12)
        params, static = eqx.partition(_model(), eqx.is_array)

        def fn(params: Any, args: Any) -> jax.Array:
            return _loss(eqx.combine(params, static))

        solution = optx.minimise(fn, solver, params, max_steps=STEPS, throw=False)
        return fn(solution.value, None)

    expected = solve(optax.adam(1e-2))
    assert float(expected) < float(_loss(_model()))
    np.testing.assert_allclose(solve(to_optax(oc.adam(1e-2))), expected, rtol=1e-12)
