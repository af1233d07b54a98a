"""float64 trajectories: optref through the shims against Optax, for every case.

For every conformance case of kind "transformation" (the installed packages' cases), on
the case's problem, against ``optax.chain(clip_by_global_norm(1), optax_tx)``:

- ``chain(clip_by_global_norm(1), from_optax(optax_tx))`` in optref;
- ``optax.chain(clip_by_global_norm(1), to_optax(optref_tx))``;
- N steps of Optax, ``state_from_optax``, M steps of optref;
- N steps of optref, ``state_to_optax``, M steps of Optax;

with N = 1 (2 for ``scale_by_lbfgs`` on real params, so that a curvature pair is in
its memory) and M = 1. The default session
runs one case for each kind of state (``DEFAULT_CASES`` in conftest); ``nox -s slow`` runs
them all.

Each must give the same float64 trajectory (params and updates) to the case's rtol.
Runs that mix the two libraries' ``clip_by_global_norm`` (which may differ in the last
bit: ``g * (c / max(n, c))`` against ``g / n * c``) get ten times the case's rtol, for
the optimizers that amplify a last-bit difference (L-BFGS). Where optref itself
disagrees with Optax on a case's updates or params (a deliberate deviation, or a conformance
failure of the transformation, which ``optref.audit`` reports), the shims are checked
against optref instead and the case is xfail with the reason.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import optax
import pytest

import optref.core as oc
from optref.compat import (
    StateConversionError,
    from_optax,
    state_from_optax,
    state_to_optax,
    to_optax,
)

M = 1
MIXED = 10.0


def _steps_before_switch(case: Any, complex_params: bool) -> int:
    """N: 1, after which every state holds a step's worth of numbers; 2 for L-BFGS with a
    fixed step on real params, whose memory holds its first curvature pair only then (with
    a line search, whose inner loops run eagerly op by op, the time goes elsewhere)."""
    lbfgs_memory = case.optref.endswith("scale_by_lbfgs") and not case.extra_args
    return 2 if lbfgs_memory and not complex_params else 1


def _check(harness: Any, case: Any, got: Any, expected: Any, what: str, factor: float) -> float:
    """``got`` follows ``expected`` (runs: their updates and params; lists: as they are)."""
    if hasattr(got, "updates"):
        got, expected = got.updates + got.params, expected.updates + expected.params
    error = harness.max_relative_error(got, expected)
    assert error <= factor * case.rtol, (
        f"{case.name}: {what}: relative error {error:.3g} > {factor * case.rtol:.3g}"
    )
    return error


def _optax_chain(case: Any, harness: Any) -> Any:
    return optax.chain(optax.clip_by_global_norm(1.0), harness.build(case, "optax"))


def _through_to_optax(
    case: Any, harness: Any, problem: Any, expected: Any, n: int
) -> tuple[Any, Any]:
    """The run of ``to_optax(optref_tx)`` inside an Optax chain, and the optref transformation.

    It must follow Optax; where it does not, it must follow optref's own chain, and the
    case is xfail with the reason (a recorded deviation or a conformance failure). A
    deviation that does not show in these few steps fails nothing.
    """
    optref_tx = harness.build(case, "optref")
    ours = harness.run(
        optax.chain(optax.clip_by_global_norm(1.0), to_optax(optref_tx)), case, problem, n + M
    )
    error = harness.max_relative_error(
        ours.updates + ours.params, expected.updates + expected.params
    )
    if error <= case.rtol:
        return ours, optref_tx
    # optref's own run, with Optax's clip (from_optax) so that nothing else differs.
    clip = from_optax(optax.clip_by_global_norm(1.0))
    native = harness.run(oc.chain(clip, optref_tx), case, problem, n + M)
    _check(harness, case, ours, native, "to_optax (against optref)", 1.0)
    pytest.xfail(
        harness.float64_deviation(case)
        or f"optref itself differs from Optax by {error:.3g} (a conformance "
        "failure, reported by optref.audit)"
    )


def _switch(
    case: Any,
    harness: Any,
    problem: Any,
    expected: Any,
    ours: Any,
    optref_tx: Any,
    n: int,
    without_params: bool,
) -> None:
    """Resume after ``n`` steps of one library with the other, from the converted state.

    The converted state must come back bit for bit; with ``without_params``, converting
    without ``params=`` must give the same state or ask for them.
    """
    optax_tx = _optax_chain(case, harness)
    chained = oc.chain(oc.clip_by_global_norm(1.0), optref_tx)

    at = expected.params[n - 1]
    state = state_from_optax(chained, expected.states[n - 1], params=at)
    tail = harness.run(chained, case, problem, M, params=at, state=state)
    _check(
        harness, case, expected.params[:n] + tail.params, expected.params, "optax -> optref", MIXED
    )

    at = ours.params[n - 1]
    optref_state = (oc.EmptyState(), ours.states[n - 1][1])  # the state of `chained`
    state = state_to_optax(chained, optref_state, params=at)
    tail = harness.run(optax_tx, case, problem, M, params=at, state=state)
    harness.assert_identical(state_from_optax(chained, state, params=at), optref_state)
    if without_params:
        try:
            inferred = state_to_optax(chained, optref_state)
        except StateConversionError as error:
            assert "pass params=" in str(error), str(error)
        else:
            harness.assert_identical(inferred, state)
    _check(harness, case, ours.params[:n] + tail.params, expected.params, "optref -> optax", MIXED)


def test_shims_follow_optax(case: Any, harness: Any) -> None:
    problem = harness.Problem.for_case(case)
    n = _steps_before_switch(case, complex_params=False)
    expected = harness.run(_optax_chain(case, harness), case, problem, n + M)
    wrapped = oc.chain(oc.clip_by_global_norm(1.0), from_optax(harness.build(case, "optax")))
    got = harness.run(wrapped, case, problem, n + M)
    _check(harness, case, got, expected, "from_optax", MIXED)
    ours, optref_tx = _through_to_optax(case, harness, problem, expected, n)
    _switch(case, harness, problem, expected, ours, optref_tx, n, without_params=True)


def test_switch_library_complex_params(complex_case: Any, harness: Any) -> None:
    case = complex_case
    problem = harness.Problem.for_case(case, complex_params=True)
    n = _steps_before_switch(case, complex_params=True)
    expected = harness.run(_optax_chain(case, harness), case, problem, n + M)
    ours, optref_tx = _through_to_optax(case, harness, problem, expected, n)
    _switch(case, harness, problem, expected, ours, optref_tx, n, without_params=False)


def test_default_cases_are_cases(harness: Any) -> None:
    """Every case the default session runs exists (for the installed packages)."""
    names = {case.name for case in harness.cases()}
    installed = {
        name
        for name in harness.default_cases
        if importlib.util.find_spec(f"optref.{name.split('.')[0]}") is not None
    }
    assert installed - names == set()
