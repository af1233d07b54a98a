"""Piecewise schedules: constant pieces, or linear or cosine interpolation between boundaries."""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from ._base import Schedule, as_count, step_difference, value_dtypes
from ._transition import transition
from ._validation import (
    ScheduleArgumentError,
    as_array,
    check_increasing,
    check_steps,
    check_value,
    schedule_name,
)

__all__ = [
    "PiecewiseConstantSchedule",
    "PiecewiseInterpolateSchedule",
    "interpolate_value",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
]


def _pieces(
    boundaries_and_scales: Mapping[int, ArrayLike] | None,
) -> tuple[list[int], list[ArrayLike]]:
    """The boundaries in increasing order and their scales, from Optax's ``{step: scale}``."""
    if not boundaries_and_scales:
        return [], []
    items = sorted(boundaries_and_scales.items())
    return [b for b, _ in items], [s for _, s in items]


def _check_pieces(owner: Schedule, init_value: Array, boundaries: Array, scales: Array) -> None:
    if jnp.ndim(init_value) != 0:
        raise ScheduleArgumentError(
            f"{schedule_name(owner)}: init_value must be a scalar, got shape "
            f"{jnp.shape(init_value)}."
        )
    check_increasing(owner, "boundaries", boundaries)
    check_steps(owner, "boundaries", boundaries, 0, why="Boundaries are step counts.")
    if jnp.shape(scales) != jnp.shape(boundaries):
        raise ScheduleArgumentError(
            f"{schedule_name(owner)}: there must be one scale per boundary, got "
            f"{jnp.shape(scales)[0]} scales for {jnp.shape(boundaries)[0]} boundaries."
        )
    check_value(owner, "scales", scales, 0.0, why="(Optax also requires non-negative scales.)")


def _cumulative_values(init_value: Array, scales: Array, dtype: jnp.dtype) -> Array:
    """``[I, I s_1, I s_1 s_2, ...]``, multiplied left to right as Optax does."""
    values = [init_value.astype(dtype)]
    for index in range(scales.shape[0]):
        values.append(values[-1] * scales[index].astype(dtype))
    return jnp.stack(values)


def _pieces_passed(count: Array, boundaries: Array) -> Array:
    """How many boundaries ``count`` has reached (``count >= boundary``), elementwise."""
    return jnp.sum(count[..., None] >= boundaries, axis=-1)


def interpolate_value(
    count: Array, boundaries: Array, values: Array, dtype: jnp.dtype, *, cosine: bool
) -> Array:
    """Interpolate ``values[k] -> values[k + 1]`` on ``[boundaries[k - 1], boundaries[k])``.

    ``boundaries`` are increasing steps $b_1 < \\dots < b_n$ (with $b_0 = 0$) and
    ``values`` the $n + 1$ values at them; from $b_n$ on the value is ``values[n]``.
    Each piece is a :func:`transition`, so the value at every boundary is exact.
    """
    if boundaries.shape[0] == 0:
        return jnp.broadcast_to(values[0], count.shape)
    piece = _pieces_passed(count, boundaries)
    lows = jnp.concatenate([jnp.zeros((1,), boundaries.dtype), boundaries])
    highs = jnp.concatenate([boundaries, boundaries[-1:]])
    ends = jnp.concatenate([values[1:], values[-1:]])
    return transition(
        values[piece],
        ends[piece],
        step_difference(count, lows[piece]),
        step_difference(highs[piece], count),
        dtype,
        cosine=cosine,
    )


class PiecewiseConstantSchedule(Schedule):
    """``init_value`` times the product of the ``scales`` whose boundary has been reached.

    Built by :func:`piecewise_constant_schedule`, whose docstring gives the math and
    the references.
    """

    init_value: Array = eqx.field(converter=as_array)
    boundaries: Int[Array, " n"] = eqx.field(converter=as_array)
    scales: Float[Array, " n"] = eqx.field(converter=as_array)
    value_parameters = ("init_value", "scales")
    step_parameters = ("boundaries",)

    def __check_init__(self) -> None:
        _check_pieces(self, self.init_value, self.boundaries, self.scales)

    def __call__(self, count: ArrayLike) -> Array:
        count = as_count(self, count)
        dtype, work = value_dtypes(self.init_value, self.scales)
        values = _cumulative_values(self.init_value, self.scales, work)
        return values[_pieces_passed(count, self.boundaries)].astype(dtype)


class PiecewiseInterpolateSchedule(Schedule):
    """Linear or cosine interpolation between the cumulatively scaled values at boundaries.

    Built by :func:`piecewise_interpolate_schedule`, whose docstring gives the math and
    the references.
    """

    interpolate_type: str = eqx.field(static=True)
    init_value: Array = eqx.field(converter=as_array)
    boundaries: Int[Array, " n"] = eqx.field(converter=as_array)
    scales: Float[Array, " n"] = eqx.field(converter=as_array)
    value_parameters = ("init_value", "scales")
    step_parameters = ("boundaries",)

    def __check_init__(self) -> None:
        if self.interpolate_type not in ("linear", "cosine"):
            raise ScheduleArgumentError(
                "piecewise_interpolate_schedule: interpolate_type must be 'linear' or "
                f"'cosine', got {self.interpolate_type!r}."
            )
        _check_pieces(self, self.init_value, self.boundaries, self.scales)

    def __call__(self, count: ArrayLike) -> Array:
        count = as_count(self, count)
        dtype, work = value_dtypes(self.init_value, self.scales)
        values = _cumulative_values(self.init_value, self.scales, work)
        value = interpolate_value(
            count, self.boundaries, values, work, cosine=self.interpolate_type == "cosine"
        )
        return value.astype(dtype)


def piecewise_constant_schedule(
    init_value: ArrayLike, boundaries_and_scales: Mapping[int, ArrayLike] | None = None
) -> PiecewiseConstantSchedule:
    """Piecewise constant: ``init_value`` ($I$) scaled by $s_i$ from each boundary $b_i$ on.

    $$v(t) = I \\prod_{i:\\, t \\ge b_i} s_i$$

    ``boundaries_and_scales`` is Optax's ``{step: scale}`` dict; the module stores the
    sorted ``boundaries`` (integer steps) and ``scales`` (a differentiable array), and
    multiplies the scales left to right as Optax does. Raises
    :class:`ScheduleArgumentError` for a negative scale (as Optax does), a negative or
    non-integer boundary, and a non-scalar ``init_value``.

    Reference: ``optax.piecewise_constant_schedule``.
    """
    boundaries, scales = _pieces(boundaries_and_scales)
    return PiecewiseConstantSchedule(init_value, boundaries, scales)


def piecewise_interpolate_schedule(
    interpolate_type: str,
    init_value: ArrayLike,
    boundaries_and_scales: Mapping[int, ArrayLike] | None = None,
) -> PiecewiseInterpolateSchedule:
    """Interpolate between the cumulatively scaled values $v_i = I \\prod_{j \\le i} s_j$.

    $$v(t) = v_{k} + (v_{k+1} - v_{k})\\, w\\!\\left(\\frac{t - b_k}{b_{k+1} - b_k}\\right)
    \\quad (b_k \\le t < b_{k+1}), \\qquad v(t) = v_n \\quad (t \\ge b_n)$$

    with $b_0 = 0$, $v_0 = I$, and $w(s) = s$ (``"linear"``) or
    $w(s) = \\tfrac12(1 - \\cos \\pi s)$ (``"cosine"``). The value at every boundary is
    exactly $v_k$ (Optax's cosine form $v_{k+1} + \\tfrac12(v_k - v_{k+1})(1 + \\cos 0)$
    rounds it), and each piece is computed without cancellation (see
    :func:`transition`). ``init_value`` and the scales are differentiable.

    Raises :class:`ScheduleArgumentError` for an unknown ``interpolate_type`` and a
    negative scale (as Optax does), and for a negative or non-integer boundary.

    Reference: ``optax.piecewise_interpolate_schedule``.
    """
    boundaries, scales = _pieces(boundaries_and_scales)
    return PiecewiseInterpolateSchedule(interpolate_type, init_value, boundaries, scales)
