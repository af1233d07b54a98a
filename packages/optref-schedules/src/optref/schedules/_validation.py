"""Arguments of schedules: conversion to JAX arrays and checks with clear errors.

A schedule's parameters are data. Values (``init_value``, ``peak_value``, ``alpha``,
``decay_rate``, ...) are floating JAX arrays, leaves of the module that gradients reach.
Step counts (``transition_steps``, ``warmup_steps``, boundaries) are integer JAX arrays:
leaves too, so a jitted step that takes the schedule as an argument does not recompile
when they change and a batch of schedules can be ``vmap``-ped, but not differentiable.

Every check runs when the schedule is built and names the schedule and the argument.
Values that are traced (a factory called inside ``jit``, ``vmap`` or ``grad``) cannot
be checked in Python and are accepted as they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

__all__ = [
    "ScheduleArgumentError",
    "as_array",
    "as_optional_array",
    "as_static_steps",
    "as_steps",
    "as_value",
    "check_increasing",
    "check_steps",
    "check_value",
    "convert_fields",
    "is_concrete",
    "schedule_name",
]


class ScheduleArgumentError(ValueError):
    """An argument of a schedule is out of its allowed range or of the wrong kind."""


def schedule_name(owner: object | str) -> str:
    """The Optax-style factory name of a schedule: ``LinearSchedule`` -> ``linear_schedule``."""
    if isinstance(owner, str):
        return owner
    name = owner.__name__ if isinstance(owner, type) else type(owner).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def is_concrete(value: Any) -> bool:
    """Whether ``value`` holds no tracer, so that it can be checked in Python."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def _default_float() -> np.dtype:
    return jnp.zeros((), dtype=float).dtype


def _reject_non_numbers(owner: object | str, name: str, value: Any, kind: str) -> None:
    if isinstance(value, bool | str | np.bool_) or value is None or callable(value):
        raise ScheduleArgumentError(
            f"{schedule_name(owner)}: {name} must be {kind}, got {value!r}."
        )


def as_value(owner: object | str, name: str, value: Any) -> Array:
    """A real number or array as a floating JAX array (see :func:`_as_value`).

    Concrete inputs stay concrete even when the factory is called inside ``jit``, so
    they can still be checked.
    """
    with jax.ensure_compile_time_eval():
        return _as_value(owner, name, value)


def _as_value(owner: object | str, name: str, value: Any) -> Array:
    """A real number or array as a floating JAX array (the default float dtype for ints).

    Python numbers become weakly typed arrays of the default float dtype (float64 with
    ``jax_enable_x64``), so they take the dtype of any floating array among the other
    values, as in JAX arithmetic; floating arrays keep their dtype, integer arrays become
    the default float dtype. Tracers pass through.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    _reject_non_numbers(owner, name, value, "a real number or array")
    if isinstance(value, list | tuple):
        # Element by element, so Python numbers stay weakly typed (and tracers traced).
        if not value:
            return jnp.asarray(0.0).reshape(1)[:0]
        return jnp.stack([_as_value(owner, f"{name}[{i}]", v) for i, v in enumerate(value)])
    if isinstance(value, int | float):
        # Weakly typed, like any Python scalar in JAX: with float32 arrays among the
        # other values the schedule computes in float32.
        return jnp.asarray(float(value))
    array = jnp.asarray(value)
    if jnp.issubdtype(array.dtype, jnp.complexfloating):
        raise ScheduleArgumentError(f"{schedule_name(owner)}: {name} must be real, got {value!r}.")
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(_default_float())
    return array


def as_steps(owner: object | str, name: str, value: Any) -> Array:
    """A whole number of steps as an integer JAX array (see :func:`_as_steps`).

    Concrete inputs stay concrete even when the factory is called inside ``jit``.
    """
    with jax.ensure_compile_time_eval():
        return _as_steps(owner, name, value)


def _as_steps(owner: object | str, name: str, value: Any) -> Array:
    """A whole number of steps (or an array of them) as an integer JAX array.

    Integral floats (``100.0``) are accepted; ``100.5`` is not. Integer tracers pass
    through; floating tracers are refused, since they cannot be checked to be whole.
    """
    where = schedule_name(owner)
    if isinstance(value, jax.core.Tracer):
        if not jnp.issubdtype(value.dtype, jnp.integer):
            raise ScheduleArgumentError(
                f"{where}: {name} must be an integer number of steps, got a traced "
                f"{value.dtype} value."
            )
        return value
    _reject_non_numbers(owner, name, value, "an integer number of steps")
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ScheduleArgumentError(
                f"{where}: {name} must be a whole number of steps, got {value!r}."
            )
        value = array.astype(np.int64)
    elif not np.issubdtype(array.dtype, np.integer):
        raise ScheduleArgumentError(
            f"{where}: {name} must be an integer number of steps, got {value!r}."
        )
    # Without jax_enable_x64 JAX stores 64-bit integers in 32 bits, wrapping silently.
    limits = np.iinfo(jax.dtypes.canonicalize_dtype(np.int64))
    if np.any(array < limits.min) or np.any(array > limits.max):
        shown = array.item() if array.ndim == 0 else array.tolist()
        raise ScheduleArgumentError(
            f"{where}: {name} must fit in {limits.dtype.name} (at most {limits.max}), got "
            f"{shown!r}; enable jax_enable_x64 for longer schedules."
        )
    return jnp.asarray(value)


def as_static_steps(owner: object | str, name: str, value: Any) -> int:
    """A whole number of steps as a Python ``int``, for arguments that fix the program shape."""
    if not is_concrete(value):
        raise ScheduleArgumentError(
            f"{schedule_name(owner)}: {name} must be a concrete integer (it fixes integer "
            "boundaries when the schedule is built), got a traced value."
        )
    array = np.asarray(as_steps(owner, name, value))
    if array.ndim != 0:
        raise ScheduleArgumentError(
            f"{schedule_name(owner)}: {name} must be a single number of steps, got shape "
            f"{array.shape}."
        )
    return int(array)


def as_array(value: ArrayLike | Sequence[ArrayLike]) -> Array:
    """The field converter of a schedule's parameters: ``value`` as a JAX array.

    :func:`convert_fields` has already converted the parameter (with an error that names
    the schedule and the parameter) when Equinox applies it, so it returns the array it
    is given; declaring it tells type checkers that the constructor takes numbers.
    """
    return jnp.asarray(value)


def as_optional_array(value: ArrayLike | Sequence[ArrayLike] | None) -> Array | None:
    """:func:`as_array` for an optional parameter: ``None`` stays ``None``."""
    return None if value is None else jnp.asarray(value)


def convert_fields(module: object, values: Iterable[str] = (), steps: Iterable[str] = ()) -> None:
    """Convert the named fields of ``module`` in place (during ``__post_init__``).

    ``None`` fields (optional arguments such as ``end_value``) are left as they are.
    """
    for names, convert in ((values, as_value), (steps, as_steps)):
        for name in names:
            value = getattr(module, name)
            if value is not None:
                object.__setattr__(module, name, convert(module, name, value))


def _interval(low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> str:
    def fmt(bound: float) -> str:
        if math.isinf(bound):
            return "∞" if bound > 0 else "-∞"
        return f"{bound:g}"

    return (
        ("[" if low_inclusive else "(")
        + f"{fmt(low)}, {fmt(high)}"
        + ("]" if high_inclusive else ")")
    )


def check_value(
    owner: object | str,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    why: str = "",
) -> None:
    """Raise :class:`ScheduleArgumentError` unless every element of ``value`` is in range.

    NaN is always out of range. ``why`` is appended to the message.
    """
    if value is None or not is_concrete(value):
        return
    array = np.asarray(value, dtype=np.float64)
    above = array >= low if low_inclusive else array > low
    below = array <= high if high_inclusive else array < high
    if np.all(above & below):
        return
    shown = array.item() if array.ndim == 0 else array.tolist()
    interval = _interval(low, high, low_inclusive, high_inclusive)
    raise ScheduleArgumentError(
        f"{schedule_name(owner)}: {name} must be in {interval}, got {shown!r}."
        + (f" {why}" if why else "")
    )


def check_steps(
    owner: object | str, name: str, steps: Any, minimum: int = 0, *, why: str = ""
) -> None:
    """Raise unless every element of the integer ``steps`` is at least ``minimum``."""
    if steps is None or not is_concrete(steps):
        return
    array = np.asarray(steps)
    if np.all(array >= minimum):
        return
    shown = array.item() if array.ndim == 0 else array.tolist()
    need = "non-negative" if minimum == 0 else "positive" if minimum == 1 else f">= {minimum}"
    raise ScheduleArgumentError(
        f"{schedule_name(owner)}: {name} must be {need}, got {shown!r}."
        + (f" {why}" if why else "")
    )


def check_increasing(owner: object | str, name: str, steps: Any, *, strict: bool = True) -> None:
    """Raise unless the 1-D ``steps`` are increasing (strictly, unless ``strict=False``)."""
    if steps is None or not is_concrete(steps):
        return
    array = np.asarray(steps)
    if array.ndim != 1:
        raise ScheduleArgumentError(
            f"{schedule_name(owner)}: {name} must be a 1-D sequence of steps, got shape "
            f"{array.shape}."
        )
    gaps = np.diff(array)
    if np.all(gaps > 0) if strict else np.all(gaps >= 0):
        return
    order = "strictly increasing" if strict else "in non-decreasing order"
    raise ScheduleArgumentError(
        f"{schedule_name(owner)}: {name} must be {order}, got {array.tolist()!r}."
    )
