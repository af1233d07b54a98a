"""Every finding about Optax carries a script that shows it with Optax alone.

The findings come from the checks themselves, on cases where the installed Optax (0.2.8)
has the defect; each finding's ``reproducer`` runs in a fresh interpreter (no optref
imported) and prints the number that the finding reports.
"""

from __future__ import annotations

import re
import subprocess
import sys

import jax
import pytest

from optref.audit import (
    check_differentiability,
    check_low_precision,
    check_robustness,
    check_wrapper_invariance,
    load_cases,
)


def _case(name: str):
    (case,) = [c for c in load_cases() if c.name == name]
    return case


def _run(source: str) -> str:
    assert "optref" not in source
    done = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _optax_finding(findings: list, **where: str):
    matching = [
        f
        for f in findings
        if f.library == "optax" and all(getattr(f, k) == v for k, v in where.items())
    ]
    assert matching, [f.summary for f in findings]
    return matching[0]


def test_robustness_reproducer_shows_the_non_finite_update() -> None:
    # Adam in float16 with zero gradients: eps = 1e-8 rounds to 0, so 0 / 0.
    with jax.enable_x64(True):
        findings = check_robustness(_case("core.adam"), dtypes=("float16",))
    finding = _optax_finding(findings, dtype="float16")
    out = _run(finding.reproducer)
    assert f"step {finding.step} finite updates: False" in out


def test_low_precision_reproducer_prints_the_reported_error() -> None:
    with jax.enable_x64(True):
        findings = check_low_precision(_case("core.rmsprop-centered"), dtypes=("float32",))
    finding = _optax_finding(findings, dtype="float32")
    printed = float(re.search(r"error at step \d+: ([0-9.e+-]+) eps", _run(finding.reproducer))[1])
    assert printed == pytest.approx(finding.measured["optax"][finding.step], rel=1e-6)
    assert printed > 16


def test_wrapper_reproducer_shows_the_injected_form_differing() -> None:
    with jax.enable_x64(True):
        findings = check_wrapper_invariance(_case("core.adam"), libraries=("optax",))
    finding = _optax_finding(findings)
    differences = re.findall(
        r"max difference of the updates: ([0-9.e+-]+)", _run(finding.reproducer)
    )
    assert len(differences) == 10 and max(float(d) for d in differences) > 0


def test_derivative_reproducer_shows_the_nan_gradient() -> None:
    # Optax's RAdam evaluates its rectification's square root where it is not used.
    with jax.enable_x64(True):
        findings = check_differentiability(_case("core.radam"))
    finding = _optax_finding(findings)
    out = _run(finding.reproducer)
    reverse, forward = re.search(r"reverse (\S+) forward (\S+)", out).groups()
    assert reverse == "nan" and forward != "nan"


def test_schedule_reproducer_prints_optax_value() -> None:
    # A zero-length warmup holds init_value forever in Optax (a recorded deviation).
    from optref.audit import check_schedule

    with jax.enable_x64(True):
        findings = check_schedule(_case("schedules.warmup_constant_schedule-no_warmup"))
    finding = _optax_finding(findings)
    assert float(_run(finding.reproducer)) == finding.measured["optax"]
