"""Gradient centralisation: removing each output unit's mean from the updates."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array

from ._leafwise import StatelessLeafwise
from ._numerics import compute_dtype

__all__ = ["Centralize", "centralize"]


def _subtract_mean(u: Array) -> Array:
    if u.ndim < 2:
        return u
    work = compute_dtype(u.dtype)
    u_w = u.astype(work)
    return (u_w - jnp.mean(u_w, axis=tuple(range(1, u.ndim)), keepdims=True)).astype(u.dtype)


class Centralize(StatelessLeafwise):
    """Subtract from each leaf of rank two or more its mean over all axes but the first.

    Built by :func:`centralize`, whose docstring gives the math and the references.
    """

    def leaf(self, update: Array, param: Any, *constants: Any) -> Array:
        return _subtract_mean(update)


def centralize() -> Centralize:
    """Centralise the updates: subtract, for each index of the leading axis, the mean of the rest.

    $$u_{i,\\ldots} \\mapsto u_{i,\\ldots} - \\frac{1}{n}\\sum_{j} u_{i,j}$$

    where $j$ runs over all the other axes (flattened, $n$ elements); leaves of rank 0
    and 1 (biases, scalars) are left as they are. The mean is taken in at least float32.
    Reference: Yong, Huang, Hua & Zhang, *Gradient Centralization: A New Optimization
    Technique for Deep Neural Networks* (2020). Optax: ``optax.centralize``.
    """
    return Centralize()
