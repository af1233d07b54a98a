"""Every conformance case of every installed optref package, through the optref.audit runner.

The default session runs, for every case, float64 agreement with Optax (3 problems, 50
steps, complex params where supported). With ``OPTREF_CROSSCHECK_ALL=1`` (the
``crosscheck`` sessions) every check runs: optref's reference properties (low precision,
robustness, differentiability, wrapper invariance) and Optax's side of them, whose
findings are printed.
"""

from __future__ import annotations

import os

import pytest

from optref.audit import ALL_CHECKS, load_cases, run_case

_PACKAGES = os.environ.get("OPTREF_PACKAGES")
CASES = load_cases(packages=_PACKAGES.split(",") if _PACKAGES else None)
ALL = os.environ.get("OPTREF_CROSSCHECK_ALL") == "1"
LIBRARIES = ("optref", "optax")
CHECKS = ALL_CHECKS if ALL else ("float64",)


def test_every_package_with_cases_is_discovered() -> None:
    packages = {case.package for case in load_cases()}
    assert {"core", "schedules", "masking"} <= packages


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case) -> None:
    # The first-step derivative check (a compilation per problem and library) runs with
    # every check, in the crosscheck sessions.
    findings = run_case(case, checks=CHECKS, libraries=LIBRARIES, first_step_derivative=ALL)
    for finding in findings:
        print(f"[{finding.severity}] {finding.library} {finding.check}: {finding.summary}")
    failures = [f for f in findings if f.severity == "error"]
    assert not failures, "\n".join(f"{f.check} ({f.library}): {f.summary}" for f in failures)
