"""What every wrapper of an inner transformation shares: checking it, calling it on a condition."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from ._base import GradientTransformation

__all__ = ["check_inner", "follows_protocol", "inner_update_if"]


def follows_protocol(tx: Any) -> bool:
    """Whether ``tx`` can be wrapped or chained: a :class:`GradientTransformation`, or any
    ``eqx.Module`` with callable ``init`` and ``update`` methods (the protocol by
    structure, as ``optref.schedules.reduce_on_plateau``, which does not depend on core).

    $$\\operatorname{member}(T) \\iff T \\in \\texttt{GradientTransformation} \\lor
    (T \\in \\texttt{eqx.Module} \\land T.\\mathrm{init}, T.\\mathrm{update}
    \\text{ callable})$$
    """
    if isinstance(tx, GradientTransformation):
        return True
    methods = (getattr(type(tx), name, None) for name in ("init", "update"))
    return isinstance(tx, eqx.Module) and all(callable(method) for method in methods)


def check_inner(where: str, argument: str, inner: Any) -> None:
    """Raise :class:`TypeError` naming ``where`` and ``argument`` unless ``inner`` follows
    the transformation protocol (:func:`follows_protocol`)."""
    if not follows_protocol(inner):
        raise TypeError(
            f"{where}: {argument} must be an optref GradientTransformation (or an eqx.Module "
            f"with init and update methods), got {type(inner).__name__}. Wrap an Optax "
            "transformation with optref.compat.from_optax."
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
