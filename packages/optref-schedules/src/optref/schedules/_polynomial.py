"""Polynomial and linear transitions from an initial to an end value."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, ArrayLike

from ._base import Schedule, as_count, step_difference, value_dtypes
from ._transition import transition
from ._validation import as_array, check_steps, check_value

__all__ = ["LinearSchedule", "PolynomialSchedule", "linear_schedule", "polynomial_schedule"]

ZERO_STEPS_NOTE = (
    "A zero-length transition is a step from init_value to end_value at "
    "transition_begin (the formula's limit); Optax instead holds init_value forever."
)


def _check_steps(owner: Schedule, steps: Array, begin: Array) -> None:
    check_steps(owner, "transition_steps", steps, 0, why=ZERO_STEPS_NOTE)
    check_steps(
        owner,
        "transition_begin",
        begin,
        0,
        why="(Optax replaces a negative transition_begin by 0 silently.)",
    )


def polynomial_value(
    count: Array,
    init_value: Array,
    end_value: Array,
    transition_steps: Array,
    transition_begin: Array | int,
    power: Array | None,
) -> Array:
    """The polynomial (``power``) or linear (``power=None``) schedule's value at ``count``."""
    dtype, work = value_dtypes(init_value, end_value, power)
    done = step_difference(count, transition_begin)
    value = transition(
        init_value.astype(work),
        end_value.astype(work),
        done,
        step_difference(transition_steps, done),
        work,
        power=power,
    )
    return value.astype(dtype)


class PolynomialSchedule(Schedule):
    """``(init_value - end_value) * (1 - s)**power + end_value`` over ``transition_steps``.

    Built by :func:`polynomial_schedule`, whose docstring gives the math and the references.
    """

    init_value: Array = eqx.field(converter=as_array)
    end_value: Array = eqx.field(converter=as_array)
    power: Array = eqx.field(converter=as_array)
    transition_steps: Array = eqx.field(converter=as_array)
    transition_begin: Array = eqx.field(default=0, converter=as_array)
    value_parameters = ("init_value", "end_value", "power")
    step_parameters = ("transition_steps", "transition_begin")

    def __check_init__(self) -> None:
        _check_steps(self, self.transition_steps, self.transition_begin)
        check_value(
            self,
            "power",
            self.power,
            0.0,
            low_inclusive=False,
            why="With power <= 0 the value at the end of the transition is undefined.",
        )

    def __call__(self, count: ArrayLike) -> Array:
        return polynomial_value(
            as_count(self, count),
            self.init_value,
            self.end_value,
            self.transition_steps,
            self.transition_begin,
            self.power,
        )


class LinearSchedule(Schedule):
    """A straight line from ``init_value`` to ``end_value`` over ``transition_steps``.

    Built by :func:`linear_schedule`, whose docstring gives the math and the references.
    """

    init_value: Array = eqx.field(converter=as_array)
    end_value: Array = eqx.field(converter=as_array)
    transition_steps: Array = eqx.field(converter=as_array)
    transition_begin: Array = eqx.field(default=0, converter=as_array)
    value_parameters = ("init_value", "end_value")
    step_parameters = ("transition_steps", "transition_begin")

    def __check_init__(self) -> None:
        _check_steps(self, self.transition_steps, self.transition_begin)

    def __call__(self, count: ArrayLike) -> Array:
        return polynomial_value(
            as_count(self, count),
            self.init_value,
            self.end_value,
            self.transition_steps,
            self.transition_begin,
            None,
        )


def polynomial_schedule(
    init_value: ArrayLike,
    end_value: ArrayLike,
    power: ArrayLike,
    transition_steps: int,
    transition_begin: int = 0,
) -> PolynomialSchedule:
    """A polynomial transition from ``init_value`` ($I$) to ``end_value`` ($E$).

    $$v(t) = \\begin{cases} I & t < B \\\\
    (I - E)\\left(1 - \\frac{t - B}{T}\\right)^{P} + E & B \\le t < B + T \\\\
    E & t \\ge B + T \\end{cases}$$

    with $B$ = ``transition_begin``, $T$ = ``transition_steps``, $P$ = ``power``.

    The value is exactly $I$ up to step $B$ and exactly $E$ from step $B + T$ on, and is
    computed without cancellation in between (see :func:`transition`); ``init_value``,
    ``end_value`` and ``power`` are differentiable leaves.

    **Arguments Optax only logs about.** ``transition_steps = 0`` gives the formula's
    limit, a step from $I$ to $E$ at $B$ (Optax holds $I$ forever, so for example
    ``warmup_constant_schedule`` with no warmup never reaches its peak); negative
    ``transition_steps`` or ``transition_begin`` raise a :class:`ScheduleArgumentError`
    (Optax holds $I$, or replaces $B$ by 0, silently); ``power <= 0`` raises (the value
    at $B + T$ would be $0^P$).

    Reference: ``optax.polynomial_schedule``.
    """
    return PolynomialSchedule(init_value, end_value, power, transition_steps, transition_begin)


def linear_schedule(
    init_value: ArrayLike,
    end_value: ArrayLike,
    transition_steps: int,
    transition_begin: int = 0,
) -> LinearSchedule:
    """A linear transition from ``init_value`` ($I$) to ``end_value`` ($E$).

    $$v(t) = \\begin{cases} I & t < B \\\\ I + \\frac{t - B}{T}(E - I) & B \\le t < B + T
    \\\\ E & t \\ge B + T \\end{cases}$$

    :func:`polynomial_schedule` with ``power = 1``; the same exact endpoints and the same
    handling of ``transition_steps = 0`` (a step at $B$) and of negative arguments
    (errors). Reference: ``optax.linear_schedule``.
    """
    return LinearSchedule(init_value, end_value, transition_steps, transition_begin)
