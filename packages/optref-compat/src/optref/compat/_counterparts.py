"""The Optax counterpart of each optref transformation, built from its fields.

A transformation's fields are its hyperparameters, named as the arguments of the Optax
factory of the same name, so the counterpart of most transformations is found and
built without any code per class: the Optax factory is looked up by the class's name
(``ScaleByAdam`` -> ``optax.scale_by_adam``; ``ScaleByRAdam`` -> ``optax.scale_by_radam``,
names compared without underscores or case) or, failing that, by the name of the optref
factory in the class's module that returns it, and called with the fields as keyword
arguments. A field that holds transformations (``inner``, ``transforms``) is converted
recursively. The few classes that need more (``chain`` takes ``*args``) are registered
with :func:`register_optax_counterpart`, which is also how another package teaches
compat its own transformations.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optref.core import (
    Chain,
    GradientTransformation,
    InjectHyperparams,
    NamedChain,
    Stateless,
    StatelessWithTreeMap,
    WrappedSchedule,
)
from optref.core._hyperparameters import is_concrete

from ._describe import (
    describe_transformation,
    is_optax_transformation,
    optref_factory_names,
    optref_name,
)
from ._from_optax import FromOptax

__all__ = [
    "NoCounterpartError",
    "has_optax_counterpart",
    "optax_counterpart",
    "register_optax_counterpart",
]

#: Where Optax factories are looked up, in order.
OPTAX_NAMESPACES = ("optax", "optax.transforms", "optax.contrib", "optax.schedules")


class NoCounterpartError(TypeError):
    """An optref transformation has no (known) Optax counterpart."""


@dataclasses.dataclass(frozen=True)
class _Registration:
    builder: Callable[[Any], Any] | None = None
    factory: Callable[..., Any] | str | None = None
    rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ignore: tuple[str, ...] = ()


_REGISTRY: dict[type, _Registration] = {}

#: Registrations for classes of optref packages that compat does not depend on, applied
#: when such a class is met: ``(package, class name) -> registration``. The fields
#: ignored change no number (only warnings, or whether a loop is reverse-differentiable).
_KNOWN: dict[tuple[str, str], _Registration] = {
    ("optref.masking", "Partition"): _Registration(ignore=("unused",)),
    ("optref.linesearch", "ScaleByZoomLinesearch"): _Registration(ignore=("differentiable",)),
    ("optref.linesearch", "ScaleByBacktrackingLinesearch"): _Registration(
        ignore=("differentiable",)
    ),
}

_MASK_FIELD = "mask"


def register_optax_counterpart(
    cls: type,
    factory: Callable[..., Any] | str | None = None,
    *,
    rename: Mapping[str, str] | None = None,
    ignore: tuple[str, ...] = (),
    builder: Callable[[Any], Any] | None = None,
) -> None:
    """Declare how to build the Optax counterpart of the optref class ``cls``.

    - ``factory``: the Optax factory (a callable or a dotted name such as
      ``"optax.scale_by_adam"``), called with the module's fields as keyword arguments;
      ``rename`` maps a field name to the Optax argument name when they differ, and
      ``ignore`` names fields that change no number (Optax need not have them).
    - ``builder``: a function ``module -> optax transformation`` for anything else; it
      may call :func:`optax_counterpart` on the module's members.
    - neither: the factory found by name (see the module docstring), with ``rename`` and
      ``ignore``.

    A registration replaces any earlier one for ``cls``. Subclasses that keep ``cls``'s
    ``init`` and ``update`` use it too.
    """
    if builder is not None and factory is not None:
        raise ValueError("register_optax_counterpart: give a factory or a builder, not both.")
    if not (isinstance(cls, type) and issubclass(cls, GradientTransformation)):
        raise TypeError(
            f"register_optax_counterpart: cls must be a subclass of optref's "
            f"GradientTransformation, got {cls!r}."
        )
    _REGISTRY[cls] = _Registration(builder, factory, dict(rename or {}), tuple(ignore))


def _registration(cls: type) -> _Registration:
    if cls in _REGISTRY:
        return _REGISTRY[cls]
    for (package, name), registration in _KNOWN.items():
        if cls.__name__ == name and cls.__module__.startswith(package + "."):
            return registration
    return _Registration()


def _normalise(name: str) -> str:
    return name.replace("_", "").lower()


def _optax_index() -> dict[str, tuple[str, Callable[..., Any]]]:
    index: dict[str, tuple[str, Callable[..., Any]]] = {}
    for namespace in OPTAX_NAMESPACES:
        try:
            module = importlib.import_module(namespace)
        except ImportError:  # pragma: no cover (an older Optax)
            continue
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_") or not callable(obj):
                continue
            if isinstance(obj, type) and not hasattr(obj, "gradient_transformation"):
                continue  # state classes; but MultiSteps-like classes build transformations
            index.setdefault(_normalise(name), (f"{namespace}.{name}", obj))
    return index


@functools.cache
def _optax_names() -> dict[str, tuple[str, Callable[..., Any]]]:
    return _optax_index()


def _lookup(name: str) -> tuple[str, Callable[..., Any]] | None:
    return _optax_names().get(_normalise(name))


def _find_factory(cls: type) -> tuple[str, Callable[..., Any]] | None:
    """The Optax factory named like ``cls`` or like the optref factory that returns it."""
    found = _lookup(cls.__name__)
    if found is not None:
        return found
    candidates = {hit[0]: hit for hit in (_lookup(n) for n in optref_factory_names(cls)) if hit}
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    return None


def _same_behaviour_bases(cls: type) -> list[type]:
    """``cls``, then its bases whose ``init`` and ``update`` it keeps (same numbers)."""
    bases = [cls]
    for base in cls.__mro__[1:]:
        if base is GradientTransformation or not issubclass(base, GradientTransformation):
            break
        if base.init is not cls.init or base.update is not cls.update:
            break
        bases.append(base)
    return bases


def _resolve(factory: Callable[..., Any] | str) -> tuple[str, Callable[..., Any]]:
    if isinstance(factory, str):
        module, _, attribute = factory.rpartition(".")
        return factory, getattr(importlib.import_module(module), attribute)
    return getattr(factory, "__name__", repr(factory)), factory


def _is_default(field: dataclasses.Field[Any], value: Any) -> bool:
    default = field.default
    if default is dataclasses.MISSING:
        return False
    if value is default:
        return True
    try:
        return bool(np.array_equal(np.asarray(value), np.asarray(default)))
    except Exception:
        return False


def _holds_transformations(value: Any) -> bool:
    if isinstance(value, GradientTransformation):
        return True
    if isinstance(value, tuple | list):
        return bool(value) and all(isinstance(v, GradientTransformation) for v in value)
    if isinstance(value, dict):
        return bool(value) and all(isinstance(v, GradientTransformation) for v in value.values())
    return False


def _to_optax_argument(value: Any) -> Any:
    """A field value as Optax takes it.

    Transformations become their counterparts. Concrete scalar arrays become Python
    numbers: Optax treats those as weakly typed, so a float64 hyperparameter does not
    promote float32 params, and its Python-level checks (``if momentum is None``,
    ``if weight_decay``) behave as with the numbers a user would pass.
    """
    if isinstance(value, GradientTransformation):
        return optax_counterpart(value)
    if _holds_transformations(value):
        if isinstance(value, dict):
            return {k: optax_counterpart(v) for k, v in value.items()}
        return type(value)(optax_counterpart(v) for v in value)
    if (
        isinstance(value, jax.Array)
        and is_concrete(value)
        and value.ndim == 0
        and (jnp.issubdtype(value.dtype, jnp.number) or value.dtype == jnp.bool_)
    ):
        return value.item()
    return value


def call_with_fields(
    factory: Callable[..., Any],
    tx: GradientTransformation,
    *,
    factory_name: str | None = None,
    rename: Mapping[str, str] | None = None,
    ignore: tuple[str, ...] = (),
) -> Any:
    """Call the Optax ``factory`` with ``tx``'s fields as its arguments, matched by name.

    Raises :class:`NoCounterpartError` when the factory needs an argument that ``tx`` has
    no field for, or when ``tx`` has a field (not at its default, not in ``ignore``) that
    the factory has no argument for: the two would not compute the same thing. A
    ``mask`` field that the factory lacks wraps its result in ``optax.masked``, as
    Optax's aliases do (``lars``'s trust ratio).
    """
    name = optref_name(type(tx))
    factory_name = factory_name or getattr(factory, "__name__", repr(factory))
    rename = dict(rename or {})
    fields = {f.name: f for f in dataclasses.fields(tx)}
    by_argument = {rename.get(n, n): n for n in fields}
    signature = inspect.signature(factory)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    used: set[str] = set()
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        field_name = by_argument.get(parameter.name)
        if field_name is None:
            if parameter.default is parameter.empty:
                raise NoCounterpartError(
                    f"{name}: its Optax counterpart {factory_name} needs the argument "
                    f"{parameter.name!r}, which {type(tx).__name__} has no field for. "
                    "Register a builder with optref.compat.register_optax_counterpart."
                )
            continue
        used.add(field_name)
        value = _to_optax_argument(getattr(tx, field_name))
        if parameter.kind is parameter.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[parameter.name] = value
    unmatched = [
        n
        for n in fields
        if n not in used and n not in ignore and not _is_default(fields[n], getattr(tx, n))
    ]
    mask = _MASK_FIELD in unmatched and "mask" not in signature.parameters
    if mask:
        unmatched.remove(_MASK_FIELD)
    if unmatched:
        raise NoCounterpartError(
            f"{name}: the field(s) {', '.join(unmatched)} have no argument in its Optax "
            f"counterpart {factory_name}{signature}, so Optax cannot compute the same "
            "thing. Register a builder with optref.compat.register_optax_counterpart."
        )
    built = factory(*args, **kwargs)
    if not is_optax_transformation(built) and hasattr(built, "gradient_transformation"):
        built = built.gradient_transformation()  # optax.MultiSteps and the like
    if mask:
        built = optax.masked(built, getattr(tx, _MASK_FIELD))
    return optax.with_extra_args_support(built)


def optax_counterpart(tx: Any) -> optax.GradientTransformationExtraArgs:
    """The Optax transformation that computes what the optref transformation ``tx`` does.

    $$\\operatorname{counterpart}(\\mathrm{chain}(T_1, \\ldots, T_n)) =
    \\mathrm{optax.chain}(\\operatorname{counterpart}(T_1), \\ldots)$$

    Built from ``tx``'s fields (its hyperparameters), recursively through chains, named
    chains, wrappers and :func:`from_optax` (whose counterpart is the wrapped Optax
    transformation). Its state has the layout of ``tx``'s state, leaf for leaf, which
    is what :func:`state_to_optax` and :func:`state_from_optax` rely on. Raises
    :class:`NoCounterpartError` naming the transformation that has none.
    """
    if isinstance(tx, optax.GradientTransformation):
        return optax.with_extra_args_support(tx)
    if not isinstance(tx, GradientTransformation):
        raise TypeError(
            f"optax_counterpart: expected an optref GradientTransformation, got "
            f"{type(tx).__name__}."
        )
    cls = type(tx)
    for klass in _same_behaviour_bases(cls):
        registration = _registration(klass)
        if registration.builder is not None:
            return optax.with_extra_args_support(registration.builder(tx))
        found = (
            _resolve(registration.factory)
            if registration.factory is not None
            else _find_factory(klass)
        )
        if found is not None:
            return call_with_fields(
                found[1],
                tx,
                factory_name=found[0],
                rename=registration.rename,
                ignore=registration.ignore,
            )
    raise NoCounterpartError(
        f"{optref_name(cls)}: no Optax counterpart is known: Optax has no factory named "
        f"like {cls.__name__} or its optref factory. Register one with "
        f"optref.compat.register_optax_counterpart({cls.__name__}, ...)."
    )


def has_optax_counterpart(tx: GradientTransformation) -> bool:
    """Whether :func:`optax_counterpart` can build ``tx``'s Optax counterpart."""
    try:
        optax_counterpart(tx)
    except NoCounterpartError:
        return False
    return True


def _chain(tx: Chain) -> Any:
    return optax.chain(*(_member(tx, i, t) for i, t in enumerate(tx.transformations)))


def _named_chain(tx: NamedChain) -> Any:
    return optax.named_chain(
        *((n, _member(tx, n, t)) for n, t in zip(tx.names, tx.transformations, strict=True))
    )


def _member(parent: GradientTransformation, key: Any, member: GradientTransformation) -> Any:
    try:
        return optax_counterpart(member)
    except NoCounterpartError as error:
        raise NoCounterpartError(
            f"{describe_transformation(parent)}: member {key!r}: {error}"
        ) from None


def _inject_hyperparams(tx: InjectHyperparams) -> Any:
    """``optax.inject_hyperparams`` of a factory that builds the optref factory's counterpart.

    Optax calls the factory with the current hyperparameters (arrays, traced under jit)
    at every step; the optref factory builds its module from them and the module its
    counterpart, so any optref factory works, aliases and wrappers included. Every
    argument that optref does not inject is passed to Optax as a static argument.
    """
    factory = tx.inner_factory

    def counterpart_factory(*args: Any, **kwargs: Any) -> Any:
        return optax_counterpart(factory(*args, **kwargs))

    counterpart_factory.__signature__ = inspect.signature(factory)  # type: ignore[attr-defined]
    counterpart_factory.__name__ = getattr(factory, "__name__", "factory")
    schedules = {
        k: s.schedule_fn if isinstance(s, WrappedSchedule) else s for k, s in tx.schedules.items()
    }
    numeric = {k: _to_optax_argument(v) for k, v in tx.numeric.items()}
    injected = optax.inject_hyperparams(
        counterpart_factory, static_args=tuple(tx.other), hyperparam_dtype=tx.hyperparam_dtype
    )
    return injected(**numeric, **schedules, **tx.other)


register_optax_counterpart(Chain, builder=_chain)
register_optax_counterpart(InjectHyperparams, builder=_inject_hyperparams)
register_optax_counterpart(NamedChain, builder=_named_chain)
register_optax_counterpart(FromOptax, builder=lambda tx: tx.transformation)
register_optax_counterpart(Stateless, "optax.stateless", rename={"fn": "f"})
register_optax_counterpart(
    StatelessWithTreeMap, "optax.stateless_with_tree_map", rename={"fn": "f"}
)
