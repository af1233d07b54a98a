"""What every wrapper of an inner transformation shares: checking it, calling it on a condition."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from ._base import GradientTransformation

__all__ = ["check_inner", "inner_update_if"]


def check_inner(where: str, argument: str, inner: Any) -> None:
    """Raise :class:`TypeError` unless ``inner`` is an optref ``GradientTransformation``."""
    if not isinstance(inner, GradientTransformation):
        raise TypeError(
            f"{where}: {argument} must be an optref GradientTransformation, got "
            f"{type(inner).__name__}. Wrap an Optax transformation with "
            "optref.compat.from_optax."
        )


def inner_update_if(
    condition: Any,
    inner: GradientTransformation,
    updates: PyTree,
    inner_state: PyTree,
    params: PyTree | None,
    extra: dict[str, Any],
    otherwise: Callable[[PyTree], PyTree],
) -> tuple[PyTree, PyTree]:
    """``inner.update(...)`` where ``condition`` holds, else ``(otherwise(updates), inner_state)``.

    $$(u, s) \\mapsto \\begin{cases} T(u, s) & c \\\\ (o(u), s) & \\neg c \\end{cases}$$

    A :func:`jax.lax.cond`: the inner update is not computed at the steps it is not taken
    (under ``vmap`` both branches run and one is selected).
    """

    def take(_: None) -> tuple[PyTree, PyTree]:
        return inner.update(updates, inner_state, params, **extra)

    def skip(_: None) -> tuple[PyTree, PyTree]:
        return otherwise(updates), inner_state

    return jax.lax.cond(jnp.asarray(condition, bool), take, skip, None)
