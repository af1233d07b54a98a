"""float64 trajectories: optref through the shims against Optax, for every case.

For every conformance case of kind "transformation" (the installed packages' cases), on
the case's problem, against ``optax.chain(clip_by_global_norm(1), optax_tx)``:

- ``chain(clip_by_global_norm(1), from_optax(optax_tx))`` in optref;
- ``optax.chain(clip_by_global_norm(1), to_optax(optref_tx))``;
- N steps of Optax, ``state_from_optax``, M steps of optref;
- N steps of optref, ``state_to_optax``, M steps of Optax.

Each must give the same float64 trajectory (params and updates) to the case's rtol.
Where optref itself disagrees with Optax on a case (a conformance failure of the
transformation, which ``optref.audit`` reports), the shims are checked against optref
instead and the case is marked xfail.
"""

from __future__ import annotations

from typing import Any

import optax
import pytest

import optref.core as oc
from optref.compat import from_optax, state_from_optax, state_to_optax, to_optax

N, M = 2, 2


def _chains(case: Any, harness: Any) -> tuple[Any, Any]:
    return (
        optax.chain(optax.clip_by_global_norm(1.0), harness.build(case, "optax")),
        oc.chain(oc.clip_by_global_norm(1.0), harness.build(case, "optref")),
    )


def _check(harness: Any, case: Any, got: Any, expected: Any, what: str) -> None:
    error = harness.max_relative_error(got, expected)
    assert error <= case.rtol, f"{case.name}: {what}: relative error {error:.3g} > {case.rtol}"


def _reference(case: Any, harness: Any, problem: Any) -> tuple[Any, str | None]:
    """Optax's trajectory; or optref's, with the reason, where the two disagree."""
    optax_tx, optref_tx = _chains(case, harness)
    expected = harness.run(optax_tx, case, problem, N + M)
    native = harness.run(optref_tx, case, problem, N + M)
    error = harness.max_relative_error(native.params, expected.params)
    reason = harness.float64_deviation(case)
    if reason is None and error > case.rtol:
        reason = f"optref itself differs from Optax by {error:.3g} (a conformance failure)"
    return (native if reason else expected), reason


def _switch(case: Any, harness: Any, problem: Any, reference: Any) -> None:
    optax_tx, optref_tx = _chains(case, harness)
    head = harness.run(optax_tx, case, problem, N)
    state = state_from_optax(optref_tx, head.state, params=head.params[-1])
    tail = harness.run(optref_tx, case, problem, M, params=head.params[-1], state=state)
    _check(harness, case, head.params + tail.params, reference.params, "optax -> optref")

    head = harness.run(optref_tx, case, problem, N)
    state = state_to_optax(optref_tx, head.state, params=head.params[-1])
    tail = harness.run(optax_tx, case, problem, M, params=head.params[-1], state=state)
    _check(harness, case, head.params + tail.params, reference.params, "optref -> optax")


def test_shims_follow_optax(case: Any, harness: Any) -> None:
    problem = harness.Problem.for_case(case)
    optax_tx, _ = _chains(case, harness)
    expected = harness.run(optax_tx, case, problem, N + M)
    wrapped = oc.chain(oc.clip_by_global_norm(1.0), from_optax(harness.build(case, "optax")))
    got = harness.run(wrapped, case, problem, N + M)
    _check(harness, case, got.updates + got.params, expected.updates + expected.params,
           "from_optax")

    reference, reason = _reference(case, harness, problem)
    ours = optax.chain(optax.clip_by_global_norm(1.0), to_optax(harness.build(case, "optref")))
    got = harness.run(ours, case, problem, N + M)
    _check(harness, case, got.updates + got.params, reference.updates + reference.params,
           "to_optax")
    if reason is None:
        _switch(case, harness, problem, reference)
    else:
        pytest.xfail(reason)


def test_switch_library_complex_params(complex_case: Any, harness: Any) -> None:
    problem = harness.Problem.for_case(complex_case, complex_params=True)
    reference, reason = _reference(complex_case, harness, problem)
    if reason:
        pytest.xfail(reason)
    _switch(complex_case, harness, problem, reference)
