"""Applying updates to params."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import PyTree

__all__ = ["apply_updates"]


def apply_updates(params: PyTree, updates: PyTree) -> PyTree:
    """Add the updates to the params, keeping each param's dtype.

    $$p \\mapsto p + u$$

    ``None`` leaves (of a filtered Equinox model) stay ``None``; a ``None`` update leaves
    its param unchanged. Reference: ``optax.apply_updates``.
    """

    def add(p: object, u: object) -> object:
        if p is None or u is None:
            return p
        p = jnp.asarray(p)
        return (p + jnp.asarray(u)).astype(p.dtype)

    return jax.tree.map(add, params, updates, is_leaf=lambda x: x is None)
