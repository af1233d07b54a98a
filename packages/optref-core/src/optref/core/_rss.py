"""Adagrad: scaling by the root of the sum of all squared gradients so far."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Inexact, PyTree, jaxtyped

from ._alias import alias
from ._base import check_state, params_like
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import abs_sq, accumulator_ratio, compute_dtype
from ._scale import scale_by_learning_rate
from ._tree import tree_full_like
from ._typecheck import typechecker

__all__ = ["ScaleByRss", "ScaleByRssState", "adagrad", "scale_by_rss"]


@jaxtyped(typechecker=typechecker)
class ScaleByRssState(eqx.Module):
    """The running sum of the squared gradients, one per parameter."""

    sum_of_squares: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


class ScaleByRss(LeafwiseTransformation):
    """``g / sqrt(Σ|g|² + eps)``, zero where the sum is zero.

    Built by :func:`scale_by_rss`, whose docstring gives the math and the references.
    """

    initial_accumulator_value: Array = eqx.field(default=0.1, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-7, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("initial_accumulator_value", "eps")

    def __check_init__(self) -> None:
        check_range(self, "initial_accumulator_value", self.initial_accumulator_value, 0.0)
        check_range(self, "eps", self.eps, 0.0)

    def init(self, params: PyTree) -> ScaleByRssState:
        return ScaleByRssState(tree_full_like(params, self.initial_accumulator_value))

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByRssState, params)
        eps = self.eps

        def leaf(g: Array, p: Any, moments: tuple[Array], constants: tuple) -> Any:
            s = moments[0]
            work = compute_dtype(g.dtype)
            g_w = g.astype(work)
            total = jnp.real(s.astype(work)) + abs_sq(g_w)
            scaled = accumulator_ratio(g_w, total, eps)
            return scaled.astype(g.dtype), (total.astype(s.dtype),)

        return LeafwiseStep(
            leaf, lambda new: ScaleByRssState(new[0]), moments=(state.sum_of_squares,)
        )


def scale_by_rss(
    initial_accumulator_value: float | Array = 0.1, eps: float | Array = 1e-7
) -> ScaleByRss:
    """Scale by the root of the sum of all squared gradients to date (Adagrad's scaling).

    $$s_t = s_{t-1} + |g_t|^2, \\quad s_0 = a, \\qquad
    u_t = \\begin{cases} g_t / \\sqrt{s_t + \\varepsilon} & s_t > 0 \\\\ 0 & s_t = 0
    \\end{cases}$$

    The sum is taken and divided in at least float32 and stored in the params' dtype; for
    complex params $|g|^2$ is the squared modulus. Reference: Duchi, Hazan & Singer,
    *Adaptive Subgradient Methods for Online Learning and Stochastic Optimization*
    (2011). Optax: ``optax.scale_by_rss``.
    """
    return ScaleByRss(initial_accumulator_value, eps)


@alias
def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float | Array = 0.1,
    eps: float | Array = 1e-7,
) -> Chain:
    """Adagrad: :func:`scale_by_rss`, then :func:`scale_by_learning_rate`.

    $$p_{t} = p_{t-1} - \\eta_t\\,\\frac{g_t}{\\sqrt{a + \\sum_{\\tau \\le t} |g_\\tau|^2
    + \\varepsilon}}$$

    The step size decays as the squared gradients accumulate. Reference: Duchi et al.
    (2011); ``optax.adagrad``.
    """
    return chain(
        scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate)
    )
