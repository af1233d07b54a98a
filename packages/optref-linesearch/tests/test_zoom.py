"""scale_by_zoom_linesearch: strong Wolfe steps, failures recorded in the state, bounded loop."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from optref.core import HyperparameterError, chain, sgd
from optref.linesearch import (
    ScaleByZoomLinesearchState,
    ZoomLinesearchInfo,
    scale_by_zoom_linesearch,
)


def slope(fn, params, direction, stepsize):
    return float(jnp.vdot(jax.grad(fn)(params + stepsize * direction), direction))


@pytest.mark.parametrize(
    "name", ["quadratic", pytest.param("ill_conditioned", marks=pytest.mark.slow), "rosenbrock"]
)
def test_accepted_step_satisfies_the_strong_wolfe_conditions(lib, name: str) -> None:
    fn, init = lib.PROBLEMS[name]
    flat = ravel_pytree(init())
    x0, unravel = flat

    def f(x):
        return fn(unravel(x))

    direction = -jax.grad(f)(x0)
    tx = scale_by_zoom_linesearch(max_linesearch_steps=30, initial_guess_strategy="one")
    updates, state = lib.one_search(tx, f, x0, direction)
    eta = float(state.learning_rate)
    np.testing.assert_allclose(updates, eta * direction, rtol=1e-15)
    assert float(state.info.decrease_error) == 0.0
    assert float(state.info.curvature_error) == 0.0
    phi0, dphi0 = float(f(x0)), float(jnp.vdot(jax.grad(f)(x0), direction))
    assert float(f(x0 + eta * direction)) <= phi0 + 1e-4 * eta * dphi0
    assert abs(slope(f, x0, direction, eta)) <= 0.9 * abs(dphi0) * (1 + 1e-12)
    # The state holds the value and gradient at the new point.
    np.testing.assert_allclose(state.value, f(x0 + eta * direction), rtol=1e-14)
    np.testing.assert_allclose(state.grad, jax.grad(f)(x0 + eta * direction), rtol=1e-12)


def _bumpy(x):
    """Slowly decreasing up to 1.5, then a steep wall: at step 1 the curvature condition
    fails (the slope is still steep) and step 2 hits the wall."""
    return jnp.sum((x - 20.0) ** 2 / 400.0 + 1e3 * jax.nn.relu(x - 1.5) ** 2)


def test_failed_search_returns_the_safe_step_and_says_so_for_that_step(lib) -> None:
    x0, direction = jnp.zeros(1), jnp.ones(1)
    tx = scale_by_zoom_linesearch(max_linesearch_steps=2, initial_guess_strategy="one")
    _, state = lib.one_search(tx, _bumpy, x0, direction)
    # Step 1 decreased the objective enough but not the slope; step 2 did not decrease
    # it. The search fails and returns step 1, the safe one.
    assert float(state.learning_rate) == 1.0
    assert int(state.info.num_linesearch_steps) == 2
    # The info describes the returned step (Optax's would describe step 2): decrease
    # holds, curvature does not.
    assert float(state.info.decrease_error) == 0.0
    expected_curvature = abs(slope(_bumpy, x0, direction, 1.0)) - 0.9 * abs(
        slope(_bumpy, x0, direction, 0.0)
    )
    np.testing.assert_allclose(state.info.curvature_error, expected_curvature, rtol=1e-12)
    np.testing.assert_allclose(state.value, _bumpy(x0 + 1.0), rtol=1e-15)


def test_not_a_descent_direction_fails_visibly_and_stays_finite(lib) -> None:
    x0 = jnp.asarray([1.0, 2.0])
    fn = lambda x: jnp.sum(x**2)  # noqa: E731
    ascent = jax.grad(fn)(x0)
    tx = scale_by_zoom_linesearch(max_linesearch_steps=10)
    updates, state = lib.one_search(tx, fn, x0, ascent)
    assert float(state.info.decrease_error) > 0.0  # the failure, in the state
    assert lib.all_finite((updates, state))


def test_objective_not_finite_along_the_line_takes_no_step(lib) -> None:
    fn = lambda x: jnp.sum(jnp.log(1.0 - x))  # noqa: E731 - NaN beyond x = 1
    x0, direction = jnp.asarray([0.5]), jnp.asarray([10.0])  # every trial lands beyond 1
    tx = scale_by_zoom_linesearch(max_linesearch_steps=3, initial_guess_strategy="one")
    updates, state = lib.one_search(tx, fn, x0, direction)
    assert float(state.learning_rate) == 0.0
    assert float(state.info.decrease_error) == np.inf
    assert lib.all_finite(updates)
    np.testing.assert_array_equal(updates, 0.0)
    # With "keep", the next search does not start (and stay) at the failed step size 0.
    keep = scale_by_zoom_linesearch(max_linesearch_steps=30, initial_guess_strategy="keep")
    _, failed = lib.one_search(keep, fn, x0, direction)
    _, state = lib.one_search(keep, fn, x0, -jax.grad(fn)(x0), failed)
    assert float(state.learning_rate) > 0.0
    assert float(state.info.decrease_error) == 0.0


def test_failed_search_in_bfloat16_says_so_and_stays_finite(lib) -> None:
    # Every trial lands beyond x = 1, where the objective is NaN.
    fn = lambda x: jnp.sum(jnp.log(1.0 - x.astype(jnp.float32))).astype(x.dtype)  # noqa: E731
    x0, direction = jnp.asarray([0.5], jnp.bfloat16), jnp.asarray([10.0], jnp.bfloat16)
    tx = scale_by_zoom_linesearch(max_linesearch_steps=3, initial_guess_strategy="one")
    updates, state = lib.one_search(tx, fn, x0, direction)
    assert float(state.learning_rate) == 0.0 and updates.dtype == jnp.bfloat16
    assert float(state.info.decrease_error) == np.inf  # the failure, in the state
    assert lib.all_finite((x0 + updates, state.learning_rate, state.value))


def test_bounded_loop_gives_the_same_bits_as_the_while_loop(lib) -> None:
    fn, init = lib.PROBLEMS["rosenbrock"]
    runs = []
    for differentiable in (False, True):
        tx = chain(sgd(1e-3), scale_by_zoom_linesearch(15, differentiable=differentiable))
        runs.append(eqx.filter_jit(lib.run_solver)(tx, fn, init(), 12))
    for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_layout_is_optax_s() -> None:
    params = {"a": jnp.zeros(3, jnp.float32), "b": None}
    state = scale_by_zoom_linesearch(10).init(params)
    assert list(ScaleByZoomLinesearchState.__dataclass_fields__) == [
        "learning_rate",
        "value",
        "grad",
        "info",
    ]
    assert list(ZoomLinesearchInfo.__dataclass_fields__) == [
        "num_linesearch_steps",
        "decrease_error",
        "curvature_error",
    ]
    assert state.grad["b"] is None and state.grad["a"].dtype == jnp.float32
    assert float(state.learning_rate) == 1.0 and float(state.value) == np.inf


def test_low_precision_params_keep_float32_scalars(lib) -> None:
    params = jnp.zeros(6, jnp.bfloat16)
    tx = chain(sgd(1.0), scale_by_zoom_linesearch(15))
    final, state, losses = eqx.filter_jit(lib.run_solver)(tx, lib.ill_conditioned, params, 5)
    assert state[1].learning_rate.dtype == jnp.float32
    assert state[1].grad.dtype == jnp.bfloat16
    assert lib.all_finite((final, state, losses))
    assert float(losses[-1]) < float(lib.ill_conditioned(params.astype(jnp.float32)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_linesearch_steps": 0}, "max_linesearch_steps must be >= 1"),
        ({"max_linesearch_steps": 2.5}, "max_linesearch_steps must be a Python int"),
        (
            {"max_linesearch_steps": 5, "initial_guess_strategy": "two"},
            "initial_guess_strategy must be 'one' or 'keep'",
        ),
        ({"max_linesearch_steps": 5, "curv_rtol": 0.0}, r"curv_rtol must be in \(0, ∞\]"),
        ({"max_linesearch_steps": 5, "slope_rtol": 1.0}, r"slope_rtol must be in \[0, 1\)"),
        ({"max_linesearch_steps": 5, "increase_factor": 1.0}, "increase_factor must be in"),
        ({"max_linesearch_steps": 5, "max_learning_rate": -1.0}, "max_learning_rate must be"),
    ],
)
def test_arguments_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(HyperparameterError, match=f"scale_by_zoom_linesearch: {message}"):
        scale_by_zoom_linesearch(**kwargs)


def test_curvature_condition_can_be_dropped(lib) -> None:
    tx = scale_by_zoom_linesearch(10, curv_rtol=jnp.inf)
    fn = lambda x: jnp.sum((x - 3.0) ** 2)  # noqa: E731
    _, state = lib.one_search(tx, fn, jnp.zeros(2), jnp.ones(2) * 0.1)
    assert float(state.learning_rate) == 1.0  # accepted at once: sufficient decrease only
