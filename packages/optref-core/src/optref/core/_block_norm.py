"""Per-block scaling: each leaf (a weight matrix, a bias vector) by a scalar of its own."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array

from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._leafwise import StatelessLeafwise
from ._numerics import compute_dtype, safe_l2_norm, safe_rms

__all__ = [
    "ScaleByParamBlockNorm",
    "ScaleByParamBlockRms",
    "ScaleByPerLeafFactor",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
]


class ScaleByPerLeafFactor(StatelessLeafwise):
    """Multiply each leaf of the updates by a scalar computed from that leaf and its param.

    Subclasses define ``_factor(update, param)``. ``update`` needs the params; the product
    is computed in :func:`~optref.core.compute_dtype` of the update and cast back.
    """

    params_needed_for = "the blocks' norms"

    @abc.abstractmethod
    def _factor(self, update: Array, param: Array) -> Array:
        """The scalar that multiplies ``update``."""

    def leaf(self, update: Array, param: Array, *constants: Any) -> Array:
        work = compute_dtype(update.dtype)
        factor = self._factor(update, param)
        return (update.astype(work) * factor.astype(work)).astype(update.dtype)


class ScaleByParamBlockNorm(ScaleByPerLeafFactor):
    """Multiply each leaf of the updates by ``max(‖p‖₂, min_scale)`` of its param.

    Built by :func:`scale_by_param_block_norm`, whose docstring gives the math and the references.
    """

    min_scale: Array = eqx.field(default=1e-3, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("min_scale",)

    def __check_init__(self) -> None:
        check_range(self, "min_scale", self.min_scale, 0.0)

    def _factor(self, update: Array, param: Array) -> Array:
        return safe_l2_norm(param, self.min_scale)


class ScaleByParamBlockRms(ScaleByPerLeafFactor):
    """Multiply each leaf of the updates by ``max(rms(p), min_scale)`` of its param.

    Built by :func:`scale_by_param_block_rms`, whose docstring gives the math and the references.
    """

    min_scale: Array = eqx.field(default=1e-3, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("min_scale",)

    def __check_init__(self) -> None:
        check_range(self, "min_scale", self.min_scale, 0.0)

    def _factor(self, update: Array, param: Array) -> Array:
        return safe_rms(param, self.min_scale)


def scale_by_param_block_norm(min_scale: float | Array = 1e-3) -> ScaleByParamBlockNorm:
    """Scale each block (leaf) of the updates by the norm of its params.

    $$u_\\ell \\mapsto u_\\ell \\cdot \\max\\big(\\lVert p_\\ell \\rVert_2,\\ s_{\\min}\\big)$$

    The norm is over all elements of the leaf (Frobenius for a matrix), computed in at
    least float32 and free of overflow (see :func:`~optref.core.safe_l2_norm`); its
    gradient is zero, not NaN, where it is clipped. Reference: Optax's
    ``optax.scale_by_param_block_norm``, used in Bernstein et al., *On the distance
    between two neural networks and the stability of learning* (2020).
    """
    return ScaleByParamBlockNorm(min_scale)


def scale_by_param_block_rms(min_scale: float | Array = 1e-3) -> ScaleByParamBlockRms:
    """Scale each block (leaf) of the updates by the root mean square of its params.

    $$u_\\ell \\mapsto u_\\ell \\cdot \\max\\Big(\\Big(\\tfrac{1}{n_\\ell}\\sum_i
    |p_{\\ell,i}|^2\\Big)^{1/2},\\ s_{\\min}\\Big)$$

    As in Adafactor's relative step size. Computed as
    :func:`~optref.core.safe_rms`. Reference: Shazeer & Stern, *Adafactor: Adaptive
    Learning Rates with Sublinear Memory Cost* (2018); Optax:
    ``optax.scale_by_param_block_rms``.
    """
    return ScaleByParamBlockRms(min_scale)
