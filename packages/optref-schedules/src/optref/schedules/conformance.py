"""Conformance cases of optref-schedules against Optax (plain data; run by optref.audit).

optref-schedules does not depend on optref-core, so its cases are plain dicts with the
fields of ``optref.core.conformance.Case`` (``kind="schedule"``); the runner reads both.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CASES"]

CASES: list[dict[str, Any]] = []
