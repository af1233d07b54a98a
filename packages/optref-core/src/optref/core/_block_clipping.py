"""Clipping each parameter block (leaf) to a maximum root mean square."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._leafwise import StatelessLeafwise
from ._numerics import compute_dtype, safe_rms

__all__ = ["ClipByBlockRms", "clip_by_block_rms"]


class ClipByBlockRms(StatelessLeafwise):
    """Rescale each leaf whose RMS exceeds ``threshold`` down to it.

    Built by :func:`clip_by_block_rms`, whose docstring gives the math and the references.
    """

    threshold: Array = eqx.field(converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("threshold",)

    def __check_init__(self) -> None:
        check_range(self, "threshold", self.threshold, 0.0, low_inclusive=False)

    def leaf(self, update: Array, param: Any, *constants: Any) -> Array:
        work = compute_dtype(update.dtype)
        rms = safe_rms(update)
        denominator = jnp.maximum(1, rms / self.threshold.astype(rms.dtype))
        return (update.astype(work) / denominator.astype(work)).astype(update.dtype)


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
