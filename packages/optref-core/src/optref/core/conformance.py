"""Conformance cases of optref-core: each transformation and alias against Optax.

Plain data (see :class:`Case`), one list per family of transformations; the runner
lives in ``optref.audit``.
"""

from __future__ import annotations

from ._case import Call, Case, Deviation, build, build_argument, resolve_name
from ._cases_adaptive import ADAPTIVE_CASES
from ._cases_kernel import KERNEL_CASES
from ._cases_misc import MISC_CASES
from ._cases_wrappers import WRAPPER_CASES

__all__ = ["CASES", "Call", "Case", "Deviation", "build", "build_argument", "resolve_name"]

CASES: list[Case] = [
    *KERNEL_CASES,
    *ADAPTIVE_CASES,
    *MISC_CASES,
    *WRAPPER_CASES,
]
