"""The conformance runner finds what it should: a disagreement, a non-finite update, a
broken derivative and a wrapper that changes numbers; and it is quiet on a correct case."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from optref.audit import (
    PROBLEMS,
    check_float64,
    check_robustness,
    load_cases,
    run_case,
    to_case,
)
from optref.audit._metrics import leaf_relative_error, units_of_epsilon
from optref.core.conformance import Case


def test_cases_are_discovered_through_entry_points() -> None:
    names = [case.name for case in load_cases()]
    assert "core.adam" in names
    assert len(names) == len(set(names))
    assert [c.name for c in load_cases("core.adam-eps*")] == ["core.adam-eps_root"]
    assert "core.adamw" in [c.name for c in load_cases("adamw")]


def test_a_correct_case_gives_no_finding() -> None:
    case = Case(
        "t.sgd",
        "optref.core.sgd",
        {"learning_rate": 0.01},
        "optax.sgd",
        problems=("quadratic",),
        steps=5,
    )
    assert run_case(case, checks=("float64",)) == []


def test_a_wrong_counterpart_is_reported_at_the_first_step() -> None:
    case = Case(
        "t.wrong",
        "optref.core.sgd",
        {"learning_rate": 0.01},
        "optax.sgd",
        optax_kwargs={"learning_rate": 0.02},
        problems=("quadratic",),
        steps=3,
    )
    with jax.enable_x64(True):
        findings = check_float64(case)
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.check, finding.severity, finding.library, finding.step) == (
        "first_step",
        "error",
        "both",
        0,
    )
    assert "optax.sgd(learning_rate=0.02)" in finding.reproducer


def test_a_recorded_deviation_turns_the_disagreement_into_an_optax_finding() -> None:
    case = to_case(
        {
            "name": "t.dev",
            "optref": "optref.core.sgd",
            "kwargs": {"learning_rate": 0.01},
            "optax": "optax.sgd",
            "optax_kwargs": {"learning_rate": 0.02},
            "problems": ["quadratic"],
            "steps": 2,
            "deviations": [{"check": "first_step", "reason": "r", "link": "https://x"}],
        }
    )
    with jax.enable_x64(True):
        (finding,) = check_float64(case)
    assert (finding.severity, finding.library, finding.link) == ("warning", "optax", "https://x")


def test_non_finite_updates_are_reported() -> None:
    case = Case(
        "t.div", "optref.core.scale", {"step_size": float("inf")}, None, problems=("quadratic",)
    )
    with jax.enable_x64(True):
        findings = check_robustness(case, dtypes=("float32",), libraries=("optref",))
    assert findings and all(f.library == "optref" and f.severity == "error" for f in findings)


def test_metric_is_relative_to_the_leaf_scale_not_per_element() -> None:
    expected = np.array([1.0, 1e-12])
    actual = np.array([1.0, 2e-12])  # 100% off in an element that cancelled to ~0
    assert leaf_relative_error(actual, expected) < 2e-12
    assert units_of_epsilon(np.float32([1.0, 1.0]), np.array([1.0, 1.0]), jnp.float32) == 0.0


def test_problems_are_deterministic_and_complex_where_declared() -> None:
    for problem in PROBLEMS.values():
        a = jax.tree.leaves(problem.init(jnp.float64))
        b = jax.tree.leaves(problem.init(jnp.float64))
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        if problem.supports_complex:
            assert jnp.iscomplexobj(jax.tree.leaves(problem.init(jnp.complex128))[0])
