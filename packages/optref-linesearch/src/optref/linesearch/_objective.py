"""The objective restricted to the search line: points, values, gradients and slopes.

A line search evaluates $\\phi(\\eta) = f(w + \\eta\\,u)$ for the current parameters $w$
and the update direction $u$. Its derivative, the *slope*, is the real inner product
$\\phi'(\\eta) = \\operatorname{Re}\\langle \\nabla f(w + \\eta u), u\\rangle$.

Gradients here follow Optax's convention for complex parameters: the gradient of a real
function of complex parameters is the conjugate of what :func:`jax.grad` returns (the
steepest-ascent direction), so that ``params - lr * grad`` descends. For real parameters
the conjugation changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from optref.core import compute_dtype, tree_add_scaled, tree_conj, tree_vdot

__all__ = [
    "descent_gradient",
    "point_on_line",
    "real_vdot",
    "scalar_dtype",
    "tree_cast_like",
    "value_and_descent_gradient",
]


def scalar_dtype(params: PyTree) -> jnp.dtype:
    """The dtype of a line search's scalars (values, step sizes, slopes) for ``params``.

    The real dtype of the widest leaf, at least float32: step sizes and values of
    float16 or bfloat16 models are not rounded to three significant digits.
    """
    leaves = [x for x in jax.tree.leaves(params) if hasattr(x, "dtype")]
    if not leaves:
        return jnp.dtype(jnp.float32)
    dtype = jnp.result_type(*(jnp.real(jnp.zeros((), x.dtype)).dtype for x in leaves))
    return jnp.dtype(compute_dtype(dtype))


def real_vdot(a: PyTree, b: PyTree) -> Array:
    """The real inner product of two trees, computed in the compute dtype of their leaves.

    $$\\operatorname{Re}\\langle a, b\\rangle = \\operatorname{Re}\\sum_{\\ell}\\sum_i
    \\overline{a_{\\ell,i}}\\, b_{\\ell,i}$$

    float16 and bfloat16 leaves are accumulated in float32, so the products of many
    small differences (L-BFGS curvature pairs) do not round to zero or overflow early.
    """

    def widen(x: Array) -> Array:
        return jnp.asarray(x).astype(compute_dtype(jnp.asarray(x).dtype))

    return jnp.real(tree_vdot(jax.tree.map(widen, a), jax.tree.map(widen, b)))


def descent_gradient(raw_gradient: PyTree) -> PyTree:
    """Optax's gradient for complex parameters: the conjugate of :func:`jax.grad`'s.

    $$g = \\overline{\\partial_x f - i\\,\\partial_y f} = \\partial_x f + i\\,\\partial_y f$$

    The identity for real parameters.
    """
    return tree_conj(raw_gradient)


def value_and_descent_gradient(
    fn: Callable[..., Array],
) -> Callable[..., tuple[Array, PyTree]]:
    """Like :func:`jax.value_and_grad`, with the gradient in Optax's complex convention."""
    value_and_grad = jax.value_and_grad(fn)

    def evaluate(params: PyTree, *args: Any, **kwargs: Any) -> tuple[Array, PyTree]:
        value, grad = value_and_grad(params, *args, **kwargs)
        return value, descent_gradient(grad)

    return evaluate


def point_on_line(params: PyTree, stepsize: Array, updates: PyTree) -> PyTree:
    """The point $w + \\eta\\,u$, leafwise in the compute dtype, stored in the params' dtypes."""
    return tree_add_scaled(params, stepsize, updates)


def tree_cast_like(tree: PyTree, like: PyTree) -> PyTree:
    """``tree`` with the dtypes of ``like``'s leaves (a loop carry keeps its types)."""
    return jax.tree.map(lambda x, y: jnp.asarray(x).astype(y.dtype), tree, like)
