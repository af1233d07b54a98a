"""Decoupled weight decay: add a multiple of the params to the updates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PyTree, jaxtyped

from ._base import EmptyState, check_state, require_params
from ._hyperparameters import ScalarOrSchedule, check_range, resolve
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._mask_tree import broadcast_mask, is_params_placeholder
from ._numerics import compute_dtype, safe_increment
from ._typecheck import typechecker

__all__ = ["AddDecayedWeights", "WeightDecaySchedule", "add_decayed_weights"]


@jaxtyped(typechecker=typechecker)
class WeightDecaySchedule(eqx.Module):
    """The step count of a scheduled weight decay."""

    count: Int[Array, ""]


class AddDecayedWeights(LeafwiseTransformation):
    """``updates + weight_decay * params``, where ``mask`` holds.

    Built by :func:`add_decayed_weights`, whose docstring gives the math and the references.
    """

    weight_decay: ScalarOrSchedule = 0.0
    mask: PyTree | Callable[[PyTree], PyTree] | None = None
    schedule_hyperparameters = ("weight_decay",)

    def __check_init__(self) -> None:
        # Any real rate: fromage adds the params with a negative rate (mult - 1 < 0),
        # as Optax's add_decayed_weights allows. NaN is still rejected.
        check_range(self, "weight_decay", self.weight_decay)

    def _is_schedule(self) -> bool:
        return callable(self.weight_decay) and not isinstance(self.weight_decay, jax.Array)

    def init(self, params: PyTree) -> EmptyState | WeightDecaySchedule:
        if self.mask is not None and not is_params_placeholder(params):
            broadcast_mask(self.mask, params, where="add_decayed_weights")
        if self._is_schedule():
            return WeightDecaySchedule(jnp.zeros([], jnp.int32))
        return EmptyState()

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        require_params(self, params, "the weights to decay")
        if self._is_schedule():
            check_state(self, updates, state, WeightDecaySchedule, params)
            rate = resolve(self.weight_decay, state.count)
            new_state: EmptyState | WeightDecaySchedule = WeightDecaySchedule(
                safe_increment(state.count)
            )
        else:
            check_state(self, updates, state, EmptyState, params)
            rate = jnp.asarray(self.weight_decay)
            new_state = state

        def leaf(g: Array, p: Array, moments: tuple, constants: tuple) -> Any:
            work = compute_dtype(g.dtype)
            decayed = (g.astype(work) + rate.astype(work) * p.astype(work)).astype(g.dtype)
            return (decayed if not constants else jnp.where(constants[0], decayed, g)), ()

        masks = (
            ()
            if self.mask is None
            else (broadcast_mask(self.mask, updates, where="add_decayed_weights"),)
        )
        return LeafwiseStep(leaf, lambda new: new_state, constants=masks)


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0,
    mask: PyTree | Callable[[PyTree], PyTree] | None = None,
) -> AddDecayedWeights:
    """Add the params, scaled by ``weight_decay``, to the updates (decoupled weight decay).

    $$u \\mapsto u + \\lambda\\,p \\quad \\text{where the mask holds}$$

    ``mask`` is a tree of bools with the params' structure (or a prefix of it), or a
    callable that returns one from the params; leaves where it is ``False`` are left as
    they are. ``weight_decay`` may be a schedule. Reference: Loshchilov & Hutter,
    *Decoupled Weight Decay Regularization* (2019); ``optax.add_decayed_weights``.
    """
    return AddDecayedWeights(weight_decay, mask)
