"""Backtracking line search: shrink the step until the objective decreases enough (Armijo)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Inexact, Int, PyTree, jaxtyped

from optref.core import (
    GradientTransformation,
    check_range,
    check_state,
    check_tree_fits,
    tree_scale,
    tree_zeros_like,
)
from optref.core._hyperparameters import as_scalar_hyperparameter
from optref.core._typecheck import typechecker

from ._arguments import linesearch_arguments, static_int
from ._loop import line_search_loop
from ._objective import (
    descent_gradient,
    point_on_line,
    real_vdot,
    scalar_dtype,
    tree_cast_like,
)
from ._verbose import print_if

__all__ = [
    "BacktrackingLinesearchInfo",
    "ScaleByBacktrackingLinesearch",
    "ScaleByBacktrackingLinesearchState",
    "scale_by_backtracking_linesearch",
]


@jaxtyped(typechecker=typechecker)
class BacktrackingLinesearchInfo(eqx.Module):
    """What the last backtracking search did.

    Attributes:
        num_linesearch_steps: trial step sizes evaluated.
        decrease_error: how far the returned step is from sufficient decrease,
            $\\max(0, f(w + \\eta u) - (1+\\delta) f(w) - c\\,\\eta\\,\\phi'(0))$
            (infinite where the objective was not finite). Above ``atol``: **the search
            failed** (it took the smallest step it tried, or no step if that one was not
            finite).
    """

    num_linesearch_steps: Int[Array, ""]
    decrease_error: Float[Array, ""]


@jaxtyped(typechecker=typechecker)
class ScaleByBacktrackingLinesearchState(eqx.Module):
    """The step size, value and gradient found by the last search, and what it did.

    Attributes:
        learning_rate: the accepted step size (0 after a search whose every trial gave a
            non-finite objective).
        value: the objective at the new params (the last trial point; the old params
            where no step was taken), read by :func:`value_and_grad_from_state`.
        grad: the gradient there with ``store_grad=True``, else ``None``.
        info: a :class:`BacktrackingLinesearchInfo`.
    """

    learning_rate: Float[Array, ""]
    value: Float[Array, ""]
    grad: PyTree[Inexact[Array, "?*shape"], " P"] | None  # pyright: ignore[reportUndefinedVariable]
    info: BacktrackingLinesearchInfo


class _Trial(eqx.Module):
    learning_rate: Array
    new_value: Array
    new_grad: PyTree
    decrease_error: Array
    iter_num: Array


class ScaleByBacktrackingLinesearch(GradientTransformation):
    """Scale the updates by the largest tried step size that decreases the objective enough.

    Built by :func:`scale_by_backtracking_linesearch`, whose docstring gives the math and
    the references.
    """

    max_backtracking_steps: int = eqx.field(static=True)
    slope_rtol: Array = eqx.field(default=1e-4, converter=as_scalar_hyperparameter)
    decrease_factor: Array = eqx.field(default=0.8, converter=as_scalar_hyperparameter)
    increase_factor: Array = eqx.field(default=1.5, converter=as_scalar_hyperparameter)
    max_learning_rate: Array = eqx.field(default=1.0, converter=as_scalar_hyperparameter)
    atol: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    rtol: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    store_grad: bool = eqx.field(static=True, default=False)
    verbose: bool = eqx.field(static=True, default=False)
    differentiable: bool = eqx.field(static=True, default=False)
    scalar_hyperparameters = (
        "slope_rtol",
        "decrease_factor",
        "increase_factor",
        "max_learning_rate",
        "atol",
        "rtol",
    )

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "max_backtracking_steps",
            static_int(
                "scale_by_backtracking_linesearch",
                "max_backtracking_steps",
                self.max_backtracking_steps,
                0,
                "it bounds the loop",
            ),
        )
        super().__post_init__()

    def __check_init__(self) -> None:
        check_range(self, "slope_rtol", self.slope_rtol, 0.0, 1.0, high_inclusive=False)
        check_range(
            self,
            "decrease_factor",
            self.decrease_factor,
            0.0,
            1.0,
            low_inclusive=False,
            high_inclusive=False,
        )
        check_range(self, "increase_factor", self.increase_factor, 1.0)
        check_range(self, "max_learning_rate", self.max_learning_rate, 0.0, low_inclusive=False)
        check_range(self, "atol", self.atol, 0.0)
        check_range(self, "rtol", self.rtol, 0.0)

    def init(self, params: PyTree) -> ScaleByBacktrackingLinesearchState:
        dtype = scalar_dtype(params)
        return ScaleByBacktrackingLinesearchState(
            learning_rate=jnp.ones([], dtype),
            value=jnp.full([], jnp.inf, dtype),
            grad=tree_zeros_like(params) if self.store_grad else None,
            info=BacktrackingLinesearchInfo(
                num_linesearch_steps=jnp.zeros([], jnp.int32),
                decrease_error=jnp.full([], jnp.inf, dtype),
            ),
        )

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, ScaleByBacktrackingLinesearchState]:
        where = "scale_by_backtracking_linesearch"
        check_state(self, updates, state, ScaleByBacktrackingLinesearchState)
        if (state.grad is None) == self.store_grad:
            raise TypeError(
                f"{where}: the state's grad is {'None' if state.grad is None else 'a tree'} "
                f"but store_grad={self.store_grad}: the state was built by another line search."
            )
        if self.store_grad:
            check_tree_fits(
                state.grad, updates, where=where, reference_name="state.grad", tree_name="updates"
            )
        args = linesearch_arguments(where, updates, params, extra)
        dtype = state.value.dtype

        def hyper(x: Array) -> Array:
            return jnp.asarray(x).astype(dtype)

        slope_rtol, decrease_factor = hyper(self.slope_rtol), hyper(self.decrease_factor)
        max_learning_rate, atol, rtol = (
            hyper(self.max_learning_rate),
            hyper(self.atol),
            hyper(self.rtol),
        )
        value = args.value.astype(dtype)
        # The slope of eta -> f(params + eta * updates) at 0; negative for a descent direction.
        slope = real_vdot(args.grad, updates).astype(dtype)
        max_steps = self.max_backtracking_steps

        def decrease_error(stepsize: Array, new_value: Array) -> Array:
            error = new_value - (1.0 + rtol) * value - stepsize * slope_rtol * slope
            error = jnp.where(jnp.isnan(error), jnp.inf, error)
            return jnp.maximum(error, 0.0)

        def keep_going(trial: _Trial) -> Array:
            return (~(trial.decrease_error <= atol)) & (trial.iter_num <= max_steps)

        def try_step(trial: _Trial) -> _Trial:
            learning_rate = jnp.where(
                trial.iter_num > 0, decrease_factor * trial.learning_rate, trial.learning_rate
            )
            new_params = point_on_line(args.params, learning_rate, updates)
            if self.store_grad:
                # One evaluation and its linearisation; the gradient (the transpose) is
                # formed only for the trial that ends the search.
                new_value, linear = jax.linearize(args.objective, new_params)
                error = decrease_error(learning_rate, new_value.astype(dtype))
                last = (error <= atol) | (trial.iter_num == max_steps)

                def gradient(point: PyTree) -> PyTree:
                    cotangent = jnp.ones_like(new_value)
                    (raw,) = jax.linear_transpose(linear, point)(cotangent)
                    return tree_cast_like(descent_gradient(raw), trial.new_grad)

                new_grad = jax.lax.cond(last, gradient, lambda _: trial.new_grad, new_params)
            else:
                new_value = args.objective(new_params)
                error = decrease_error(learning_rate, jnp.asarray(new_value).astype(dtype))
                new_grad = None
            return _Trial(
                learning_rate=learning_rate.astype(dtype),
                new_value=jnp.asarray(new_value).astype(dtype),
                new_grad=new_grad,
                decrease_error=error.astype(dtype),
                iter_num=trial.iter_num + 1,
            )

        previous = state.learning_rate
        # Start from a larger guess than the last step size, but not above the maximum.
        # After a failed search (step size 0) restart from the maximum: growing 0 would
        # keep every later search at 0 (and inf * 0 is NaN).
        guess = jnp.where(
            previous > 0,
            jnp.minimum(hyper(self.increase_factor) * previous, max_learning_rate),
            max_learning_rate,
        )
        first = _Trial(
            learning_rate=guess.astype(dtype),
            new_value=value,
            new_grad=tree_zeros_like(args.params) if self.store_grad else None,
            decrease_error=jnp.full([], jnp.inf, dtype),
            iter_num=jnp.zeros([], jnp.int32),
        )
        last = line_search_loop(
            keep_going, try_step, first, max_steps=max_steps + 1, bounded=self.differentiable
        )
        print_if(
            self.verbose,
            last.decrease_error > atol,
            "scale_by_backtracking_linesearch: no step size gave sufficient decrease. "
            "value={value}, slope={slope}, step size={stepsize}, decrease error={error}"
            " (a step size of 0 is used where it is infinite)",
            value=value,
            slope=slope,
            stepsize=last.learning_rate,
            error=last.decrease_error,
        )
        # Where even the smallest trial was not finite, take no step: the params stay, and
        # the state keeps their value and gradient (value_and_grad_from_state reads them),
        # not the last trial's.
        no_step = jnp.isinf(last.decrease_error)
        learning_rate = jnp.where(no_step, 0.0, last.learning_rate)
        new_grad = last.new_grad
        if self.store_grad:
            new_grad = jax.tree.map(
                lambda here, there: jnp.where(no_step, here, there),
                tree_cast_like(args.grad, last.new_grad),
                last.new_grad,
            )
        new_state = ScaleByBacktrackingLinesearchState(
            learning_rate=learning_rate.astype(dtype),
            value=jnp.where(no_step, value, last.new_value),
            grad=new_grad,
            info=BacktrackingLinesearchInfo(
                num_linesearch_steps=last.iter_num, decrease_error=last.decrease_error
            ),
        )
        return tree_scale(learning_rate, updates), new_state


def scale_by_backtracking_linesearch(
    max_backtracking_steps: int,
    slope_rtol: float | Array = 1e-4,
    decrease_factor: float | Array = 0.8,
    increase_factor: float | Array = 1.5,
    max_learning_rate: float | Array = 1.0,
    atol: float | Array = 0.0,
    rtol: float | Array = 0.0,
    store_grad: bool = False,
    verbose: bool = False,
    *,
    differentiable: bool = False,
) -> ScaleByBacktrackingLinesearch:
    """Backtracking line search: the Armijo sufficient-decrease condition.

    Scales the updates $u$ (a descent direction) by the first step size $\\eta$ of
    $\\eta_0, \\beta\\eta_0, \\beta^2\\eta_0, \\ldots$ ($\\beta$ = ``decrease_factor``) with

    $$f(w + \\eta u) \\le (1 + \\delta) f(w) + c\\,\\eta\\,
    \\operatorname{Re}\\langle \\nabla f(w), u\\rangle + \\epsilon,$$

    $c$ = ``slope_rtol``, $\\delta$ = ``rtol``, $\\epsilon$ = ``atol``. The first guess is
    $\\eta_0 = \\min(\\gamma\\,\\eta_{\\text{prev}}, \\eta_{\\max})$ ($\\gamma$ =
    ``increase_factor``, $\\eta_{\\max}$ = ``max_learning_rate``). At most
    ``max_backtracking_steps`` reductions are tried; if none satisfies the condition, the
    smallest is used, and no step (0) if the objective was not finite there.

    ``update(updates, state, params, *, value, grad, value_fn, **fn_kwargs)`` needs the
    objective's value and gradient at ``params`` and the objective itself (see
    :mod:`optref.linesearch`); other keyword arguments go to ``value_fn``. With
    ``store_grad=True`` the state keeps the gradient at the accepted point, which
    :func:`value_and_grad_from_state` reuses.

    **Failure** is recorded in the state: ``state.info.decrease_error > atol``.

    **Differences from Optax** (``optax.scale_by_backtracking_linesearch``): after a failed
    search (step size 0) the next search starts again from ``max_learning_rate``, where
    Optax would grow 0 and stay at 0 for ever (and produce NaN with
    ``increase_factor=inf``); scalars are kept in at least float32 for float16 and
    bfloat16 params; complex gradients follow Optax's convention (the conjugate of
    :func:`jax.grad`'s) in the slope too.

    **Differentiating through it.** ``differentiable=True`` runs the search as a bounded
    loop of ``max_backtracking_steps + 1`` trips (:func:`jax.lax.scan` and
    :func:`jax.lax.cond`) that :func:`jax.grad` can go through; the default is Optax's
    :func:`jax.lax.while_loop` (``jax.jvp`` only). The derivative is that of the
    algorithm as run: the accepted step size is piecewise constant in the inputs (it is
    $\\eta_0\\beta^k$ for a discrete $k$), so it contributes no derivative except through
    $\\eta_{\\text{prev}}$.

    References: Armijo, *Minimization of functions having Lipschitz continuous first
    partial derivatives* (1966); Nocedal & Wright, *Numerical Optimization* (2006),
    Algorithm 3.1; Vaswani et al., *Painless Stochastic Gradient* (2019). Optax:
    ``optax.scale_by_backtracking_linesearch``.
    """
    return ScaleByBacktrackingLinesearch(
        max_backtracking_steps,
        slope_rtol,
        decrease_factor,
        increase_factor,
        max_learning_rate,
        atol,
        rtol,
        store_grad,
        verbose,
        differentiable,
    )
