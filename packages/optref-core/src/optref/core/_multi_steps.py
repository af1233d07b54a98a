"""Gradient accumulation: the inner optimizer steps once every ``k`` mini-steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._apply_every import as_step_count
from ._base import GradientTransformation, check_state, params_like
from ._hyperparameters import check_range
from ._inner import check_inner, inner_update_if
from ._numerics import compute_dtype, safe_increment
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = ["MultiSteps", "MultiStepsState"]


@jaxtyped(typechecker=typechecker)
class MultiStepsState(eqx.Module):
    """The state of :class:`MultiSteps`.

    Attributes:
        mini_step: the mini-step within the current accumulation (reset to 0 after it).
        gradient_step: the number of inner optimizer steps so far.
        inner_opt_state: the state of the inner optimizer.
        acc_grads: the gradients accumulated in the current accumulation (their mean, or
            their sum without ``use_grad_mean``).
        skip_state: what ``should_skip_update_fn`` returned last (``()`` without one).
    """

    mini_step: Int[Array, ""]
    gradient_step: Int[Array, ""]
    inner_opt_state: PyTree
    acc_grads: PyTree[Inexact[Array, "?*shape"], " P"] = params_like(follows_dtype=False)  # pyright: ignore[reportUndefinedVariable]
    skip_state: PyTree = ()


class MultiSteps(GradientTransformation):
    """Accumulate gradients over ``k`` mini-steps, then take one step of ``opt`` with them.

    $$\\bar g = \\frac{1}{k} \\sum_{j=1}^{k} g_j \\ (\\text{or the sum}), \\qquad
    u = \\begin{cases} T(\\bar g) & \\text{at the } k\\text{-th mini-step} \\\\ 0 &
    \\text{before} \\end{cases}$$

    The mean is accumulated with Welford's update $a_j = a_{j-1} + (g_j - a_{j-1}) / j$,
    which does not overflow or lose the small terms of a long sum. ``every_k_schedule``
    is an int or a callable ``gradient_step -> k`` (a growing batch size). The inner
    optimizer's state changes only at the ``k``-th mini-step. ``should_skip_update_fn``
    (:func:`skip_not_finite`, :func:`skip_large_updates`) rejects a mini-step as if it had
    not happened; what it returns is kept in ``state.skip_state``. ``acc_grads`` is
    stored in ``accumulator_dtype`` (Optax's default, float32; ``None``: the params'
    dtype) and combined in the wider of it and the updates' dtype.

    Optax's ``MultiSteps`` is a class with ``init``, ``update``, ``has_updated`` and
    ``gradient_transformation()``; this one is all that and a ``GradientTransformation``
    too. Reference: ``optax.MultiSteps``.
    """

    opt: GradientTransformation
    every_k_schedule: Any
    use_grad_mean: bool = eqx.field(static=True, default=True)
    should_skip_update_fn: Callable[..., tuple[Array, PyTree]] | None = eqx.field(
        static=True, default=None
    )
    accumulator_dtype: Any = eqx.field(static=True, default=jnp.float32)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not callable(self.every_k_schedule):
            object.__setattr__(self, "every_k_schedule", as_step_count(self.every_k_schedule))

    def __check_init__(self) -> None:
        check_inner("MultiSteps", "opt", self.opt)
        check_range(self, "every_k_schedule", self.every_k_schedule, 1)

    @property
    def inner_opt(self) -> GradientTransformation:
        """The wrapped optimizer."""
        return self.opt

    def _k(self, gradient_step: Array) -> Array:
        if callable(self.every_k_schedule):
            return jnp.asarray(self.every_k_schedule(gradient_step))
        return self.every_k_schedule

    def _should_skip(
        self, updates: PyTree, gradient_step: Array, params: PyTree | None
    ) -> tuple[Array, PyTree]:
        if self.should_skip_update_fn is None:
            return jnp.asarray(False), ()
        should_skip, skip_state = self.should_skip_update_fn(updates, gradient_step, params)
        should_skip = jnp.asarray(should_skip)
        if should_skip.dtype != jnp.bool_ or should_skip.shape != ():
            raise ValueError(
                "MultiSteps: should_skip_update_fn must return a scalar boolean array first, "
                f"got dtype {should_skip.dtype} and shape {should_skip.shape}."
            )
        return should_skip, skip_state

    def init(self, params: PyTree) -> MultiStepsState:
        gradient_step = jnp.zeros([], jnp.int32)
        _, skip_state = self._should_skip(tree_zeros_like(params), gradient_step, params)
        return MultiStepsState(
            mini_step=jnp.zeros([], jnp.int32),
            gradient_step=gradient_step,
            inner_opt_state=self.opt.init(params),
            acc_grads=tree_zeros_like(params, dtype=self.accumulator_dtype),
            skip_state=skip_state,
        )

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, MultiStepsState]:
        check_state(self, updates, state, MultiStepsState)
        k = self._k(state.gradient_step)
        should_skip, skip_state = self._should_skip(updates, state.gradient_step, params)
        emit = state.mini_step == k - 1
        n = state.mini_step

        def accumulate(g: Array, acc: Array) -> Array:
            work = compute_dtype(jnp.result_type(g.dtype, acc.dtype))
            g, acc = g.astype(work), acc.astype(work)
            if self.use_grad_mean:
                return acc + (g - acc) / (n + 1).astype(np.finfo(work).dtype)
            return g + acc

        def take(_: None) -> tuple[PyTree, MultiStepsState]:
            total = jax.tree.map(accumulate, updates, state.acc_grads)
            inner_updates, inner_state = inner_update_if(
                emit,
                self.opt,
                jax.tree.map(lambda a, g: a.astype(g.dtype), total, updates),
                state.inner_opt_state,
                params,
                extra,
                tree_zeros_like,
            )
            acc_grads = jax.tree.map(
                lambda a, old: jnp.where(emit, jnp.zeros_like(a), a).astype(old.dtype),
                total,
                state.acc_grads,
            )
            return inner_updates, MultiStepsState(
                mini_step=safe_increment(state.mini_step) % k,
                gradient_step=jnp.where(
                    emit, safe_increment(state.gradient_step), state.gradient_step
                ),
                inner_opt_state=inner_state,
                acc_grads=acc_grads,
                skip_state=skip_state,
            )

        def skip(_: None) -> tuple[PyTree, MultiStepsState]:
            return tree_zeros_like(updates), MultiStepsState(
                mini_step=state.mini_step,
                gradient_step=state.gradient_step,
                inner_opt_state=state.inner_opt_state,
                acc_grads=state.acc_grads,
                skip_state=skip_state,
            )

        if self.should_skip_update_fn is None:
            return take(None)
        return jax.lax.cond(should_skip, skip, take, None)

    def has_updated(self, state: MultiStepsState) -> Array:
        """Whether the last ``update`` stepped the inner optimizer.

        $$\\text{mini\\_step} = 0 \\wedge \\text{gradient\\_step} > 0$$
        """
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> MultiSteps:
        """This transformation (Optax's ``MultiSteps`` is not one and needs converting)."""
        return self
