"""Hashing by value, so that a schedule or a transformation is a function ``jax.jit`` accepts.

``jax.jit(schedule)`` and ``jax.jit(transformation.update)`` hash the function they
compile (a bound method hashes its module). Equinox's default hash of a module hashes
its leaves, which fails on array fields. :class:`HashedByValue` hashes the PyTree
structure and the leaves' dtypes, shapes and bytes instead: equal modules hash equal
(and compare equal), so they share compiled functions, and a module whose values
differ is compiled anew, never served a stale program.

``optref.core.GradientTransformation`` hashes the same way; this package does not
depend on optref-core, so it carries its own base class.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.core
import numpy as np

__all__ = ["HashedByValue"]


def _leaf_key(leaf: Any) -> Any:
    """A hashable key for a leaf: an array by its dtype, shape and bytes."""
    if isinstance(leaf, jax.core.Tracer):
        raise TypeError(
            "a schedule or transformation with traced values cannot be hashed: pass it to "
            "the jitted function as an argument (eqx.filter_jit) rather than closing over it."
        )
    if isinstance(leaf, jax.Array | np.ndarray | np.generic):
        array = np.asarray(leaf)
        return array.dtype.str, array.shape, array.tobytes()
    return leaf


class HashedByValue(eqx.Module):
    """An Equinox module hashed by its PyTree structure and its leaves' values."""

    def __hash__(self) -> int:
        leaves, treedef = jax.tree.flatten(self)
        return hash((treedef, tuple(_leaf_key(leaf) for leaf in leaves)))
