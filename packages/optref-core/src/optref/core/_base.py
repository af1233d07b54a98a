"""The protocol every optref transformation follows.

A :class:`GradientTransformation` is an immutable :class:`equinox.Module` whose fields
are its hyperparameters. ``init(params)`` builds the state; ``update(updates, state,
params=None, **extra)`` returns the transformed updates and the next state. Both are
pure functions of their arguments.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.core
import numpy as np
from jaxtyping import PyTree

from ._hyperparameters import (
    HyperparameterError,
    as_hyperparameter,
    as_scalar_hyperparameter,
    is_concrete,
    transformation_name,
)
from ._tree import as_array
from ._tree_check import check_inexact, check_tree_fits

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "StateMismatchError",
    "check_state",
    "params_like",
    "require_params",
]


class StateMismatchError(TypeError):
    """A state was given to a transformation that did not build it."""


class EmptyState(eqx.Module):
    """The state of a stateless transformation: it holds nothing."""


class GradientTransformation(eqx.Module):
    """A pure gradient transformation: ``init(params) -> state`` and ``update``.

    ``update(updates, state, params=None, **extra) -> (new_updates, new_state)``.
    ``extra`` carries the keyword arguments that some transformations need (``value``,
    ``grad``, ``value_fn`` for line searches); every transformation accepts and ignores
    the ones it does not use, so a :func:`chain` can forward them to all its members.

    Subclasses list their numeric hyperparameters in ``scalar_hyperparameters`` (always
    numbers or arrays) and ``schedule_hyperparameters`` (numbers, arrays or callables
    ``count -> value``); they are converted to JAX arrays when the transformation is
    built, so they are leaves of its PyTree; a NaN is rejected for every one of them, and
    ranges are checked in ``__check_init__``.

    Every subclass's ``init`` first checks that no leaf of the params is an integer or
    boolean, and raises a :class:`TypeError` naming the transformation and the PyTree
    path of the first one that is.
    """

    scalar_hyperparameters: ClassVar[tuple[str, ...]] = ()
    schedule_hyperparameters: ClassVar[tuple[str, ...]] = ()

    def __hash__(self) -> int:
        """A hash of the kind of transformation and its hyperparameters' values.

        ``jax.jit(tx.init)`` and ``jax.jit(tx.update)`` hash the function they compile,
        and a bound method hashes its module; a module's default hash fails on array
        fields. Equal transformations hash equal, so they share compiled functions.
        """
        leaves, treedef = jax.tree.flatten(self)
        return hash((treedef, tuple(_hashable(leaf) for leaf in leaves)))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("init")
        if init is not None and not getattr(init, "__isabstractmethod__", False):
            cls.init = _checking_params(init)  # pyright: ignore[reportAttributeAccessIssue]

    def __post_init__(self) -> None:
        name = transformation_name(self)
        for field in self.schedule_hyperparameters + self.scalar_hyperparameters:
            value = getattr(self, field)
            if value is None:
                continue
            convert = (
                as_hyperparameter
                if field in self.schedule_hyperparameters
                else as_scalar_hyperparameter
            )
            try:
                converted = convert(value)
            except HyperparameterError as error:
                kinds = (
                    "a number, an array or a callable count -> value"
                    if field in self.schedule_hyperparameters
                    else "a number or an array"
                )
                raise HyperparameterError.for_argument(
                    name, field, value, f"must be {kinds}, got {value!r}"
                ) from error
            if isinstance(converted, jax.Array) and converted.ndim != 0:
                raise HyperparameterError.for_argument(
                    name,
                    field,
                    value,
                    f"must be a scalar, got an array of shape {tuple(converted.shape)}; to "
                    "sweep over values, build the transformation inside jax.vmap or use "
                    "optref.core.sweep",
                )
            object.__setattr__(self, field, converted)

    def __check_init__(self) -> None:
        # Runs after the subclasses' own checks, which name the allowed range.
        for field in self.schedule_hyperparameters + self.scalar_hyperparameters:
            value = getattr(self, field)
            if value is None or not is_concrete(value):
                continue
            array = np.asarray(value)
            if np.any(np.isnan(array)):
                shown = array.item() if array.ndim == 0 else array
                raise HyperparameterError.for_argument(
                    transformation_name(self), field, value, f"must not be NaN, got {shown!r}"
                )

    @abc.abstractmethod
    def init(self, params: PyTree) -> PyTree:
        """The initial state for ``params``."""

    @abc.abstractmethod
    def update(
        self, updates: PyTree, state: PyTree, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, PyTree]:
        """Transform ``updates``; return them with the next state."""


def _hashable(leaf: Any) -> Any:
    """A leaf as something hashable: an array by its dtype, shape and bytes."""
    if isinstance(leaf, jax.core.Tracer):
        raise TypeError(
            "a transformation with traced hyperparameters cannot be hashed: pass it to the "
            "jitted function as an argument (eqx.filter_jit) rather than closing over it."
        )
    if isinstance(leaf, jax.Array) and jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(leaf)), _hashable(jax.random.key_data(leaf))
    if isinstance(leaf, jax.Array | np.ndarray | np.generic):
        array = np.asarray(leaf)
        return array.dtype.str, array.shape, array.tobytes()
    return leaf


def _checking_params(init: Callable[..., Any]) -> Callable[..., Any]:
    """``init`` preceded by the check that the params are floating or complex arrays."""

    @functools.wraps(init)
    def checked_init(self: GradientTransformation, params: PyTree) -> Any:
        check_inexact(params, where=transformation_name(self))
        return init(self, jax.tree.map(as_array, params))

    return checked_init


def params_like(*, follows_dtype: bool = True) -> Any:
    """Declare a state field that holds a tree with the structure and shapes of the params.

    :func:`check_state` then checks, at trace time, that the updates fit it (and, with
    ``follows_dtype``, that its dtypes are the params' dtypes).
    """
    return eqx.field(metadata={"params_like": True, "follows_dtype": follows_dtype})


def params_like_fields(state: Any) -> list[dataclasses.Field[Any]]:
    """The fields of the state module ``state`` declared with :func:`params_like`, in
    order; ``[]`` for anything that is not a dataclass instance (a tuple, an array)."""
    if not dataclasses.is_dataclass(state) or isinstance(state, type):
        return []
    return [f for f in dataclasses.fields(state) if f.metadata.get("params_like", False)]


def require_params(transformation: object, params: PyTree | None, purpose: str) -> None:
    """Raise a :class:`ValueError` naming ``transformation`` if ``params`` is ``None``;
    ``purpose`` says what its update needs them for."""
    if params is None:
        raise ValueError(
            f"{transformation_name(transformation)}: update needs params ({purpose}); "
            "call update(updates, state, params)."
        )


def check_state(
    transformation: GradientTransformation,
    updates: PyTree,
    state: Any,
    state_type: type | tuple[type, ...],
    params: PyTree | None = None,
) -> None:
    """Check that ``state`` is a ``state_type`` and that ``updates`` fit its params-like fields.

    Every leaf of the updates must be a floating or complex array (or ``None``). With
    ``params``, the updates must also have the structure and shapes of the params,
    and the params-like fields that follow the params' dtype must have the params' dtypes.

    Raises :class:`StateMismatchError` for a state of another transformation, a
    :class:`TypeError` for an integer or boolean update, and
    :class:`~optref.core.TreeMismatchError` naming the transformation and the PyTree
    path where the updates and a field of the state differ in structure, shape or dtype.
    Runs at trace time only.
    """
    name = transformation_name(transformation)
    if not isinstance(state, state_type):
        expected = (
            state_type.__name__
            if isinstance(state_type, type)
            else " or ".join(t.__name__ for t in state_type)
        )
        got = type(state)
        got_name, hint = got.__name__, "Was the state built by another optimizer?"
        if got.__module__.split(".")[0] == "optax":
            # Optax's state classes have optref's names: say whose each one is.
            expected, got_name = f"{expected} of optref.core", f"{got.__name__} of optax"
            hint = "Convert Optax's states with optref.compat.state_from_optax."
        raise StateMismatchError(
            f"{name}: expected a {expected} (the state that {name}.init builds), "
            f"got a {got_name}. {hint}"
        )
    check_inexact(updates, where=name, tree_name="updates")
    for field in params_like_fields(state):
        check_tree_fits(
            getattr(state, field.name),
            updates,
            where=name,
            reference_name=f"state.{field.name}",
            tree_name="updates",
            check_dtype=False,
        )
        if params is not None and field.metadata.get("follows_dtype", True):
            check_tree_fits(
                params,
                getattr(state, field.name),
                where=name,
                reference_name="params",
                tree_name=f"state.{field.name}",
                check_dtype=True,
            )
    if params is not None:
        check_tree_fits(params, updates, where=name, reference_name="params", tree_name="updates")
