"""Comparing audit reports across Optax versions: which findings appear and disappear.

Each directory holds a ``report.json`` from one run (``audit-report/optax-<version>``).
A finding is identified by ``(case, check, backend, dtype, problem)``; the summary says,
for each consecutive pair of versions, which findings are new and which are gone, and
lists the findings present in every version.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from typing import Any

from packaging.version import InvalidVersion, Version

__all__ = ["compare_reports", "finding_key", "write_comparison"]


def finding_key(finding: dict[str, Any]) -> tuple[str, ...]:
    """What identifies a finding across versions."""
    return tuple(str(finding.get(k, "")) for k in ("case", "check", "backend", "dtype", "problem"))


def _load(directory: str) -> dict[str, Any]:
    with open(os.path.join(directory, "report.json")) as file:
        report = json.load(file)
    report["directory"] = directory
    return report


def _sort_key(report: dict[str, Any]) -> tuple:
    try:
        return (0, Version(report["optax_version"]))
    except InvalidVersion:
        return (1, report["optax_version"])


def _line(finding: dict[str, Any]) -> str:
    dtype = f", {finding['dtype']}" if finding.get("dtype") else ""
    return (
        f"- `{finding['case']}` {finding['check']} ({finding['severity']}{dtype}): "
        f"{finding['summary']}"
    )


def compare_reports(directories: Sequence[str]) -> str:
    """A markdown summary of the findings across the reports, oldest Optax first."""
    reports = sorted((_load(d) for d in directories), key=_sort_key)
    by_version = [{finding_key(f): f for f in r["findings"]} for r in reports]
    lines = [
        "# Audit findings across Optax versions",
        "",
        "| Optax | errors | warnings | info | report |",
        "|---|---|---|---|---|",
    ]
    for report in reports:
        counts = report.get("counts", {})
        lines.append(
            f"| {report['optax_version']} | {counts.get('error', 0)} | "
            f"{counts.get('warning', 0)} | {counts.get('info', 0)} | "
            f"{report['directory']} |"
        )
    lines.append("")
    pairs = list(zip(reports, by_version, strict=True))
    for (old, older), (new, newer) in itertools.pairwise(pairs):
        appeared = [newer[k] for k in newer if k not in older]
        disappeared = [older[k] for k in older if k not in newer]
        lines += [f"## {old['optax_version']} → {new['optax_version']}", ""]
        ran_old, ran_new = set(old["cases_run"]), set(new["cases_run"])
        if ran_old != ran_new:
            lines += [
                "Note: the two runs audited different cases; findings of cases run "
                "only once are left out.",
                "",
            ]
            appeared = [f for f in appeared if f["case"] in ran_old]
            disappeared = [f for f in disappeared if f["case"] in ran_new]
        lines += [
            f"Appeared ({len(appeared)}):",
            "",
            *map(_line, appeared),
            "",
            f"Disappeared ({len(disappeared)}):",
            "",
            *map(_line, disappeared),
            "",
        ]
    if by_version:
        common = set(by_version[0]).intersection(*by_version[1:])
        lines += [
            f"## In every version ({len(common)})",
            "",
            *[_line(by_version[-1][k]) for k in sorted(common)],
            "",
        ]
    return "\n".join(lines)


def write_comparison(directories: Sequence[str], out: str) -> str:
    """Write :func:`compare_reports` to ``out/compare.md``; return its path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "compare.md")
    with open(path, "w") as file:
        file.write(compare_reports(directories))
    return path
