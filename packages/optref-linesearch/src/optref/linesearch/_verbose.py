"""Diagnostics that a line search prints when asked (``verbose=True``) and it fails."""

from __future__ import annotations

from typing import Any

import jax

__all__ = ["print_if"]


def print_if(verbose: bool, condition: Any, message: str, **values: Any) -> None:
    """Print ``message`` (formatted with ``values``) at run time where ``condition`` holds.

    Nothing is traced when ``verbose`` is false, so the quiet program is unchanged.
    """
    if not verbose:
        return

    def show() -> None:
        jax.debug.print(message, **values)

    jax.lax.cond(condition, show, lambda: None)
