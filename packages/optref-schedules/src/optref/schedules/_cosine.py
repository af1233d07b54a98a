"""Cosine decay (Loshchilov & Hutter's SGDR annealing, without restarts)."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, ArrayLike

from ._base import Schedule, as_count, step_difference, value_dtypes
from ._transition import transition
from ._validation import as_array, check_steps, check_value

__all__ = ["CosineDecaySchedule", "check_exponent", "cosine_decay_schedule"]


def check_exponent(owner: Schedule, exponent: Array) -> None:
    """``exponent`` must be positive: the decayed factor at the end is ``0**exponent``."""
    check_value(
        owner,
        "exponent",
        exponent,
        0.0,
        low_inclusive=False,
        why="With exponent <= 0 the value at the end of the decay is undefined (0**exponent).",
    )


class CosineDecaySchedule(Schedule):
    """``init_value * ((1 - alpha) * (½(1 + cos(π t / T)))**exponent + alpha)``.

    Built by :func:`cosine_decay_schedule`, whose docstring gives the math and the references.
    """

    init_value: Array = eqx.field(converter=as_array)
    decay_steps: Array = eqx.field(converter=as_array)
    alpha: Array = eqx.field(default=0.0, converter=as_array)
    exponent: Array = eqx.field(default=1.0, converter=as_array)
    value_parameters = ("init_value", "alpha", "exponent")
    step_parameters = ("decay_steps",)

    def __check_init__(self) -> None:
        check_steps(self, "decay_steps", self.decay_steps, 1)
        check_exponent(self, self.exponent)

    def __call__(self, count: ArrayLike) -> Array:
        count = as_count(self, count)
        dtype, work = value_dtypes(self.init_value, self.alpha, self.exponent)
        init = self.init_value.astype(work)
        value = transition(
            init,
            self.alpha.astype(work) * init,
            count,
            step_difference(self.decay_steps, count),
            work,
            cosine=True,
            power=self.exponent,
        )
        return value.astype(dtype)


def cosine_decay_schedule(
    init_value: ArrayLike,
    decay_steps: int,
    alpha: ArrayLike = 0.0,
    exponent: ArrayLike = 1.0,
) -> CosineDecaySchedule:
    """Cosine decay from ``init_value`` ($I$) to $\\alpha I$ over ``decay_steps`` ($T$).

    $$v(t) = \\begin{cases} \\alpha I + (1 - \\alpha) I\\,
    \\left[\\tfrac12\\left(1 + \\cos \\frac{\\pi t}{T}\\right)\\right]^{p} & t < T \\\\
    \\alpha I & t \\ge T \\end{cases}$$

    with $p$ = ``exponent``. The value is exactly $I$ at step 0 and exactly $\\alpha I$
    from step $T$ on. The decayed factor is computed as $\\sin^2(\\tfrac\\pi2 (T - t)/T)$
    from the exact number of remaining steps, so the tail of a decay to zero keeps full
    relative precision (the $1 + \\cos$ form loses it all in float32 near $t = T$).
    ``init_value``, ``alpha`` and ``exponent`` are differentiable leaves.

    Raises :class:`ScheduleArgumentError` for ``decay_steps < 1`` (as Optax does) and
    for ``exponent <= 0`` (the value at $T$ would be $0^p$).

    Reference: Loshchilov & Hutter, *SGDR: Stochastic Gradient Descent with Warm
    Restarts* (ICLR 2017); ``optax.cosine_decay_schedule``.
    """
    return CosineDecaySchedule(init_value, decay_steps, alpha, exponent)
