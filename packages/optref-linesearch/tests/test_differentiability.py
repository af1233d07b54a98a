"""Differentiating through L-BFGS: the loss after K steps with respect to the initial point.

Reverse mode, forward mode and central finite differences agree in float64 at every K
(the first step included), from an ordinary start and from a stationary point.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from optref.core import chain, scale, sgd
from optref.linesearch import (
    lbfgs,
    scale_by_backtracking_linesearch,
    scale_by_lbfgs,
    scale_by_zoom_linesearch,
)

K = 4


def losses_after_each_step(lib, tx, fn, steps=K, line_search=True):
    """``x0 -> [f(x_1), ..., f(x_K)]`` for the optimizer ``tx``."""

    def run(x0):
        return lib.run_solver(tx, fn, x0, steps, from_state=line_search)[2]

    run.steps = steps
    return run


def three_derivatives(run, x0, direction, h=1e-6):
    """The derivatives of ``run(x)`` (the loss after each step) at ``x0`` along ``direction``.

    Returns the gradient of ``w . run(x)`` (``w`` fixed positive weights, so one reverse
    pass covers every K and a NaN at any K shows in it), that gradient along
    ``direction``, the same from forward mode (``w`` times the forward derivative at each
    K), and the forward and central-difference derivatives at each K separately.
    """
    weights = jnp.asarray(np.random.default_rng(4).uniform(0.5, 1.5, size=K))[: run.steps]

    @eqx.filter_jit  # one compilation for the three
    def derivatives(x, v):
        shifted = jax.vmap(run)(jnp.stack([x + h * v, x - h * v]))
        gradient = jax.grad(lambda y: jnp.dot(weights, run(y)))(x)
        return gradient, jax.jvp(run, (x,), (v,))[1], shifted

    gradient, forward, (plus, minus) = derivatives(x0, direction)
    return (
        np.asarray(gradient),
        float(jnp.vdot(gradient, direction)),
        float(jnp.dot(weights, forward)),
        np.asarray(forward),
        np.asarray((plus - minus) / (2 * h)),
    )


def _check(gradient, reverse, forward, forward_each, central_each, fd_rtol=1e-6):
    """Finite; reverse equals forward mode; forward equals central differences at each K."""
    assert np.all(np.isfinite(gradient))
    np.testing.assert_allclose(reverse, forward, rtol=1e-9)
    scale = np.max(np.abs(forward_each))
    np.testing.assert_allclose(forward_each, central_each, rtol=fd_rtol, atol=fd_rtol * scale)


DIRECTION = np.random.default_rng(3).normal(size=4)


def flat(lib, name):
    """The problem as a function of a flat vector, and its initial point."""
    fn, init = lib.PROBLEMS[name]
    x0, unravel = ravel_pytree(init())
    return (lambda x: fn(unravel(x))), x0


def direction_like(x0):
    return jnp.asarray(np.random.default_rng(3).normal(size=x0.shape))


@pytest.mark.slow  # the default session runs the fixed step from the scaled first step
@pytest.mark.parametrize("name", ["rosenbrock", "ill_conditioned"])
def test_lbfgs_direction_with_a_fixed_step(lib, name: str) -> None:
    # scale_init_precond=False: the first step is not scaled by the capped inverse gradient
    # norm (a heuristic excluded from the derivative), so the derivative is exact even
    # where that norm exceeds 1, as it does here.
    fn, x0 = flat(lib, name)
    lr = {"rosenbrock": 1e-4, "ill_conditioned": 1e-5}[name]
    tx = chain(scale_by_lbfgs(memory_size=3, scale_init_precond=False), scale(-lr))
    run = losses_after_each_step(lib, tx, fn, line_search=False)
    _check(*three_derivatives(run, x0, direction_like(x0)))


def test_lbfgs_direction_with_the_first_step_scaling(lib) -> None:
    # Where |g_0| < 1 the capped scale min(1, 1/|g_0|) is 1 around x_0: the derivative
    # through the stop_gradient is the exact one. x_0 = 0 here, where Optax's is NaN.
    fn, x0 = flat(lib, "logistic")
    assert float(jnp.linalg.norm(jax.grad(fn)(x0))) < 1
    run = losses_after_each_step(lib, chain(scale_by_lbfgs(), scale(-1.0)), fn, line_search=False)
    _check(*three_derivatives(run, x0, direction_like(x0)))


def test_lbfgs_direction_at_a_stationary_point(lib) -> None:
    def fn(x):
        return jnp.sum(jnp.asarray([1.0, 3.0, 10.0, 0.5]) * x**2) + jnp.sum(x**4)

    minimum = jnp.zeros(4)
    # Every gradient is 0, so every curvature pair is (0, 0): Optax divides 0 by 0 here.
    tx = chain(scale_by_lbfgs(), scale(-0.1))
    run = losses_after_each_step(lib, tx, fn, line_search=False)
    gradient, _, forward, forward_each, central_each = three_derivatives(
        run, minimum, jnp.asarray(DIRECTION)
    )
    np.testing.assert_array_equal(gradient, 0.0)  # finite, and 0: the loss is minimal there
    assert forward == 0.0
    np.testing.assert_array_equal(forward_each, 0.0)  # at every K
    np.testing.assert_allclose(central_each, 0.0, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "linesearch", "scaled"),
    [
        # |g_0| > 1: the unscaled first step (the capped scale is excluded from derivatives).
        (
            "rosenbrock",
            scale_by_zoom_linesearch(20, initial_guess_strategy="one", differentiable=True),
            False,
        ),
        # |g_0| < 1: the default, scaled first step.
        pytest.param(
            "logistic",
            scale_by_backtracking_linesearch(20, store_grad=True, differentiable=True),
            True,
            marks=pytest.mark.slow,
        ),
    ],
    ids=["rosenbrock-zoom", "logistic-backtracking"],
)
def test_full_lbfgs_with_a_bounded_line_search(lib, name: str, linesearch, scaled: bool) -> None:
    # The step sizes' dependence on x_0 is included (zoom interpolates), so the derivative
    # is that of the algorithm as run.
    fn, x0 = flat(lib, name)
    tx = lbfgs(scale_init_precond=scaled, linesearch=linesearch)
    run = losses_after_each_step(lib, tx, fn)
    _check(*three_derivatives(run, x0, direction_like(x0)), fd_rtol=1e-5)


def _default_and_bounded(lib):
    fn, x0 = flat(lib, "logistic")
    default = losses_after_each_step(
        lib, chain(sgd(1.0), scale_by_zoom_linesearch(10)), fn, steps=2
    )
    bounded = losses_after_each_step(
        lib, chain(sgd(1.0), scale_by_zoom_linesearch(10, differentiable=True)), fn, steps=2
    )
    return default, bounded, x0


def test_default_line_search_has_no_reverse_mode(lib) -> None:
    default, _, x0 = _default_and_bounded(lib)
    with pytest.raises(ValueError, match="Reverse-mode differentiation does not work"):
        jax.grad(lambda x: default(x)[-1])(x0)


@pytest.mark.slow
def test_default_line_search_goes_forward_as_the_bounded_one(lib) -> None:
    default, bounded, x0 = _default_and_bounded(lib)
    v = direction_like(x0)
    forward = jax.jit(lambda run, x, v: jax.jvp(run, (x,), (v,))[1], static_argnums=0)
    np.testing.assert_array_equal(forward(default, x0, v), forward(bounded, x0, v))
