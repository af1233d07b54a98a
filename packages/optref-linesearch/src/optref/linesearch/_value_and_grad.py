"""Reusing the value and gradient that a line search computed at the new params."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from optref.core import tree_get

from ._objective import tree_cast_like, value_and_descent_gradient

__all__ = ["value_and_grad_from_state"]


def value_and_grad_from_state(
    value_fn: Callable[..., Array],
) -> Callable[..., tuple[Array, PyTree]]:
    """Like :func:`jax.value_and_grad`, but read the value and gradient from the state.

    Returns ``value_and_grad(params, *args, state, **kwargs) -> (value, grad)``. A line
    search (:func:`scale_by_zoom_linesearch`, or :func:`scale_by_backtracking_linesearch`
    with ``store_grad=True``) evaluates the objective and its gradient at the params it
    returns; the next step needs exactly those, so they are read from the state's
    ``value`` and ``grad`` fields (found wherever they are, e.g. ``state[2]`` of
    :func:`lbfgs`) instead of being computed again:

    $$(f, g) = \\begin{cases} (\\text{state.value}, \\text{state.grad}) &
    \\text{state.value finite} \\\\ (f(w), \\nabla f(w)) & \\text{otherwise (the first
    step, or a search that ended outside the domain)} \\end{cases}$$

    Only for deterministic objectives: with a new batch at each step the stored values
    belong to the old batch. The gradient of complex params follows Optax's convention
    (the conjugate of :func:`jax.grad`'s), as the line searches do.

    Raises :class:`ValueError` when the state holds no ``value`` or no ``grad`` (a
    backtracking search without ``store_grad=True``), and
    :class:`~optref.core.TreeKeyError` when several line searches' states hold one.
    Reference: ``optax.value_and_grad_from_state``.
    """
    evaluate = value_and_descent_gradient(value_fn)

    def value_and_grad(
        params: PyTree, *fn_args: Any, state: PyTree, **fn_kwargs: Any
    ) -> tuple[Array, PyTree]:
        value = tree_get(state, "value")
        grad = tree_get(state, "grad")
        if value is None or grad is None:
            missing = "value" if value is None else "grad"
            raise ValueError(
                f"value_and_grad_from_state: the state holds no {missing!r}. Use a line "
                "search that stores them: scale_by_zoom_linesearch, or "
                "scale_by_backtracking_linesearch(..., store_grad=True)."
            )
        value = jnp.asarray(value)

        def computed(_: None) -> tuple[Array, PyTree]:
            new_value, new_grad = evaluate(params, *fn_args, **fn_kwargs)
            return jnp.asarray(new_value).astype(value.dtype), tree_cast_like(new_grad, grad)

        return jax.lax.cond(jnp.isfinite(value), lambda _: (value, grad), computed, None)

    return value_and_grad
