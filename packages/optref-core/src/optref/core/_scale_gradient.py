"""Scaling the gradient of the backward pass while leaving the forward pass unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree

from ._numerics import compute_dtype

__all__ = ["scale_gradient"]


@jax.custom_vjp
def _scaled_identity(inputs: PyTree, scale: Array) -> PyTree:
    del scale
    return inputs


def _forward(inputs: PyTree, scale: Array) -> tuple[PyTree, Array]:
    return inputs, scale


def _backward(scale: Array, cotangents: PyTree) -> tuple[PyTree, Array]:
    def scale_leaf(t: Array) -> Array:
        work = compute_dtype(t.dtype)
        return (t.astype(work) * scale.astype(work)).astype(t.dtype)

    # The forward map does not depend on ``scale``: its derivative there is zero.
    return jax.tree.map(scale_leaf, cotangents), jnp.zeros_like(scale)


_scaled_identity.defvjp(_forward, _backward)


def scale_gradient(inputs: PyTree, scale: ArrayLike) -> PyTree:
    """The identity on ``inputs`` whose backward pass multiplies the cotangents by ``scale``.

    $$f(x) = x, \\qquad \\bar x = s\\,\\bar f$$

    A tool for shaping gradients inside a loss (for example, slowing down the gradient
    reaching an encoder, or reversing it for adversarial training with $s < 0$). A Python
    ``scale`` of 1 returns ``inputs`` unchanged and 0 applies
    :func:`jax.lax.stop_gradient`. The derivative with respect to ``scale`` itself is
    zero (the forward value does not depend on it). Reference: ``optax.scale_gradient``.
    """
    if isinstance(scale, int | float) and not isinstance(scale, bool):
        if scale == 1:
            return inputs
        if scale == 0:
            return jax.lax.stop_gradient(inputs)
    scale = jnp.asarray(scale)
    if not jnp.issubdtype(scale.dtype, jnp.inexact):
        scale = scale.astype(jnp.result_type(float))
    return _scaled_identity(inputs, scale)
