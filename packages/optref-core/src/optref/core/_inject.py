"""Hyperparameter injection: hyperparameters that live in the state, scheduled or set by hand.

``inject_hyperparams(factory)(**kwargs)`` builds a transformation that keeps the numeric
hyperparameters of ``factory`` in its state (``state.hyperparams``), evaluates those given
as schedules at every step, and rebuilds ``factory(**current_values)`` in each ``update``.

Because optref's factories already hold their hyperparameters as JAX arrays, the rebuilt
transformation receives arrays of the very dtype and value that the plain factory would
have built, and so performs the same arithmetic: the injected optimizer's updates are
bit-identical to the plain one's (numerics rule 4).

The leaves of the rebuilt transformation that do not depend on the injected values (a
default such as SM3's ``b2 = 1``, Adafactor's final ``scale(-1)``) would be constants of
the compiled program where the plain transformation, an argument of the jitted step,
holds them as inputs; XLA folds and contracts constants differently (another multiply
goes into a fused multiply-add), which changes the last bit. So the wrapper keeps those
leaves, built once with the initial values, and the rebuilt transformation takes them:
they are inputs of the program exactly when the plain transformation's would be.
"""

from __future__ import annotations

import functools
import inspect
import warnings
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
from ._inner import follows_protocol
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


def _depends_on_inputs(closed: Any) -> list[bool]:
    """For each output of a closed jaxpr, whether it depends on an input of the jaxpr.

    An equation's outputs depend on the inputs when one of its operands does; an output
    computed from literals and captured constants alone does not.
    """
    jaxpr = closed.jaxpr
    dependent = {id(v) for v in jaxpr.invars}
    for eqn in jaxpr.eqns:
        if any(id(v) in dependent for v in eqn.invars):
            dependent.update(id(v) for v in eqn.outvars)
    return [id(v) in dependent for v in jaxpr.outvars]


def _independent_leaves(
    factory: Callable[..., Any], other: dict[str, Any], values: dict[str, Any]
) -> tuple[list[bool], Any] | None:
    """Which leaves of ``factory(**other, **values)`` are arrays that depend on neither the
    values nor the arrays of ``other``, and the tree structure; ``None`` where the factory
    cannot be traced with those abstract (it reads a value in Python)."""
    other_arrays, other_rest = eqx.partition(other, eqx.is_array)
    found: list[Any] = []

    def build(values: dict[str, Any], other_arrays: dict[str, Any]) -> list[Any]:
        inner = _call(factory, {**eqx.combine(other_arrays, other_rest), **values})
        leaves, treedef = jax.tree.flatten(inner)
        arrays = [i for i, leaf in enumerate(leaves) if eqx.is_array(leaf)]
        found[:] = [len(leaves), arrays, treedef]
        return [leaves[i] for i in arrays]

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the eager build has warned already
            dependent = _depends_on_inputs(jax.make_jaxpr(build)(values, other_arrays))
    except Exception:
        return None
    count, arrays, treedef = found
    independent = [False] * count
    for i, depends in zip(arrays, dependent, strict=True):
        independent[i] = not depends
    return independent, treedef


def _same_kind(a: Any, b: Any) -> bool:
    """Whether two array leaves have the same shape, dtype and weak type."""
    ta, tb = jax.typeof(a), jax.typeof(b)
    return (ta.shape, ta.dtype, getattr(ta, "weak_type", False)) == (
        tb.shape,
        tb.dtype,
        getattr(tb, "weak_type", False),
    )


class InjectHyperparams(GradientTransformation):
    """``inner_factory(**hyperparameters)`` with the numeric hyperparameters in the state.

    Built by :func:`inject_hyperparams`. ``numeric`` holds the constant numeric
    hyperparameters (initial values of ``state.hyperparams``), ``schedules`` the
    scheduled ones (as stateful schedules), ``other`` every other argument of the factory
    (flags, dtypes, masks, inner transformations, ``static_args``), passed as it is.

    ``constants`` holds, for each leaf of the inner transformation (as flattened, with
    the tree structure ``constants_structure``), the leaf built from the initial values
    where it depends on no hyperparameter and no array of ``other``, and ``None``
    elsewhere. The inner transformation rebuilt at each step takes those leaves from
    here, so they are data of a jitted step that takes this transformation as an
    argument, as the plain transformation's leaves are, not constants of the program.
    """

    inner_factory: Callable[..., GradientTransformation] = eqx.field(static=True)
    numeric: dict[str, Any]
    schedules: dict[str, Any]
    other: dict[str, Any]
    hyperparam_dtype: Any = eqx.field(static=True, default=None)
    constants: tuple[Any, ...] | None = None
    constants_structure: Any = eqx.field(static=True, default=None)

    def _build(self, hyperparams: dict[str, Any]) -> GradientTransformation:
        name = getattr(self.inner_factory, "__name__", repr(self.inner_factory))
        inner = _call(self.inner_factory, {**self.other, **hyperparams})
        if not follows_protocol(inner):
            raise TypeError(
                f"inject_hyperparams: inner_factory {name} must return an optref "
                "GradientTransformation (or an eqx.Module with init and update methods), "
                f"got {type(inner).__name__}."
            )
        return inner

    def _inner(self, hyperparams: dict[str, Any]) -> GradientTransformation:
        """The inner transformation for ``hyperparams``, its constant leaves from
        ``constants`` (where the structure and each leaf's kind still match)."""
        inner = self._build(hyperparams)
        if self.constants is None:
            return inner
        leaves, treedef = jax.tree.flatten(inner)
        if treedef != self.constants_structure or len(leaves) != len(self.constants):
            return inner
        leaves = [
            leaf if constant is None or not _same_kind(leaf, constant) else constant
            for leaf, constant in zip(leaves, self.constants, strict=True)
        ]
        return jax.tree.unflatten(treedef, leaves)

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
        values = {**numeric, **transformation._scheduled_values(initial, {})}
        template = transformation._build(values)
        # Keep its leaves that no hyperparameter changes (module docstring).
        independent = _independent_leaves(inner_factory, other, values)
        if independent is None:
            return transformation
        mask, structure = independent
        leaves, treedef = jax.tree.flatten(template)
        if treedef != structure or len(leaves) != len(mask) or not any(mask):
            return transformation
        constants = tuple(leaf if keep else None for leaf, keep in zip(leaves, mask, strict=True))
        return InjectHyperparams(
            inner_factory, numeric, schedules, other, hyperparam_dtype, constants, treedef
        )

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
