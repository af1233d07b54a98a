"""Writing the audit's report: ``report.json``, ``report.md`` and a self-contained
``report.html``."""

from __future__ import annotations

import html
import importlib.metadata
import json
import os
from collections.abc import Mapping
from typing import Any

import jax

from optref.core.conformance import Case

from ._findings import SEVERITIES, Finding

__all__ = ["report_dict", "write_report"]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _ordered(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then by case name."""
    return sorted(findings, key=lambda f: (-SEVERITIES.index(f.severity), f.case, f.check))


def report_dict(
    cases: list[Case],
    backends: list[str],
    findings: list[Finding],
    timings: Mapping[str, float],
    elapsed: float,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report."""
    return {
        "optax_version": _version("optax"),
        "jax_version": jax.__version__,
        "optref_version": _version("optref-core"),
        "backends": list(backends),
        "cases_run": [c.name for c in cases],
        "elapsed_s": round(elapsed, 3),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "options": dict(options or {}),
        "counts": {s: sum(f.severity == s for f in findings) for s in SEVERITIES},
        "findings": [f.to_dict() for f in _ordered(findings)],
    }


def _markdown(report: Mapping[str, Any]) -> str:
    lines = [
        "# optref audit of Optax",
        "",
        f"Optax {report['optax_version']}, JAX {report['jax_version']}, backends "
        f"{', '.join(report['backends'])}; {len(report['cases_run'])} cases in "
        f"{report['elapsed_s']:.1f} s.",
        "",
        "| severity | findings |",
        "|---|---|",
        *[f"| {s} | {n} |" for s, n in reversed(report["counts"].items())],
        "",
    ]
    if not report["findings"]:
        lines.append("No findings: optref and the installed Optax agree on every case run.")
    for severity in reversed(SEVERITIES):
        group = [f for f in report["findings"] if f["severity"] == severity]
        if not group:
            continue
        lines += [f"## {severity.capitalize()} ({len(group)})", ""]
        current_case = None
        for f in group:
            if f["case"] != current_case:
                current_case = f["case"]
                lines += [f"### {current_case}", ""]
            lines.append(
                f"- **{f['check']}** ({f['library']}, {f['backend']}, {f['dtype']}): {f['summary']}"
            )
            if f["link"]:
                lines.append(f"  Upstream: {f['link']}")
            if f["measured"]:
                lines.append(f"  Measured: `{json.dumps(f['measured'], default=str)[:600]}`")
            if f["reproducer"]:
                lines += [
                    "",
                    "  ```python",
                    *["  " + line for line in f["reproducer"].splitlines()],
                    "  ```",
                ]
            lines.append("")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
.error{color:#b00020}.warning{color:#a05a00}.info{color:#35608f}
.finding{border-left:4px solid #ccc;padding:.3em .8em;margin:.8em 0;background:#fafafa}
.finding.error{border-color:#b00020}.finding.warning{border-color:#e0a000}
.finding.info{border-color:#35608f}
pre{background:#f3f3f3;padding:.6em;overflow-x:auto;font-size:.85em;color:#222}
code{font-size:.9em}img{max-width:100%}
"""


def _html(report: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>optref audit of Optax "
        f"{e(report['optax_version'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>optref audit of Optax {e(report['optax_version'])}</h1>",
        f"<p>JAX {e(report['jax_version'])}, backends {e(', '.join(report['backends']))}; "
        f"{len(report['cases_run'])} cases in {report['elapsed_s']:.1f} s.</p>",
        "<table><tr><th>severity</th><th>findings</th></tr>",
        *[
            f"<tr><td class='{s}'>{s}</td><td>{n}</td></tr>"
            for s, n in reversed(report["counts"].items())
        ],
        "</table>",
    ]
    if plots:
        parts.append("<h2>Plots</h2>")
        for title, png in plots.items():
            parts.append(
                f"<h3>{e(title)}</h3><img alt='{e(title)}' src='data:image/png;base64,{png}'>"
            )
    if not report["findings"]:
        parts.append("<p>No findings: optref and the installed Optax agree on every case run.</p>")
    for severity in reversed(SEVERITIES):
        group = [f for f in report["findings"] if f["severity"] == severity]
        if not group:
            continue
        parts.append(f"<h2 class='{severity}'>{severity.capitalize()} ({len(group)})</h2>")
        for f in group:
            parts.append(
                f"<div class='finding {severity}'><b>{e(f['case'])}</b> &middot; "
                f"{e(f['check'])} &middot; {e(f['library'])} &middot; {e(f['backend'])} "
                f"&middot; {e(f['dtype'])}<p>{e(f['summary'])}</p>"
            )
            if f["link"]:
                parts.append(f"<p>Upstream: <a href='{e(f['link'])}'>{e(f['link'])}</a></p>")
            if f["measured"]:
                parts.append(
                    "<details><summary>measured</summary><pre>"
                    f"{e(json.dumps(f['measured'], indent=1, default=str))}"
                    "</pre></details>"
                )
            if f["reproducer"]:
                parts.append(
                    f"<details><summary>reproducer</summary><pre>"
                    f"{e(f['reproducer'])}</pre></details>"
                )
            parts.append("</div>")
    parts.append("<h2>Cases run</h2><p>" + e(", ".join(report["cases_run"])) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    out: str,
    cases: list[Case],
    backends: list[str],
    findings: list[Finding],
    timings: Mapping[str, float],
    elapsed: float,
    options: Mapping[str, Any] | None = None,
    plots: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Write the three report files into ``out``; return their paths by format.

    ``plots`` maps a title to a base64 PNG; when ``None`` they are drawn here (if
    matplotlib is importable).
    """
    os.makedirs(out, exist_ok=True)
    report = report_dict(cases, backends, findings, timings, elapsed, options)
    if plots is None:
        from ._plots import draw_plots

        plots = draw_plots(cases, findings)
    paths = {fmt: os.path.join(out, f"report.{fmt}") for fmt in ("json", "md", "html")}
    with open(paths["json"], "w") as file:
        json.dump(report, file, indent=1, default=str)
    with open(paths["md"], "w") as file:
        file.write(_markdown(report))
    with open(paths["html"], "w") as file:
        file.write(_html(report, plots))
    return paths
