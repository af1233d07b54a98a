"""One-cycle schedules (Smith & Topin): up to a peak and down again, linearly or by cosine."""

from __future__ import annotations

from typing import TypeAlias

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._base import Schedule, as_count, value_dtypes
from ._piecewise import interpolate_value
from ._validation import (
    ScheduleArgumentError,
    as_array,
    as_static_steps,
    check_steps,
    check_value,
    is_concrete,
    schedule_name,
)

__all__ = [
    "CosineOnecycleSchedule",
    "LinearOnecycleSchedule",
    "cosine_onecycle_schedule",
    "linear_onecycle_schedule",
]

# Either one-cycle schedule: the helpers below read fields that both have.
_Onecycle: TypeAlias = "CosineOnecycleSchedule | LinearOnecycleSchedule"


def _convert_static(owner: _Onecycle, fractions: tuple[str, ...]) -> None:
    """Make ``transition_steps`` a Python int and the fractions Python floats."""
    steps = as_static_steps(owner, "transition_steps", owner.transition_steps)
    object.__setattr__(owner, "transition_steps", steps)
    for name in fractions:
        value = getattr(owner, name)
        try:
            if isinstance(value, bool) or not is_concrete(value):
                raise TypeError
            value = float(value)
        except (TypeError, ValueError) as error:
            raise ScheduleArgumentError(
                f"{schedule_name(owner)}: {name} must be a Python number (it fixes integer "
                f"boundaries when the schedule is built), got {value!r}."
            ) from error
        object.__setattr__(owner, name, value)


def _check(owner: _Onecycle, boundaries: list[int], fractions: tuple[str, ...]) -> None:
    check_steps(owner, "transition_steps", owner.transition_steps, 1)
    for name in ("div_factor", "final_div_factor"):
        check_value(owner, name, getattr(owner, name), 0.0, low_inclusive=False)
    for name in fractions:
        check_value(owner, name, getattr(owner, name), 0.0, 1.0)
    if any(b >= a for a, b in zip(boundaries[1:], boundaries[:-1], strict=True)):
        shown = ", ".join(f"{name}={getattr(owner, name)}" for name in fractions)
        raise ScheduleArgumentError(
            f"{schedule_name(owner)}: the phases' boundaries int(pct * transition_steps) "
            f"must be strictly increasing, got {boundaries} from "
            f"transition_steps={owner.transition_steps}, {shown}. (In Optax, "
            "equal boundaries overwrite each other in a dict and a phase silently "
            "disappears.)"
        )


def _onecycle_value(
    owner: Schedule,
    count: ArrayLike,
    boundaries: list[int],
    factors: tuple[Array, Array, Array],
    pattern: tuple[int, ...],
    *,
    cosine: bool,
) -> Array:
    """Interpolate between the values ``(initial, peak, final)[k] for k in pattern``.

    ``factors`` are ``(peak_value, div_factor, final_div_factor)``; initial is
    ``peak / div`` and final ``initial / final_div``, computed directly (Optax's
    cumulative product ``peak / div * div`` is ``peak`` only up to rounding).
    """
    peak_value, div_factor, final_div_factor = factors
    dtype, work = value_dtypes(peak_value, div_factor, final_div_factor)
    peak = peak_value.astype(work)
    initial = peak / div_factor.astype(work)
    levels = (initial, peak, initial / final_div_factor.astype(work))
    value = interpolate_value(
        as_count(owner, count),
        jnp.asarray(boundaries),
        jnp.stack([levels[k] for k in pattern]),
        work,
        cosine=cosine,
    )
    return value.astype(dtype)


class CosineOnecycleSchedule(Schedule):
    """Cosine from ``peak_value / div_factor`` up to ``peak_value``, then down to the end.

    Built by :func:`cosine_onecycle_schedule`, whose docstring gives the math and the references.
    """

    transition_steps: int = eqx.field(static=True)
    peak_value: Array = eqx.field(converter=as_array)
    pct_start: float = eqx.field(static=True, default=0.3)
    div_factor: Array = eqx.field(default=25.0, converter=as_array)
    final_div_factor: Array = eqx.field(default=1e4, converter=as_array)
    value_parameters = ("peak_value", "div_factor", "final_div_factor")

    def __post_init__(self) -> None:
        super().__post_init__()
        _convert_static(self, ("pct_start",))

    def _boundaries(self) -> list[int]:
        return [int(self.pct_start * self.transition_steps), self.transition_steps]

    def __check_init__(self) -> None:
        _check(self, self._boundaries(), ("pct_start",))

    def __call__(self, count: ArrayLike) -> Array:
        factors = (self.peak_value, self.div_factor, self.final_div_factor)
        return _onecycle_value(self, count, self._boundaries(), factors, (0, 1, 2), cosine=True)


class LinearOnecycleSchedule(Schedule):
    """Linear up to ``peak_value``, down to ``peak_value / div_factor``, then to the end.

    Built by :func:`linear_onecycle_schedule`, whose docstring gives the math and the references.
    """

    transition_steps: int = eqx.field(static=True)
    peak_value: Array = eqx.field(converter=as_array)
    pct_start: float = eqx.field(static=True, default=0.3)
    pct_final: float = eqx.field(static=True, default=0.85)
    div_factor: Array = eqx.field(default=25.0, converter=as_array)
    final_div_factor: Array = eqx.field(default=1e4, converter=as_array)
    value_parameters = ("peak_value", "div_factor", "final_div_factor")

    def __post_init__(self) -> None:
        super().__post_init__()
        _convert_static(self, ("pct_start", "pct_final"))

    def _boundaries(self) -> list[int]:
        steps = self.transition_steps
        return [int(self.pct_start * steps), int(self.pct_final * steps), steps]

    def __check_init__(self) -> None:
        _check(self, self._boundaries(), ("pct_start", "pct_final"))

    def __call__(self, count: ArrayLike) -> Array:
        factors = (self.peak_value, self.div_factor, self.final_div_factor)
        return _onecycle_value(self, count, self._boundaries(), factors, (0, 1, 0, 2), cosine=False)


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
        transition_steps=transition_steps,
        peak_value=peak_value,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
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
        transition_steps=transition_steps,
        peak_value=peak_value,
        pct_start=pct_start,
        pct_final=pct_final,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
