"""The conformance runner finds what it should: a disagreement, a non-finite update, a
broken derivative and a wrapper that changes numbers; and it is quiet on a correct case."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optref.audit import (
    PROBLEMS,
    check_differentiability,
    check_float64,
    check_low_precision,
    check_robustness,
    check_wrapper_invariance,
    flatten_state,
    load_cases,
    run_case,
    to_case,
)
from optref.audit._check_differentiability import disagreement
from optref.audit._check_low_precision import graft_state
from optref.audit._check_wrappers import static_arguments
from optref.audit._metrics import leaf_relative_error, units_of_epsilon
from optref.core.conformance import Case, range_distance


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


def test_the_low_precision_state_keeps_each_leaf_dtype() -> None:
    import optref.core

    with jax.enable_x64(True):
        tx = optref.core.inject_hyperparams(optref.core.adam)(learning_rate=0.1, b2=0.999)
        params = PROBLEMS["quadratic"].init(jnp.float64)
        state64 = tx.init(params)
        template = tx.init(jax.tree.map(lambda p: p.astype(jnp.bfloat16), params))
        grafted = graft_state(template, flatten_state(state64))
    b2 = grafted.hyperparams["b2"]
    # The injected hyperparameter keeps its own dtype (rounding it to bfloat16 gives 1.0);
    # the moments take the params' bfloat16, as the library's own init gives them.
    assert b2.dtype == template.hyperparams["b2"].dtype != jnp.bfloat16
    assert float(b2) == 0.999
    assert grafted.inner_state[0].mu["w"].dtype == jnp.bfloat16


def stopped_sgd(learning_rate: float) -> object:
    """SGD whose learning rate is cut from the derivative: a wrong derivative."""
    import optref.core

    return optref.core.sgd(jax.lax.stop_gradient(learning_rate))


def test_differentiability_is_exact_where_b2_is_near_one_and_catches_a_wrong_one() -> None:
    near_one = Case(
        "t.adam",
        "optref.core.adam",
        {"learning_rate": 0.1, "b2": 0.9999},
        None,
        problems=("quadratic",),
        hyperparameters=("b1", "b2"),
    )
    wrong = Case(
        "t.stopped",
        f"{__name__}.stopped_sgd",
        {"learning_rate": 0.1},
        None,
        problems=("quadratic",),
        hyperparameters=("learning_rate",),
    )
    with jax.enable_x64(True):
        assert check_differentiability(near_one, libraries=("optref",), steps=2) == []
        (finding,) = check_differentiability(wrong, libraries=("optref",), steps=2)
    assert "learning_rate" in finding.summary and "central differences" in finding.summary
    assert finding.measured["forward"] == 0.0 and abs(finding.measured["extrapolated"]) > 1e-3


def test_finite_differences_tolerate_rounding_noise_but_not_an_error() -> None:
    # An exact-zero derivative, where the differences carry the loss's rounding noise:
    # 1e-12 / h with h = 1e-4 is under 16 eps |f| / h.
    noise = {"finite": True, "forward": 0.0, "central": 2e-12, "central_2h": -1e-12}
    noise.update(extrapolated=3e-12, max_abs_f=1.0, step=1e-4)
    assert disagreement(noise) is None
    # A derivative off by 1e-3, where the differences at h and 2h agree to 1e-10.
    wrong = dict(noise, forward=1.0, central=1.001, central_2h=1.001 + 1e-10, extrapolated=1.001)
    assert disagreement(wrong) == "forward mode and central differences disagree"
    assert range_distance(0.999) == pytest.approx(1e-3) and range_distance(-0.05) == 0.05


def test_injected_forms_keep_shape_setting_ints_and_functions_static() -> None:
    import optref.core
    import optref.linesearch

    assert static_arguments(optref.linesearch.scale_by_lbfgs, {}) == ("memory_size",)
    schedule = {"step_size_fn": lambda count: 0.1}
    assert static_arguments(optref.core.scale_by_schedule, schedule) == ("step_size_fn",)
    for name in (
        "core.scale_by_schedule",
        "core.scale_by_factored_rms",
        "core.scale_by_factored_rms-default_decay",  # decay_rate_fn: the default function
    ):
        (case,) = [c for c in load_cases() if c.name == name]
        with jax.enable_x64(True):
            assert check_wrapper_invariance(case, libraries=("optref",), steps=3) == []
    case = Case(
        "t.lbfgs",
        "optref.linesearch.scale_by_lbfgs",
        {"memory_size": 3},
        None,
        step_scale=-0.1,
        problems=("quadratic",),
    )
    with jax.enable_x64(True):
        assert check_wrapper_invariance(case, libraries=("optref",), steps=3) == []


def test_computations_run_together_equal_each_alone_and_one_failure_hides_no_other() -> None:
    from optref.audit._together import call_together

    def scaled_sum(x: jax.Array, a: jax.Array) -> jax.Array:
        return jnp.sum(jnp.tanh(a * x))

    def rejects_vectors(x: jax.Array) -> jax.Array:
        if x.ndim:
            raise ValueError("a scalar was expected")
        return x

    x = jnp.linspace(-1.0, 1.0, 7, dtype=jnp.float32)
    together = call_together([(scaled_sum, (x, jnp.float32(0.5))), (jnp.cumsum, (x,))])
    alone = [jax.jit(scaled_sum)(x, jnp.float32(0.5)), jax.jit(jnp.cumsum)(x)]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    mixed = call_together(
        [(jnp.cumsum, (x,)), (rejects_vectors, (x,)), (scaled_sum, (x, jnp.float32(0.5)))]
    )
    assert isinstance(mixed[1], ValueError) and "scalar" in str(mixed[1])
    np.testing.assert_array_equal(np.asarray(mixed[0]), np.asarray(alone[1]))
    np.testing.assert_array_equal(np.asarray(mixed[2]), np.asarray(alone[0]))
    # Compiled without XLA's optimisations: the same mathematics, rounded differently.
    fast = call_together([(scaled_sum, (x, jnp.float32(0.5)))], fast_compile=True)
    np.testing.assert_allclose(np.asarray(fast[0]), np.asarray(alone[0]), rtol=1e-6)


def test_side_by_side_runs_equal_runs_alone_and_a_failing_one_is_its_exception() -> None:
    from optref.audit._trajectory import Run, run_trajectories, run_trajectory
    from optref.core import adam, sgd

    problem = PROBLEMS["quadratic"]
    with jax.enable_x64(True):
        params = problem.init(jnp.float64)
        complex_params = problem.init(jnp.complex128)

        class Broken:
            def init(self, params):
                return ()

            def update(self, grads, state, params=None):
                raise RuntimeError("broken update")

        runs = [Run(adam(0.1), problem, params), Run(sgd(0.05), problem, complex_params, 0.5)]
        both = run_trajectories([*runs, Run(Broken(), problem, params)], 4)
        assert isinstance(both[2], RuntimeError)
        for run, together in zip(runs, both, strict=False):
            alone = run_trajectory(run.tx, run.problem, run.params, 4, step_scale=run.step_scale)
            for a, b in zip(alone.updates, together.updates, strict=True):  # type: ignore[union-attr]
                for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
                    np.testing.assert_array_equal(x, y)


def test_an_error_of_the_runner_is_not_a_finding_about_optax() -> None:
    # Zero steps leave the trajectory that Optax follows empty: indexing it raised an
    # IndexError inside the try around Optax's init, which was filed as Optax's error.
    (case,) = load_cases("core.sgd-momentum")
    with jax.enable_x64(True), pytest.raises(ValueError, match="no steps"):
        check_float64(dataclasses.replace(case, steps=0))


def test_a_recorded_float64_deviation_explains_the_derivatives_differing() -> None:
    # Optax's rprop returns the previous step's update (a recorded float64 deviation), so
    # the loss after K steps is another function of the params and the hyperparameters.
    (case,) = [c for c in load_cases() if c.name == "core.scale_by_rprop"]
    with jax.enable_x64(True):
        findings = check_differentiability(case)
    assert findings, "the two libraries' derivatives should differ"
    for finding in findings:
        assert (finding.severity, finding.library) == ("warning", "optax"), finding.summary
        assert finding.link == "https://github.com/google-deepmind/optax/pull/1725"


def test_low_precision_is_not_measured_where_each_dtype_draws_its_own_noise() -> None:
    import optref.core

    # The same key draws unrelated numbers in float32 and float64, so the float64 oracle
    # cannot be the float32 run's reference ...
    tx = optref.core.add_noise(eta=1.0, gamma=0.55, key=0)
    with jax.enable_x64(True):
        noise = [
            tx.update(jnp.zeros(64, dtype), tx.init(jnp.zeros(64, dtype)))[0]
            for dtype in (jnp.float32, jnp.float64)
        ]
        assert noise[1].dtype == jnp.float64
        assert jnp.max(jnp.abs(noise[0].astype(jnp.float64) - noise[1])) > 1e-2
    # ... and the cases of every transformation that draws from a key say so.
    random_cases = [c for c in load_cases() if "key" in c.kwargs]
    assert {c.name for c in random_cases} == {"core.add_noise", "core.noisy_sgd"}
    for case in random_cases:
        assert case.draws_random_numbers
        assert check_low_precision(case, dtypes=("float32",)) == []


def test_the_robustness_check_accepts_the_initial_best_value_and_nothing_else():
    # reduce_on_plateau's best_value is +inf until its first decision, as in Optax.
    import optref.schedules
    from optref.audit._check_robustness import _finite

    (case,) = load_cases("schedules.reduce_on_plateau-accumulation")
    with jax.enable_x64(True):
        assert check_robustness(case) == []

    state = optref.schedules.reduce_on_plateau().init(jnp.ones([2], jnp.float16))
    assert np.isposinf(np.float64(state.best_value))
    assert _finite(state)
    assert not _finite(state.best_value)  # +inf outside its state class still counts
    for field, bad in [
        ("best_value", np.nan),
        ("best_value", -np.inf),
        ("avg_value", np.inf),
        ("scale", np.inf),
    ]:
        broken = type(state)(**{**vars(state), field: jnp.asarray(bad, state.scale.dtype)})
        assert not _finite(broken), field


def test_an_optax_factory_that_refuses_the_cases_arguments_is_an_optax_error() -> None:
    # Optax 0.2.3's scale_by_zoom_linesearch has no initial_guess_strategy: its factory
    # raises TypeError, which is Optax's error on every variant, not a crash of the audit.
    (case,) = load_cases("core.sgd-momentum")
    refused = dataclasses.replace(case, optax_kwargs={**case.kwargs, "no_such_argument": 1})
    with jax.enable_x64(True):
        findings = check_float64(dataclasses.replace(refused, steps=2))
    assert findings and all(f.library == "optax" and f.severity == "error" for f in findings)
    assert all("Optax raised TypeError" in f.summary for f in findings)
