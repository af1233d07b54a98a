"""Wrappers that call the inner transformation only at the steps a condition chooses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Int, PyTree, jaxtyped

from ._base import GradientTransformation, check_state
from ._inner import check_inner, inner_update_if
from ._numerics import safe_increment
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = [
    "ConditionallyMask",
    "ConditionallyMaskState",
    "ConditionallyTransform",
    "ConditionallyTransformState",
    "conditionally_mask",
    "conditionally_transform",
]


def _check_condition_fn(where: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(
            f"{where}: should_transform_fn must be a callable step -> bool, got {fn!r}."
        )


def _condition(fn: Callable[..., Any], step: Array, forward: bool, extra: dict) -> Array:
    return fn(step, **extra) if forward else fn(step)


@jaxtyped(typechecker=typechecker)
class ConditionallyTransformState(eqx.Module):
    """The inner state and the number of steps so far (Optax's field order)."""

    inner_state: PyTree
    step: Int[Array, ""]


class ConditionallyTransform(GradientTransformation):
    """The inner transformation where ``should_transform_fn(step)``; else updates unchanged."""

    inner: GradientTransformation
    should_transform_fn: Callable[..., Any] = eqx.field(static=True)
    forward_extra_args: bool = eqx.field(static=True, default=False)

    def __check_init__(self) -> None:
        check_inner("conditionally_transform", "inner", self.inner)
        _check_condition_fn("conditionally_transform", self.should_transform_fn)

    def init(self, params: PyTree) -> ConditionallyTransformState:
        return ConditionallyTransformState(self.inner.init(params), jnp.zeros([], jnp.int32))

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, ConditionallyTransformState]:
        check_state(self, updates, state, ConditionallyTransformState)
        condition = _condition(self.should_transform_fn, state.step, self.forward_extra_args,
                               extra)
        updates, inner_state = inner_update_if(
            condition, self.inner, updates, state.inner_state, params, extra, lambda u: u
        )
        return updates, ConditionallyTransformState(inner_state, safe_increment(state.step))


def conditionally_transform(
    inner: GradientTransformation,
    should_transform_fn: Callable[..., Any],
    forward_extra_args: bool = False,
) -> ConditionallyTransform:
    """Apply ``inner`` only at the steps where ``should_transform_fn(step)`` is true.

    $$(u_t, s_t) \\mapsto \\begin{cases} T(u_t, s_t) & f(t) \\\\ (u_t, s_t) &
    \\text{otherwise} \\end{cases}$$

    ``step`` counts the calls to ``update`` from zero (an int32 scalar). At the other
    steps the updates pass through unchanged and the inner state is kept. With
    ``forward_extra_args``, the extra keyword arguments of ``update`` are passed to
    ``should_transform_fn`` too. Reference: ``optax.conditionally_transform``.
    """
    return ConditionallyTransform(inner, should_transform_fn, forward_extra_args)


@jaxtyped(typechecker=typechecker)
class ConditionallyMaskState(eqx.Module):
    """The number of steps so far and the inner state (Optax's field order)."""

    step: Int[Array, ""]
    inner_state: PyTree


class ConditionallyMask(GradientTransformation):
    """The inner transformation where ``should_transform_fn(step)``; else zero updates."""

    inner: GradientTransformation
    should_transform_fn: Callable[..., Any] = eqx.field(static=True)
    forward_extra_args: bool = eqx.field(static=True, default=False)

    def __check_init__(self) -> None:
        check_inner("conditionally_mask", "inner", self.inner)
        _check_condition_fn("conditionally_mask", self.should_transform_fn)

    def init(self, params: PyTree) -> ConditionallyMaskState:
        return ConditionallyMaskState(jnp.zeros([], jnp.int32), self.inner.init(params))

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, ConditionallyMaskState]:
        check_state(self, updates, state, ConditionallyMaskState)
        condition = _condition(self.should_transform_fn, state.step, self.forward_extra_args,
                               extra)
        updates, inner_state = inner_update_if(
            condition, self.inner, updates, state.inner_state, params, extra, tree_zeros_like
        )
        return updates, ConditionallyMaskState(safe_increment(state.step), inner_state)


def conditionally_mask(
    inner: GradientTransformation,
    should_transform_fn: Callable[..., Any],
    forward_extra_args: bool = False,
) -> ConditionallyMask:
    """Apply ``inner`` where ``should_transform_fn(step)`` is true; give zero updates elsewhere.

    $$(u_t, s_t) \\mapsto \\begin{cases} T(u_t, s_t) & f(t) \\\\ (0, s_t) &
    \\text{otherwise} \\end{cases}$$

    ``step`` counts the calls to ``update`` from zero; the inner state is kept at the
    masked steps. Reference: ``optax.conditionally_mask``.
    """
    return ConditionallyMask(inner, should_transform_fn, forward_extra_args)
