"""Minimisers of the interpolating cubic and quadratic, for the zoom phase of a line search.

Both return the critical point and whether it exists. Where it does not (a degenerate
interval, a zero leading coefficient, a negative discriminant), the formulas are
evaluated on harmless stand-in values ("double where"), so neither the value nor its
derivative is NaN: a line search that is differentiated through never picks up a NaN
from an interpolation it did not use. Where the point exists, it is computed with
exactly the operations of Optax's ``_cubicmin`` and ``_quadmin`` (after SciPy's
``scipy.optimize._linesearch``), so the two agree to the last bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array

from optref.core import safe_sqrt

__all__ = ["cubic_minimizer", "quadratic_minimizer"]


def _nonzero(x: Array) -> Array:
    return jnp.where(x != 0, x, jnp.ones_like(x))


def cubic_minimizer(
    a: Array, fa: Array, fpa: Array, b: Array, fb: Array, c: Array, fc: Array
) -> tuple[Array, Array]:
    """The local minimiser of the cubic through $(a, f_a)$, $(b, f_b)$, $(c, f_c)$ with slope
    $f'_a$ at $a$, and whether it exists.

    $$p(x) = A (x-a)^3 + B (x-a)^2 + f'_a (x-a) + f_a, \\qquad
    x^\\star = a + \\frac{-B + \\sqrt{B^2 - 3 A f'_a}}{3A}$$

    with $A, B$ solving the two interpolation conditions at $b$ and $c$. Reference:
    Nocedal & Wright, *Numerical Optimization* (2006), eq. (3.59); Optax's
    ``_cubicmin``.
    """
    slope = fpa
    db = b - a
    dc = c - a
    denominator = (db * dc) ** 2 * (db - dc)
    matrix = jnp.array([[dc**2, -(db**2)], [-(dc**3), db**3]])
    rhs = jnp.array([fb - fa - slope * db, fc - fa - slope * dc])
    coefficients = jnp.dot(matrix, rhs, precision=jax.lax.Precision.HIGHEST)
    cubic, square = coefficients / _nonzero(denominator)
    radical = square * square - 3.0 * cubic * slope
    # safe_sqrt: 0 for a negative radical (the point does not exist) and a zero derivative
    # at 0, where the square root's is infinite.
    root = safe_sqrt(radical)
    xmin = a + (-square + root) / (3.0 * _nonzero(cubic))
    exists = (denominator != 0) & (cubic != 0) & (radical >= 0) & jnp.isfinite(xmin)
    return jnp.where(exists, xmin, a), exists


def quadratic_minimizer(
    a: Array, fa: Array, fpa: Array, b: Array, fb: Array
) -> tuple[Array, Array]:
    """The critical point of the quadratic through $(a, f_a)$, $(b, f_b)$ with slope $f'_a$ at
    $a$, and whether it exists.

    $$p(x) = B (x-a)^2 + f'_a (x-a) + f_a, \\qquad x^\\star = a - \\frac{f'_a}{2B}$$

    Reference: Nocedal & Wright (2006), eq. (3.58); Optax's ``_quadmin``.
    """
    db = b - a
    square_db = db**2
    curvature = (fb - fa - fpa * db) / _nonzero(square_db)
    xmin = a - fpa / (2.0 * _nonzero(curvature))
    exists = (square_db != 0) & (curvature != 0) & jnp.isfinite(xmin)
    return jnp.where(exists, xmin, a), exists
