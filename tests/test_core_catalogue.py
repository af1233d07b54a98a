"""Optax's public optimizer API against optref's: every name has a counterpart and is
compared with Optax, by a conformance case or, where a case cannot express it, a test.

Two lists are checked: the catalogue of optref-core (the names Optax users reach for),
and every top-level Optax function that returns a ``GradientTransformation``, found by
introspecting the installed Optax, so a factory that a new Optax version adds fails here
until optref has it or records why not.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import optax
import pytest

import optref.core as oc
from optref.audit import load_cases
from optref.core.conformance import Call, Case

ALIASES = [
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "adan",
    "amsgrad",
    "fromage",
    "lamb",
    "lars",
    "lion",
    "nadam",
    "nadamw",
    "noisy_sgd",
    "novograd",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
    "polyak_sgd",
    "radam",
    "rmsprop",
    "rprop",
    "sgd",
    "sign_sgd",
    "signum",
    "sm3",
    "yogi",
]
TRANSFORMS = [
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_lion",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_polyak",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_rss",
    "scale_by_sign",
    "scale_by_sm3",
    "scale_by_stddev",
    "scale_by_trust_ratio",
    "scale_by_yogi",
    "scale_by_factored_rms",
    "scale_by_adadelta",
    "scale_by_distance_over_gradients",
    "trace",
    "ema",
    "centralize",
    "add_decayed_weights",
    "add_noise",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "adaptive_grad_clip",
    "keep_params_nonnegative",
    "zero_nans",
    "normalize_by_update_norm",
    "scale_gradient",
    "identity",
    "set_to_zero",
    "stateless",
    "stateless_with_tree_map",
    "chain",
    "named_chain",
]
WRAPPERS = [
    "apply_if_finite",
    "apply_every",
    "MultiSteps",
    "lookahead",
    "flatten",
    "skip_not_finite",
    "skip_large_updates",
    "conditionally_mask",
    "conditionally_transform",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
    "apply_updates",
    "incremental_update",
    "periodic_update",
    "tree_get",
    "tree_set",
    "tree_get_all",
]
CATALOGUE = ALIASES + TRANSFORMS + WRAPPERS

#: Names that are not transformations a case can run, each with the test (module and
#: function in tests/) that compares it with Optax.
COMPARED_BY_A_TEST = {
    "scale_gradient": "test_core_misc_optax.test_scale_gradient_matches_optax",
    "lookahead": "test_core_wrappers_optax.test_lookahead_float64_agreement_with_optax",
    # MultiSteps' should_skip_update_fn, each in a MultiSteps run against Optax's.
    "skip_not_finite": "test_core_wrappers_optax.test_float64_agreement_with_optax",
    "skip_large_updates": "test_core_wrappers_optax.test_float64_agreement_with_optax",
    "apply_updates": "test_core_wrappers_optax.test_target_updates_match_optax",
    "incremental_update": "test_core_wrappers_optax.test_target_updates_match_optax",
    "periodic_update": "test_core_wrappers_optax.test_target_updates_match_optax",
    "tree_get": "test_core_wrappers_optax.test_tree_get_finds_what_optax_finds",
    "tree_set": "test_core_wrappers_optax.test_tree_get_finds_what_optax_finds",
    "tree_get_all": "test_core_wrappers_optax.test_tree_get_finds_what_optax_finds",
}
#: Optax's ``tree_utils`` names, and the Optax name of ``tree_get_all``.
OPTAX_LOCATION = {
    "tree_get": "optax.tree_utils.tree_get",
    "tree_set": "optax.tree_utils.tree_set",
    "tree_get_all": "optax.tree_utils.tree_get_all_with_path",
}
#: Top-level Optax transformation factories that optref does not provide, and why.
NOT_PROVIDED = {
    "with_extra_args_support": "every optref transformation takes **extra already",
    "measure_with_ema": "a monitoring utility of Optax 0.2.5+, not an optimizer",
    "snapshot": "a monitoring utility of Optax 0.2.5+, not an optimizer",
}
OPTREF_PACKAGES = ("core", "masking", "linesearch", "schedules")


def _dotted_names(value: Any) -> Iterator[str]:
    """Every dotted name in a case argument: strings, the factories of Calls, nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Call):
        yield value.optref
        yield value.optax
        yield from _dotted_names(value.kwargs)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _dotted_names(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _dotted_names(item)


def _names_in(case: Case) -> set[str]:
    return {
        case.optref,
        *([case.optax] if case.optax else []),
        *_dotted_names(case.kwargs),
        *_dotted_names(case.optax_kwargs or {}),
    }


CASE_NAMES = [_names_in(case) for case in load_cases()]


def _has_case(name: str) -> bool:
    """A case runs optref's ``name`` (in any package) against ``optax.name``."""
    ours = {f"optref.{package}.{name}" for package in OPTREF_PACKAGES}
    theirs = {f"optax.{name}", f"optax.contrib.{name}"}
    return any(names & ours and names & theirs for names in CASE_NAMES)


def _optax_factories() -> list[str]:
    """Top-level Optax functions annotated to return a GradientTransformation."""
    names = []
    for name, value in vars(optax).items():
        if name.startswith("_") or not callable(value):
            continue
        try:
            annotation = str(inspect.signature(value).return_annotation)
        except (TypeError, ValueError):
            continue
        if "GradientTransformation" in annotation:
            names.append(name)
    return sorted(names)


def _optref_counterpart(name: str) -> Any:
    for package in OPTREF_PACKAGES:
        module = importlib.import_module(f"optref.{package}")
        if hasattr(module, name):
            return getattr(module, name)
    return None


@pytest.mark.parametrize("name", CATALOGUE)
def test_catalogue_name_is_in_optax_and_optref_core(name: str) -> None:
    from optref.audit import resolve_name

    assert callable(resolve_name(OPTAX_LOCATION.get(name, f"optax.{name}")))
    assert callable(getattr(oc, name, None)), f"optref.core has no {name}"


def _check_compared_with_optax(name: str) -> None:
    if name in COMPARED_BY_A_TEST:
        module, function = COMPARED_BY_A_TEST[name].split(".")
        source = (pathlib.Path(__file__).parent / f"{module}.py").read_text()
        assert f"def {function}(" in source, f"{name}: the test {COMPARED_BY_A_TEST[name]} is gone"
        assert not _has_case(name), f"{name} has a case now: drop it from COMPARED_BY_A_TEST"
    else:
        assert _has_case(name), f"no conformance case runs optref's {name} against Optax's"


@pytest.mark.parametrize("name", CATALOGUE)
def test_catalogue_name_is_compared_with_optax(name: str) -> None:
    _check_compared_with_optax(name)


def test_introspection_finds_optax_factories() -> None:
    factories = _optax_factories()
    assert {"adam", "chain", "inject_hyperparams", "lbfgs", "masked"} <= set(factories)
    assert len(factories) > 80


@pytest.mark.parametrize("name", _optax_factories())
def test_every_optax_factory_has_a_counterpart_and_a_comparison(name: str) -> None:
    if name in NOT_PROVIDED:
        assert _optref_counterpart(name) is None, f"optref has {name} now: compare it"
        return
    assert callable(_optref_counterpart(name)), f"no optref package provides {name}"
    _check_compared_with_optax(name)


def _incompatibility(theirs: inspect.Signature, ours: inspect.Signature) -> str | None:
    """Why a call that Optax's signature accepts would fail, or mean something else, with
    optref's (``None`` if none would): the positional parameters in the same order, every
    keyword there, the same defaults, and no required parameter of optref's own."""
    mine = ours.parameters
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    their_order = [p.name for p in theirs.parameters.values() if p.kind in positional]
    our_order = [p.name for p in mine.values() if p.kind in positional]
    if our_order[: len(their_order)] != their_order:
        return f"positional parameters {their_order} against {our_order}"
    for p in theirs.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if not any(q.kind == p.kind for q in mine.values()):
                return f"no {'*' if p.kind == p.VAR_POSITIONAL else '**'}{p.name}"
            continue
        q = mine.get(p.name)
        if q is None:
            return f"no parameter {p.name}"
        if p.default is not p.empty:
            if q.default is q.empty:
                return f"{p.name} is required"
            same = (
                p.default.__name__.lstrip("_") == q.default.__name__.lstrip("_")
                if callable(p.default) and callable(q.default)
                else p.default == q.default
            )
            if not same:
                return f"{p.name} defaults to {q.default!r}, not {p.default!r}"
    extra = [
        q.name
        for q in mine.values()
        if q.name not in theirs.parameters
        and q.default is q.empty
        and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)
    ]
    return f"{extra} are required" if extra else None


def _shared_functions() -> list[tuple[str, str]]:
    shared = []
    for module in (optax, optax.tree_utils):
        for name in sorted(set(vars(module)) & set(oc.__all__)):
            theirs, ours = getattr(module, name), getattr(oc, name)
            if callable(theirs) and not inspect.isclass(theirs) and not inspect.isclass(ours):
                shared.append((module.__name__, name))
    return shared


@pytest.mark.parametrize(("module", "name"), _shared_functions())
def test_a_function_named_as_optax_takes_optaxs_arguments(module: str, name: str) -> None:
    """A user who swaps ``optax.X(...)`` (or ``optax.tree_utils.X``) for
    ``optref.core.X(...)`` keeps every argument: names, order and defaults."""
    theirs = inspect.signature(getattr(importlib.import_module(module), name))
    assert _incompatibility(theirs, inspect.signature(getattr(oc, name))) is None


def test_optaxs_names_for_optref_functions_compute_optaxs_values() -> None:
    """``update_moment``, ``update_moment_per_elem_norm``, ``safe_root_mean_squares`` and
    ``safe_int32_increment`` are optref's functions under Optax's names: the same values."""
    import jax.numpy as jnp
    import numpy as np

    g = {"w": jnp.asarray([0.5, -2.0, 3.0]), "b": jnp.asarray([[1.5, -0.25]])}
    m = {"w": jnp.asarray([0.1, 0.2, -0.3]), "b": jnp.asarray([[0.0, 1.0]])}
    for name, orders in (("update_moment", (1, 2, 3)), ("update_moment_per_elem_norm", (2, 4))):
        for order in orders:
            ours, theirs = (
                getattr(oc, name)(g, m, 0.9, order),
                getattr(optax, name)(g, m, 0.9, order),
            )
            for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-6)
    # An odd order: the average of |g|**k, where Optax's averages g**k for real updates.
    ours = oc.update_moment_per_elem_norm(g, m, 0.9, 1)
    np.testing.assert_allclose(ours["w"], 0.9 * m["w"] + 0.1 * jnp.abs(g["w"]), rtol=1e-6)
    assert not np.allclose(ours["w"], optax.update_moment_per_elem_norm(g, m, 0.9, 1)["w"])
    for min_rms in (0.0, 10.0):
        np.testing.assert_allclose(
            oc.safe_root_mean_squares(g["w"], min_rms),
            optax.safe_root_mean_squares(g["w"], min_rms),
            rtol=1e-6,
        )
    top = jnp.asarray(np.iinfo(np.int32).max, jnp.int32)
    assert oc.safe_int32_increment(top) == optax.safe_int32_increment(top) == top
    assert oc.safe_int32_increment(jnp.asarray(3)) == 4
