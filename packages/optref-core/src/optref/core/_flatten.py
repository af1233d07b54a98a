"""Running a transformation on all the params concatenated into one vector."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from ._base import GradientTransformation
from ._inner import check_inner
from ._tree_check import check_inexact, check_tree_fits

__all__ = ["Flatten", "flatten", "tree_concatenate", "tree_split_like"]


def tree_concatenate(tree: PyTree) -> Array:
    """Every leaf raveled and concatenated into one vector (in the leaves' common dtype).

    $$\\operatorname{vec}(x) = (\\operatorname{vec}(x_1), \\ldots,
    \\operatorname{vec}(x_L))$$
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([0])
    return jnp.concatenate([jnp.reshape(x, [-1]) for x in leaves])


def tree_split_like(tree: PyTree, flat: Array) -> PyTree:
    """The inverse of :func:`tree_concatenate`: ``flat`` cut into the leaves of ``tree``.

    Each piece takes its leaf's shape and dtype.
    """
    leaves, treedef = jax.tree.flatten(tree)
    offsets = np.cumsum([np.size(x) for x in leaves])[:-1].tolist()
    pieces = jnp.split(flat, offsets) if leaves else []
    return treedef.unflatten(
        [jnp.reshape(p, jnp.shape(x)).astype(x.dtype) for p, x in zip(pieces, leaves, strict=True)]
    )


class Flatten(GradientTransformation):
    """``inner`` applied to the params and updates concatenated into one vector.

    Built by :func:`flatten`, whose docstring gives the math and the references.
    """

    inner: GradientTransformation

    def __check_init__(self) -> None:
        check_inner("flatten", "inner", self.inner)

    def init(self, params: PyTree) -> PyTree:
        return self.inner.init(tree_concatenate(params))

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, PyTree]:
        # Checked before the leaves are concatenated, so that a mismatch is reported at
        # its PyTree path rather than as a wrong length of the flat vector.
        check_inexact(updates, where="flatten", tree_name="updates")
        if params is not None:
            check_tree_fits(
                params, updates, where="flatten", reference_name="params", tree_name="updates"
            )
        flat_params = None if params is None else tree_concatenate(params)
        flat_updates, state = self.inner.update(
            tree_concatenate(updates), state, flat_params, **extra
        )
        return tree_split_like(updates, flat_updates), state


def flatten(inner: GradientTransformation) -> Flatten:
    """Apply ``inner`` to one vector that concatenates every leaf, then split the result.

    $$u \\mapsto \\operatorname{vec}^{-1}\\big(T(\\operatorname{vec}(u))\\big)$$

    The state is the inner state for that vector. The leaves are promoted to a common
    dtype to be concatenated. Fewer, larger operations can make a step on many small leaves
    faster, at a cost in compile time: on XLA:CPU, each leaf's slice of the result is a
    kernel compiled on its own, and the concatenations copy every leaf each step, which on
    large leaves costs more than it saves (the benchmarks page, "Flattening", measures
    both). Reference: ``optax.flatten``.
    """
    return Flatten(inner)
