"""Clipping each parameter block (leaf) to a maximum root mean square."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._numerics import compute_dtype, safe_rms
from ._stateless import _StatelessBase

__all__ = ["ClipByBlockRms", "clip_by_block_rms"]


class ClipByBlockRms(_StatelessBase):
    """Rescale each leaf whose RMS exceeds ``threshold`` down to it."""

    threshold: Array = eqx.field(converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("threshold",)

    def __check_init__(self) -> None:
        check_range(self, "threshold", self.threshold, 0.0, low_inclusive=False)

    def _apply(self, updates: PyTree, params: PyTree | None) -> PyTree:
        threshold = self.threshold

        def clip_leaf(u: Array) -> Array:
            work = compute_dtype(u.dtype)
            rms = safe_rms(u)
            denominator = jnp.maximum(1, rms / threshold.astype(rms.dtype))
            return (u.astype(work) / denominator.astype(work)).astype(u.dtype)

        return jax.tree.map(clip_leaf, updates)


def clip_by_block_rms(threshold: float | Array) -> ClipByBlockRms:
    """Clip every parameter block (leaf of the tree) to a root mean square of ``threshold``.

    $$u_\\ell \\mapsto \\frac{u_\\ell}{\\max\\big(1,\\ \\operatorname{rms}(u_\\ell) / c\\big)},
    \\qquad \\operatorname{rms}(u_\\ell) = \\Big(\\frac{1}{n_\\ell}\\sum_i |u_{\\ell,i}|^2
    \\Big)^{1/2}$$

    A block is one leaf: a weight matrix, a bias vector. The RMS is computed in at least
    float32 with a power-of-two rescaling (:func:`optref.core.safe_rms`), so huge float16
    or bfloat16 updates are clipped rather than zeroed by an overflowing square.
    Reference: Shazeer & Stern (2018), section 6 (Adafactor's update clipping).
    Optax: ``optax.clip_by_block_rms``.
    """
    return ClipByBlockRms(threshold)
