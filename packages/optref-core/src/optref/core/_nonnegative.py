"""Keeping parameters non-negative: updates that would cross zero stop at zero."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._base import EmptyState
from ._leafwise import LeafwiseStep, StatelessLeafwise
from ._numerics import compute_dtype
from ._tree_check import check_real

__all__ = ["KeepParamsNonnegative", "keep_params_nonnegative"]


class KeepParamsNonnegative(StatelessLeafwise):
    """Replace ``u`` by ``-p`` wherever ``p + u < 0``.

    Built by :func:`keep_params_nonnegative`, whose docstring gives the math and the references.
    """

    params_needed_for = "the updates are cut where params + updates < 0"

    def init(self, params: PyTree) -> EmptyState:
        check_real(params, where="keep_params_nonnegative")
        return super().init(params)

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        step = super().leafwise(updates, state, params, **extra)
        check_real(params, where="keep_params_nonnegative")
        return step

    def leaf(self, update: Array, param: Array, *constants: Any) -> Array:
        work = compute_dtype(jnp.result_type(update.dtype, param.dtype))
        u_w, p_w = update.astype(work), param.astype(work)
        # The sum is formed in the compute dtype, so a float16 step that would round
        # the new parameter to a negative value is caught too.
        return jnp.where(p_w + u_w < 0, -p_w, u_w).astype(update.dtype)


def keep_params_nonnegative() -> KeepParamsNonnegative:
    """Modify the updates so that the params stay non-negative after they are applied.

    $$u_i \\mapsto \\begin{cases} -p_i & p_i + u_i < 0 \\\\ u_i & \\text{otherwise}
    \\end{cases}$$

    so $p_i + u_i \\ge 0$: a step that would cross zero stops at zero (a projection onto
    the non-negative orthant for non-negative params). Use it last in a chain; negative
    params are moved to zero. Real params only (:class:`TypeError` for complex ones, for
    which "non-negative" has no meaning). Reference: ``optax.keep_params_nonnegative``.
    """
    return KeepParamsNonnegative()
