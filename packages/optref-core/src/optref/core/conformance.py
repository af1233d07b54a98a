"""Conformance cases of optref-core: each transformation and alias against Optax.

Plain data (see :class:`Case`), one list per family of transformations; the runner
lives in ``optref.audit``.
"""

from __future__ import annotations

from ._case import Call, Case, Deviation
from ._cases_kernel import KERNEL_CASES

__all__ = ["CASES", "Call", "Case", "Deviation"]

CASES: list[Case] = [
    *KERNEL_CASES,
]
