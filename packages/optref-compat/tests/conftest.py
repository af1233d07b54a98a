"""Shared fixtures: the conformance cases of kind "transformation", built per library,
a small float64 problem, and trajectory runners for either library."""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

from optref.core.conformance import Case, build  # noqa: E402

#: The conformance modules whose transformation cases the compat tests run; packages
#: that are not installed are skipped (compat depends only on optref-core).
CASE_MODULES = (
    "optref.core.conformance",
    "optref.masking.conformance",
    "optref.linesearch.conformance",
)

#: The cases the default session runs, one for each kind of state: a chain, a named
#: chain, a schedule's count, masks inside a core transformation, injected
#: hyperparameters, a wrapper's state, a PRNG key, masked and partitioned states, frozen
#: params, parameter groups, L-BFGS memory and a line search's (zoom, whose state has
#: the fields of backtracking's, and its own info). ``nox -s slow`` runs every case.
DEFAULT_CASES = frozenset(
    {
        "core.adam",
        "core.named_chain",
        "core.adam-schedule",
        "core.lamb-schedule-mask",
        "core.inject_hyperparams-adam-schedules",
        "core.MultiSteps",
        "core.add_noise",
        "masking.masked-adam-ndim",
        "masking.partition-prefix",
        "masking.freeze",
        "masking.param_groups",
        "linesearch.scale_by_lbfgs",
        "linesearch.lbfgs-zoom-unscaled",
    }
)
#: The same for complex params: a stateful transformation, a partition, L-BFGS memory.
DEFAULT_COMPLEX_CASES = frozenset(
    {"core.scale_by_adam", "masking.selective_transform", "linesearch.scale_by_lbfgs"}
)


def _optax_version_matches(specifier: str) -> bool:
    if not specifier:
        return True
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    return Version(optax.__version__) in SpecifierSet(specifier)


def transformation_cases() -> list[Case]:
    """Every case of kind "transformation" with an Optax counterpart, from the installed
    conformance modules."""
    cases: list[Case] = []
    for module_name in CASE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for case in getattr(module, "CASES", ()):
            if isinstance(case, dict):
                case = Case(**case)
            if case.kind == "transformation" and case.optax is not None:
                cases.append(case)
    return cases


def float64_deviation(case: Case) -> str | None:
    """The reason optref deliberately differs from the installed Optax in float64, if so."""
    deviation = case.deviation("float64")
    if deviation is not None and _optax_version_matches(deviation.optax_versions):
        return deviation.reason
    return None


# The problems share their leaf shapes, (2, 2), (2,) and (), so that the eager runs
# compile few distinct primitives; "quadratic" (two leaves) is the first problem of most
# cases and the cheapest to run.


def _quadratic_params(complex_params: bool) -> Any:
    w, b = np.array([0.3, -0.7]), np.array(0.5)
    if complex_params:
        w, b = w + 1j * np.array([0.4, 0.1]), b - 0.25j
    return {"b": jnp.asarray(b), "w": jnp.asarray(w)}


def _quadratic_loss(params: Any) -> jax.Array:
    w, b = params["w"], params["b"]
    return 0.5 * jnp.sum(jnp.array([1.0, 5.0]) * jnp.abs(w - jnp.array([1.0, -2.0])) ** 2) + (
        jnp.abs(b - 1) ** 2
    )


def _rosenbrock_params(complex_params: bool) -> Any:
    del complex_params
    return jnp.array([-1.2, 1.0])


def _rosenbrock_loss(x: jax.Array) -> jax.Array:
    return 10.0 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


_X = np.random.default_rng(0).normal(size=(6, 2))
_Y = np.stack([np.sin(_X @ np.array([1.0, -2.0])), np.cos(_X @ np.array([0.5, 1.0]))], axis=1)


def _mlp_params(complex_params: bool) -> Any:
    rng = np.random.default_rng(1)

    def draw(*shape: int) -> jax.Array:
        value = rng.normal(size=shape) / np.sqrt(shape[0])
        if complex_params:
            value = value + 0.3j * rng.normal(size=shape) / np.sqrt(shape[0])
        return jnp.asarray(value)

    return {"hidden": {"w": draw(2, 2), "b": draw(2)}, "head": {"w": draw(2, 2), "b": draw(2)}}


def _mlp_loss(params: Any) -> jax.Array:
    h = jnp.tanh(_X @ params["hidden"]["w"] + params["hidden"]["b"])
    return jnp.mean(jnp.abs(h @ params["head"]["w"] + params["head"]["b"] - _Y) ** 2)


_XL = np.random.default_rng(2).normal(size=(8, 2))
_YL = (_XL @ np.array([1.0, -1.0]) > 0).astype(float)


def _logistic_params(complex_params: bool) -> Any:
    del complex_params
    return {"b": jnp.zeros(()), "w": jnp.zeros(2)}


def _logistic_loss(params: Any) -> jax.Array:
    logits = _XL @ params["w"] + params["b"]
    return jnp.mean(jnp.logaddexp(0.0, logits) - _YL * logits) + 1e-2 * jnp.sum(params["w"] ** 2)


def _bilinear_params(complex_params: bool) -> Any:
    del complex_params
    return {"x": jnp.array([1.0, 0.5]), "y": jnp.array([1.0, -0.5])}


def _bilinear_loss(params: Any) -> jax.Array:
    x, y = params["x"], params["y"]
    return jnp.sum(x * jax.lax.stop_gradient(y)) - jnp.sum(jax.lax.stop_gradient(x) * y)


#: The problems of the conformance cases (named as in optref.audit), small, in float64:
#: name -> (params, loss, supports complex params).
PROBLEMS: dict[str, tuple[Callable[[bool], Any], Callable[[Any], jax.Array], bool]] = {
    "quadratic": (_quadratic_params, _quadratic_loss, True),
    "rosenbrock": (_rosenbrock_params, _rosenbrock_loss, False),
    "mlp": (_mlp_params, _mlp_loss, True),
    "logistic": (_logistic_params, _logistic_loss, False),
    "bilinear": (_bilinear_params, _bilinear_loss, False),
}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One of :data:`PROBLEMS`, with real or complex params."""

    name: str = "mlp"
    complex_params: bool = False

    @classmethod
    def for_case(cls, case: Case, complex_params: bool = False) -> Problem:
        """The first of the case's problems defined here (that takes complex params, if
        asked); "quadratic" for a case whose problems are all unknown here."""
        for name in case.problems:
            if name in PROBLEMS and (PROBLEMS[name][2] or not complex_params):
                return cls(name, complex_params)
        if not any(name in PROBLEMS for name in case.problems):
            return cls("quadratic", complex_params)
        pytest.skip(f"none of {case.problems} takes complex params")

    def params(self) -> Any:
        return PROBLEMS[self.name][0](self.complex_params)

    def loss(self, params: Any) -> jax.Array:
        return PROBLEMS[self.name][1](params)

    def grad(self, params: Any) -> Any:
        return _descent_gradient(self, params)

    def compiled_loss(self, params: Any) -> jax.Array:
        """The loss, compiled even inside ``jax.disable_jit`` (line searches call it often)."""
        with jax.disable_jit(False):
            return _compiled_loss(self, params)


@functools.partial(jax.jit, static_argnums=0)
def _compiled_loss(problem: Problem, params: Any) -> jax.Array:
    return problem.loss(params)


@functools.partial(jax.jit, static_argnums=0)
def _descent_gradient(problem: Problem, params: Any) -> Any:
    # The conjugate of the Wirtinger gradient is the descent direction for complex params.
    return jax.tree.map(jnp.conj, jax.grad(problem.loss)(params))


def extra_arguments(case: Case, problem: Problem, params: Any, grads: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if "value" in case.extra_args:
        extra["value"] = problem.compiled_loss(params)
    if "grad" in case.extra_args:
        extra["grad"] = grads
    if "value_fn" in case.extra_args:
        extra["value_fn"] = problem.compiled_loss
    return extra


def step_params(params: Any, updates: Any, step_scale: float) -> Any:
    return jax.tree.map(lambda p, u: p + step_scale * u, params, updates)


@dataclasses.dataclass
class Run:
    """Params, updates and state after every step."""

    params: list[Any]
    updates: list[Any]
    states: list[Any]

    @property
    def state(self) -> Any:
        return self.states[-1]


def run(
    tx: Any,
    case: Case,
    problem: Problem,
    steps: int,
    *,
    params: Any = None,
    state: Any = None,
) -> Run:
    """``steps`` eager steps of ``tx`` (either library) from ``params`` and ``state``.

    Run with ``jax.disable_jit``: ``lax.cond`` (``MultiSteps``, ``apply_if_finite``) then
    runs the branch taken in Python instead of compiling both at every eager step.
    """
    params = problem.params() if params is None else params
    if state is None:
        with jax.disable_jit():
            state = tx.init(params)
    out = Run([], [], [])
    for _ in range(steps):
        grads = problem.grad(params)
        extra = extra_arguments(case, problem, params, grads)
        with jax.disable_jit():
            updates, state = tx.update(grads, state, params, **extra)
        params = step_params(params, updates, case.step_scale)
        out.params.append(params)
        out.updates.append(updates)
        out.states.append(state)
    return out


def max_relative_error(actual: list[Any], expected: list[Any]) -> float:
    """The largest error over the steps and leaves, relative to each leaf's RMS."""
    worst = 0.0
    for a_tree, e_tree in zip(actual, expected, strict=True):
        for a, e in zip(jax.tree.leaves(a_tree), jax.tree.leaves(e_tree), strict=True):
            a, e = np.asarray(a), np.asarray(e)
            assert a.shape == e.shape
            scale = np.sqrt(np.mean(np.abs(e) ** 2)) if e.size else 0.0
            error = np.max(np.abs(a - e)) if e.size else 0.0
            worst = max(worst, error / scale if scale > 0 else error)
    return float(worst)


def assert_identical(a: Any, b: Any) -> None:
    """The same layout, dtypes and bits."""
    assert jax.tree.structure(a) == jax.tree.structure(b), (
        f"{jax.tree.structure(a)} != {jax.tree.structure(b)}"
    )
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert jnp.result_type(x) == jnp.result_type(y), (x, y)
        if jnp.issubdtype(jnp.result_type(x), jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="session")
def harness() -> Any:
    """The helpers above, for the test modules (which cannot import this conftest)."""

    class Harness:
        Problem = Problem
        default_cases = DEFAULT_CASES | DEFAULT_COMPLEX_CASES
        cases = staticmethod(transformation_cases)
        build = staticmethod(build)
        run = staticmethod(run)
        max_relative_error = staticmethod(max_relative_error)
        float64_deviation = staticmethod(float64_deviation)
        assert_identical = staticmethod(assert_identical)

    return Harness


def case_params(default: frozenset[str], complex_params: bool = False) -> list[Any]:
    """Every transformation case (on complex params: those that take them); the ones not
    in ``default`` are marked slow."""
    return [
        pytest.param(c, id=c.name, marks=() if c.name in default else pytest.mark.slow)
        for c in transformation_cases()
        if c.complex_params or not complex_params
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``case``: every transformation case; ``complex_case``: those on complex params."""
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", case_params(DEFAULT_CASES))
    if "complex_case" in metafunc.fixturenames:
        metafunc.parametrize("complex_case", case_params(DEFAULT_COMPLEX_CASES, True))
