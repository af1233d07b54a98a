"""The ``optref-audit`` command: the report's files and schema, ``--fail-on``, ``--quick``,
``--compare``; and the oracle is quiet when optref itself stands in for Optax."""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from pathlib import Path

import jax
import pytest

from optref.audit import (
    ALL_CHECKS,
    Finding,
    _run,
    build,
    check_wrapper_invariance,
    load_cases,
    resolve_name,
    run_case,
)
from optref.audit import __main__ as cli
from optref.audit._arguments import available_backends
from optref.audit._run import audit_case
from optref.compat import to_optax
from optref.core.conformance import Case

FINDING_KEYS = {
    "case",
    "check",
    "severity",
    "backend",
    "dtype",
    "summary",
    "reproducer",
    "measured",
    "link",
}


def _read(out: Path) -> dict:
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "report.html"}
    return json.loads((out / "report.json").read_text())


def test_the_report_has_its_three_files_and_schema(tmp_path: Path, capsys) -> None:
    status = cli.main(
        ["--cases", "core.sg[d]", "--checks", "float64", "--steps", "3", "--out", str(tmp_path)]
    )
    assert status == 0
    assert capsys.readouterr().out.splitlines()[0] == f"Report: {tmp_path / 'report.html'}"
    report = _read(tmp_path)
    assert {"optax_version", "jax_version", "backends", "cases_run", "findings"} <= set(report)
    assert report["cases_run"] == ["core.sgd"]
    assert report["findings"] == []
    page = (tmp_path / "report.html").read_text()
    assert "<style>" in page and "data:image/png;base64," in page  # the bilinear plot


def test_fail_on_sets_the_exit_status(tmp_path: Path, monkeypatch) -> None:
    def fake_run_case(case: Case, **_: object) -> list[Finding]:
        return [
            Finding(
                case=case.name,
                check="float64",
                severity="warning",
                library="optax",
                summary="made up",
                reproducer="import optax",
            )
        ]

    monkeypatch.setattr(_run, "run_case", fake_run_case)
    args = ["--cases", "core.sg[d]", "--out", str(tmp_path), "--backend", "cpu", "--no-plots"]
    assert cli.main([*args, "--fail-on", "warning"]) == 1
    assert cli.main([*args, "--fail-on", "info"]) == 1
    assert cli.main([*args, "--fail-on", "error"]) == 0
    assert cli.main(args) == 0
    (finding,) = _read(tmp_path)["findings"]
    assert set(finding) >= FINDING_KEYS
    markdown = (tmp_path / "report.md").read_text()
    assert "## Warning (1)" in markdown and "```python\n  import optax" in markdown


def test_quick_completes(tmp_path: Path) -> None:
    start = time.perf_counter()
    assert (
        cli.main(
            [
                "--quick",
                "--cases",
                "core.sg[d]",
                "--dtypes",
                "float32",
                "--no-plots",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert _read(tmp_path)["options"]["quick"] is True
    assert time.perf_counter() - start < 120


def test_quick_picks_one_case_per_package_and_the_named_ones() -> None:
    from optref.audit import load_cases

    names = [c.name for c in cli.quick_cases(load_cases())]
    assert "core.optimistic_gradient_descent" in names and "core.adam" in names
    assert {n.split(".")[0] for n in names} == {c.name.split(".")[0] for c in load_cases()}
    assert len(names) < 12


def test_compare_lists_what_appears_and_disappears(tmp_path: Path) -> None:
    def report(version: str, cases: list[str]) -> Path:
        directory = tmp_path / f"optax-{version}"
        directory.mkdir()
        findings = [
            {
                "case": c,
                "check": "float64",
                "severity": "warning",
                "backend": "cpu",
                "dtype": "float64",
                "problem": "quadratic",
                "summary": f"{c} differs",
            }
            for c in cases
        ]
        (directory / "report.json").write_text(
            json.dumps(
                {
                    "optax_version": version,
                    "cases_run": ["core.a", "core.b", "core.c"],
                    "counts": {"warning": len(cases)},
                    "findings": findings,
                }
            )
        )
        return directory

    old, new = report("0.2.3", ["core.a", "core.b"]), report("0.2.10", ["core.b", "core.c"])
    assert cli.main(["--compare", str(new), str(old), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "compare.md").read_text()
    assert "## 0.2.3 → 0.2.10" in text  # ordered by version, not by argument
    appeared, disappeared = text.split("Appeared")[1].split("Disappeared")
    assert "core.c" in appeared and "core.a" not in appeared
    assert "core.a" in disappeared and "core.c" not in disappeared.split("## In every")[0]


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The message of the usage error (exit status 2) that ``optref-audit argv`` gives."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(argv))
    assert exit_.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize(
    ("argument", "value", "least"), [("--steps", "0", 1), ("--steps", "-1", 1), ("--jobs", "-3", 0)]
)
def test_a_count_below_its_least_value_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argument: str, value: str, least: int
) -> None:
    # --steps 0 ran an empty trajectory, whose IndexError was filed as Optax's.
    args = ["--cases", "core.sgd-momentum", "--checks", "float64", "--out", str(tmp_path)]
    message = _usage_error(capsys, *args, argument, value)
    assert message.endswith(f"argument {argument}: must be at least {least}, not {value}")


def test_a_cases_pattern_that_matches_no_case_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path)]
    message = _usage_error(capsys, "--cases", "nonexistent_case_xyz", "--fail-on", "error", *out)
    assert "argument --cases: no case matches 'nonexistent_case_xyz'" in message
    message = _usage_error(capsys, "--cases", "core.sg[d],core.adamm", *out)
    assert "no case matches 'core.adamm' (did you mean 'core.adam'" in message
    assert "core.sg[d]" not in message


def test_a_backend_dtype_or_report_that_is_not_there_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    present = available_backends()
    absent = next(b for b in ("gpu", "tpu") if b not in present)
    args = ["--cases", "core.sg[d]", "--out", str(tmp_path)]
    message = _usage_error(capsys, *args, "--backend", absent)
    assert message.endswith(
        f"argument --backend: no {absent!r} backend on this machine; it has: {', '.join(present)}"
    )
    message = _usage_error(capsys, *args, "--dtypes", "float32,float8")
    assert message.endswith(
        "argument --dtypes: unknown dtypes 'float8'; accepted: float32, bfloat16, float16"
    )
    missing = tmp_path / "nonexistent"
    message = _usage_error(capsys, "--compare", str(missing), str(tmp_path), *args[2:])
    assert message.endswith(f"argument --compare: no such directory: {str(missing)!r}")
    message = _usage_error(capsys, "--compare", str(tmp_path), *args[2:])
    assert message.endswith(f"argument --compare: no report.json in {str(tmp_path)!r}")


# optref standing in for Optax: the oracle must find nothing.
def standin(case_name: str, **hyperparameters: object) -> object:
    """The optref transformation of a conformance case, as an Optax one (optref.compat),
    with the case's differentiated ``hyperparameters`` as arguments of its own (the
    differentiability check passes them, traced)."""
    (case,) = [c for c in load_cases() if c.name == case_name]
    given = {k: v for k, v in hyperparameters.items() if v is not None}
    return to_optax(build(dataclasses.replace(case, kwargs={**case.kwargs, **given}), "optref"))


# Its signature names every case's hyperparameters (None: not given), as an Optax
# factory's names its own: optax.inject_hyperparams binds the arguments to it.
standin.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("case_name", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for name in sorted({h for c in load_cases() for h in c.hyperparameters})
    ]
)


def as_standin_case(case: Case) -> Case:
    """``case`` with optref, through ``to_optax``, in the place of Optax; the values of
    its differentiated hyperparameters (given, or the optref factory's defaults) are
    arguments of the stand-in, as they are of an Optax factory."""
    defaults = inspect.signature(resolve_name(case.optref)).parameters
    hyperparameters = {
        name: case.kwargs[name] if name in case.kwargs else defaults[name].default
        for name in case.hyperparameters
    }
    return dataclasses.replace(
        case,
        optax=f"{__name__}.standin",
        optax_kwargs={"case_name": case.name, **hyperparameters},
    )


@pytest.mark.parametrize(
    "name", ["core.sgd-momentum", "core.adam", "linesearch.scale_by_lbfgs-memory2"]
)
def test_optref_standing_in_for_optax_has_no_findings(name: str) -> None:
    (case,) = [c for c in load_cases() if c.name == name]
    case = dataclasses.replace(as_standin_case(case), problems=case.problems[:1], steps=5)
    assert run_case(case, checks=("float64",)) == []


TRANSFORMATION_CASES = [c for c in load_cases() if c.kind == "transformation"]


@pytest.mark.slow
@pytest.mark.parametrize("case", TRANSFORMATION_CASES, ids=[c.name for c in TRANSFORMATION_CASES])
def test_optref_standing_in_for_optax_has_no_findings_on_any_case_or_check(case: Case) -> None:
    # As the audit runs a case (a crash is a finding; compiled programs dropped now and
    # then, so that a worker of this long set does not grow by gigabytes). The wrapped
    # forms of the Optax side are Optax's own wrappers around the stand-in, which are not
    # optref's (optax.inject_hyperparams casts the hyperparameters to the params' dtype,
    # and so changes Adam's float32 updates by 1.9e-9): that check runs for optref's side.
    checks = tuple(c for c in ALL_CHECKS if c != "wrapper_invariance")
    findings, _, _ = audit_case((as_standin_case(case), checks, None, {}))
    with jax.enable_x64(True):
        findings += check_wrapper_invariance(case, libraries=("optref",))
    assert findings == [], "\n".join(f"{f.check} ({f.library}): {f.summary}" for f in findings)
