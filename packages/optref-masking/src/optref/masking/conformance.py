"""Conformance cases of optref-masking against Optax (plain data; run by optref.audit)."""

from __future__ import annotations

from optref.core.conformance import Call, Case, Deviation

__all__ = ["CASES", "Call", "Case", "Deviation"]

CASES: list[Case] = []
