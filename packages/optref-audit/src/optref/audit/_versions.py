"""Which Optax is installed, and whether a recorded deviation applies to it."""

from __future__ import annotations

import importlib.metadata

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from optref.core.conformance import Case, Deviation

__all__ = ["applicable_deviation", "optax_version"]


def optax_version() -> str:
    """The installed Optax's version."""
    return importlib.metadata.version("optax")


def applicable_deviation(case: Case, check: str) -> Deviation | None:
    """The case's deviation for ``check`` if it applies to the installed Optax."""
    deviation = case.deviation(check)
    if deviation is None:
        return None
    if deviation.optax_versions and Version(optax_version()) not in SpecifierSet(
        deviation.optax_versions
    ):
        return None
    return deviation
