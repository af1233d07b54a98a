"""Adaptive gradient clipping: the update norm of each unit bounded by its parameters' norm."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._leafwise import StatelessLeafwise
from ._numerics import abs_sq, compute_dtype, safe_sqrt

__all__ = ["AdaptiveGradClip", "adaptive_grad_clip", "unitwise_norm"]

# Guards the division where an update unit is exactly zero (the clip is not taken there).
_DIVISION_FLOOR = 1e-6


def _unit_axes(x: Array, axis: int | tuple[int, ...] | None) -> int | tuple[int, ...] | None:
    """The axes a unit spans: ``axis`` if given, else by rank as in NFNets."""
    if axis is not None:
        return axis
    if jnp.squeeze(x).ndim <= 1:  # scalars and vectors (also (1, n) and the like)
        return None
    if x.ndim in (2, 3):  # linear (in, out) and multi-head (in, heads, out) kernels
        return 0
    if x.ndim == 4:  # convolution kernels HWIO
        return (0, 1, 2)
    if x.ndim == 5:  # 3-D convolution kernels DHWIO
        return (0, 1, 2, 3)
    raise ValueError(
        f"adaptive_grad_clip: cannot infer the unit axes of a parameter of shape {x.shape} "
        "(ranks 0 to 5 are known); pass axis=."
    )


def unitwise_norm(x: Array, axis: int | tuple[int, ...] | None = None) -> Array:
    """The Euclidean norm of each unit of ``x``, broadcast back to ``x``'s shape.

    $$\\lVert x \\rVert_{\\mathrm{unit}}(i) = \\Big(\\sum_{j \\in \\operatorname{unit}(i)}
    |x_j|^2\\Big)^{1/2}$$

    A unit is the slice of ``x`` along ``axis``; by default the whole array for scalars
    and vectors, axis 0 for rank 2 and 3 (the fan-in of a linear or multi-head kernel),
    axes (0, 1, 2) for rank 4 and (0, 1, 2, 3) for rank 5 (convolution kernels). Computed
    in at least float32 and returned in that dtype; the root has a zero (not NaN)
    derivative at zero. Reference: Brock et al. (2021). Optax: ``optax.unitwise_norm``.
    """
    x = jnp.asarray(x)
    work = compute_dtype(x.dtype)
    squares = abs_sq(x.astype(work))
    axes = _unit_axes(x, axis)
    total = jnp.sum(squares, axis=axes, keepdims=True)
    return jnp.broadcast_to(safe_sqrt(total), x.shape)


class AdaptiveGradClip(StatelessLeafwise):
    """Clip each unit's update to ``clipping * max(‖p‖_unit, eps)``.

    Built by :func:`adaptive_grad_clip`, whose docstring gives the math and the references.
    """

    clipping: Array = eqx.field(converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-3, converter=as_scalar_hyperparameter)
    axis: int | tuple[int, ...] | None = eqx.field(static=True, default=None)
    scalar_hyperparameters = ("clipping", "eps")
    params_needed_for = "the clip is relative to their norm"

    def __check_init__(self) -> None:
        check_range(self, "clipping", self.clipping, 0.0, low_inclusive=False)
        check_range(self, "eps", self.eps, 0.0)

    def leaf(self, update: Array, param: Array, *constants: Any) -> Array:
        work = compute_dtype(jnp.result_type(update.dtype, param.dtype))
        g_norm = unitwise_norm(update, self.axis).astype(jnp.finfo(work).dtype)
        p_norm = unitwise_norm(param, self.axis).astype(g_norm.dtype)
        eps = self.eps.astype(g_norm.dtype)
        max_norm = self.clipping.astype(g_norm.dtype) * jnp.maximum(p_norm, eps)
        floor = jnp.asarray(_DIVISION_FLOOR, g_norm.dtype)
        factor = max_norm / jnp.maximum(g_norm, floor)
        g_w = update.astype(work)
        return jnp.where(g_norm < max_norm, g_w, g_w * factor).astype(update.dtype)


def adaptive_grad_clip(
    clipping: float | Array,
    eps: float | Array = 1e-3,
    axis: int | tuple[int, ...] | None = None,
) -> AdaptiveGradClip:
    """Adaptive gradient clipping (AGC): bound each unit's update relative to its params.

    $$u_i \\mapsto \\begin{cases} u_i & \\lVert u \\rVert_{\\mathrm{unit}(i)} < \\lambda
    \\max(\\lVert p \\rVert_{\\mathrm{unit}(i)}, \\varepsilon) \\\\
    \\lambda \\max(\\lVert p \\rVert_{\\mathrm{unit}(i)}, \\varepsilon)\\,
    \\dfrac{u_i}{\\max(\\lVert u \\rVert_{\\mathrm{unit}(i)}, 10^{-6})} & \\text{otherwise}
    \\end{cases}$$

    Units are as in :func:`unitwise_norm` (``axis`` overrides the rank-based default).
    ``eps`` keeps zero-initialised params (biases) from freezing. Norms in at least
    float32. Reference: Brock, De, Smith & Simonyan, *High-Performance Large-Scale Image
    Recognition Without Normalization* (2021). Optax: ``optax.adaptive_grad_clip``.
    """
    if isinstance(axis, list):
        axis = tuple(axis)
    return AdaptiveGradClip(clipping, eps, axis)
