"""Reduce the learning rate when a monitored value stops improving (a transformation with state)."""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PyTree

from ._hashing import HashedByValue
from ._validation import (
    ScheduleArgumentError,
    as_array,
    check_steps,
    check_value,
    convert_fields,
    is_concrete,
)

__all__ = ["ReduceLROnPlateauState", "ReduceOnPlateau", "reduce_on_plateau"]


class ReduceLROnPlateauState(eqx.Module):
    """The state of :func:`reduce_on_plateau`, field for field as Optax's.

    ``scale`` multiplies the updates; ``best_value`` is the best accumulated value so
    far; ``plateau_count`` counts accumulations without improvement; ``cooldown_count``
    the accumulations left before plateaus count again; ``count`` and ``avg_value`` the
    values accumulated since the last decision and their mean.
    """

    scale: Float[Array, ""]
    best_value: Float[Array, ""]
    plateau_count: Int[Array, ""]
    cooldown_count: Int[Array, ""]
    count: Int[Array, ""]
    avg_value: Float[Array, ""]


def _safe_increment(count: Array) -> Array:
    """``count + 1``, saturating at the largest value of its integer dtype."""
    return jnp.where(count < jnp.iinfo(count.dtype).max, count + 1, count)


def _ordered(a: jnp.dtype, b: jnp.dtype, *, highest: bool) -> jnp.dtype:
    promoted = jnp.promote_types(a, b)
    if promoted not in (a, b):
        raise ScheduleArgumentError(
            f"reduce_on_plateau: the params mix {a} and {b}, neither of which promotes to "
            "the other, so the state's dtypes are ambiguous."
        )
    if highest:
        return promoted
    return a if promoted == b else b


def _float_dtypes(params: PyTree) -> tuple[jnp.dtype, jnp.dtype]:
    """The lowest and highest floating dtypes among the params (the default float if none)."""
    dtypes = [
        jnp.asarray(leaf).dtype
        for leaf in jax.tree.leaves(params)
        if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)
    ]
    dtypes = [jnp.finfo(d).dtype for d in dtypes] or [jnp.zeros((), float).dtype]
    lowest = functools.reduce(functools.partial(_ordered, highest=False), dtypes)
    highest = functools.reduce(functools.partial(_ordered, highest=True), dtypes)
    return lowest, highest


class ReduceOnPlateau(HashedByValue):
    """Scale the updates by a factor that shrinks when the monitored ``value`` plateaus.

    A gradient transformation with state that follows the optref protocol by duck
    typing: ``init(params) -> state`` and ``update(updates, state, params=None, *, value,
    **extra) -> (updates, state)``, the same methods and signatures as
    ``optref.core.GradientTransformation`` (this package does not depend on optref-core,
    so it is an ``eqx.Module`` with those methods rather than a subclass). It hashes by
    its values, as optref-core's transformations do, so ``jax.jit(plateau.update)`` works.

    Built by :func:`reduce_on_plateau`, whose docstring gives the math and the references.
    """

    factor: Array = eqx.field(default=0.1, converter=as_array)
    patience: Array = eqx.field(default=10, converter=as_array)
    rtol: Array = eqx.field(default=1e-4, converter=as_array)
    atol: Array = eqx.field(default=0.0, converter=as_array)
    cooldown: Array = eqx.field(default=0, converter=as_array)
    accumulation_size: Array = eqx.field(default=1, converter=as_array)
    min_scale: Array = eqx.field(default=0.0, converter=as_array)

    def __post_init__(self) -> None:
        convert_fields(
            self,
            values=("factor", "rtol", "atol", "min_scale"),
            steps=("patience", "cooldown", "accumulation_size"),
        )

    def __check_init__(self) -> None:
        check_value(
            self, "factor", self.factor, 0.0, 1.0, low_inclusive=False, high_inclusive=False
        )
        check_value(self, "rtol", self.rtol, 0.0, 1.0)
        check_value(self, "atol", self.atol, 0.0)
        check_value(self, "min_scale", self.min_scale, 0.0)
        tolerances = (self.rtol, self.atol)
        if is_concrete(tolerances) and all(np.all(np.asarray(t) == 0) for t in tolerances):
            raise ScheduleArgumentError(
                "reduce_on_plateau: at least one of rtol and atol must be positive, got "
                "rtol = 0 and atol = 0."
            )
        check_steps(
            self,
            "patience",
            self.patience,
            1,
            why="(With patience = 0 Optax reduces the scale at every improvement.)",
        )
        check_steps(self, "cooldown", self.cooldown, 0)
        check_steps(self, "accumulation_size", self.accumulation_size, 1)

    def init(self, params: PyTree) -> ReduceLROnPlateauState:
        lowest, highest = _float_dtypes(params)
        zero = jnp.zeros([], jnp.int32)
        return ReduceLROnPlateauState(
            scale=jnp.ones([], lowest),
            best_value=jnp.full([], jnp.inf, highest),
            plateau_count=zero,
            cooldown_count=zero,
            count=zero,
            avg_value=jnp.zeros([], highest),
        )

    def _decide(self, state: ReduceLROnPlateauState) -> ReduceLROnPlateauState:
        """The decision after ``accumulation_size`` values: improved, plateau, or cooldown."""
        best, scale = state.best_value, state.scale
        # Before the first decision the best value is +inf: any finite mean improves on
        # it (Optax's (1 - rtol) * inf is NaN for rtol = 1, and then nothing ever does).
        threshold = jnp.where(jnp.isposinf(best), best, (1 - self.rtol) * best - self.atol)
        improved = state.avg_value < threshold
        plateau = jnp.where(improved, 0, _safe_increment(state.plateau_count))
        cooling = state.cooldown_count > 0
        reduce = ~cooling & (plateau == self.patience)
        reduced = jnp.maximum(jnp.where(reduce, scale * self.factor, scale), self.min_scale)
        cooldown = jnp.where(reduce, self.cooldown, 0)
        return ReduceLROnPlateauState(
            scale=jnp.where(cooling, scale, reduced).astype(scale.dtype),
            best_value=jnp.where(improved, state.avg_value, best).astype(best.dtype),
            plateau_count=jnp.where(cooling | reduce, 0, plateau).astype(jnp.int32),
            cooldown_count=jnp.where(cooling, state.cooldown_count - 1, cooldown).astype(jnp.int32),
            count=jnp.zeros_like(state.count),
            avg_value=jnp.zeros_like(state.avg_value),
        )

    def update(
        self,
        updates: PyTree,
        state: ReduceLROnPlateauState,
        params: PyTree | None = None,
        *,
        value: ArrayLike,
        **extra: Any,
    ) -> tuple[PyTree, ReduceLROnPlateauState]:
        del params, extra
        if not isinstance(state, ReduceLROnPlateauState):
            raise TypeError(
                "reduce_on_plateau: expected a ReduceLROnPlateauState (the state that "
                f"reduce_on_plateau.init builds), got a {type(state).__name__}. Was the "
                "state built by another optimizer?"
            )
        avg_dtype = state.avg_value.dtype
        count = _safe_increment(state.count)
        mean = (
            state.count.astype(avg_dtype) * state.avg_value + jnp.asarray(value).astype(avg_dtype)
        ) / count.astype(avg_dtype)
        accumulated = eqx.tree_at(
            lambda s: (s.count, s.avg_value), state, (count, mean.astype(avg_dtype))
        )
        decided = self._decide(accumulated)
        new_state = jax.tree.map(
            lambda d, a: jnp.where(count == self.accumulation_size, d, a), decided, accumulated
        )
        scale = new_state.scale
        return jax.tree.map(lambda g: scale.astype(g.dtype) * g, updates), new_state


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> ReduceOnPlateau:
    """Reduce the scale of the updates when the monitored ``value`` stops improving.

    Every ``accumulation_size`` calls of ``update(..., value=...)``, the mean $\\bar v$ of
    the values passed since the last decision is compared with the best so far $v^*$:

    $$\\text{improved} \\iff \\bar v < (1 - \\text{rtol})\\,v^* - \\text{atol}.$$

    An improvement sets $v^* = \\bar v$ and the plateau count to 0; otherwise the plateau
    count grows by one, and when it reaches ``patience`` (outside a cooldown) the scale
    becomes $\\max(\\text{factor} \\cdot s, \\text{min\\_scale})$, the plateau count 0,
    and ``cooldown`` decisions follow during which plateaus are not counted. The updates
    are multiplied by the current scale $s$ (1 at first):

    $$u_t \\mapsto s_t\\,u_t.$$

    The state (:class:`ReduceLROnPlateauState`) has Optax's fields in Optax's order;
    ``scale`` is in the lowest and ``best_value``/``avg_value`` in the highest floating
    dtype of the params. The scale is a discrete function of the values, so gradients
    flow through the updates only. Apply it after the optimizer, passing the monitored
    value (the loss) to ``update`` as ``value=loss``.

    The first decision always sees an improvement over the initial $v^* = +\\infty$
    (for ``rtol = 1`` Optax computes $0 \\cdot \\infty = \\text{NaN}$ there and never
    improves).

    Raises :class:`ScheduleArgumentError` as Optax does for ``factor`` outside $(0, 1)$,
    negative or all-zero tolerances and ``rtol > 1``, and also for ``patience < 1`` (with
    0, Optax reduces the scale at every improvement), negative ``cooldown``,
    ``accumulation_size < 1`` and negative ``min_scale``.

    Reference: the ``ReduceLROnPlateau`` callback of Keras and PyTorch;
    ``optax.contrib.reduce_on_plateau``.
    """
    return ReduceOnPlateau(factor, patience, rtol, atol, cooldown, accumulation_size, min_scale)
