"""Schedules that start with a linear warmup: then constant, cosine decay or exponential decay."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._base import Schedule, as_count, step_difference, value_dtypes
from ._cosine import check_exponent
from ._exponential import check_exponential_arguments, exponential_value
from ._polynomial import ZERO_STEPS_NOTE, polynomial_value
from ._transition import transition
from ._validation import as_array, as_optional_array, check_steps

__all__ = [
    "WarmupConstantSchedule",
    "WarmupCosineDecaySchedule",
    "WarmupExponentialDecaySchedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]


def _warmup(count: Array, init_value: Array, peak_value: Array, warmup_steps: Array) -> Array:
    return polynomial_value(count, init_value, peak_value, warmup_steps, 0, None)


class WarmupConstantSchedule(Schedule):
    """A linear warmup from ``init_value`` to ``peak_value``, then ``peak_value``.

    Built by :func:`warmup_constant_schedule`, whose docstring gives the math and
    the references.
    """

    init_value: Array = eqx.field(converter=as_array)
    peak_value: Array = eqx.field(converter=as_array)
    warmup_steps: Array = eqx.field(converter=as_array)
    value_parameters = ("init_value", "peak_value")
    step_parameters = ("warmup_steps",)

    def __check_init__(self) -> None:
        check_steps(self, "warmup_steps", self.warmup_steps, 0, why=ZERO_STEPS_NOTE)

    def __call__(self, count: ArrayLike) -> Array:
        return _warmup(as_count(self, count), self.init_value, self.peak_value, self.warmup_steps)


class WarmupCosineDecaySchedule(Schedule):
    """A linear warmup to ``peak_value``, then a cosine decay to ``end_value``.

    Built by :func:`warmup_cosine_decay_schedule`, whose docstring gives the math and
    the references.
    """

    init_value: Array = eqx.field(converter=as_array)
    peak_value: Array = eqx.field(converter=as_array)
    warmup_steps: Array = eqx.field(converter=as_array)
    decay_steps: Array = eqx.field(converter=as_array)
    end_value: Array = eqx.field(default=0.0, converter=as_array)
    exponent: Array = eqx.field(default=1.0, converter=as_array)
    value_parameters = ("init_value", "peak_value", "end_value", "exponent")
    step_parameters = ("warmup_steps", "decay_steps")

    def __check_init__(self) -> None:
        check_steps(self, "warmup_steps", self.warmup_steps, 0)
        check_steps(
            self,
            "decay_steps - warmup_steps",
            self.decay_steps - self.warmup_steps,
            1,
            why="decay_steps counts the warmup too, and the cosine phase must have at "
            "least one step (Optax raises too).",
        )
        check_exponent(self, self.exponent)

    def __call__(self, count: ArrayLike) -> Array:
        count = as_count(self, count)
        dtype, work = value_dtypes(self.init_value, self.peak_value, self.end_value, self.exponent)
        init, peak, end = (
            v.astype(work) for v in (self.init_value, self.peak_value, self.end_value)
        )
        warm, cold = self.warmup_steps, self.decay_steps
        warmup = transition(init, peak, count, step_difference(warm, count), work)
        decay = transition(
            peak,
            end,
            step_difference(count, warm),
            step_difference(cold, count),
            work,
            cosine=True,
            power=self.exponent,
        )
        return jnp.where(count < warm, warmup, decay).astype(dtype)


class WarmupExponentialDecaySchedule(Schedule):
    """A linear warmup to ``peak_value``, then :func:`exponential_decay` from ``peak_value``."""

    init_value: Array = eqx.field(converter=as_array)
    peak_value: Array = eqx.field(converter=as_array)
    warmup_steps: Array = eqx.field(converter=as_array)
    transition_steps: Array = eqx.field(converter=as_array)
    decay_rate: Array = eqx.field(converter=as_array)
    transition_begin: Array = eqx.field(default=0, converter=as_array)
    staircase: bool = eqx.field(static=True, default=False)
    end_value: Array | None = eqx.field(default=None, converter=as_optional_array)
    value_parameters = ("init_value", "peak_value", "decay_rate", "end_value")
    step_parameters = ("warmup_steps", "transition_steps", "transition_begin")

    def __check_init__(self) -> None:
        check_steps(self, "warmup_steps", self.warmup_steps, 0)
        check_exponential_arguments(
            self, self.transition_steps, self.decay_rate, self.transition_begin
        )

    def __call__(self, count: ArrayLike) -> Array:
        count = as_count(self, count)
        dtype, _ = value_dtypes(self.init_value, self.peak_value, self.decay_rate, self.end_value)
        warmup = _warmup(count, self.init_value, self.peak_value, self.warmup_steps)
        decay = exponential_value(
            step_difference(count, self.warmup_steps),
            self.peak_value,
            self.transition_steps,
            self.decay_rate,
            self.transition_begin,
            self.staircase,
            self.end_value,
        )
        return jnp.where(count < self.warmup_steps, warmup, decay).astype(dtype)


def warmup_constant_schedule(
    init_value: ArrayLike, peak_value: ArrayLike, warmup_steps: int
) -> WarmupConstantSchedule:
    """A linear warmup from ``init_value`` ($I$) to ``peak_value`` ($P$), then constant.

    $$v(t) = \\begin{cases} I + \\frac{t}{W}(P - I) & t < W \\\\ P & t \\ge W \\end{cases}$$

    with $W$ = ``warmup_steps``: :func:`linear_schedule` ``(I, P, W)``. With
    ``warmup_steps = 0`` the value is $P$ from step 0 on; **Optax returns $I$ forever**
    there (its linear schedule holds ``init_value`` for ``transition_steps <= 0``), a
    schedule that never reaches its peak. A negative ``warmup_steps`` raises.

    Reference: ``optax.warmup_constant_schedule``.
    """
    return WarmupConstantSchedule(init_value, peak_value, warmup_steps)


def warmup_cosine_decay_schedule(
    init_value: ArrayLike,
    peak_value: ArrayLike,
    warmup_steps: int,
    decay_steps: int,
    end_value: ArrayLike = 0.0,
    exponent: ArrayLike = 1.0,
) -> WarmupCosineDecaySchedule:
    """A linear warmup to ``peak_value`` ($P$), then a cosine decay to ``end_value`` ($E$).

    $$v(t) = \\begin{cases} I + \\frac{t}{W}(P - I) & t < W \\\\
    E + (P - E)\\left[\\tfrac12\\left(1 + \\cos \\pi\\frac{t - W}{D - W}\\right)\\right]^{p}
    & W \\le t < D \\\\ E & t \\ge D \\end{cases}$$

    with $I$ = ``init_value``, $W$ = ``warmup_steps``, $D$ = ``decay_steps`` (the total
    length, warmup included) and $p$ = ``exponent``. The value is exactly $I$ at step 0,
    $P$ at step $W$ and $E$ from step $D$ on.

    Optax joins a linear schedule and ``cosine_decay_schedule(P, D - W, alpha=E / P)``;
    its end value is $P \\cdot (E / P)$, which is $E$ only up to rounding, and for
    $P = 0$ it takes $\\alpha = 0$, so **the schedule stays at 0 and ignores** $E$.
    optref decays from $P$ to $E$ directly, in every case (a recorded deviation).
    ``init_value``, ``peak_value``, ``end_value`` and ``exponent`` are differentiable.
    Raises :class:`ScheduleArgumentError` for a negative ``warmup_steps``, for
    ``decay_steps <= warmup_steps`` (as Optax does) and for ``exponent <= 0``.

    Reference: Loshchilov & Hutter, *SGDR* (ICLR 2017); Goyal et al., *Accurate, Large
    Minibatch SGD* (2017) for the warmup; ``optax.warmup_cosine_decay_schedule``.
    """
    return WarmupCosineDecaySchedule(
        init_value, peak_value, warmup_steps, decay_steps, end_value, exponent
    )


def warmup_exponential_decay_schedule(
    init_value: ArrayLike,
    peak_value: ArrayLike,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: ArrayLike,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: ArrayLike | None = None,
) -> WarmupExponentialDecaySchedule:
    """A linear warmup to ``peak_value`` ($P$), then an exponential decay from $P$.

    $$v(t) = \\begin{cases} I + \\frac{t}{W}(P - I) & t < W \\\\
    \\operatorname{exponential\\_decay}(P, T, r, B, \\ldots)(t - W) & t \\ge W \\end{cases}$$

    with $W$ = ``warmup_steps``; the decay's arguments are as in
    :func:`exponential_decay` (which see for the checks), its count restarted at $W$.
    Raises :class:`ScheduleArgumentError` for a negative ``warmup_steps``.

    Reference: ``optax.warmup_exponential_decay_schedule``.
    """
    return WarmupExponentialDecaySchedule(
        init_value,
        peak_value,
        warmup_steps,
        transition_steps,
        decay_rate,
        transition_begin,
        staircase,
        end_value,
    )
