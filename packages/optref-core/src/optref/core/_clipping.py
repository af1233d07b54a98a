"""Clipping of updates, elementwise or by their global norm."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._base import EmptyState, GradientTransformation, check_state
from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._leafwise import StatelessLeafwise
from ._numerics import compute_dtype
from ._tree import tree_l2_norm

__all__ = ["Clip", "ClipByGlobalNorm", "clip", "clip_by_global_norm"]


class Clip(StatelessLeafwise):
    """Clip every element of the updates to ``[-max_delta, max_delta]``.

    Built by :func:`clip`, whose docstring gives the math and the references.
    """

    max_delta: Array = eqx.field(converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("max_delta",)

    def __check_init__(self) -> None:
        check_range(self, "max_delta", self.max_delta, 0.0)

    def leaf(self, update: Array, param: Any, *constants: Any) -> Array:
        bound = self.max_delta
        return jnp.clip(update, -bound.astype(update.dtype), bound.astype(update.dtype))


def clip(max_delta: float | Array) -> Clip:
    """Clip every element of the updates.

    $$u_i \\mapsto \\max(-\\delta, \\min(u_i, \\delta))$$

    Reference: ``optax.clip``.
    """
    return Clip(max_delta)


class ClipByGlobalNorm(GradientTransformation):
    """Rescale the updates so that their global norm is at most ``max_norm``.

    Built by :func:`clip_by_global_norm`, whose docstring gives the math and the references.
    """

    max_norm: Array = eqx.field(converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("max_norm",)

    def __check_init__(self) -> None:
        check_range(self, "max_norm", self.max_norm, 0.0, low_inclusive=False)

    def init(self, params: PyTree) -> EmptyState:
        del params
        return EmptyState()

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, EmptyState]:
        check_state(self, updates, state, EmptyState, params)
        norm = tree_l2_norm(updates)
        max_norm = self.max_norm.astype(norm.dtype)
        # max_norm / max(norm, max_norm): one when under the bound; the divisor is never
        # zero, so neither value nor gradient has a 0/0.
        factor = max_norm / jnp.maximum(norm, max_norm)
        clipped = jax.tree.map(
            lambda g: (
                g.astype(compute_dtype(g.dtype)) * factor.astype(compute_dtype(g.dtype))
            ).astype(g.dtype),
            updates,
        )
        return clipped, state


def clip_by_global_norm(max_norm: float | Array) -> ClipByGlobalNorm:
    """Rescale the updates when their global norm exceeds ``max_norm``.

    $$u \\mapsto u \\cdot \\frac{c}{\\max(\\lVert u \\rVert_2, c)}$$

    The norm is over all leaves together. Reference: Pascanu et al., *On the difficulty
    of training recurrent neural networks* (2013); ``optax.clip_by_global_norm``.
    """
    return ClipByGlobalNorm(max_norm)
