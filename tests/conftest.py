"""Cross-package tests: float64 is on, as the oracle runs need it."""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import pytest

jax.config.update("jax_enable_x64", True)


# The hardening tests run over every transformation of optref-core's conformance cases
# (the catalogue of aliases and transforms). The default session runs Adam and noisy SGD
# (a chain of scalings with a moment state, and one that draws random numbers);
# ``-m slow`` runs the rest.
HARDENING_DEFAULT = ("core.adam", "core.noisy_sgd")


def _transformation_cases() -> list:
    from optref.core.conformance import CASES

    return [case for case in CASES if case.kind == "transformation"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``transformation_case`` over the catalogue above."""
    if "transformation_case" not in metafunc.fixturenames:
        return
    params = [
        pytest.param(
            case,
            id=case.name,
            marks=() if case.name in HARDENING_DEFAULT else pytest.mark.slow,
        )
        for case in _transformation_cases()
    ]
    metafunc.parametrize("transformation_case", params)


@dataclasses.dataclass(frozen=True)
class CaseRun:
    """A conformance case as a user runs it: the optref transformation, the params of the
    case's first problem, and one step (gradient, ``update``, ``params + scale * u``)."""

    case: Any
    tx: Any
    params: Any

    def step(
        self,
        tx: Any,
        params: Any,
        state: Any,
        transform_grads: Callable[[Any], Any] | None = None,
    ) -> tuple[Any, Any, Any]:
        """One pure step: ``(params, state, updates)`` after it. ``transform_grads``
        changes the gradient before the update sees it (to inject a NaN, say)."""
        from optref.audit import PROBLEMS, descent_gradient

        problem = PROBLEMS[self.case.problems[0]]
        grads = descent_gradient(problem.loss, params)
        if transform_grads is not None:
            grads = transform_grads(grads)
        extra: dict[str, Any] = {}
        if "value" in self.case.extra_args:
            extra["value"] = problem.loss(params)
        if "grad" in self.case.extra_args:
            extra["grad"] = grads
        if "value_fn" in self.case.extra_args:
            extra["value_fn"] = problem.loss
        updates, state = tx.update(grads, state, params, **extra)
        scale = self.case.step_scale
        params = jax.tree.map(lambda p, u: (p + scale * u).astype(p.dtype), params, updates)
        return params, state, updates


@pytest.fixture(scope="session")
def case_run() -> Callable[[Any, Any], CaseRun]:
    """``case_run(case, dtype)``: the :class:`CaseRun` of a case in a dtype."""
    from optref.audit import PROBLEMS, build

    def make(case: Any, dtype: Any) -> CaseRun:
        params = PROBLEMS[case.problems[0]].init(dtype)
        return CaseRun(case, build(case, "optref"), params)

    return make
