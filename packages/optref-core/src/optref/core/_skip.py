"""Rules that reject an update in :class:`MultiSteps`: non-finite or too large updates."""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree

from ._tree import tree_l2_norm

__all__ = ["ShouldSkipUpdateFunction", "skip_large_updates", "skip_not_finite"]


class ShouldSkipUpdateFunction(Protocol):
    """``(updates, gradient_step, params) -> (should_skip, skip_state)``.

    ``should_skip`` is a scalar boolean array; ``skip_state`` is any tree of arrays, kept
    in :class:`MultiStepsState` ``.skip_state`` for monitoring. Reference:
    ``optax.ShouldSkipUpdateFunction``.
    """

    def __call__(
        self, updates: PyTree, gradient_step: ArrayLike, params: PyTree | None
    ) -> tuple[Array, PyTree]: ...


def skip_not_finite(
    updates: PyTree, gradient_step: ArrayLike, params: PyTree | None
) -> tuple[Array, dict[str, Array]]:
    """Skip the updates when any element is NaN or infinite.

    $$\\text{skip} \\iff n > 0, \\qquad n = \\#\\{(\\ell, i) : u_{\\ell,i}
    \\text{ not finite}\\}$$

    Returns ``(should_skip, {"should_skip": ..., "num_not_finite": n})``. Reference:
    ``optax.skip_not_finite``.
    """
    del gradient_step, params
    leaves = jax.tree.leaves(updates)
    counts = [jnp.sum(jnp.logical_not(jnp.isfinite(x))) for x in leaves]
    num_not_finite = jnp.sum(jnp.stack(counts)) if counts else jnp.zeros([], jnp.int32)
    should_skip = num_not_finite > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite}


def skip_large_updates(
    updates: PyTree,
    gradient_step: ArrayLike,
    params: PyTree | None,
    max_squared_norm: ArrayLike,
) -> tuple[Array, dict[str, Array]]:
    """Skip the updates when their squared global norm is not below ``max_squared_norm``.

    $$\\text{skip} \\iff \\neg\\big(\\lVert u \\rVert_2^2 < c\\big)$$

    so a NaN norm is skipped too. Use it as
    ``functools.partial(skip_large_updates, max_squared_norm=c)``. Returns
    ``(should_skip, {"should_skip": ..., "norm_squared": ...})``. Reference:
    ``optax.skip_large_updates``.
    """
    del gradient_step, params
    norm_squared = tree_l2_norm(updates, squared=True)
    should_skip = jnp.logical_not(norm_squared < max_squared_norm)
    return should_skip, {"should_skip": should_skip, "norm_squared": norm_squared}
