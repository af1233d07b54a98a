"""Keeping parameters non-negative: updates that would cross zero stop at zero."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._base import EmptyState
from ._numerics import compute_dtype
from ._stateless import _StatelessBase
from ._tree_check import check_real

__all__ = ["KeepParamsNonnegative", "keep_params_nonnegative"]


class KeepParamsNonnegative(_StatelessBase):
    """Replace ``u`` by ``-p`` wherever ``p + u < 0``."""

    def init(self, params: PyTree) -> EmptyState:
        check_real(params, where="keep_params_nonnegative")
        return super().init(params)

    def _apply(self, updates: PyTree, params: PyTree | None) -> PyTree:
        if params is None:
            raise ValueError(
                "keep_params_nonnegative: update needs params (the updates are cut where "
                "params + updates < 0); call update(updates, state, params)."
            )
        check_real(params, where="keep_params_nonnegative")

        def leaf(u: Array, p: Array) -> Array:
            work = compute_dtype(jnp.result_type(u.dtype, p.dtype))
            u_w, p_w = u.astype(work), p.astype(work)
            # The sum is formed in the compute dtype, so a float16 step that would round
            # the new parameter to a negative value is caught too.
            return jnp.where(p_w + u_w < 0, -p_w, u_w).astype(u.dtype)

        return jax.tree.map(leaf, updates, params)


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
