"""Accumulating updates and emitting their sum every ``k`` steps."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._base import GradientTransformation, check_state, params_like
from ._hyperparameters import check_range
from ._numerics import compute_dtype, safe_increment
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = ["ApplyEvery", "ApplyEveryState", "apply_every"]


@jaxtyped(typechecker=typechecker)
class ApplyEveryState(eqx.Module):
    """The step within the current period and the updates accumulated in it.

    Optax calls this NamedTuple ``ApplyEvery``; its fields are the same.
    """

    count: Int[Array, ""]
    grad_acc: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


def as_step_count(value: Any) -> Any:
    """A number of steps as an array (a traced value passes through): a field converter."""
    if isinstance(value, jax.core.Tracer):
        return value
    return jnp.asarray(value)


class ApplyEvery(GradientTransformation):
    """Sum the updates over ``k`` steps; emit the sum at the ``k``-th, zeros before.

    Built by :func:`apply_every`, whose docstring gives the math and the references.
    """

    k: Array = eqx.field(default=1, converter=as_step_count)

    def __check_init__(self) -> None:
        check_range(self, "k", self.k, 1)

    def init(self, params: PyTree) -> ApplyEveryState:
        return ApplyEveryState(jnp.zeros([], jnp.int32), tree_zeros_like(params))

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, ApplyEveryState]:
        check_state(self, updates, state, ApplyEveryState, params)
        phase = state.count % self.k
        continuing = phase != 0
        emit = phase == self.k - 1

        def accumulate(g: Array, acc: Array) -> Array:
            work = compute_dtype(jnp.result_type(g.dtype, acc.dtype))
            total = jnp.where(continuing, acc.astype(work) + g.astype(work), g.astype(work))
            return total.astype(acc.dtype)

        grad_acc = jax.tree.map(accumulate, updates, state.grad_acc)
        new_updates = jax.tree.map(
            lambda g, acc: jnp.where(emit, acc, jnp.zeros_like(acc)).astype(g.dtype),
            updates,
            grad_acc,
        )
        return new_updates, ApplyEveryState(safe_increment(state.count) % self.k, grad_acc)


def apply_every(k: int | Array = 1) -> ApplyEvery:
    """Accumulate updates and apply their sum every ``k`` steps.

    $$a_t = \\begin{cases} g_t & t \\bmod k = 0 \\\\ a_{t-1} + g_t & \\text{otherwise}
    \\end{cases}, \\qquad u_t = \\begin{cases} a_t & t \\bmod k = k - 1 \\\\ 0 &
    \\text{otherwise} \\end{cases}$$

    Transformations before it in a chain still update their state at every step; to
    accumulate gradients before the whole optimizer, use :class:`MultiSteps`.
    Reference: ``optax.apply_every``.
    """
    return ApplyEvery(k)
