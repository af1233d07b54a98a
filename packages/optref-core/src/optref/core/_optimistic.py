"""Optimistic gradient descent for min-max games."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Inexact, PyTree, jaxtyped

from ._alias import alias
from ._base import check_state, params_like
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import compute_dtype
from ._scale import scale_by_learning_rate
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = [
    "ScaleByOptimisticGradient",
    "ScaleByOptimisticGradientState",
    "optimistic_gradient_descent",
    "scale_by_optimistic_gradient",
]


@jaxtyped(typechecker=typechecker)
class ScaleByOptimisticGradientState(eqx.Module):
    """Whether no gradient has been seen yet, and the previous gradient."""

    is_initial_step: Bool[Array, ""]
    previous_gradient: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


class ScaleByOptimisticGradient(LeafwiseTransformation):
    """``(alpha + beta) g_t - beta g_{t-1}``, and ``alpha g_0`` on the first step.

    Built by :func:`scale_by_optimistic_gradient`, whose docstring gives the math and the
    references.
    """

    alpha: Array = eqx.field(default=1.0, converter=as_scalar_hyperparameter)
    beta: Array = eqx.field(default=1.0, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("alpha", "beta")

    def __check_init__(self) -> None:
        check_range(self, "alpha", self.alpha, 0.0)
        check_range(self, "beta", self.beta, 0.0)

    def init(self, params: PyTree) -> ScaleByOptimisticGradientState:
        return ScaleByOptimisticGradientState(jnp.array(True), tree_zeros_like(params))

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByOptimisticGradientState, params)
        beta, first = self.beta, state.is_initial_step
        both = self.alpha + self.beta  # in the hyperparameters' dtype, rounded once

        def leaf(g: Array, p: Any, moments: tuple[Array], constants: tuple) -> Any:
            stored = moments[0]
            work = compute_dtype(g.dtype)
            g_w = g.astype(work)
            # No previous gradient on the first step: use g itself, so that the update is
            # alpha * g rather than (alpha + beta) * g.
            previous = jnp.where(first, g_w, stored.astype(work))
            step = (both.astype(work) * g_w - beta.astype(work) * previous).astype(g.dtype)
            return step, (g.astype(stored.dtype),)

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByOptimisticGradientState(jnp.array(False), new[0]),
            moments=(state.previous_gradient,),
        )


def scale_by_optimistic_gradient(
    alpha: float | Array = 1.0, beta: float | Array = 1.0
) -> ScaleByOptimisticGradient:
    """The optimistic gradient update.

    $$u_t = \\begin{cases} \\alpha\\,g_0 & t = 0 \\\\
    (\\alpha + \\beta)\\,g_t - \\beta\\,g_{t-1} & t > 0 \\end{cases}$$

    On the first step there is no previous gradient; treating it as zero would give
    $(\\alpha+\\beta) g_0$, a first step too large by $\\beta g_0$ (Optax before 0.2.4).
    References: Mokhtari, Ozdaglar & Pattathil, *A Unified Analysis of Extra-gradient
    and Optimistic Gradient Methods for Saddle Point Problems* (2019); Daskalakis et al.,
    *Training GANs with Optimism* (2018). Optax: ``optax.scale_by_optimistic_gradient``.
    """
    return ScaleByOptimisticGradient(alpha, beta)


@alias
def optimistic_gradient_descent(
    learning_rate: ScalarOrSchedule,
    alpha: float | Array = 1.0,
    beta: float | Array = 1.0,
) -> Chain:
    """Optimistic gradient descent: :func:`scale_by_optimistic_gradient`, then the rate.

    $$p_{t+1} = p_t - \\eta\\,\\big((\\alpha+\\beta)\\,g_t - \\beta\\,g_{t-1}\\big), \\qquad
    p_1 = p_0 - \\eta\\,\\alpha\\,g_0$$

    Reference: Mokhtari et al. (2019); ``optax.optimistic_gradient_descent``.
    """
    return chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))
