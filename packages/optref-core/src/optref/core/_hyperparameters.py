"""Hyperparameters as data: conversion to JAX arrays and validation with clear errors.

A numeric hyperparameter is stored as a JAX array, a leaf of the transformation's
PyTree: a jitted step that takes the transformation as an argument does not recompile
when it changes, a batch of transformations can be ``vmap``-ped, and gradients reach
it. A hyperparameter that Optax lets be a schedule may also be any callable
``count -> value``; it is kept as it is and called with the step count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeAlias, Union

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

__all__ = [
    "HyperparameterError",
    "ScalarOrSchedule",
    "as_hyperparameter",
    "as_scalar_hyperparameter",
    "check_range",
    "is_concrete",
    "resolve",
    "transformation_name",
]

ScalarOrSchedule: TypeAlias = Union[float, Array, Callable[[Array], ArrayLike]]  # noqa: UP007
r"""A hyperparameter that may follow a schedule, as in Optax: a number, a JAX scalar, or a
callable ``count -> value`` evaluated at the transformation's step count,
$\eta_t = \eta(t)$."""


class HyperparameterError(ValueError):
    """A hyperparameter is out of its allowed range or of the wrong kind.

    An error about one argument also carries it as data, so that a caller can restate it
    in its own terms: an alias such as ``signum`` names its own argument (``beta``), not
    the field of the member it passed it to (``ema``'s ``decay``).

    Attributes:
        transformation: the name of the transformation or alias the message names first
            (``"ema"``), or ``None`` when the error is not about one argument.
        argument: that transformation's argument (``"decay"``).
        value: the value the argument was given (after conversion to an array, where
            the check ran on the converted value).
        requirement: what the value fails, as the message words it after the argument's
            name: ``"must be in [0, 1], got 2.0"``.
        member: the transformation that raised the error first: the same as
            ``transformation``, unless an alias restated it (``"ema"`` in
            ``signum``'s error about ``beta``).
        field: that member's argument (``"decay"``).
    """

    def __init__(
        self,
        message: str,
        *,
        transformation: str | None = None,
        argument: str | None = None,
        value: Any = None,
        requirement: str | None = None,
        member: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.transformation = transformation
        self.argument = argument
        self.value = value
        self.requirement = requirement
        self.member = member if member is not None else transformation
        self.field = field if field is not None else argument

    @classmethod
    def for_argument(
        cls,
        transformation: str,
        argument: str,
        value: Any,
        requirement: str,
        *,
        member: str | None = None,
        field: str | None = None,
    ) -> HyperparameterError:
        """The error ``"{transformation}: {argument} {requirement}."``, with its parts as data.

        When ``field`` (the argument of the ``member`` that raised it first) is not
        ``argument``, the message ends with where the value went:
        ``"signum: beta must be in [0, 1], got 2.0 (ema's decay)."``.
        """
        where = "" if field is None or field == argument else f" ({member}'s {field})"
        return cls(
            f"{transformation}: {argument} {requirement}{where}.",
            transformation=transformation,
            argument=argument,
            value=value,
            requirement=requirement,
            member=member,
            field=field,
        )


def transformation_name(obj: object) -> str:
    """The Optax-style factory name of a transformation: ``ScaleByAdam`` -> ``scale_by_adam``."""
    name = type(obj).__name__ if not isinstance(obj, type) else obj.__name__
    # A run of capitals is one word: ScaleByLBFGS -> scale_by_lbfgs, ScaleBySM3 -> scale_by_sm3.
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _default_float() -> np.dtype:
    return jnp.zeros((), dtype=float).dtype


def as_scalar_hyperparameter(value: Any) -> Array:
    """Convert a number or array to a floating JAX array (the default float dtype for ints).

    Tracers pass through, so factories can be called inside ``jit``, ``vmap`` and ``grad``.

    It is also the converter of every scalar hyperparameter field,
    ``b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)``: the field's
    type is what the transformation holds (an array), the converter's argument what its
    constructor takes. ``GradientTransformation.__post_init__`` converts first, with an
    error that names the transformation and the field, so the converter then finds an
    array and returns it unchanged.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, bool) or callable(value) or isinstance(value, str) or value is None:
        raise HyperparameterError(f"expected a number or an array, got {value!r}")
    if isinstance(value, int | float):
        array = jnp.asarray(value, dtype=_default_float())
    else:
        array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.inexact):
        array = array.astype(_default_float())
    return array


def as_hyperparameter(value: ScalarOrSchedule) -> Array | Callable[[Array], ArrayLike]:
    """Like :func:`as_scalar_hyperparameter`, but a callable (a schedule) is kept as it is."""
    if callable(value) and not isinstance(value, jax.Array):
        return value
    return as_scalar_hyperparameter(value)


def resolve(value: ScalarOrSchedule, count: Array) -> Array:
    """The value of a hyperparameter at step ``count``: call it if it is a schedule."""
    if callable(value) and not isinstance(value, jax.Array):
        return jnp.asarray(value(count))
    return jnp.asarray(value)


def is_concrete(value: Any) -> bool:
    """Whether ``value`` is a concrete number or array that can be checked in Python."""
    if callable(value) and not isinstance(value, jax.Array):
        return False
    leaves = jax.tree.leaves(value)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _fmt(bound: float) -> str:
    if math.isinf(bound):
        return "∞" if bound > 0 else "-∞"
    return f"{bound:g}"


def check_range(
    owner: object | str,
    argument: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise :class:`HyperparameterError` unless every element of ``value`` lies in the range.

    Schedules and traced values cannot be checked in Python and are accepted. The message
    names the transformation, the argument, the allowed range and the value given.
    """
    if value is None or not is_concrete(value):
        return
    where = owner if isinstance(owner, str) else transformation_name(owner)
    array = np.asarray(value)
    if np.iscomplexobj(array):
        raise HyperparameterError.for_argument(
            where, argument, value, f"must be real, got {value!r}"
        )
    ok_low = array >= low if low_inclusive else array > low
    ok_high = array <= high if high_inclusive else array < high
    if not (np.all(ok_low) and np.all(ok_high)) or np.any(np.isnan(array)):
        interval = (
            ("[" if low_inclusive else "(")
            + f"{_fmt(low)}, {_fmt(high)}"
            + ("]" if high_inclusive else ")")
        )
        shown = array.item() if array.ndim == 0 else array
        raise HyperparameterError.for_argument(
            where, argument, value, f"must be in {interval}, got {shown!r}"
        )
