"""Lookahead: a slow copy of the params that follows the fast optimizer every few steps."""

from __future__ import annotations

import logging
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PyTree, jaxtyped

from ._apply_every import as_step_count
from ._base import GradientTransformation, check_state
from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._inner import check_inner
from ._numerics import compute_dtype
from ._tree import tree_where
from ._typecheck import typechecker

__all__ = ["Lookahead", "LookaheadParams", "LookaheadState", "lookahead"]

logger = logging.getLogger(__name__)


class LookaheadParams(eqx.Module):
    """The fast params (gradients are taken at them) and the slow params (for evaluation).

    Reference: ``optax.LookaheadParams``.
    """

    fast: PyTree
    slow: PyTree

    @classmethod
    def init_synced(cls, params: PyTree) -> LookaheadParams:
        """Fast and slow params that both start at ``params``."""
        return cls(fast=params, slow=params)


@jaxtyped(typechecker=typechecker)
class LookaheadState(eqx.Module):
    """The fast optimizer's state and the fast steps taken since the last synchronisation."""

    fast_state: PyTree
    steps_since_sync: Int[Array, ""]


class Lookahead(GradientTransformation):
    """``sync_period`` steps of ``fast_optimizer``, then the slow params move toward the fast.

    Built by :func:`lookahead`, whose docstring gives the math and the references.
    """

    fast_optimizer: GradientTransformation
    sync_period: Array = eqx.field(converter=as_step_count)
    slow_step_size: Array = eqx.field(converter=as_scalar_hyperparameter)
    reset_state: bool = eqx.field(static=True, default=False)
    scalar_hyperparameters = ("slow_step_size",)

    def __check_init__(self) -> None:
        check_inner("lookahead", "fast_optimizer", self.fast_optimizer)
        check_range(self, "sync_period", self.sync_period, 1)

    def init(self, params: PyTree) -> LookaheadState:
        if isinstance(params, LookaheadParams):
            fast = params.fast
        else:
            logger.warning(
                "lookahead: params are not LookaheadParams; taking them as the fast params."
            )
            fast = params
        return LookaheadState(self.fast_optimizer.init(fast), jnp.zeros([], jnp.int32))

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[LookaheadParams, LookaheadState]:
        check_state(self, updates, state, LookaheadState)
        if not isinstance(params, LookaheadParams):
            raise TypeError(
                "lookahead: update needs params=LookaheadParams(fast=..., slow=...), got "
                f"{type(params).__name__}. Build them with LookaheadParams.init_synced(params)."
            )
        fast_updates, fast_state = self.fast_optimizer.update(
            updates, state.fast_state, params.fast, **extra
        )
        sync = state.steps_since_sync == self.sync_period - 1
        alpha = self.slow_step_size

        def slow_update(f: Array, u: Array, s: Array) -> Array:
            work = compute_dtype(s.dtype)
            difference = f.astype(work) + u.astype(work) - s.astype(work)
            return jnp.where(sync, alpha.astype(work) * difference, 0).astype(s.dtype)

        def fast_update(f: Array, u: Array, s: Array) -> Array:
            work = compute_dtype(u.dtype)
            difference = f.astype(work) + u.astype(work) - s.astype(work)
            synced = u.astype(work) - (1 - alpha.astype(work)) * difference
            return jnp.where(sync, synced, u.astype(work)).astype(u.dtype)

        new_updates = LookaheadParams(
            fast=jax.tree.map(fast_update, params.fast, fast_updates, params.slow),
            slow=jax.tree.map(slow_update, params.fast, fast_updates, params.slow),
        )
        if self.reset_state:
            fast_state = tree_where(sync, self.fast_optimizer.init(params.fast), fast_state)
        steps = (state.steps_since_sync + 1) % self.sync_period
        return new_updates, LookaheadState(fast_state, steps.astype(jnp.int32))


def lookahead(
    fast_optimizer: GradientTransformation,
    sync_period: int | Array,
    slow_step_size: float | Array,
    reset_state: bool = False,
) -> Lookahead:
    """The Lookahead optimizer: k steps forward, one step back.

    The fast params $\\theta$ take ``sync_period`` ($k$) steps of ``fast_optimizer``;
    then the slow params $\\phi$ move a fraction $\\alpha$ (``slow_step_size``) of the
    way to them and the fast params restart from the slow ones:

    $$\\phi \\leftarrow \\phi + \\alpha\\,(\\theta_k - \\phi), \\qquad \\theta_0
    \\leftarrow \\phi.$$

    Params and updates are :class:`LookaheadParams`: take the gradients at
    ``params.fast``, pass them to ``update(grads, state, params)`` and apply the returned
    :class:`LookaheadParams` updates unchanged; evaluate at ``params.slow``. With
    ``reset_state``, the fast optimizer's state is reset at every synchronisation.
    Reference: Zhang et al., *Lookahead Optimizer: k steps forward, 1 step back* (2019);
    ``optax.lookahead``.
    """
    return Lookahead(fast_optimizer, sync_period, slow_step_size, reset_state)
