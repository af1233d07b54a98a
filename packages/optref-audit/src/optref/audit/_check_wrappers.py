"""Wrapper invariance (numerics rule 4): wrapping a transformation changes no bit.

The plain transformation is compared, over a float32 trajectory, with the same one
chained after ``identity()``, masked with an all-true mask, and with its
hyperparameters injected. Updates must be bit-identical.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from optref.core.conformance import Case, build_argument

from ._cases import build, resolve_name
from ._findings import Finding
from ._problems import PROBLEMS
from ._reproducer import optax_wrapper_reproducer
from ._trajectory import Run, run_trajectories

__all__ = ["check_wrapper_invariance", "static_arguments", "wrapped_forms"]


def _optional(dotted: str) -> Any:
    try:
        return resolve_name(dotted)
    except (ImportError, AttributeError):
        return None


def static_arguments(factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> tuple:
    """The arguments of ``factory`` that its injected form must keep static
    (``static_args``), as a user injecting such a factory must:

    - those whose value (given, or the default) is a Python int: an int such as L-BFGS's
      ``memory_size`` sets the shape of the state, which a traced array could not;
    - the functions that the factory calls itself (given, or the default): injection
      would evaluate a callable as a schedule of the step count and pass its value, where
      the factory needs the function (Optax names these ``*_fn``: ``scale_by_schedule``'s
      ``step_size_fn``, ``scale_by_factored_rms``'s ``decay_rate_fn``).
    """
    names = []
    for name, parameter in inspect.signature(factory).parameters.items():
        value = kwargs.get(name, parameter.default)
        shape_setting = isinstance(value, int) and not isinstance(value, bool)
        if shape_setting or (name.endswith("_fn") and (name in kwargs or callable(value))):
            names.append(name)
    return tuple(names)


def wrapped_forms(case: Case, library: str) -> dict[str, Callable[[], Any]]:
    """Builders of the wrapped forms that the installed packages offer for ``library``."""
    root = "optref.core" if library == "optref" else "optax"
    identity, chain = resolve_name(f"{root}.identity"), resolve_name(f"{root}.chain")
    forms: dict[str, Callable[[], Any]] = {
        "chain(identity(), tx)": lambda: chain(identity(), build(case, library)),
    }
    masked = _optional("optref.masking.masked" if library == "optref" else "optax.masked")
    if masked is not None:
        forms["masked(tx, all true)"] = lambda: masked(
            build(case, library), lambda params: jax.tree.map(lambda _: True, params)
        )
    inject = _optional(f"{root}.inject_hyperparams")
    if inject is not None:
        dotted = case.optref if library == "optref" else case.optax
        assert dotted is not None, "the Optax side runs only for cases with a counterpart"
        factory = resolve_name(dotted)
        kwargs = case.arguments(library)
        static = static_arguments(factory, kwargs)
        forms["inject_hyperparams(factory)(**kwargs)"] = lambda: inject(
            factory, static_args=static
        )(**{k: build_argument(v, library) for k, v in kwargs.items()})
    return forms


def check_wrapper_invariance(
    case: Case,
    libraries: tuple[Literal["optref", "optax"], ...] = ("optref", "optax"),
    steps: int = 10,
    dtype: Any = jnp.float32,
    backend: str = "cpu",
) -> list[Finding]:
    """Report every wrapped form whose float32 updates are not bit-identical to the plain one."""
    if not case.wrapper_invariance or case.kind != "transformation":
        return []
    problem = PROBLEMS[case.problems[-1]]
    params = problem.init(dtype)
    findings = []
    # Every library's plain and wrapped forms side by side, one program per step.
    labels: list[tuple[str, str]] = []
    runs: list[Run] = []
    for library in libraries:
        if library == "optax" and case.optax is None:
            continue
        forms: dict[str, Callable[[], Any]] = {"plain": functools.partial(build, case, library)}
        forms.update(wrapped_forms(case, library))
        for form, make in forms.items():
            try:
                tx = make()
            except Exception as error:
                findings.append(_raised(case, library, form, error, backend, dtype, problem))
                continue
            labels.append((library, form))
            runs.append(Run(tx, problem, params, case.step_scale, case.extra_args))
    trajectories = dict(zip(labels, run_trajectories(runs, steps), strict=True))
    for (library, form), wrapped in trajectories.items():
        plain = trajectories[(library, "plain")]
        if isinstance(plain, Exception):
            raise plain
        if form == "plain":
            continue
        if isinstance(wrapped, Exception):
            findings.append(_raised(case, library, form, wrapped, backend, dtype, problem))
            continue
        for step, (a, b) in enumerate(zip(plain.updates, wrapped.updates, strict=True)):
            same = all(
                np.array_equal(np.asarray(x), np.asarray(y))
                for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
            )
            if not same:
                diff = max(
                    float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
                    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
                )
                findings.append(
                    Finding(
                        case=case.name,
                        check="wrapper_invariance",
                        severity="error" if library == "optref" else "warning",
                        library=library,  # type: ignore[arg-type]
                        summary=f"{library}: {form} changes the updates from step {step} "
                        f"(max difference {diff:.3g})",
                        backend=backend,
                        dtype=jnp.dtype(dtype).name,
                        problem=problem.name,
                        step=step,
                        measured={"max_abs_difference": diff},
                        reproducer=_reproducer(case, library, problem.name, dtype, form),
                    )
                )
                break
    return findings


def _raised(
    case: Case, library: str, form: str, error: Exception, backend: str, dtype: Any, problem: Any
) -> Finding:
    return Finding(
        case=case.name,
        check="wrapper_invariance",
        severity="error" if library == "optref" else "info",
        library=library,  # type: ignore[arg-type]
        summary=f"{library}: {form} raised {type(error).__name__}: {error}"[:300],
        backend=backend,
        dtype=jnp.dtype(dtype).name,
        problem=problem.name,
        reproducer=_reproducer(case, library, problem.name, dtype, form),
    )


def _reproducer(case: Case, library: str, problem: str, dtype: Any, form: str) -> str:
    """The Optax-alone reproducer of a finding about Optax's ``form`` (none for optref's)."""
    if library != "optax" or case.optax is None:
        return ""
    kwargs = case.arguments("optax")
    static = static_arguments(resolve_name(case.optax), kwargs)
    return optax_wrapper_reproducer(case, problem, dtype, form, static)
