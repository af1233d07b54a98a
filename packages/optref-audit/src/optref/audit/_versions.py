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
    """The case's first deviation for ``check`` that applies to the installed Optax (a
    case may record several for one check, each for its own range of versions)."""
    installed = Version(optax_version())
    for deviation in case.deviations:
        if deviation.check != check:
            continue
        if not deviation.optax_versions or installed in SpecifierSet(deviation.optax_versions):
            return deviation
    return None
