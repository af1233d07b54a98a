"""Target networks: Polyak averages and periodic copies of the params."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree

from ._numerics import compute_dtype
from ._tree import tree_where

__all__ = ["incremental_update", "periodic_update"]


def incremental_update(new_tensors: PyTree, old_tensors: PyTree, step_size: ArrayLike) -> PyTree:
    """The Polyak (exponential moving) average of the params, one step of it.

    $$\\bar\\theta \\leftarrow \\tau\\,\\theta + (1 - \\tau)\\,\\bar\\theta$$

    with $\\tau$ = ``step_size``, $\\theta$ = ``new_tensors`` and $\\bar\\theta$ =
    ``old_tensors``; each leaf keeps the old tensor's dtype (computed in float32 for
    float16 and bfloat16). ``None`` leaves stay ``None``. Reference: Polyak & Juditsky,
    *Acceleration of Stochastic Approximation by Averaging* (1992);
    ``optax.incremental_update``.
    """
    tau = jnp.asarray(step_size)

    def average(new: Array | None, old: Array) -> Array | None:
        if new is None:
            return None
        work = compute_dtype(jnp.result_type(new, old))
        t = tau.astype(work)
        return (t * new.astype(work) + (1 - t) * old.astype(work)).astype(old.dtype)

    return jax.tree.map(average, new_tensors, old_tensors, is_leaf=lambda x: x is None)


def periodic_update(
    new_tensors: PyTree, old_tensors: PyTree, steps: ArrayLike, update_period: ArrayLike
) -> PyTree:
    """A copy of the params refreshed every ``update_period`` steps.

    $$\\bar\\theta \\leftarrow \\begin{cases} \\theta & t \\bmod P = 0 \\\\ \\bar\\theta &
    \\text{otherwise} \\end{cases}$$

    with $t$ = ``steps`` and $P$ = ``update_period``. Reference: Mnih et al., *Human-level
    control through deep reinforcement learning* (2015); Grill et al., *Bootstrap Your Own
    Latent* (2020); ``optax.periodic_update``.
    """
    return tree_where(jnp.mod(steps, update_period) == 0, new_tensors, old_tensors)
