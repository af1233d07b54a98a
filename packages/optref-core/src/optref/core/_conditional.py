"""Wrappers that call the inner transformation only at the steps a condition chooses."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Int, PyTree, jaxtyped

from ._base import GradientTransformation, check_state
from ._hyperparameters import transformation_name
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


@jaxtyped(typechecker=typechecker)
class ConditionallyTransformState(eqx.Module):
    """The inner state and the number of steps so far (Optax's field order)."""

    inner_state: PyTree
    step: Int[Array, ""]


@jaxtyped(typechecker=typechecker)
class ConditionallyMaskState(eqx.Module):
    """The number of steps so far and the inner state (Optax's field order)."""

    step: Int[Array, ""]
    inner_state: PyTree


class _Conditional(GradientTransformation):
    """The inner transformation at the steps ``should_transform_fn(step)`` chooses.

    Subclasses say what the other steps give (``_otherwise``) and build their state.
    """

    inner: GradientTransformation
    should_transform_fn: Callable[..., Any] = eqx.field(static=True)
    forward_extra_args: bool = eqx.field(static=True, default=False)
    _state_type: ClassVar[type]

    @abc.abstractmethod
    def _otherwise(self, updates: PyTree) -> PyTree:
        """The updates at a step where the inner transformation is not applied."""

    @abc.abstractmethod
    def _state(self, step: Array, inner_state: PyTree) -> Any:
        """The state holding ``step`` and ``inner_state``."""

    def __check_init__(self) -> None:
        where = transformation_name(self)
        check_inner(where, "inner", self.inner)
        if not callable(self.should_transform_fn):
            raise TypeError(
                f"{where}: should_transform_fn must be a callable step -> bool, got "
                f"{self.should_transform_fn!r}."
            )

    def init(self, params: PyTree) -> Any:
        return self._state(jnp.zeros([], jnp.int32), self.inner.init(params))

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, Any]:
        check_state(self, updates, state, self._state_type)
        fn = self.should_transform_fn
        condition = fn(state.step, **extra) if self.forward_extra_args else fn(state.step)
        updates, inner_state = inner_update_if(
            condition, self.inner, updates, state.inner_state, params, extra, self._otherwise
        )
        return updates, self._state(safe_increment(state.step), inner_state)


class ConditionallyTransform(_Conditional):
    """The inner transformation where ``should_transform_fn(step)``; else updates unchanged.

    Built by :func:`conditionally_transform`, whose docstring gives the math and the references.
    """

    _state_type = ConditionallyTransformState

    def _otherwise(self, updates: PyTree) -> PyTree:
        return updates

    def _state(self, step: Array, inner_state: PyTree) -> ConditionallyTransformState:
        return ConditionallyTransformState(inner_state, step)


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


class ConditionallyMask(_Conditional):
    """The inner transformation where ``should_transform_fn(step)``; else zero updates.

    Built by :func:`conditionally_mask`, whose docstring gives the math and the references.
    """

    _state_type = ConditionallyMaskState

    def _otherwise(self, updates: PyTree) -> PyTree:
        return tree_zeros_like(updates)

    def _state(self, step: Array, inner_state: PyTree) -> ConditionallyMaskState:
        return ConditionallyMaskState(step, inner_state)


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
