"""Replacing NaNs in the updates by zeros, and recording where they were."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, PyTree, jaxtyped

from ._base import check_state
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._tree_check import check_tree_fits
from ._typecheck import typechecker

__all__ = ["ZeroNans", "ZeroNansState", "zero_nans"]


@jaxtyped(typechecker=typechecker)
class ZeroNansState(eqx.Module):
    """For each leaf, whether its last update held a NaN."""

    found_nan: PyTree[Bool[Array, ""], " P"]  # pyright: ignore[reportUndefinedVariable]


class ZeroNans(LeafwiseTransformation):
    """Set NaN elements of the updates to zero.

    Built by :func:`zero_nans`, whose docstring gives the math and the references.
    """

    def init(self, params: PyTree) -> ZeroNansState:
        return ZeroNansState(jax.tree.map(lambda _: jnp.array(False), params))

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ZeroNansState, params)
        check_tree_fits(
            jax.tree.map(lambda _: 0, updates),
            jax.tree.map(lambda _: 0, state.found_nan),
            where="zero_nans",
            reference_name="updates",
            tree_name="state.found_nan",
        )

        def leaf(u: Array, p: Any, moments: tuple[Array], constants: tuple) -> Any:
            # The previous flag is not read: the new one is this update's alone.
            found_nan = jnp.any(jnp.isnan(u))
            return jnp.where(jnp.isnan(u), jnp.zeros_like(u), u), (found_nan,)

        return LeafwiseStep(leaf, lambda new: ZeroNansState(new[0]), moments=(state.found_nan,))


def zero_nans() -> ZeroNans:
    """Replace every NaN in the updates by zero.

    $$u_i \\mapsto \\begin{cases} 0 & u_i \\text{ is NaN} \\\\ u_i & \\text{otherwise}
    \\end{cases}$$

    The state records, for each leaf, whether its last update held a NaN (a complex
    element counts if either part is NaN); it is for inspection and does not change the
    next update. Infinities pass through. Reference: ``optax.zero_nans``.
    """
    return ZeroNans()
