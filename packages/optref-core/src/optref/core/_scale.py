"""Scaling by a constant, a learning rate or a schedule."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PyTree, jaxtyped

from ._base import EmptyState, check_state
from ._hyperparameters import (
    HyperparameterError,
    ScalarOrSchedule,
    as_scalar_hyperparameter,
    resolve,
)
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import computed_once, safe_increment
from ._stateless import Identity, identity
from ._typecheck import typechecker

__all__ = [
    "Scale",
    "ScaleByLearningRate",
    "ScaleBySchedule",
    "ScaleByScheduleState",
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
]


@jaxtyped(typechecker=typechecker)
class ScaleByScheduleState(eqx.Module):
    """The step count of a schedule-driven scaling."""

    count: Int[Array, ""]


def _zero_count() -> Array:
    return jnp.zeros([], jnp.int32)


def _scaling(step_size: Array, new_state: PyTree) -> LeafwiseStep:
    """The leafwise step ``g -> step_size * g``, the scalar cast to each leaf's dtype."""
    step_size = jnp.asarray(step_size)

    def leaf(g: Array, p: Any, moments: tuple, constants: tuple) -> Any:
        return step_size.astype(g.dtype) * g, ()

    return LeafwiseStep(leaf, lambda new: new_state)


class Scale(LeafwiseTransformation):
    """Multiply the updates by a constant ``step_size``.

    Built by :func:`scale`, whose docstring gives the math and the references.
    """

    step_size: Array = eqx.field(converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("step_size",)

    def init(self, params: PyTree) -> EmptyState:
        del params
        return EmptyState()

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, EmptyState, params)
        return _scaling(self.step_size, state)


def scale(step_size: float | Array) -> Scale:
    """Scale the updates by a constant.

    $$u \\mapsto \\alpha\\,u$$

    Reference: ``optax.scale``.
    """
    return Scale(step_size)


class ScaleBySchedule(LeafwiseTransformation):
    """Multiply the updates by ``step_size_fn(count)``.

    Built by :func:`scale_by_schedule`, whose docstring gives the math and the references.
    """

    step_size_fn: Any

    def __check_init__(self) -> None:
        if not callable(self.step_size_fn):
            raise TypeError(
                f"scale_by_schedule: step_size_fn must be a callable count -> value, "
                f"got {self.step_size_fn!r}."
            )

    def init(self, params: PyTree) -> ScaleByScheduleState:
        del params
        return ScaleByScheduleState(_zero_count())

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByScheduleState, params)
        step_size = computed_once(self.step_size_fn(state.count))
        return _scaling(step_size, ScaleByScheduleState(safe_increment(state.count)))


def scale_by_schedule(step_size_fn: Any) -> ScaleBySchedule:
    """Scale the updates by a schedule of the step count.

    $$u_t \\mapsto \\alpha(t)\\,u_t, \\qquad t = 0, 1, \\ldots$$

    Reference: ``optax.scale_by_schedule``.
    """
    return ScaleBySchedule(step_size_fn)


class ScaleByLearningRate(LeafwiseTransformation):
    """Multiply the updates by ``-learning_rate`` (or ``+`` without ``flip_sign``).

    Built by :func:`scale_by_learning_rate`, whose docstring gives the math and the references.
    """

    learning_rate: ScalarOrSchedule
    flip_sign: bool = eqx.field(static=True, default=True)
    schedule_hyperparameters = ("learning_rate",)

    def __check_init__(self) -> None:
        if self.learning_rate is None:
            raise HyperparameterError.for_argument(
                "scale_by_learning_rate",
                "learning_rate",
                None,
                "must be a number, an array or a callable count -> value, got None; "
                "scale_by_learning_rate(None) and the aliases given learning_rate=None "
                "apply no scaling (identity())",
            )

    def _is_schedule(self) -> bool:
        return callable(self.learning_rate) and not isinstance(self.learning_rate, jax.Array)

    def init(self, params: PyTree) -> EmptyState | ScaleByScheduleState:
        del params
        return ScaleByScheduleState(_zero_count()) if self._is_schedule() else EmptyState()

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        sign = -1 if self.flip_sign else 1
        if self._is_schedule():
            check_state(self, updates, state, ScaleByScheduleState, params)
            step_size = computed_once(sign * resolve(self.learning_rate, state.count))
            return _scaling(step_size, ScaleByScheduleState(safe_increment(state.count)))
        check_state(self, updates, state, EmptyState, params)
        return _scaling(sign * jnp.asarray(self.learning_rate), state)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule | None = None, *, flip_sign: bool = True
) -> ScaleByLearningRate | Identity:
    """Scale the updates by the learning rate, with a minus sign for descent.

    $$u_t \\mapsto -\\eta_t\\,u_t$$

    ``learning_rate`` is a number, an array or a callable ``count -> value`` (a
    schedule); with a schedule the state counts the steps. ``None`` means no scaling: the
    result is :func:`identity` (so ``adam(None)`` gives Adam's direction unscaled, for a
    line search or a wrapper to scale). Reference: ``optax.scale_by_learning_rate``.
    """
    if learning_rate is None:
        return identity()
    return ScaleByLearningRate(learning_rate, flip_sign)
