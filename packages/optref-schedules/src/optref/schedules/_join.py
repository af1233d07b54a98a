"""Joining schedules one after another at given boundaries."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Int

from ._base import Schedule, as_count, step_difference
from ._validation import ScheduleArgumentError, as_array, check_increasing, check_steps

__all__ = ["JoinSchedules", "join_at", "join_schedules"]


def join_at(
    count: Array, schedules: Sequence[Callable[[Array], ArrayLike]], boundaries: Array
) -> Array:
    """``schedules[k](count - boundaries[k - 1])`` on ``[boundaries[k - 1], boundaries[k])``.

    Every schedule is evaluated (the choice is a ``where``), so a schedule must give
    finite values, and finite gradients, for counts before its boundary too: all the
    schedules of this package do.
    """
    value = jnp.asarray(schedules[0](count))
    for index, schedule in enumerate(schedules[1:]):
        boundary = boundaries[index]
        value = jnp.where(count < boundary, value, schedule(step_difference(count, boundary)))
    return value


class JoinSchedules(Schedule):
    """``schedules[k]``, restarted from count 0, from ``boundaries[k - 1]`` on.

    Built by :func:`join_schedules`, whose docstring gives the math and the references.
    """

    schedules: tuple[Callable[[Array], ArrayLike], ...]
    boundaries: Int[Array, " n"] = eqx.field(converter=as_array)
    step_parameters = ("boundaries",)

    def __check_init__(self) -> None:
        name = "join_schedules"
        if not self.schedules:
            raise ScheduleArgumentError(f"{name}: schedules must not be empty.")
        for index, schedule in enumerate(self.schedules):
            if not callable(schedule):
                raise ScheduleArgumentError(
                    f"{name}: schedules[{index}] must be a callable count -> value, got "
                    f"{schedule!r}."
                )
        if jnp.ndim(self.boundaries) != 1 or self.boundaries.shape[0] != len(self.schedules) - 1:
            raise ScheduleArgumentError(
                f"{name}: boundaries must have one element less than schedules "
                f"(len(schedules) = {len(self.schedules)}), got shape "
                f"{jnp.shape(self.boundaries)}."
            )
        check_steps(name, "boundaries", self.boundaries, 0, why="Boundaries are step counts.")
        check_increasing(name, "boundaries", self.boundaries, strict=False)

    def __call__(self, count: ArrayLike) -> Array:
        return join_at(as_count(self, count), self.schedules, self.boundaries)


def join_schedules(
    schedules: Sequence[Callable[[Array], ArrayLike]], boundaries: Sequence[int]
) -> JoinSchedules:
    """Apply ``schedules`` one after another, each restarted from count 0 at its boundary.

    $$v(t) = f_k(t - b_k) \\quad \\text{for } b_k \\le t < b_{k+1}, \\qquad b_0 = 0,\\;
    b_{n} = \\infty$$

    ``schedules`` are any callables ``count -> value`` (the modules of this package are
    PyTrees, so their parameters stay differentiable leaves of the joined schedule; a
    plain function is a non-array leaf, so pass such a joined schedule through
    ``eqx.filter_jit`` rather than ``jax.jit``, as any module that holds a function).
    ``boundaries`` (one fewer
    than ``schedules``) must be non-negative and in non-decreasing order; a repeated
    boundary skips the schedule between. Raises :class:`ScheduleArgumentError` otherwise
    (Optax does not check, and out-of-order boundaries silently select the wrong piece).

    Reference: ``optax.join_schedules``.
    """
    return JoinSchedules(tuple(schedules), list(boundaries))
