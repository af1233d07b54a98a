"""The data that describes a conformance case: what to compare, on what, how closely.

Cases are plain data. They name the optref factory and its Optax counterpart by dotted
path (so no package but optref-audit ever imports Optax), the arguments to call them
with, the test problems, and the deviations from Optax that optref makes on purpose.
The runner in ``optref.audit`` turns them into checks; packages advertise their cases
through the ``optref.conformance`` entry-point group.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["Call", "Case", "Deviation", "build", "build_argument", "resolve_name"]

Check = Literal[
    "float64",
    "low_precision",
    "robustness",
    "differentiability",
    "wrapper_invariance",
    "first_step",
]


@dataclasses.dataclass(frozen=True)
class Call:
    """An argument that is itself built by a factory: a schedule, a mask function, ...

    ``optref`` and ``optax`` are dotted paths of the two factories; both are called with
    ``kwargs``. The runner builds the optref one for optref and the Optax one for Optax.
    """

    optref: str
    optax: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Deviation:
    """A difference from Optax that optref makes on purpose (numerics rule 1).

    ``check`` is the check it affects; ``optax_versions`` is a PEP 440 specifier of the
    Optax versions that show it (empty: all). The runner reports a disagreement covered
    by a deviation as an Optax finding with the reason and the link, not as a failure of
    optref.
    """

    check: Check
    reason: str
    link: str = ""
    optax_versions: str = ""


@dataclasses.dataclass(frozen=True)
class Case:
    """One conformance case.

    Attributes:
        name: unique name, ``<package>.<factory>[-variant]``.
        optref: dotted path of the optref factory, e.g. ``"optref.core.adam"``.
        kwargs: arguments for both factories (``Call`` values are built per library).
        optax: dotted path of the Optax counterpart, or ``None`` when there is none.
        optax_kwargs: arguments for the Optax factory when they differ from ``kwargs``.
        kind: ``"transformation"`` (a ``GradientTransformation``) or ``"schedule"``
            (a callable ``count -> value``).
        problems: names of the problems to run on (``optref.audit`` defines them).
        steps: steps per trajectory.
        rtol: relative tolerance of the float64 agreement, measured per leaf against the
            leaf's root mean square, so elements that cancel to zero are not blown up.
        complex_params: also run on complex params (where Optax supports them).
        step_scale: the runner applies ``params + step_scale * updates``; a transform
            that is not a descent direction (``scale_by_adam``) gets a small negative one.
        hyperparameters: keyword arguments to differentiate the loss with respect to.
        extra_args: keyword arguments of ``update`` the runner passes: ``"value"``,
            ``"grad"``, ``"value_fn"``.
        wrapper_invariance: whether injected / masked / identity-chained forms must give
            bit-identical updates (not for transformations that draw random numbers).
        draws_random_numbers: whether the updates hold random numbers, drawn in the
            params' dtype (as Optax draws them): a float32 run and the float64 oracle then
            draw different numbers from the same key, so the low-precision accuracy
            against the oracle is not measured (robustness, agreement with Optax and the
            derivatives are).
        deviations: the deliberate differences from Optax.
    """

    name: str
    optref: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    optax: str | None = None
    optax_kwargs: Mapping[str, Any] | None = None
    kind: Literal["transformation", "schedule"] = "transformation"
    problems: tuple[str, ...] = ("quadratic", "rosenbrock", "mlp")
    steps: int = 50
    rtol: float = 1e-12
    complex_params: bool = False
    step_scale: float = 1.0
    hyperparameters: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    wrapper_invariance: bool = True
    draws_random_numbers: bool = False
    deviations: tuple[Deviation, ...] = ()

    @property
    def package(self) -> str:
        """The optref package the case belongs to (``core``, ``schedules``, ...)."""
        return self.optref.split(".")[1]

    def arguments(self, library: str) -> Mapping[str, Any]:
        """The keyword arguments of ``library``'s factory (``"optref"`` or ``"optax"``):
        ``optax_kwargs`` for Optax where the case gives them, ``kwargs`` otherwise."""
        if library == "optax" and self.optax_kwargs is not None:
            return self.optax_kwargs
        return self.kwargs

    def deviation(self, check: str) -> Deviation | None:
        """The recorded deviation for ``check``, if any."""
        for deviation in self.deviations:
            if deviation.check == check:
                return deviation
        return None


def resolve_name(dotted: str) -> Any:
    """The object at a dotted path such as ``optax.adam`` or ``optref.core.adam``: how a
    case's factory names become callables."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(f"cannot import {dotted!r}")


def build_argument(value: Any, library: str) -> Any:
    """A case's argument for ``library`` (``"optref"`` or ``"optax"``): a :class:`Call`
    (or a dict written like one, as optref-schedules' cases do) is built with that
    library's factory, lists and tuples element by element; anything else is kept."""
    if isinstance(value, Mapping) and set(value) == {"optref", "optax", "kwargs"}:
        value = Call(**value)
    if isinstance(value, list | tuple):
        return type(value)(build_argument(v, library) for v in value)
    if isinstance(value, Call):
        factory = resolve_name(value.optref if library == "optref" else value.optax)
        return factory(**{k: build_argument(v, library) for k, v in value.kwargs.items()})
    return value


def build(case: Case, library: str = "optref", **overrides: Any) -> Any:
    """The case's transformation (or schedule) for ``library`` (``"optref"`` or ``"optax"``).

    ``overrides`` replace keyword arguments (traced hyperparameters, other values).
    """
    if library == "optax":
        if case.optax is None:
            raise ValueError(f"{case.name} has no Optax counterpart")
        kwargs = dict(case.arguments("optax"))
        factory = resolve_name(case.optax)
    else:
        kwargs = dict(case.kwargs)
        factory = resolve_name(case.optref)
    kwargs.update(overrides)
    return factory(**{k: build_argument(v, library) for k, v in kwargs.items()})
