"""Exponential decay, continuous or in steps, optionally bounded by an end value."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._base import Schedule, as_count, step_difference, value_dtypes
from ._validation import as_array, as_optional_array, check_steps, check_value

__all__ = ["ExponentialDecay", "check_exponential_arguments", "exponential_decay"]


def exponential_value(
    count: Array,
    init_value: Array,
    transition_steps: Array,
    decay_rate: Array,
    transition_begin: Array,
    staircase: bool,
    end_value: Array | None,
) -> Array:
    """The exponential decay's value at ``count`` (see :func:`exponential_decay`)."""
    dtype, work = value_dtypes(init_value, decay_rate, end_value)
    done = step_difference(count, transition_begin)
    if not staircase:
        exponent = done.astype(work) / transition_steps.astype(work)
    elif jnp.issubdtype(done.dtype, jnp.integer):
        # Exact integer division: no float rounding can move a stair.
        exponent = jnp.floor_divide(done, transition_steps).astype(work)
    else:
        exponent = jnp.floor(done.astype(work) / transition_steps.astype(work))
    init = init_value.astype(work)
    rate = decay_rate.astype(work)
    value = jnp.where(done <= 0, init, init * rate**exponent)
    if end_value is not None:
        end = end_value.astype(work)
        value = jnp.where(rate < 1, jnp.maximum(value, end), jnp.minimum(value, end))
    return value.astype(dtype)


def check_exponential_arguments(
    owner: Schedule, transition_steps: Array, decay_rate: Array, transition_begin: Array
) -> None:
    """The checks of :func:`exponential_decay`, shared with its warmup variant."""
    check_steps(
        owner,
        "transition_steps",
        transition_steps,
        1,
        why="(Optax holds init_value for transition_steps <= 0.)",
    )
    check_value(
        owner,
        "decay_rate",
        decay_rate,
        0.0,
        low_inclusive=False,
        why="(Optax holds init_value for decay_rate = 0; a negative rate gives NaN "
        "between integer exponents.)",
    )
    check_steps(
        owner,
        "transition_begin",
        transition_begin,
        0,
        why="(Optax replaces a negative transition_begin by 0 silently.)",
    )


class ExponentialDecay(Schedule):
    """``init_value * decay_rate ** ((t - transition_begin) / transition_steps)``.

    Built by :func:`exponential_decay`, whose docstring gives the math and the references.
    """

    init_value: Array = eqx.field(converter=as_array)
    transition_steps: Array = eqx.field(converter=as_array)
    decay_rate: Array = eqx.field(converter=as_array)
    transition_begin: Array = eqx.field(default=0, converter=as_array)
    staircase: bool = eqx.field(static=True, default=False)
    end_value: Array | None = eqx.field(default=None, converter=as_optional_array)
    value_parameters = ("init_value", "decay_rate", "end_value")
    step_parameters = ("transition_steps", "transition_begin")

    def __check_init__(self) -> None:
        check_exponential_arguments(
            self, self.transition_steps, self.decay_rate, self.transition_begin
        )

    def __call__(self, count: ArrayLike) -> Array:
        return exponential_value(
            as_count(self, count),
            self.init_value,
            self.transition_steps,
            self.decay_rate,
            self.transition_begin,
            self.staircase,
            self.end_value,
        )


def exponential_decay(
    init_value: ArrayLike,
    transition_steps: int,
    decay_rate: ArrayLike,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: ArrayLike | None = None,
) -> ExponentialDecay:
    """Exponential decay of ``init_value`` ($I$) by ``decay_rate`` ($r$) per ``transition_steps``.

    $$v(t) = \\begin{cases} I & t \\le B \\\\ \\operatorname{clip}_E\\left(I\\,r^{p(t)}\\right)
    & t > B \\end{cases}, \\qquad p(t) = \\frac{t - B}{T}
    \\;\\text{or, with } \\texttt{staircase},\\; \\left\\lfloor \\frac{t - B}{T}\\right\\rfloor$$

    with $B$ = ``transition_begin``, $T$ = ``transition_steps`` and $\\operatorname{clip}_E$
    = $\\max(\\cdot, E)$ for $r < 1$ and $\\min(\\cdot, E)$ otherwise, where $E$ =
    ``end_value`` (no clipping when it is ``None``). With ``staircase`` the exponent is an
    exact integer division of the step counts. ``init_value``, ``decay_rate`` and
    ``end_value`` are differentiable leaves.

    **Arguments Optax only logs about raise** a :class:`ScheduleArgumentError` here:
    ``transition_steps <= 0`` and ``decay_rate == 0`` (Optax documents both as
    "must be" and then holds $I$ forever), a negative ``decay_rate`` (NaN between
    integer exponents) and a negative ``transition_begin`` (Optax uses 0).

    Reference: ``optax.exponential_decay``.
    """
    return ExponentialDecay(
        init_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
