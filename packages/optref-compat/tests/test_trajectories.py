"""float64 trajectories: optref through the shims against Optax, for every case.

For every conformance case of kind "transformation" (the installed packages' cases), on
the case's problem, against ``optax.chain(clip_by_global_norm(1), optax_tx)``:

- ``chain(clip_by_global_norm(1), from_optax(optax_tx))`` in optref;
- ``optax.chain(clip_by_global_norm(1), to_optax(optref_tx))``;
- N steps of Optax, ``state_from_optax``, M steps of optref;
- N steps of optref, ``state_to_optax``, M steps of Optax.

Each must give the same float64 trajectory (params and updates) to the case's rtol.
Runs that mix the two libraries' ``clip_by_global_norm`` (which may differ in the last
bit: ``g * (c / max(n, c))`` against ``g / n * c``) get ten times the case's rtol, for
the optimizers that amplify a last-bit difference (L-BFGS). Where optref itself
disagrees with Optax on a case (a conformance failure of the transformation, which
``optref.audit`` reports) the shims are checked against optref, and the case is xfail.
"""

from __future__ import annotations

from typing import Any

import optax
import pytest

import optref.core as oc
from optref.compat import from_optax, state_from_optax, state_to_optax, to_optax

N, M = 2, 1
MIXED = 10.0


def _chains(case: Any, harness: Any) -> tuple[Any, Any]:
    return (
        optax.chain(optax.clip_by_global_norm(1.0), harness.build(case, "optax")),
        oc.chain(oc.clip_by_global_norm(1.0), harness.build(case, "optref")),
    )


def _check(harness: Any, case: Any, got: Any, expected: Any, what: str, factor: float) -> None:
    error = harness.max_relative_error(got, expected)
    assert error <= factor * case.rtol, (
        f"{case.name}: {what}: relative error {error:.3g} > {factor * case.rtol:.3g}"
    )


def _references(case: Any, harness: Any, problem: Any) -> tuple[Any, Any, str | None]:
    """Optax's and optref's trajectories, and why optref may differ from Optax."""
    optax_tx, optref_tx = _chains(case, harness)
    expected = harness.run(optax_tx, case, problem, N + M)
    native = harness.run(optref_tx, case, problem, N + M)
    error = harness.max_relative_error(native.params, expected.params)
    reason = harness.float64_deviation(case)
    if reason is None and error > MIXED * case.rtol:
        reason = f"optref itself differs from Optax by {error:.3g} (a conformance failure)"
    return expected, native, reason


def _switch(case: Any, harness: Any, problem: Any, expected: Any, native: Any) -> None:
    """Resume after N steps of one library with the other, from the converted state."""
    optax_tx, optref_tx = _chains(case, harness)
    at = expected.params[N - 1]
    state = state_from_optax(optref_tx, expected.states[N - 1], params=at)
    tail = harness.run(optref_tx, case, problem, M, params=at, state=state)
    _check(harness, case, expected.params[:N] + tail.params, expected.params, "optax -> optref",
           MIXED)

    at = native.params[N - 1]
    state = state_to_optax(optref_tx, native.states[N - 1], params=at)
    tail = harness.run(optax_tx, case, problem, M, params=at, state=state)
    _check(harness, case, native.params[:N] + tail.params, expected.params, "optref -> optax",
           MIXED)


def test_shims_follow_optax(case: Any, harness: Any) -> None:
    problem = harness.Problem.for_case(case)
    expected, native, reason = _references(case, harness, problem)

    wrapped = oc.chain(oc.clip_by_global_norm(1.0), from_optax(harness.build(case, "optax")))
    got = harness.run(wrapped, case, problem, N + M)
    _check(harness, case, got.updates + got.params, expected.updates + expected.params,
           "from_optax", MIXED)

    reference = native if reason else expected
    ours = optax.chain(optax.clip_by_global_norm(1.0), to_optax(harness.build(case, "optref")))
    got = harness.run(ours, case, problem, N + M)
    _check(harness, case, got.updates + got.params, reference.updates + reference.params,
           "to_optax", MIXED if reason else 1.0)
    if reason:
        pytest.xfail(reason)
    _switch(case, harness, problem, expected, native)


def test_switch_library_complex_params(complex_case: Any, harness: Any) -> None:
    problem = harness.Problem.for_case(complex_case, complex_params=True)
    expected, native, reason = _references(complex_case, harness, problem)
    if reason:
        pytest.xfail(reason)
    _switch(complex_case, harness, problem, expected, native)
