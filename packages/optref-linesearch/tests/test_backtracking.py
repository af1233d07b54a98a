"""scale_by_backtracking_linesearch: Armijo steps, stored gradients, failures, restarts."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optref.core import HyperparameterError, chain, sgd
from optref.linesearch import (
    BacktrackingLinesearchInfo,
    ScaleByBacktrackingLinesearchState,
    scale_by_backtracking_linesearch,
)


def steep(x):
    return jnp.sum(50.0 * x**2)


def test_first_step_size_of_the_sequence_with_sufficient_decrease(lib) -> None:
    x0 = jnp.asarray([1.0, -0.5])
    direction = -jax.grad(steep)(x0)  # a step of 1 overshoots by a factor of 100
    tx = scale_by_backtracking_linesearch(max_backtracking_steps=50, decrease_factor=0.5)
    updates, state = lib.one_search(tx, steep, x0, direction)
    # Armijo with c = 1e-4 on 50 x^2 along -g: eta * 100 <= 2 (1 - 1e-4), so eta = 2^-6.
    assert float(state.learning_rate) == 2.0**-6
    assert int(state.info.num_linesearch_steps) == 7
    assert float(state.info.decrease_error) == 0.0
    np.testing.assert_allclose(updates, 2.0**-6 * direction, rtol=1e-15)
    np.testing.assert_allclose(state.value, steep(x0 + updates), rtol=1e-15)
    assert state.grad is None


def test_store_grad_keeps_the_gradient_at_the_accepted_point(lib) -> None:
    x0 = jnp.asarray([1.0, -0.5])
    direction = -jax.grad(steep)(x0)
    tx = scale_by_backtracking_linesearch(20, decrease_factor=0.5, store_grad=True)
    updates, state = lib.one_search(tx, steep, x0, direction)
    np.testing.assert_allclose(state.grad, jax.grad(steep)(x0 + updates), rtol=1e-15)


def test_guess_grows_from_the_last_step_size_up_to_the_maximum(lib) -> None:
    fn = lambda x: jnp.sum(x**2)  # noqa: E731
    tx = scale_by_backtracking_linesearch(10, increase_factor=2.0, max_learning_rate=3.0)
    x0 = jnp.asarray([1.0])
    _, state = lib.one_search(tx, fn, x0, -0.1 * jax.grad(fn)(x0))
    assert float(state.learning_rate) == 2.0  # min(2 * 1, 3), accepted
    _, state = lib.one_search(tx, fn, x0, -0.1 * jax.grad(fn)(x0), state)
    assert float(state.learning_rate) == 3.0  # min(2 * 2, 3)


def test_objective_not_finite_takes_no_step_and_the_next_search_restarts(lib) -> None:
    fn = lambda x: jnp.sum(jnp.log(1.0 - x))  # noqa: E731 - NaN beyond x = 1
    x0 = jnp.asarray([0.5])
    tx = scale_by_backtracking_linesearch(3, increase_factor=jnp.inf, max_learning_rate=1.0)
    updates, state = lib.one_search(tx, fn, x0, jnp.asarray([100.0]))
    assert float(state.learning_rate) == 0.0
    assert float(state.info.decrease_error) == np.inf  # the failure, in the state
    np.testing.assert_array_equal(updates, 0.0)
    # Optax would start the next search from min(inf * 0, 1) = NaN (or, with a finite
    # increase factor, from 0 for ever); optref restarts from max_learning_rate.
    updates, state = lib.one_search(tx, fn, x0, -0.1 * jax.grad(fn)(x0), state)
    assert float(state.learning_rate) == 1.0
    assert lib.all_finite((updates, state))


def test_failed_search_in_bfloat16_says_so_and_stays_finite(lib) -> None:
    # Every trial lands beyond x = 1, where the objective is NaN.
    fn = lambda x: jnp.sum(jnp.log(1.0 - x.astype(jnp.float32))).astype(x.dtype)  # noqa: E731
    x0, direction = jnp.asarray([0.5], jnp.bfloat16), jnp.asarray([100.0], jnp.bfloat16)
    tx = scale_by_backtracking_linesearch(3, store_grad=True)
    updates, state = lib.one_search(tx, fn, x0, direction)
    assert float(state.learning_rate) == 0.0 and updates.dtype == jnp.bfloat16
    assert float(state.info.decrease_error) == np.inf  # the failure, in the state
    assert lib.all_finite((x0 + updates, state.learning_rate, state.value, state.grad))
    # No step: the state holds the value and gradient at x0, not at the last trial.
    assert float(state.value) == float(fn(x0))
    np.testing.assert_array_equal(state.grad, jax.grad(fn)(x0))


def test_bounded_loop_gives_the_same_bits_as_the_while_loop(lib) -> None:
    runs = []
    for differentiable in (False, True):
        tx = chain(
            sgd(1.0),
            scale_by_backtracking_linesearch(15, store_grad=True, differentiable=differentiable),
        )
        runs.append(eqx.filter_jit(lib.run_solver)(tx, lib.logistic, lib.logistic_init(), 8))
    for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_layout_is_optax_s() -> None:
    assert list(ScaleByBacktrackingLinesearchState.__dataclass_fields__) == [
        "learning_rate",
        "value",
        "grad",
        "info",
    ]
    assert list(BacktrackingLinesearchInfo.__dataclass_fields__) == [
        "num_linesearch_steps",
        "decrease_error",
    ]
    state = scale_by_backtracking_linesearch(5, store_grad=True).init({"a": jnp.zeros(2)})
    assert state.grad["a"].shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_backtracking_steps": -1}, "max_backtracking_steps must be >= 0"),
        ({"max_backtracking_steps": None}, "max_backtracking_steps must be a Python int"),
        ({"max_backtracking_steps": 5, "decrease_factor": 1.0}, "decrease_factor must be in"),
        ({"max_backtracking_steps": 5, "increase_factor": 0.5}, "increase_factor must be in"),
        ({"max_backtracking_steps": 5, "atol": -1.0}, "atol must be in"),
    ],
)
def test_arguments_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(HyperparameterError, match=f"scale_by_backtracking_linesearch: {message}"):
        scale_by_backtracking_linesearch(**kwargs)
