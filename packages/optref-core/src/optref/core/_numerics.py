"""Differentiable, low-precision-safe scalar and elementwise numerics.

Every function here is safe to differentiate: where a branch is not taken, its
argument is replaced by a harmless value *before* the dangerous operation (the
"double-where" pattern), so no NaN reaches the gradient through the untaken branch.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

__all__ = [
    "bias_correction",
    "compute_dtype",
    "safe_div",
    "safe_increment",
    "safe_norm",
    "safe_sqrt",
]


def compute_dtype(dtype: jnp.dtype) -> jnp.dtype:
    """The dtype in which optref does elementwise arithmetic for leaves of ``dtype``.

    Low-precision floats (float16, bfloat16 and their complex counterparts) are
    promoted to at least float32 for the arithmetic, and the result is cast back to the
    leaf's dtype. float32 and float64 are used as they are.

    $$\\operatorname{compute\\_dtype}(d) = \\operatorname{promote}(d, \\mathrm{float32})$$
    """
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        return dtype
    return jnp.promote_types(dtype, jnp.float32)


def safe_div(numerator: ArrayLike, denominator: ArrayLike, fallback: ArrayLike = 0.0) -> Array:
    """``numerator / denominator`` where the denominator is nonzero, else ``fallback``.

    $$\\operatorname{safe\\_div}(a, b) = \\begin{cases} a / b & b \\ne 0 \\\\
    \\text{fallback} & b = 0 \\end{cases}$$

    The division is done on a denominator in which zeros are replaced by ones, so the
    gradient through the untaken branch is zero rather than NaN.
    """
    numerator = jnp.asarray(numerator)
    denominator = jnp.asarray(denominator)
    is_zero = denominator == 0
    safe_denominator = jnp.where(is_zero, jnp.ones_like(denominator), denominator)
    return jnp.where(is_zero, fallback, numerator / safe_denominator)


def safe_sqrt(x: ArrayLike) -> Array:
    """``sqrt(x)`` for ``x >= 0`` with a finite gradient at zero.

    $$\\operatorname{safe\\_sqrt}(x) = \\sqrt{\\max(x, 0)}, \\qquad
    \\frac{d}{dx}\\operatorname{safe\\_sqrt}(0) := 0$$

    The derivative of the square root is infinite at zero; here it is defined as zero
    there (the subgradient that keeps a norm differentiable at the origin).
    """
    x = jnp.asarray(x)
    positive = x > 0
    safe_x = jnp.where(positive, x, jnp.ones_like(x))
    return jnp.where(positive, jnp.sqrt(safe_x), jnp.zeros_like(x))


def safe_norm(x: ArrayLike, min_norm: ArrayLike = 0.0, ord: int | str | None = None) -> Array:
    """``max(‖x‖, min_norm)`` with a gradient that is zero, not NaN, where ``‖x‖ <= min_norm``.

    $$\\operatorname{safe\\_norm}(x) = \\max(\\lVert x \\rVert, m)$$

    ``ord`` is as in :func:`jax.numpy.linalg.norm` over the flattened array.
    """
    x = jnp.asarray(x)
    norm = jnp.linalg.norm(x.ravel(), ord=ord)
    above = norm > min_norm
    safe_x = jnp.where(above, x, jnp.ones_like(x))
    return jnp.where(above, jnp.linalg.norm(safe_x.ravel(), ord=ord), min_norm)


def bias_correction(decay: ArrayLike, count: ArrayLike) -> Array:
    """Adam's bias-correction factor ``1 - decay**count``, computed without cancellation.

    $$1 - \\beta^t = -\\operatorname{expm1}(t \\cdot \\operatorname{log1p}(\\beta - 1))$$

    Subtracting ``decay**count`` from one loses every significant digit when the power
    is close to one (``decay`` close to one and ``count`` small, the first steps of
    Adam with ``b2 = 0.999`` in float32 or bfloat16). The ``expm1``/``log1p`` form keeps
    full relative precision. Kingma & Ba, *Adam: A Method for Stochastic Optimization*
    (2015), Algorithm 1.

    The result is in the floating dtype of ``decay`` (at least float32).
    """
    decay = jnp.asarray(decay)
    dtype = compute_dtype(jnp.result_type(decay, jnp.float32))
    decay = decay.astype(dtype)
    t = jnp.asarray(count).astype(dtype)
    return -jnp.expm1(t * jnp.log1p(decay - 1))


def safe_increment(count: Array) -> Array:
    """``count + 1``, saturating at the largest value of ``count``'s integer dtype.

    A step counter in int32 would wrap to a negative number after 2³¹ - 1 steps; this
    stops at the maximum instead, as Optax's counters do.
    """
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        maximum = jnp.iinfo(count.dtype).max
        return jnp.where(count < maximum, count + 1, count)
    return count + 1

