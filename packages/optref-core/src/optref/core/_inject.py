"""Hyperparameter injection: hyperparameters that live in the state, scheduled or set by hand.

``inject_hyperparams(factory)(**kwargs)`` builds a transformation that keeps the numeric
hyperparameters of ``factory`` in its state (``state.hyperparams``), evaluates those given
as schedules at every step, and rebuilds ``factory(**current_values)`` in each ``update``.

Because optref's factories already hold their hyperparameters as JAX arrays, the rebuilt
transformation receives arrays of the very dtype and value that the plain factory would
have built, and so performs the same arithmetic: the injected optimizer's updates are
bit-identical to the plain one's (numerics rule 4).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PyTree, jaxtyped

from ._base import GradientTransformation, check_state
from ._hyperparameters import HyperparameterError, as_scalar_hyperparameter
from ._numerics import safe_increment
from ._typecheck import typechecker

__all__ = [
    "InjectHyperparams",
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "WrappedSchedule",
    "WrappedScheduleState",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
]


@jaxtyped(typechecker=typechecker)
class WrappedScheduleState(eqx.Module):
    """The step count of a schedule ``count -> value`` driven by :class:`WrappedSchedule`."""

    count: Int[Array, ""]


class WrappedSchedule(eqx.Module):
    """A schedule ``count -> value`` as a stateful schedule: its state counts the steps.

    A stateful schedule has ``init() -> state``, ``update(state, **extra) -> state`` and
    ``__call__(state, **extra) -> value``. Reference: ``optax.WrappedSchedule``.
    """

    schedule_fn: Callable[[Array], Any]

    def init(self) -> WrappedScheduleState:
        """The count at step zero."""
        return WrappedScheduleState(jnp.zeros([], jnp.int32))

    def update(self, state: WrappedScheduleState, **extra: Any) -> WrappedScheduleState:
        """The count of the next step."""
        del extra
        return WrappedScheduleState(safe_increment(state.count))

    def __call__(self, state: WrappedScheduleState, **extra: Any) -> Any:
        """The value of the schedule at the state's count."""
        del extra
        return self.schedule_fn(state.count)


@jaxtyped(typechecker=typechecker)
class InjectStatefulHyperparamsState(eqx.Module):
    """The state of an injected transformation.

    Attributes:
        count: the number of ``update`` calls so far.
        hyperparams: the current value of every numeric hyperparameter, by name. Replace
            one (``tree_set(state, learning_rate=...)`` or :func:`equinox.tree_at`) and
            the next step uses it, unless that hyperparameter is scheduled.
        hyperparams_states: the state of each scheduled hyperparameter's schedule.
        inner_state: the state of the inner transformation.

    Field names and order are Optax's (``optax.InjectStatefulHyperparamsState``), so
    ``state.hyperparams['learning_rate']`` reads as it does in Optax. The keys of
    ``hyperparams_states`` are not searched by :func:`tree_get` (they name the schedules,
    not values), so ``tree_get(state, 'learning_rate')`` finds the one current value.
    """

    count: Int[Array, ""]
    hyperparams: dict[str, Any]
    hyperparams_states: dict[str, Any] = eqx.field(metadata={"search_keys": False})
    inner_state: PyTree


#: Optax's older name for the injected state; the same class in optref.
InjectHyperparamsState = InjectStatefulHyperparamsState


def _is_stateful_schedule(value: Any) -> bool:
    return callable(value) and hasattr(value, "init") and hasattr(value, "update")


def _is_schedule(value: Any) -> bool:
    """Whether injection treats ``value`` as a schedule: a callable that is not a type."""
    if isinstance(value, type | np.dtype | jax.Array | np.ndarray | str):
        return False
    return callable(value)


def _is_numeric(value: Any) -> bool:
    """Numbers and arrays of numbers; not booleans, and not PRNG keys (passed as they are)."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, jax.Array | np.ndarray | np.number):
        dtype = value.dtype
        return jnp.issubdtype(dtype, jnp.number) and not jnp.issubdtype(dtype, jax.dtypes.prng_key)
    return isinstance(value, int | float)


def _named_arguments(
    signature: inspect.Signature, arguments: dict[str, Any]
) -> list[tuple[str, Any]]:
    """The bound arguments by name, the entries of a ``**kwargs`` parameter as their own.

    A ``*args`` parameter keeps its name and holds the tuple (never a hyperparameter).
    """
    named = []
    for name, value in arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            named.extend(value.items())
        else:
            named.append((name, value))
    return named


def _call(factory: Callable[..., Any], values: dict[str, Any]) -> Any:
    """``factory`` called with ``values`` by name, as :func:`_named_arguments` split them."""
    signature = inspect.signature(factory)
    arguments: dict[str, Any] = {}
    var_keyword = None
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = name
        elif name in values:
            arguments[name] = values[name]
    if var_keyword is not None:
        arguments[var_keyword] = {k: v for k, v in values.items() if k not in arguments}
    bound = inspect.BoundArguments(signature, arguments)  # type: ignore[arg-type]
    return factory(*bound.args, **bound.kwargs)


def _as_value(value: Any, dtype: Any) -> Array:
    """A hyperparameter's value as the plain factory would hold it, cast to ``dtype`` if set.

    Floats become arrays of the default float dtype exactly as
    :func:`~optref.core._hyperparameters.as_scalar_hyperparameter` makes them (arrays keep
    their dtype), integers stay integers; the result is strongly typed.
    """
    if isinstance(value, jax.core.Tracer):
        array = value
    elif isinstance(value, int | np.integer) or (
        hasattr(value, "dtype") and jnp.issubdtype(value.dtype, jnp.integer)
    ):
        array = jnp.asarray(value)
    else:
        array = as_scalar_hyperparameter(value)
    if dtype is not None and jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(dtype)
    # A weakly typed value (what a schedule written with Python floats returns) would
    # let a float64 hyperparameter be computed with in float32 next to float32 arrays.
    return jnp.asarray(array, dtype=array.dtype)


class InjectHyperparams(GradientTransformation):
    """``inner_factory(**hyperparameters)`` with the numeric hyperparameters in the state.

    Built by :func:`inject_hyperparams`. ``numeric`` holds the constant numeric
    hyperparameters (initial values of ``state.hyperparams``), ``schedules`` the
    scheduled ones (as stateful schedules), ``other`` every other argument of the factory
    (flags, dtypes, masks, inner transformations, ``static_args``), passed as it is.
    """

    inner_factory: Callable[..., GradientTransformation] = eqx.field(static=True)
    numeric: dict[str, Any]
    schedules: dict[str, Any]
    other: dict[str, Any]
    hyperparam_dtype: Any = eqx.field(static=True, default=None)

    def _inner(self, hyperparams: dict[str, Any]) -> GradientTransformation:
        name = getattr(self.inner_factory, "__name__", repr(self.inner_factory))
        inner = _call(self.inner_factory, {**self.other, **hyperparams})
        if not isinstance(inner, GradientTransformation):
            raise TypeError(
                f"inject_hyperparams: inner_factory {name} must return an optref "
                f"GradientTransformation, got {type(inner).__name__}."
            )
        return inner

    def _scheduled_values(
        self, schedule_states: dict[str, Any], extra: dict[str, Any]
    ) -> dict[str, Array]:
        return {
            k: _as_value(schedule(schedule_states[k], **extra), self.hyperparam_dtype)
            for k, schedule in self.schedules.items()
        }

    def init(self, params: PyTree) -> InjectStatefulHyperparamsState:
        hyperparams = {k: _as_value(v, self.hyperparam_dtype) for k, v in self.numeric.items()}
        schedule_states = {k: schedule.init() for k, schedule in self.schedules.items()}
        hyperparams.update(self._scheduled_values(schedule_states, {}))
        return InjectStatefulHyperparamsState(
            count=jnp.zeros([], jnp.int32),
            hyperparams=hyperparams,
            hyperparams_states=schedule_states,
            inner_state=self._inner(hyperparams).init(params),
        )

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, InjectStatefulHyperparamsState]:
        check_state(self, updates, state, InjectStatefulHyperparamsState)
        hyperparams = {
            k: _as_value(v, self.hyperparam_dtype)
            for k, v in state.hyperparams.items()
            if k not in self.schedules
        }
        hyperparams.update(self._scheduled_values(state.hyperparams_states, extra))
        schedule_states = {
            k: schedule.update(state.hyperparams_states[k], **extra)
            for k, schedule in self.schedules.items()
        }
        updates, inner_state = self._inner(hyperparams).update(
            updates, state.inner_state, params, **extra
        )
        return updates, InjectStatefulHyperparamsState(
            count=safe_increment(state.count),
            hyperparams=hyperparams,
            hyperparams_states=schedule_states,
            inner_state=inner_state,
        )


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., InjectHyperparams]:
    """Put a factory's numeric hyperparameters in the state, as values or schedules.

    ``inject_hyperparams(adam)(learning_rate=schedule, b1=0.9)`` returns a transformation
    whose state is an :class:`InjectStatefulHyperparamsState`: ``state.hyperparams`` maps
    each numeric argument of the factory (defaults included) to its current value. At
    step $t$ (``state.count``) the update is that of the factory built with the current
    values,

    $$u_t = \\mathrm{factory}\\big(h_1(t), \\ldots, h_n(t)\\big).\\mathrm{update}(g_t),
    \\qquad h_i(t) = \\begin{cases} s_i(t) & h_i \\text{ a schedule} \\\\
    \\text{state.hyperparams}[i] & \\text{otherwise,} \\end{cases}$$

    so any numeric hyperparameter may be a schedule ``count -> value`` (or a stateful
    schedule with ``init``/``update``/``__call__``), and a value replaced in
    ``state.hyperparams`` takes effect at the next step.

    Which arguments are hyperparameters: numbers and arrays (not booleans) are; callables
    are schedules, except types and dtypes (``mu_dtype=jnp.bfloat16`` stays a dtype, where
    Optax would call it as a schedule) and the names in ``static_args``, which are passed
    to the factory as they are, like every other argument (flags, ``None``, masks, inner
    transformations).

    **Numerics.** Floats are held as arrays of the dtype the plain factory would give them
    (the default float dtype for Python floats; an array keeps its dtype), so
    ``inject_hyperparams(f)(**kw)`` gives bit-identical updates to ``f(**kw)``. Optax
    instead casts them to the params' dtype and rebuilds Adam from arrays where the plain
    factory uses Python floats, and its injected Adam drifts from its plain Adam in
    float32. ``hyperparam_dtype`` casts every floating hyperparameter to that dtype.

    Reference: ``optax.inject_hyperparams``.
    """
    names = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(inner_factory)
    factory_name = getattr(inner_factory, "__name__", repr(inner_factory))
    unknown = names - set(signature.parameters)
    takes_any_keyword = any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
    )
    if unknown and not takes_any_keyword:
        raise ValueError(
            f"inject_hyperparams: static_args must name parameters of {factory_name}; "
            f"{sorted(unknown)} are not among {list(signature.parameters)}."
        )

    @functools.wraps(inner_factory)
    def injected(*args: Any, **kwargs: Any) -> InjectHyperparams:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"inject_hyperparams({factory_name}): {error}") from error
        bound.apply_defaults()
        numeric: dict[str, Any] = {}
        schedules: dict[str, Any] = {}
        other: dict[str, Any] = {}
        for name, value in _named_arguments(signature, bound.arguments):
            if name in names or isinstance(value, bool):
                other[name] = value
            elif _is_stateful_schedule(value):
                schedules[name] = value
            elif _is_schedule(value):
                schedules[name] = WrappedSchedule(value)
            elif _is_numeric(value):
                try:
                    numeric[name] = _as_value(value, hyperparam_dtype)
                except HyperparameterError as error:
                    raise HyperparameterError(
                        f"inject_hyperparams({factory_name}): {name}: {error}"
                    ) from error
            else:
                other[name] = value
        transformation = InjectHyperparams(
            inner_factory, numeric, schedules, other, hyperparam_dtype
        )
        # Build the inner transformation once now, so that a bad argument fails here with
        # the factory's own message (as the plain factory would), not at the first init.
        initial = {k: s.init() for k, s in schedules.items()}
        transformation._inner({**numeric, **transformation._scheduled_values(initial, {})})
        return transformation

    return injected


def inject_stateful_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., InjectHyperparams]:
    """The same as :func:`inject_hyperparams`, which accepts stateful schedules too.

    $$u_t = \\mathrm{factory}\\big(h_1(t), \\ldots, h_n(t)\\big).\\mathrm{update}(g_t)$$

    Reference: ``optax.inject_stateful_hyperparams`` (deprecated there in favour of
    ``optax.inject_hyperparams``).
    """
    return inject_hyperparams(inner_factory, static_args, hyperparam_dtype)
