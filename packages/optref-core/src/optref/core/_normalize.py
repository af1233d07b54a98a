"""Normalised gradient descent: dividing the updates by their global norm."""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, PyTree

from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._numerics import compute_dtype, safe_div
from ._stateless import _StatelessBase
from ._tree import tree_l2_norm

__all__ = ["NormalizeByUpdateNorm", "normalize_by_update_norm"]


class NormalizeByUpdateNorm(_StatelessBase):
    """``scale_factor * u / (‖u‖ + eps)``.

    Built by :func:`normalize_by_update_norm`, whose docstring gives the math and the references.
    """

    scale_factor: Array = eqx.field(default=1.0, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-6, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("scale_factor", "eps")

    def __check_init__(self) -> None:
        check_range(self, "eps", self.eps, 0.0)

    def _apply(self, updates: PyTree, params: PyTree | None) -> PyTree:
        norm = tree_l2_norm(updates)
        # Zero, not 0/0, for a zero update with eps = 0.
        factor = safe_div(self.scale_factor.astype(norm.dtype), norm + self.eps.astype(norm.dtype))

        def scale_leaf(u: Array) -> Array:
            work = compute_dtype(u.dtype)
            return (u.astype(work) * factor.astype(work)).astype(u.dtype)

        return jax.tree.map(scale_leaf, updates)


def normalize_by_update_norm(
    scale_factor: float | Array = 1.0, eps: float | Array = 1e-6
) -> NormalizeByUpdateNorm:
    """Scale the updates by the inverse of their global norm.

    $$u \\mapsto s\\,\\frac{u}{\\lVert u \\rVert_2 + \\varepsilon}$$

    The norm is over all leaves together, in at least float32, with a zero (not NaN)
    derivative at zero; with ``eps = 0`` a zero update stays zero. ``scale_factor = -1``
    gives normalised gradient descent with unit steps. Reference: Nesterov, *Introductory
    Lectures on Convex Optimization* (2004), section 3.2.3 (normalised gradient method).
    Optax: ``optax.normalize_by_update_norm``.
    """
    return NormalizeByUpdateNorm(scale_factor, eps)
