"""optref.linesearch against Optax 0.2.8 in float64: iterates, step sizes and states.

The conformance cases (tests/test_conformance.py) feed both libraries the same gradient
at each step, with optref's line searches in their bounded form. Here each library runs
its own loop as a user would, reusing the line search's value and gradient through
``value_and_grad_from_state``, with optref's line searches in their default
``while_loop`` form, and also as stand-alone line searches after SGD.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optref.core as oc
import optref.linesearch as ol
from optref.audit import PROBLEMS, flatten_state

jax.config.update("jax_enable_x64", True)

RTOL = 1e-12


def trajectory(tx: Any, library: Any, problem: str, steps: int) -> dict[str, Any]:
    """Run ``tx`` for ``steps`` steps; the params, updates and flattened state after each."""
    loss = PROBLEMS[problem].loss
    value_and_grad = library.value_and_grad_from_state(loss)

    def step(carry: Any, _: None) -> tuple[Any, Any]:
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        return (params, state), (params, updates, state)

    params = PROBLEMS[problem].init(jnp.float64)
    _, (iterates, updates, states) = jax.jit(
        lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps)
    )(params)
    out = {f"params{k}": v for k, v in flatten_state(iterates).items()}
    out.update({f"updates{k}": v for k, v in flatten_state(updates).items()})
    out.update({f"state{k}": v for k, v in flatten_state(states).items()})
    return out


def relative_errors(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    """Per leaf, the largest difference over the leaf's root mean square (inf and NaN equal)."""
    assert set(ours) == set(theirs), sorted(set(ours) ^ set(theirs))
    errors = {}
    for key, b in theirs.items():
        a, b = np.asarray(ours[key], np.float64), np.asarray(b, np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            difference = np.where(same, 0.0, np.abs(a - b))
            finite = b[np.isfinite(b)]
            scale = np.sqrt(np.mean(finite**2)) if finite.size else 1.0
        errors[key] = float(np.max(difference) / (scale or 1.0)) if difference.size else 0.0
    return errors


def assert_agree(
    make_ours: Callable[[], Any], make_theirs: Callable[[], Any], problem: str, steps: int
) -> dict[str, Any]:
    ours = trajectory(make_ours(), ol, problem, steps)
    theirs = trajectory(make_theirs(), optax, problem, steps)
    errors = relative_errors(ours, theirs)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= RTOL, f"{worst}: relative error {errors[worst]:.3g}"
    return ours


@pytest.mark.parametrize(
    "problem", ["quadratic", "ill_conditioned_quadratic", "rosenbrock", "logistic", "mlp"]
)
def test_lbfgs(problem: str) -> None:
    ours = assert_agree(ol.lbfgs, optax.lbfgs, problem, 20)
    # The line search was exercised: step sizes other than 1 were taken.
    assert np.any(ours["state[2].learning_rate"] != 1.0) or problem in ("quadratic", "logistic")


def test_lbfgs_with_small_memory_and_backtracking() -> None:
    assert_agree(
        lambda: ol.lbfgs(
            memory_size=3, linesearch=ol.scale_by_backtracking_linesearch(20, store_grad=True)
        ),
        lambda: optax.lbfgs(
            memory_size=3, linesearch=optax.scale_by_backtracking_linesearch(20, store_grad=True)
        ),
        "rosenbrock",
        25,
    )


@pytest.mark.parametrize("problem", ["rosenbrock", "logistic"])
def test_sgd_with_zoom_keeping_the_step_size(problem: str) -> None:
    kwargs = {
        "max_linesearch_steps": 15,
        "initial_guess_strategy": "keep",
        "max_learning_rate": 5.0,
    }
    assert_agree(
        lambda: oc.chain(oc.sgd(1.0), ol.scale_by_zoom_linesearch(**kwargs)),
        lambda: optax.chain(optax.sgd(1.0), optax.scale_by_zoom_linesearch(**kwargs)),
        problem,
        15,
    )


@pytest.mark.parametrize("problem", ["rosenbrock", "mlp"])
def test_sgd_with_backtracking(problem: str) -> None:
    kwargs = {"max_backtracking_steps": 20, "store_grad": True, "decrease_factor": 0.6}
    assert_agree(
        lambda: oc.chain(oc.sgd(1.0), ol.scale_by_backtracking_linesearch(**kwargs)),
        lambda: optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(**kwargs)),
        problem,
        15,
    )


# The documented differences: each appears only after a failed line search.


def _one_search(tx: Any, fn: Callable, params: Any, direction: Any, state: Any = None) -> Any:
    value, grad = jax.value_and_grad(fn)(params)
    state = tx.init(params) if state is None else state
    return tx.update(direction, state, params, value=value, grad=grad, value_fn=fn)


def test_failed_zoom_search_reports_the_step_it_returns() -> None:
    def bumpy(x: Any) -> Any:  # a slow descent, then a wall beyond 1.5
        return jnp.sum((x - 20.0) ** 2 / 400.0 + 1e3 * jax.nn.relu(x - 1.5) ** 2)

    x0, direction = jnp.zeros(1), jnp.ones(1)
    kwargs = {"max_linesearch_steps": 2, "initial_guess_strategy": "one"}
    ours = _one_search(ol.scale_by_zoom_linesearch(**kwargs), bumpy, x0, direction)
    theirs = _one_search(optax.scale_by_zoom_linesearch(**kwargs), bumpy, x0, direction)
    np.testing.assert_array_equal(ours[0], theirs[0])  # both return the safe step 1
    for field in ("learning_rate", "value", "grad"):
        np.testing.assert_array_equal(getattr(ours[1], field), getattr(theirs[1], field))
    # optref's info describes step 1 (sufficient decrease holds); Optax's describes the
    # last trial, step 2, which it did not take.
    assert float(ours[1].info.decrease_error) == 0.0
    assert float(theirs[1].info.decrease_error) > 0.0, "Optax now reports the returned step"


def test_backtracking_restarts_after_a_failed_search() -> None:
    def fn(x: Any) -> Any:
        return jnp.sum(jnp.log(1.0 - x))  # NaN beyond x = 1

    x0 = jnp.asarray([0.5])
    results = []
    for library in (ol, optax):
        tx = library.scale_by_backtracking_linesearch(3)
        _, state = _one_search(tx, fn, x0, jnp.asarray([100.0]))  # every trial is NaN
        assert float(state.learning_rate) == 0.0
        _, state = _one_search(tx, fn, x0, -0.1 * jax.grad(fn)(x0), state)
        results.append(float(state.learning_rate))
    # Optax grows the failed step size 0 (min(1.5 * 0, 1) = 0) and accepts 0 for ever.
    assert results == [1.0, 0.0], results


def test_complex_params_in_each_library_s_own_loop() -> None:
    """The deviation ``LBFGS_COMPLEX_GRADIENT``: with complex params, Optax's line search
    stores ``jax.grad``'s gradient, the conjugate of the descent gradient that update takes,
    and its ``value_and_grad_from_state`` returns it, so its own loop stalls."""
    loss = PROBLEMS["quadratic"].loss
    start = PROBLEMS["quadratic"].init(jnp.complex128)
    final = {}
    for library in (ol, optax):
        tx, value_and_grad = library.lbfgs(), library.value_and_grad_from_state(loss)

        def step(carry: Any, _: None, tx: Any = tx, value_and_grad: Any = value_and_grad) -> Any:
            params, state = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss)
            return (jax.tree.map(lambda p, u: p + u, params, updates), state), None

        (params, state), _ = jax.jit(
            lambda p, tx=tx, step=step: jax.lax.scan(step, (p, tx.init(p)), None, length=30)
        )(start)
        final[library.__name__] = float(loss(params))
        stored, expected = state[2].grad, jax.grad(loss)(params)
        if library is ol:
            expected = jax.tree.map(jnp.conj, expected)
        for a, b in zip(jax.tree.leaves(stored), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)
    initial = float(loss(start))
    assert final["optref.linesearch"] < 1e-20 * initial, final
    assert final["optax"] > 0.4 * initial, f"Optax now converges on complex params: {final}"
