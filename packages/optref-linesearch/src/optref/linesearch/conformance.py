"""Conformance cases of optref-linesearch against Optax (plain data; run by optref.audit)."""

from __future__ import annotations

from optref.core.conformance import Call, Case, Deviation

__all__ = ["CASES", "Call", "Case", "Deviation"]

CASES: list[Case] = []
