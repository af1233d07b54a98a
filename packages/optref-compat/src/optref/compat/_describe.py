"""Names for transformations and states of either library, for error messages."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax
from jaxtyping import PyTree

from optref.core import Chain, GradientTransformation, NamedChain
from optref.core._hyperparameters import transformation_name

__all__ = [
    "OPTREF_MARKER",
    "describe_params",
    "describe_state",
    "describe_transformation",
    "is_optax_transformation",
    "optax_name",
    "optref_factory_names",
    "optref_name",
    "optref_of",
]

#: The attribute that :func:`optref.compat.to_optax` sets on the ``init`` and ``update``
#: functions it returns: the optref transformation they wrap.
OPTREF_MARKER = "_optref_transformation"


def optref_factory_names(cls: type) -> list[str]:
    """The public functions of ``cls``'s module whose return annotation is ``cls``."""
    module = inspect.getmodule(cls)
    names = []
    for name, obj in vars(module).items() if module is not None else ():
        if not inspect.isfunction(obj) or name.startswith("_"):
            continue
        returns = obj.__annotations__.get("return")
        if returns is cls or (
            isinstance(returns, str) and re.fullmatch(rf"(\w+\.)?{cls.__name__}", returns.strip())
        ):
            names.append(name)
    return names


@functools.cache
def optref_name(cls: type) -> str:
    """The name of the factory of an optref class: ``ScaleByLBFGS`` -> ``scale_by_lbfgs``.

    The factory in the class's module that returns it, when there is one; otherwise the
    class name in snake case.
    """
    names = optref_factory_names(cls)
    return names[0] if len(names) == 1 else transformation_name(cls)


def is_optax_transformation(obj: Any) -> bool:
    """Whether ``obj`` is an Optax transformation (an ``(init, update)`` pair)."""
    return isinstance(obj, optax.GradientTransformation)


def optref_of(opt: Any) -> GradientTransformation | None:
    """The optref transformation that ``to_optax`` wrapped into ``opt``, if any."""
    init = getattr(opt, "init", None)
    update = getattr(opt, "update", None)
    tx = getattr(init, OPTREF_MARKER, None)
    if tx is not None and getattr(update, OPTREF_MARKER, None) is tx:
        return tx
    return None


def _closure_contents(fn: Any) -> list[Any]:
    contents = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            contents.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    return contents


def _name_of_update(update: Any) -> str:
    wrapped = getattr(update, OPTREF_MARKER, None)
    if wrapped is not None:
        return f"to_optax({describe_transformation(wrapped)})"
    qualname = getattr(update, "__qualname__", None) or type(update).__name__
    name = qualname.split(".<locals>")[0]
    if name == "with_extra_args_support":
        inner = [c for c in _closure_contents(update) if is_optax_transformation(c)]
        if inner:
            return _name_of_update(inner[0].update)
    if name == "chain":
        for contents in _closure_contents(update):
            if (
                isinstance(contents, tuple | list)
                and contents
                and all(callable(c) for c in contents)
            ):
                return "chain(" + ", ".join(_name_of_update(m) for m in contents) + ")"
    return name


def optax_name(opt: Any) -> str:
    """A readable name for an Optax transformation: its factory, e.g. ``scale_by_adam``.

    Optax transformations are pairs of closures; the name is read from the qualified name
    of ``update`` (``scale_by_adam.<locals>.update_fn`` gives ``scale_by_adam``). The
    members of a ``chain`` are named too; a transformation made by ``to_optax`` is named
    after the optref transformation it wraps.
    """
    return _name_of_update(getattr(opt, "update", None))


def _transformation_fields(tx: GradientTransformation) -> list[tuple[str, Any]]:
    return [(f.name, getattr(tx, f.name)) for f in dataclasses.fields(tx)]


def _inner_transformations(value: Any) -> list[tuple[str, Any]]:
    """``(label, transformation)`` for a field value holding transformations."""
    if isinstance(value, GradientTransformation) or is_optax_transformation(value):
        return [("", value)]
    if (
        isinstance(value, dict)
        and value
        and all(
            isinstance(v, GradientTransformation) or is_optax_transformation(v)
            for v in value.values()
        )
    ):
        return [(f"{k}=", v) for k, v in value.items()]
    if (
        isinstance(value, tuple | list)
        and value
        and all(isinstance(v, GradientTransformation) or is_optax_transformation(v) for v in value)
    ):
        return [("", v) for v in value]
    return []


def describe_transformation(tx: Any) -> str:
    """A readable name for an optref or Optax transformation, with its members.

    ``chain(scale_by_adam, scale_by_learning_rate)``, ``named_chain(clip=clip,
    opt=...)``, ``from_optax(scale_by_adam)``, ``masked(adam)``.
    """
    if is_optax_transformation(tx):
        return optax_name(tx)
    if not isinstance(tx, GradientTransformation):
        return type(tx).__name__
    if isinstance(tx, Chain):
        return "chain(" + ", ".join(describe_transformation(t) for t in tx.transformations) + ")"
    if isinstance(tx, NamedChain):
        return (
            "named_chain("
            + ", ".join(
                f"{n}={describe_transformation(t)}"
                for n, t in zip(tx.names, tx.transformations, strict=True)
            )
            + ")"
        )
    from ._from_optax import FromOptax

    if isinstance(tx, FromOptax):
        return f"from_optax({tx.name})"
    name = optref_name(type(tx))
    inner = [
        getattr(value, "__name__", "factory")
        for field, value in _transformation_fields(tx)
        if field.endswith("factory") and callable(value)
    ] + [
        label + describe_transformation(member)
        for _, value in _transformation_fields(tx)
        for label, member in _inner_transformations(value)
    ]
    return f"{name}({', '.join(inner)})" if inner else name


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _holds_states(x: Any) -> bool:
    if isinstance(x, eqx.Module) or _is_namedtuple(x):
        return True
    if isinstance(x, tuple | list):
        return any(_holds_states(v) for v in x)
    if isinstance(x, dict):
        return any(_holds_states(v) for v in x.values())
    return False


def describe_state(state: Any) -> str:
    """A short description of a state's layout: its types and field names.

    ``(ScaleByAdamState(count, mu, nu), EmptyState())``. Params-shaped fields are named,
    not expanded.
    """
    if isinstance(state, eqx.Module) or _is_namedtuple(state):
        names = (
            list(getattr(type(state), "_fields"))  # noqa: B009 (a NamedTuple's fields)
            if _is_namedtuple(state)
            else [f.name for f in dataclasses.fields(state)]
        )
        parts = []
        for name in names:
            value = getattr(state, name)
            parts.append(f"{name}={describe_state(value)}" if _holds_states(value) else name)
        return f"{type(state).__name__}({', '.join(parts)})"
    if isinstance(state, tuple | list) and _holds_states(state):
        inner = ", ".join(describe_state(s) for s in state)
        return f"({inner},)" if len(state) == 1 else f"({inner})"
    if isinstance(state, dict) and _holds_states(state):
        return "{" + ", ".join(f"{k!r}: {describe_state(v)}" for k, v in state.items()) + "}"
    if state is None:
        return "None"
    shape, dtype = getattr(state, "shape", None), getattr(state, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{np.dtype(dtype).name}{list(shape)}"
    return type(state).__name__


def describe_params(params: PyTree) -> str:
    """The structure of a params tree with each leaf's dtype and shape.

    ``{'b': float64[2], 'w': float64[3]}``.
    """
    described = jax.tree.map(
        lambda x: f"{np.dtype(x.dtype).name}{list(np.shape(x))}" if hasattr(x, "dtype") else x,
        params,
    )
    leaves, treedef = jax.tree.flatten(described)
    return str(jax.tree.unflatten(treedef, [_Raw(s) for s in leaves]))


class _Raw(str):
    """A string whose repr is itself, so a tree of them prints without quotes."""

    def __repr__(self) -> str:
        return str(self)
