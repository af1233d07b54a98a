"""The test problems the conformance cases run on: small, smooth, deterministic."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

__all__ = ["PROBLEMS", "Problem", "descent_gradient"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """A loss and an initial point, in any floating dtype, real or complex.

    ``init(dtype)`` returns the initial params; ``loss(params)`` a real scalar.
    ``supports_complex`` says whether ``init`` accepts a complex dtype.
    """

    name: str
    init: Callable[[Any], PyTree]
    loss: Callable[[PyTree], Array]
    supports_complex: bool = False
    description: str = ""


def descent_gradient(loss: Callable[[PyTree], Array], params: PyTree) -> PyTree:
    """The gradient of a real loss, conjugated for complex params (a descent direction).

    ``jax.grad`` of a real function of complex inputs returns the conjugate of the
    steepest-ascent direction; conjugating it gives the gradient Optax's complex support
    expects.
    """
    return jax.tree.map(jnp.conj, jax.grad(loss)(params))


_QUAD_DIAG = np.array([1.0, 2.0, 5.0, 10.0, 0.5])
_QUAD_CENTER = np.array([1.0, -2.0, 0.5, 3.0, -1.0])


def _quadratic_init(dtype: Any) -> PyTree:
    dtype = jnp.dtype(dtype)
    w = np.array([0.3, -0.7, 1.5, -0.2, 2.0])
    b = np.array(0.5)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        w = w + 1j * np.array([0.4, 0.1, -0.3, 0.8, -0.5])
        b = b - 0.25j
    return {"w": jnp.asarray(w, dtype), "b": jnp.asarray(b, dtype)}


def _quadratic_loss(params: PyTree) -> Array:
    w, b = params["w"], params["b"]
    diag = jnp.asarray(_QUAD_DIAG, jnp.real(w).dtype)
    return (
        0.5 * jnp.sum(diag * jnp.abs(w - _QUAD_CENTER.astype(w.dtype)) ** 2) + jnp.abs(b - 1) ** 2
    )


def _rosenbrock_init(dtype: Any) -> PyTree:
    return jnp.asarray([-1.2, 1.0, -0.5, 0.8], dtype)


def _rosenbrock_loss(x: Array) -> Array:
    # b = 10 rather than the classic 100: the same curved valley, stiff enough to tell
    # optimizers apart, gentle enough that every case's step size is stable on it.
    return jnp.sum(10.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


_MLP_X = np.random.default_rng(0).normal(size=(16, 3))
_MLP_Y = np.sin(_MLP_X @ np.array([1.0, -2.0, 0.5]))[:, None]


def _mlp_init(dtype: Any) -> PyTree:
    rng = np.random.default_rng(1)
    dtype = jnp.dtype(dtype)

    def draw(*shape: int) -> Array:
        value = rng.normal(size=shape) / np.sqrt(shape[0])
        if jnp.issubdtype(dtype, jnp.complexfloating):
            value = value + 0.3j * rng.normal(size=shape) / np.sqrt(shape[0])
        return jnp.asarray(value, dtype)

    return {
        "hidden": {"w": draw(3, 8), "b": jnp.zeros(8, dtype)},
        "head": {"w": draw(8, 1), "b": jnp.zeros(1, dtype)},
    }


def _mlp_loss(params: PyTree) -> Array:
    dtype = params["hidden"]["w"].dtype
    x = jnp.asarray(_MLP_X, dtype)
    h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
    out = h @ params["head"]["w"] + params["head"]["b"]
    return jnp.mean(jnp.abs(out - jnp.asarray(_MLP_Y, dtype)) ** 2)


_ILL_DIAG = np.logspace(0, 4, 6)


def _ill_conditioned_init(dtype: Any) -> PyTree:
    return jnp.asarray(np.linspace(1.0, -1.0, 6), dtype)


def _ill_conditioned_loss(x: Array) -> Array:
    diag = jnp.asarray(_ILL_DIAG, x.dtype)
    return 0.5 * jnp.sum(diag * (x - 0.5) ** 2)


_LOGISTIC_X = np.random.default_rng(2).normal(size=(32, 4))
_LOGISTIC_Y = (_LOGISTIC_X @ np.array([1.0, -1.0, 0.5, 0.0]) > 0).astype(np.float64)


def _logistic_init(dtype: Any) -> PyTree:
    return {"w": jnp.zeros(4, dtype), "b": jnp.zeros((), dtype)}


def _logistic_loss(params: PyTree) -> Array:
    dtype = params["w"].dtype
    logits = jnp.asarray(_LOGISTIC_X, dtype) @ params["w"] + params["b"]
    y = jnp.asarray(_LOGISTIC_Y, dtype)
    return jnp.mean(jnp.logaddexp(0.0, logits) - y * logits) + 1e-2 * jnp.sum(params["w"] ** 2)


def _bilinear_init(dtype: Any) -> PyTree:
    return {"x": jnp.asarray([1.0], dtype), "y": jnp.asarray([1.0], dtype)}


def _bilinear_loss(params: PyTree) -> Array:
    # min over x, max over y of x*y: descending on x and ascending on y is descending on
    # this loss with y's gradient negated, which the game's gradient field gives.
    x, y = params["x"], jax.lax.stop_gradient(params["y"])
    x_fixed, y_var = jax.lax.stop_gradient(params["x"]), params["y"]
    return jnp.sum(x * y) - jnp.sum(x_fixed * y_var)


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in [
        Problem(
            "quadratic",
            _quadratic_init,
            _quadratic_loss,
            True,
            "A separable quadratic in a 5-vector and a scalar, condition number 20.",
        ),
        Problem(
            "rosenbrock",
            _rosenbrock_init,
            _rosenbrock_loss,
            False,
            "The 4-dimensional Rosenbrock function (b = 10) from (-1.2, 1, -0.5, 0.8).",
        ),
        Problem(
            "mlp",
            _mlp_init,
            _mlp_loss,
            True,
            "A 3-8-1 tanh network fitted to 16 fixed points (least squares).",
        ),
        Problem(
            "ill_conditioned_quadratic",
            _ill_conditioned_init,
            _ill_conditioned_loss,
            False,
            "A diagonal quadratic in 6 variables, condition number 1e4.",
        ),
        Problem(
            "logistic",
            _logistic_init,
            _logistic_loss,
            False,
            "L2-regularised logistic regression on 32 fixed points in 4 dimensions.",
        ),
        Problem(
            "bilinear",
            _bilinear_init,
            _bilinear_loss,
            False,
            "The min-max game min_x max_y x*y, as a gradient field (x, -y).",
        ),
    ]
}
r"""The test problems of the conformance cases, by name: each a loss $f(\theta)$, its initial
params $\theta_0$ and whether $f$ is convex; a case's ``problems`` name them."""
