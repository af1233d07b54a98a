"""What the audit reports about two known Optax defects, for the installed Optax version.

Against Optax before 0.2.4, optimistic gradient descent's first step is
$(\\alpha + \\beta) g_0$ instead of $\\alpha g_0$ (optax#1082); against 0.2.4, L-BFGS's
first-step scale $\\min(1, 1/\\lVert g_0\\rVert)$ leaks into derivatives (optax#1189); from
0.2.5, neither. Slow: the tests read the ``report.json`` that ``OPTREF_AUDIT_REPORT``
names (the ``audit`` nox session, one env per Optax version, passes the report it
wrote), or, without it or where that report did not run both cases, run the audit of
those cases themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from packaging.version import Version

from optref.audit import __main__ as cli
from optref.audit._versions import optax_version

pytestmark = pytest.mark.slow

OPTIMISTIC = "core.optimistic_gradient_descent"
LBFGS = "linesearch.lbfgs-no_linesearch"
installed = Version(optax_version())


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    path = os.environ.get("OPTREF_AUDIT_REPORT")
    if path is not None and not {OPTIMISTIC, LBFGS} <= set(
        json.loads(Path(path).read_text())["cases_run"]
    ):
        path = None  # a report of other cases (``nox -s audit -- --cases ...``)
    if path is None:
        out = tmp_path_factory.mktemp("audit")
        args = ["--cases", f"{OPTIMISTIC},{LBFGS}", "--checks", "float64", "--no-plots"]
        assert cli.main([*args, "--no-progress", "--out", str(out)]) == 0
        path = str(out / "report.json")
    report = json.loads(Path(path).read_text())
    assert report["optax_version"] == str(installed)
    return report["findings"]


def _optimistic_first_step(findings: list[dict]) -> list[dict]:
    return [
        f
        for f in findings
        if f["case"] == OPTIMISTIC and f["check"] == "first_step" and f["dtype"] == "float64"
    ]


def _lbfgs_derivative_leak(findings: list[dict]) -> list[dict]:
    return [
        f
        for f in findings
        if f["case"].startswith("linesearch.")
        and f["check"] == "first_step"
        and "d(update)/d(gradient)" in f["summary"]
    ]


@pytest.mark.skipif(installed >= Version("0.2.4"), reason="fixed in Optax 0.2.4")
def test_before_0_2_4_the_optimistic_first_step_is_alpha_plus_beta_times_g0(
    findings: list[dict],
) -> None:
    reported = _optimistic_first_step(findings)
    assert {f["problem"] for f in reported} == {"quadratic", "rosenbrock", "mlp"}
    for finding in reported:
        assert (finding["library"], finding["severity"], finding["step"]) == (
            "optax",
            "warning",
            0,
        )
        assert finding["link"].endswith("/issues/1082")
        # alpha = 1, beta = 0.5: Optax's first update is 1.5 times the reference's.
        if "optax_over_optref" in finding["measured"]:
            assert finding["measured"]["optax_over_optref"] == pytest.approx(1.5, rel=1e-12)
        assert "optax.optimistic_gradient_descent(" in finding["reproducer"]


@pytest.mark.skipif(installed < Version("0.2.4"), reason="the defect of Optax before 0.2.4")
def test_from_0_2_4_the_optimistic_first_step_is_alpha_times_g0(findings: list[dict]) -> None:
    assert _optimistic_first_step(findings) == []


@pytest.mark.skipif(installed != Version("0.2.4"), reason="the defect of Optax 0.2.4 alone")
def test_in_0_2_4_the_lbfgs_first_step_scaling_leaks_into_derivatives(
    findings: list[dict],
) -> None:
    reported = [f for f in _lbfgs_derivative_leak(findings) if f["case"] == LBFGS]
    # Where |g0| > 1 (the quadratic), not where |g0| < 1 and the scale is 1 (logistic).
    assert [f["problem"] for f in reported] == ["quadratic"]
    (finding,) = reported
    assert (finding["library"], finding["severity"]) == ("optax", "warning")
    assert finding["link"].endswith("/issues/1189")
    assert finding["measured"]["relative_error"] > 1e-2
    assert "jax.jvp(first_update" in finding["reproducer"]


@pytest.mark.skipif(installed == Version("0.2.4"), reason="the defect of Optax 0.2.4")
def test_elsewhere_the_lbfgs_first_step_derivative_agrees(findings: list[dict]) -> None:
    assert _lbfgs_derivative_leak(findings) == []
