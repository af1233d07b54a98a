"""What a check reports: a finding, with its numbers and a reproducer."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

__all__ = ["SEVERITIES", "Finding", "Severity"]

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")
"""Severities from least to most severe, for ``--fail-on``."""


@dataclasses.dataclass
class Finding:
    """One thing a check found.

    ``library`` is who the finding is about: ``"optax"`` (Optax disagrees with the
    documented maths, a recorded deviation), ``"optref"`` (optref fails its own
    reference properties) or ``"both"`` (the two disagree and no deviation explains it).
    ``measured`` holds the numbers; ``reproducer`` a short Python snippet (Optax alone
    for Optax findings); ``link`` the known upstream issue, if any.
    """

    case: str
    check: str
    severity: Severity
    library: Literal["optax", "optref", "both"]
    summary: str
    backend: str = "cpu"
    dtype: str = "float64"
    problem: str = ""
    step: int | None = None
    measured: dict[str, Any] = dataclasses.field(default_factory=dict)
    reproducer: str = ""
    link: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)
