"""mkdocs hook: the Optax → optref migration table, generated from the conformance cases.

Every package advertises its cases through the ``optref.conformance`` entry points; each
case names an optref factory and its Optax counterpart, and records the deviations
optref makes on purpose. This hook groups the cases by Optax name and writes the table
into ``migration.md`` in place of the ``<!-- migration-table -->`` marker, so the table
is rebuilt from the cases on every docs build and cannot drift from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import optax

from optref.audit import load_cases
from optref.core.conformance import Case, Deviation, resolve_name

MARKER = "<!-- migration-table -->"
PAGE = "migration.md"
# Where an Optax name without a conformance case is looked for, under the same name.
PACKAGES = ("core", "schedules", "linesearch", "masking", "compat")


@dataclasses.dataclass
class Row:
    optax: str
    optref: str
    cases: list[str] = dataclasses.field(default_factory=list)
    deviations: list[Deviation] = dataclasses.field(default_factory=list)


def _is_public(dotted: str) -> bool:
    return not any(part.startswith("_") for part in dotted.split("."))


def _name_pairs(case: Case) -> list[tuple[str, str]]:
    """The (Optax, optref) names a case compares.

    A case whose factory is a private helper (an injected optimizer is built by one)
    compares the public names passed to it, argument by argument.
    """
    assert case.optax is not None
    if _is_public(case.optref) and _is_public(case.optax):
        return [(case.optax, case.optref)]
    optax_kwargs: Mapping[str, Any] = case.optax_kwargs or case.kwargs
    pairs = []
    for key, value in case.kwargs.items():
        other = optax_kwargs.get(key)
        if isinstance(value, str) and value.startswith("optref.") and isinstance(other, str):
            pairs.append((other, value))
    return pairs


def rows() -> list[Row]:
    """One row per Optax name, in the order of the packages' cases."""
    table: dict[str, Row] = {}
    for case in load_cases():
        if case.optax is None:
            continue
        for optax_name, optref_name in _name_pairs(case):
            row = table.setdefault(optax_name, Row(optax_name, optref_name))
            if optref_name != row.optref and optref_name not in row.optref.split(" / "):
                row.optref += f" / {optref_name}"
            row.cases.append(case.name)
            for deviation in case.deviations:
                if deviation not in row.deviations:
                    row.deviations.append(deviation)
    return list(table.values())


def uncased_names(table: list[Row]) -> tuple[list[tuple[str, str]], list[str]]:
    """The names in ``optax.__all__`` that no case compares: those optref exports under
    the same name (states, protocols, utilities), and those it does not have."""
    cased = {row.optax for row in table}
    same: list[tuple[str, str]] = []
    absent: list[str] = []
    for name in sorted(set(optax.__all__)):
        if f"optax.{name}" in cased or f"optax.schedules.{name}" in cased:
            continue
        homes = [p for p in PACKAGES if name in resolve_name(f"optref.{p}").__all__]
        if homes:
            same.append((f"optax.{name}", f"optref.{homes[0]}.{name}"))
        else:
            absent.append(f"optax.{name}")
    return same, absent


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The table in Markdown, then each deliberate difference once, numbered."""
    table = rows()
    notes: list[Deviation] = []
    for row in table:
        for deviation in row.deviations:
            key = (deviation.reason, deviation.link, deviation.optax_versions)
            if key not in [(n.reason, n.link, n.optax_versions) for n in notes]:
                notes.append(deviation)

    def note_number(deviation: Deviation) -> int:
        key = (deviation.reason, deviation.link, deviation.optax_versions)
        return 1 + [(n.reason, n.link, n.optax_versions) for n in notes].index(key)

    lines = [
        f"{len(table)} Optax names, {sum(len(r.cases) for r in table)} conformance cases, "
        f"{len(notes)} deliberate differences.",
        "",
        "| Optax | optref | conformance cases | deliberate differences |",
        "|---|---|---|---|",
    ]
    for row in table:
        numbers = sorted({note_number(d) for d in row.deviations})
        differences = ", ".join(f"[D{n}](#d{n})" for n in numbers) or "none"
        cases = ", ".join(f"`{c}`" for c in row.cases)
        lines.append(f"| `{row.optax}` | `{row.optref}` | {cases} | {differences} |")
    lines += ["", "## Deliberate differences", ""]
    for number, deviation in enumerate(notes, start=1):
        versions = deviation.optax_versions or "all versions"
        link = f" ([upstream]({deviation.link}))" if deviation.link else ""
        lines += [
            f'<a id="d{number}"></a>**D{number}** · check `{deviation.check}` · '
            f"Optax {versions}{link}",
            "",
            _escape(deviation.reason),
            "",
        ]
    same, absent = uncased_names(table)
    lines += [
        "## Same name, no conformance case",
        "",
        f"{len(same)} names of `optax.__all__` (Optax {optax.__version__}) that optref exports "
        "under the same name but that no case compares numerically: states, the protocol, "
        "utilities, and transformations whose behaviour is covered by other tests.",
        "",
        "| Optax | optref |",
        "|---|---|",
        *(f"| `{a}` | `{b}` |" for a, b in same),
        "",
        "## Not in optref",
        "",
        f"{len(absent)} names of `optax.__all__` with no optref counterpart (losses, "
        "differentially private aggregation, Optax's type aliases, ...): ",
        ", ".join(f"`{name}`" for name in absent) + ".",
        "",
    ]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} must contain the marker {MARKER!r} for the migration table")
    return markdown.replace(MARKER, render())
