"""Alias factories: errors about a hyperparameter in the terms of the alias that was called.

An alias (``adam``, ``signum``, ``adafactor``, ...) builds a chain of transformations
from its arguments, and each member checks its own fields. Left alone, a bad argument
is reported by the member under the member's name for it: ``signum(0.1, beta=2.0)``
would say ``ema: decay must be in [0, 1], got 2.0``. :func:`alias` restates such an
error in the words of the call: ``signum: beta must be in [0, 1], got 2.0 (ema's
decay)``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from ._hyperparameters import HyperparameterError, is_concrete

__all__ = ["alias"]

P = ParamSpec("P")
R = TypeVar("R")

# The kinds of parameter that hold one argument each (not *args or **kwargs).
_SINGLE = {
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
}


def alias(factory: Callable[P, R]) -> Callable[P, R]:
    """Make the errors of an alias factory name the alias and its argument.

    When building raises a :class:`HyperparameterError` about one member's argument
    (an error with ``argument`` set), the call's arguments are bound to the factory's
    signature and searched for the one that was given the offending value: the same
    object, or for numbers and numeric arrays an equal value once converted to the
    dtype the member holds (``1.1`` and ``float32(1.1)`` are equal). The arguments the
    call passed are searched first, then, if none holds the value, the defaults. If
    exactly one argument holds it, the error is raised again, chained from the
    member's, as ``"{alias}: {argument} {requirement} ({member}'s {field})."`` (the
    parenthesis only when the names differ); otherwise the member's error propagates
    unchanged. Traced values (under ``jit`` or ``vmap``) are matched by identity only.

    The wrapper keeps the factory's name, docstring and signature
    (:func:`functools.wraps`), and on success costs only a ``try``.

    Example:
        ```python
        @alias
        def signum(learning_rate, beta=0.9, accumulator_dtype=None):
            return chain(ema(beta, debias=False), scale_by_sign(), ...)

        signum(0.1, beta=2.0)
        # HyperparameterError: signum: beta must be in [0, 1], got 2.0 (ema's decay).
        ```
    """
    name = factory.__name__

    @functools.wraps(factory)
    def build(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return factory(*args, **kwargs)
        except HyperparameterError as error:
            restated = _restated(error, name, factory, args, kwargs)
            if restated is None:
                raise
            raise restated from error

    return build


def _restated(
    error: HyperparameterError,
    name: str,
    factory: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> HyperparameterError | None:
    """``error`` in the terms of the alias ``name``, or ``None`` to keep it as it is."""
    if error.argument is None or error.requirement is None:
        return None
    signature = inspect.signature(factory)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return None
    parameters = {k: p for k, p in signature.parameters.items() if p.kind in _SINGLE}
    passed = {k: v for k, v in bound.arguments.items() if k in parameters}
    defaults = {
        k: p.default
        for k, p in parameters.items()
        if k not in passed and p.default is not inspect.Parameter.empty
    }
    for candidates in (passed, defaults):
        holders = [k for k, v in candidates.items() if _holds(v, error.value)]
        if len(holders) > 1:
            return None
        if holders:
            argument = holders[0]
            if (name, argument) == (error.transformation, error.argument):
                return None
            return HyperparameterError.for_argument(
                name,
                argument,
                error.value,
                error.requirement,
                member=error.member,
                field=error.field,
            )
    return None


def _is_numeric(value: Any) -> bool:
    """Whether ``value`` is a concrete number or numeric array (not a boolean)."""
    if isinstance(value, bool) or not isinstance(
        value, int | float | complex | np.number | np.ndarray | jax.Array
    ):
        return False
    if not is_concrete(value):
        return False
    return bool(jnp.issubdtype(np.asarray(value).dtype, jnp.number))


def _holds(given: Any, reported: Any) -> bool:
    """Whether the argument ``given`` is the value ``reported`` by a member's check.

    The same object, or equal numbers: ``given`` is converted to ``reported``'s dtype
    first when that is a cast of the same kind (a member stores ``1.1`` as
    ``float32(1.1)``); NaN equals NaN.
    """
    if given is reported:
        return True
    if not (_is_numeric(given) and _is_numeric(reported)):
        return False
    expected = np.asarray(reported)
    value = np.asarray(given)
    if np.can_cast(value.dtype, expected.dtype, casting="same_kind"):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            value = value.astype(expected.dtype)
    return value.shape == expected.shape and bool(np.array_equal(value, expected, equal_nan=True))
