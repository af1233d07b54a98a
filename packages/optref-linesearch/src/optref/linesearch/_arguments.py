"""The extra arguments of a line search's ``update``: ``value``, ``grad``, ``value_fn``.

A line search calls the objective, so its ``update`` takes, besides the updates (the
search direction), the state and the params:

- ``value``: the objective at ``params``;
- ``grad``: its gradient at ``params`` (a tree shaped like the params);
- ``value_fn``: the objective, called as ``value_fn(params, **fn_kwargs)``;
- any other keyword argument, passed on to ``value_fn`` (a batch ``x=..., y=...``).

Every mistake is reported before anything is traced, naming the transformation and the
argument: a missing argument, a ``value_fn`` that is not callable or does not return
a real floating scalar, a ``value`` that is not a real scalar, a ``grad`` or updates
that do not fit the params, and keyword arguments that ``value_fn`` does not accept
(which Optax also refuses).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from optref.core import HyperparameterError, check_tree_fits

__all__ = ["LinesearchArguments", "linesearch_arguments", "split_kwargs", "static_int"]

_NEEDED = {
    "value": "the objective at params",
    "grad": "the gradient of the objective at params",
    "value_fn": "the objective, called as value_fn(params, **extra)",
}


def static_int(where: str, argument: str, value: Any, low: int, role: str) -> int:
    """``value`` as a Python int of at least ``low`` (a loop bound, a memory size).

    Raises :class:`~optref.core.HyperparameterError` naming the transformation, the
    argument and its ``role`` for anything else (a bool, a float, a traced array).
    """
    try:
        if isinstance(value, bool | np.bool_):
            raise TypeError("a bool is not a count")
        number = operator.index(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError) as error:
        raise HyperparameterError(
            f"{where}: {argument} must be a Python int ({role}), got {value!r}."
        ) from error
    if number < low:
        raise HyperparameterError(f"{where}: {argument} must be >= {low}, got {number}.")
    return number


@dataclasses.dataclass(frozen=True)
class LinesearchArguments:
    """What a line search needs from ``update``'s arguments, checked."""

    params: PyTree
    value: Array
    grad: PyTree
    objective: Callable[[PyTree], Array]


def split_kwargs(
    where: str, value_fn: Callable[..., Any], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The keyword arguments that ``value_fn`` accepts; raise for any it does not.

    A ``value_fn`` with ``**kwargs`` (or whose signature cannot be read) takes them all.
    """
    if not kwargs:
        return {}
    try:
        parameters = inspect.signature(value_fn).parameters.values()
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(kwargs)
    names = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    unknown = sorted(k for k in kwargs if k not in names)
    if unknown:
        raise TypeError(
            f"{where}: update got keyword arguments that value_fn does not accept: "
            f"{unknown}. Keyword arguments of update other than value, grad and value_fn "
            f"are passed to value_fn, whose signature is {_signature(value_fn)}."
        )
    return dict(kwargs)


def _signature(fn: Callable[..., Any]) -> str:
    try:
        return f"{getattr(fn, '__name__', 'value_fn')}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return repr(fn)


def _check_objective_output(where: str, objective: Callable[..., Any], params: PyTree) -> None:
    """Raise unless ``objective(params)`` is a real floating scalar.

    Only the output's shape and dtype are computed (``eqx.filter_eval_shape``, at trace
    time), so a jitted step pays nothing; a mis-shaped output would otherwise fail deep
    inside the search's loop or gradient with an error that names neither.
    """
    output = eqx.filter_eval_shape(objective, params)
    if isinstance(output, jax.ShapeDtypeStruct):
        if output.ndim == 0 and jnp.issubdtype(output.dtype, jnp.floating):
            return
        shown = f"{output.dtype.name}{list(output.shape)}"
    else:
        shown = f"a {type(output).__name__}"
    raise ValueError(
        f"{where}: value_fn must return a real floating scalar (the objective at params), "
        f"got {shown}."
    )


def linesearch_arguments(
    where: str, updates: PyTree, params: PyTree | None, extra: dict[str, Any]
) -> LinesearchArguments:
    """Check ``update``'s arguments for the line search ``where`` and bind the objective.

    Raises :class:`TypeError` for a missing ``params``, ``value``, ``grad`` or
    ``value_fn``, a ``value_fn`` that is not callable and keyword arguments that it does
    not accept; :class:`ValueError` for a ``value``, or an output of ``value_fn`` at
    ``params``, that is not a real floating scalar; and
    :class:`~optref.core.TreeMismatchError` for a ``grad`` or updates that do not have
    the structure and shapes of the params (naming the PyTree path).
    """
    if params is None:
        raise TypeError(
            f"{where}: update needs params (the current parameters): the line search "
            "evaluates the objective at params + stepsize * updates."
        )
    extra = dict(extra)
    missing = [name for name in _NEEDED if extra.get(name) is None]
    if missing:
        described = "; ".join(f"{name} ({_NEEDED[name]})" for name in missing)
        raise TypeError(
            f"{where}: update needs the keyword argument{'s' if len(missing) > 1 else ''} "
            f"{described}. Call update(updates, state, params, value=value, grad=grad, "
            "value_fn=fn); optref.linesearch.value_and_grad_from_state(fn) gives value and "
            "grad, reusing the ones the line search computed."
        )
    value, grad = extra.pop("value"), extra.pop("grad")
    value_fn: Callable[..., Array] = extra.pop("value_fn")
    if not callable(value_fn):
        raise TypeError(f"{where}: value_fn must be callable, got {type(value_fn).__name__}.")
    value = jnp.asarray(value)
    if value.ndim != 0 or np.iscomplexobj(value) or not jnp.issubdtype(value.dtype, jnp.inexact):
        raise ValueError(
            f"{where}: value must be a real floating scalar (the objective at params), got "
            f"{value.dtype.name}{list(value.shape)}."
        )
    check_tree_fits(params, grad, where=where, reference_name="params", tree_name="grad")
    check_tree_fits(params, updates, where=where, reference_name="params", tree_name="updates")
    fn_kwargs = split_kwargs(where, value_fn, extra)
    objective = functools.partial(value_fn, **fn_kwargs) if fn_kwargs else value_fn
    _check_objective_output(where, objective, params)
    return LinesearchArguments(params=params, value=value, grad=grad, objective=objective)
