"""One-cycle schedules (Smith & Topin): up to a peak and down again, linearly or by cosine."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._base import Schedule, as_count, value_dtypes
from ._piecewise import interpolate_value
from ._validation import (
    ScheduleArgumentError,
    as_static_steps,
    check_steps,
    check_value,
    schedule_name,
)

__all__ = [
    "CosineOnecycleSchedule",
    "LinearOnecycleSchedule",
    "cosine_onecycle_schedule",
    "linear_onecycle_schedule",
]


def _static_fraction(owner: Schedule, name: str) -> None:
    value = getattr(owner, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError) as error:
            raise ScheduleArgumentError(
                f"{schedule_name(owner)}: {name} must be a Python number (it fixes integer "
                f"boundaries when the schedule is built), got {value!r}."
            ) from error
    object.__setattr__(owner, name, float(value))


class _Onecycle(Schedule):
    """What the one-cycle schedules share: static step arguments and the division factors."""

    def _convert_static(self, fractions: tuple[str, ...]) -> None:
        object.__setattr__(
            self, "transition_steps",
            as_static_steps(self, "transition_steps", self.transition_steps),
        )
        for name in fractions:
            _static_fraction(self, name)

    def _check(self, boundaries: list[int], fractions: tuple[str, ...]) -> None:
        check_steps(self, "transition_steps", self.transition_steps, 1)
        for name in ("div_factor", "final_div_factor"):
            check_value(self, name, getattr(self, name), 0.0, low_inclusive=False)
        for name in fractions:
            check_value(self, name, getattr(self, name), 0.0, 1.0)
        if any(b >= a for a, b in zip(boundaries[1:], boundaries[:-1], strict=True)):
            shown = ", ".join(f"{name}={getattr(self, name)}" for name in fractions)
            raise ScheduleArgumentError(
                f"{schedule_name(self)}: the phases' boundaries int(pct * transition_steps) "
                f"must be strictly increasing, got {boundaries} from "
                f"transition_steps={self.transition_steps}, {shown}. (In Optax, equal "
                "boundaries overwrite each other in a dict and a phase silently disappears.)"
            )

    def _values(self) -> tuple[Array, Array, Array, jnp.dtype, jnp.dtype]:
        """``(initial, peak, final)`` values in the compute dtype, and the dtypes."""
        dtype, work = value_dtypes(self.peak_value, self.div_factor, self.final_div_factor)
        peak = self.peak_value.astype(work)
        initial = peak / self.div_factor.astype(work)
        return initial, peak, initial / self.final_div_factor.astype(work), dtype, work

    def _interpolate(
        self, count: ArrayLike, values: list[Array], dtype: jnp.dtype, work: jnp.dtype,
        *, cosine: bool,
    ) -> Array:
        value = interpolate_value(
            as_count(self, count), jnp.asarray(self._boundaries()), jnp.stack(values), work,
            cosine=cosine,
        )
        return value.astype(dtype)

    @abc.abstractmethod
    def _boundaries(self) -> list[int]:
        """The integer boundaries of the phases."""


class CosineOnecycleSchedule(_Onecycle):
    """Cosine from ``peak_value / div_factor`` up to ``peak_value``, then down to the final value."""

    transition_steps: int = eqx.field(static=True)
    peak_value: Array
    pct_start: float = eqx.field(static=True, default=0.3)
    div_factor: Array = 25.0
    final_div_factor: Array = 1e4
    value_parameters = ("peak_value", "div_factor", "final_div_factor")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._convert_static(("pct_start",))

    def _boundaries(self) -> list[int]:
        return [int(self.pct_start * self.transition_steps), self.transition_steps]

    def __check_init__(self) -> None:
        self._check(self._boundaries(), ("pct_start",))

    def __call__(self, count: ArrayLike) -> Array:
        initial, peak, final, dtype, work = self._values()
        return self._interpolate(count, [initial, peak, final], dtype, work, cosine=True)


class LinearOnecycleSchedule(_Onecycle):
    """Linear up to ``peak_value``, down to ``peak_value / div_factor``, then to the final value."""

    transition_steps: int = eqx.field(static=True)
    peak_value: Array
    pct_start: float = eqx.field(static=True, default=0.3)
    pct_final: float = eqx.field(static=True, default=0.85)
    div_factor: Array = 25.0
    final_div_factor: Array = 1e4
    value_parameters = ("peak_value", "div_factor", "final_div_factor")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._convert_static(("pct_start", "pct_final"))

    def _boundaries(self) -> list[int]:
        steps = self.transition_steps
        return [int(self.pct_start * steps), int(self.pct_final * steps), steps]

    def __check_init__(self) -> None:
        self._check(self._boundaries(), ("pct_start", "pct_final"))

    def __call__(self, count: ArrayLike) -> Array:
        initial, peak, final, dtype, work = self._values()
        values = [initial, peak, initial, final]
        return self._interpolate(count, values, dtype, work, cosine=False)


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: ArrayLike,
    pct_start: float = 0.3,
    div_factor: ArrayLike = 25.0,
    final_div_factor: ArrayLike = 1e4,
) -> CosineOnecycleSchedule:
    """The one-cycle schedule with cosine phases.

    With $P$ = ``peak_value``, $T$ = ``transition_steps``, $b = \\lfloor p_s T \\rfloor$
    ($p_s$ = ``pct_start``), $I = P / d$ ($d$ = ``div_factor``) and $F = I / f$
    ($f$ = ``final_div_factor``):

    $$v(t) = \\begin{cases} I + (P - I)\\,\\tfrac12\\left(1 - \\cos \\pi \\frac{t}{b}\\right)
    & t < b \\\\ P + (F - P)\\,\\tfrac12\\left(1 - \\cos \\pi\\frac{t - b}{T - b}\\right)
    & b \\le t < T \\\\ F & t \\ge T \\end{cases}$$

    The values $I$, $P$, $F$ at the boundaries are exact ($P$ itself, not
    $P / d \\cdot d$ as in Optax's cumulative product). ``peak_value``, ``div_factor``
    and ``final_div_factor`` are differentiable; ``transition_steps`` and ``pct_start``
    are static Python numbers, since they fix integer boundaries by truncation, as in
    Optax. Raises :class:`ScheduleArgumentError` for ``transition_steps < 1`` (as Optax
    does), ``pct_start`` outside $[0, 1]$, $b \\ge T$, and non-positive division factors.

    Reference: Smith & Topin, *Super-Convergence: Very Fast Training of Neural Networks
    Using Large Learning Rates* (2017); ``optax.cosine_onecycle_schedule``.
    """
    return CosineOnecycleSchedule(
        transition_steps, peak_value, pct_start, div_factor, final_div_factor
    )


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: ArrayLike,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: ArrayLike = 25.0,
    final_div_factor: ArrayLike = 1e4,
) -> LinearOnecycleSchedule:
    """The one-cycle schedule with three linear phases.

    With $P$ = ``peak_value``, $I = P / d$, $F = I / f$ and the boundaries
    $b_1 = \\lfloor p_s T \\rfloor$, $b_2 = \\lfloor p_f T \\rfloor$, $b_3 = T$: linear from
    $I$ to $P$ on $[0, b_1)$, from $P$ back to $I$ on $[b_1, b_2)$, from $I$ to $F$ on
    $[b_2, T)$, and $F$ from $T$ on:

    $$v(t) = v_k + (v_{k+1} - v_k)\\frac{t - b_k}{b_{k+1} - b_k}, \\qquad
    (v_0, v_1, v_2, v_3) = (I, P, I, F).$$

    As in :func:`cosine_onecycle_schedule`: exact values at the boundaries, static
    ``transition_steps``, ``pct_start`` and ``pct_final``, and errors where the
    boundaries would not be strictly increasing ($b_1 < b_2 < T$) or the fractions lie
    outside $[0, 1]$.

    Reference: Smith & Topin (2017); ``optax.linear_onecycle_schedule``.
    """
    return LinearOnecycleSchedule(
        transition_steps, peak_value, pct_start, pct_final, div_factor, final_div_factor
    )
