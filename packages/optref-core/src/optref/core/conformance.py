"""Conformance cases of optref-core: each transformation and alias against Optax.

Plain data (see :class:`Case`), one list per family of transformations; the runner
lives in ``optref.audit``. The central differences that check derivatives
(:func:`central_difference`, with its range-relative step) are here too, for the runner
and for every package's tests.
"""

from __future__ import annotations

from ._case import Call, Case, Deviation, build, build_argument, resolve_name
from ._cases_adaptive import ADAPTIVE_CASES
from ._cases_kernel import KERNEL_CASES
from ._cases_misc import MISC_CASES
from ._cases_wrappers import WRAPPER_CASES
from ._finite_differences import (
    MULTIPLES,
    RELATIVE_STEP,
    RELATIVE_STEPS,
    CentralDifference,
    central_difference,
    difference_step,
    range_distance,
)

__all__ = [
    "CASES",
    "MULTIPLES",
    "RELATIVE_STEP",
    "RELATIVE_STEPS",
    "Call",
    "Case",
    "CentralDifference",
    "Deviation",
    "build",
    "build_argument",
    "central_difference",
    "difference_step",
    "range_distance",
    "resolve_name",
]

CASES: list[Case] = [
    *KERNEL_CASES,
    *ADAPTIVE_CASES,
    *MISC_CASES,
    *WRAPPER_CASES,
]
