"""Discovering, selecting and building conformance cases."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import importlib.metadata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from optref.core.conformance import Case, Deviation, build, resolve_name

__all__ = ["build", "load_cases", "resolve_name", "to_case", "unmatched_patterns"]

ENTRY_POINT_GROUP = "optref.conformance"


def to_case(item: Case | Mapping[str, Any]) -> Case:
    """A :class:`Case` from a case or from a plain dict of its fields (optref-schedules)."""
    if isinstance(item, Case):
        return item
    fields = dict(item)
    if "deviations" in fields:
        fields["deviations"] = tuple(
            d if isinstance(d, Deviation) else Deviation(**d) for d in fields["deviations"]
        )
    for key in ("problems", "hyperparameters", "extra_args"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return Case(**fields)


def load_cases(pattern: str | None = None, packages: Iterable[str] | None = None) -> list[Case]:
    """Every conformance case advertised through the ``optref.conformance`` entry points.

    ``pattern`` is a glob (``core.adam*``) or a substring of the case name, or several
    separated by commas (a case matching any is kept); ``packages``
    restricts to the named packages (``core``, ``schedules``, ...).
    """
    cases: list[Case] = []
    for entry_point in sorted(
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
    ):
        if packages is not None and entry_point.name not in set(packages):
            continue
        cases.extend(to_case(item) for item in entry_point.load())
    if pattern:
        cases = [c for c in cases if any(_matches(c.name, p) for p in pattern.split(","))]
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"conformance case names must be unique; repeated: {sorted(duplicates)}")
    return cases


def _matches(name: str, part: str) -> bool:
    """Whether a case name matches one part of a pattern: a glob, or else a substring."""
    return fnmatch.fnmatch(name, part if any(c in part for c in "*?[") else f"*{part}*")


def unmatched_patterns(pattern: str, names: Sequence[str]) -> list[str]:
    """The parts of ``pattern`` (as :func:`load_cases` takes it: comma-separated globs or
    substrings) that match none of ``names``."""
    return [p for p in pattern.split(",") if not any(_matches(n, p) for n in names)]


def replace(case: Case, **changes: Any) -> Case:
    """A copy of ``case`` with fields changed."""
    return dataclasses.replace(case, **changes)
