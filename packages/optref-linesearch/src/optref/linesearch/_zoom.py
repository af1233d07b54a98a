"""Zoom line search: a step size that satisfies the strong Wolfe conditions.

Nocedal & Wright's Algorithms 3.5 (bracketing) and 3.6 (zoom), with Hager & Zhang's
approximate sufficient-decrease condition near a minimum, as in Optax.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Inexact, Int, PyTree, jaxtyped

from optref.core import (
    GradientTransformation,
    HyperparameterError,
    check_range,
    check_state,
    safe_increment,
    tree_scale,
    tree_where,
    tree_zeros_like,
)
from optref.core._hyperparameters import as_scalar_hyperparameter, is_concrete
from optref.core._typecheck import typechecker

from ._arguments import linesearch_arguments, static_int
from ._interpolation import cubic_minimizer, quadratic_minimizer
from ._loop import line_search_loop
from ._objective import (
    point_on_line,
    real_vdot,
    scalar_dtype,
    tree_cast_like,
    value_and_descent_gradient,
)
from ._verbose import print_if

__all__ = [
    "ScaleByZoomLinesearch",
    "ScaleByZoomLinesearchState",
    "ZoomLinesearchInfo",
    "scale_by_zoom_linesearch",
]

INITIAL_GUESS_STRATEGIES = ("one", "keep")


@jaxtyped(typechecker=typechecker)
class ZoomLinesearchInfo(eqx.Module):
    """What the last zoom search did, measured at the step size it returned.

    Attributes:
        num_linesearch_steps: objective evaluations (trial step sizes).
        decrease_error: how far the returned step is from sufficient decrease (0 when it
            holds; infinite when the objective was not finite). Above ``tol``: **the
            search failed** and the step does not decrease the objective enough (or,
            infinite, no step was taken).
        curvature_error: how far the returned step is from the curvature condition
            $|\\phi'(\\eta)| \\le c_2 |\\phi'(0)|$. Above ``tol`` with a small
            ``decrease_error``: the step decreases the objective but the curvature
            condition was not met (the interval became too small, or the maximum step
            size was reached).
    """

    num_linesearch_steps: Int[Array, ""]
    decrease_error: Float[Array, ""]
    curvature_error: Float[Array, ""]


@jaxtyped(typechecker=typechecker)
class ScaleByZoomLinesearchState(eqx.Module):
    """The step size, value and gradient found by the last search, and what it did.

    Attributes:
        learning_rate: the returned step size.
        value: the objective at ``params + learning_rate * updates``.
        grad: the gradient there (read by :func:`value_and_grad_from_state`).
        info: a :class:`ZoomLinesearchInfo`.
    """

    learning_rate: Float[Array, ""]
    value: Float[Array, ""]
    grad: PyTree[Inexact[Array, "?*shape"], " P"]  # pyright: ignore[reportUndefinedVariable]
    info: ZoomLinesearchInfo


class _Search(eqx.Module):
    """The carry of the search loop (Optax's ``ZoomLinesearchState`` without its constants).

    ``low`` and ``high`` bracket a step size that satisfies both conditions, with
    ``value_low <= value_high`` (``low`` is not necessarily the smaller). ``safe_*`` is the
    best trial so far that satisfies sufficient decrease, returned if the search fails.
    """

    count: Array
    stepsize: Array
    value: Array
    grad: PyTree
    slope: Array
    decrease_error: Array
    curvature_error: Array
    interval_found: Array
    done: Array
    failed: Array
    low: Array
    value_low: Array
    slope_low: Array
    high: Array
    value_high: Array
    slope_high: Array
    cubic_ref: Array
    value_cubic_ref: Array
    safe_stepsize: Array
    safe_value: Array
    safe_grad: PyTree
    safe_decrease_error: Array
    safe_curvature_error: Array


def _optional_scalar(value: Any) -> Array | None:
    """``None``, or a scalar hyperparameter as an array: a field converter."""
    return None if value is None else as_scalar_hyperparameter(value)


class ScaleByZoomLinesearch(GradientTransformation):
    """Scale the updates by a step size that satisfies the strong Wolfe conditions.

    Built by :func:`scale_by_zoom_linesearch`, whose docstring gives the math and the references.
    """

    max_linesearch_steps: int = eqx.field(static=True)
    max_learning_rate: Array | None = eqx.field(default=None, converter=_optional_scalar)
    tol: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    increase_factor: Array = eqx.field(default=2.0, converter=as_scalar_hyperparameter)
    slope_rtol: Array = eqx.field(default=1e-4, converter=as_scalar_hyperparameter)
    curv_rtol: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    approx_dec_rtol: Array | None = eqx.field(default=1e-6, converter=_optional_scalar)
    stepsize_precision: Array = eqx.field(default=1e-5, converter=as_scalar_hyperparameter)
    initial_guess_strategy: str = eqx.field(static=True, default="keep")
    verbose: bool = eqx.field(static=True, default=False)
    differentiable: bool = eqx.field(static=True, default=False)
    scalar_hyperparameters = (
        "max_learning_rate",
        "tol",
        "increase_factor",
        "slope_rtol",
        "curv_rtol",
        "approx_dec_rtol",
        "stepsize_precision",
    )

    def __post_init__(self) -> None:
        where = "scale_by_zoom_linesearch"
        steps = static_int(
            where, "max_linesearch_steps", self.max_linesearch_steps, 1, "it bounds the loop"
        )
        object.__setattr__(self, "max_linesearch_steps", steps)
        if self.initial_guess_strategy not in INITIAL_GUESS_STRATEGIES:
            raise HyperparameterError(
                f"{where}: initial_guess_strategy must be 'one' or 'keep', got "
                f"{self.initial_guess_strategy!r}."
            )
        super().__post_init__()

    def __check_init__(self) -> None:
        check_range(self, "max_learning_rate", self.max_learning_rate, 0.0, low_inclusive=False)
        check_range(self, "tol", self.tol, 0.0)
        check_range(self, "increase_factor", self.increase_factor, 1.0, low_inclusive=False)
        check_range(self, "slope_rtol", self.slope_rtol, 0.0, 1.0, high_inclusive=False)
        check_range(self, "curv_rtol", self.curv_rtol, 0.0, low_inclusive=False)
        rtols = (self.slope_rtol, self.curv_rtol)
        if is_concrete(rtols) and not self.slope_rtol < self.curv_rtol:
            raise HyperparameterError(
                "scale_by_zoom_linesearch: slope_rtol must be smaller than curv_rtol (the "
                "strong Wolfe conditions need 0 < slope_rtol < curv_rtol < 1, or curv_rtol "
                "= inf to drop the curvature condition), got "
                f"slope_rtol={float(self.slope_rtol):g}, curv_rtol={float(self.curv_rtol):g}."
            )
        check_range(self, "approx_dec_rtol", self.approx_dec_rtol, 0.0)
        check_range(self, "stepsize_precision", self.stepsize_precision, 0.0)

    def init(self, params: PyTree) -> ScaleByZoomLinesearchState:
        dtype = scalar_dtype(params)
        return ScaleByZoomLinesearchState(
            learning_rate=jnp.ones([], dtype),
            value=jnp.full([], jnp.inf, dtype),
            grad=tree_zeros_like(params),
            info=ZoomLinesearchInfo(
                num_linesearch_steps=jnp.zeros([], jnp.int32),
                decrease_error=jnp.full([], jnp.inf, dtype),
                curvature_error=jnp.full([], jnp.inf, dtype),
            ),
        )

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, ScaleByZoomLinesearchState]:
        where = "scale_by_zoom_linesearch"
        check_state(self, updates, state, ScaleByZoomLinesearchState)
        args = linesearch_arguments(where, updates, params, extra)
        dtype = state.value.dtype
        grad0 = tree_cast_like(args.grad, state.grad)

        def hyper(x: Array) -> Array:
            return jnp.asarray(x).astype(dtype)

        tol, increase_factor = hyper(self.tol), hyper(self.increase_factor)
        slope_rtol, curv_rtol = hyper(self.slope_rtol), hyper(self.curv_rtol)
        approx_dec_rtol = None if self.approx_dec_rtol is None else hyper(self.approx_dec_rtol)
        max_stepsize = None if self.max_learning_rate is None else hyper(self.max_learning_rate)
        interval_threshold = hyper(self.stepsize_precision)
        max_steps = self.max_linesearch_steps
        value_and_grad = value_and_descent_gradient(args.objective)

        value_init = args.value.astype(dtype)
        slope_init = real_vdot(grad0, updates).astype(dtype)

        def on_line(stepsize: Array) -> tuple[Array, PyTree, Array]:
            new_value, new_grad = value_and_grad(point_on_line(args.params, stepsize, updates))
            new_grad = tree_cast_like(new_grad, state.grad)
            return (
                jnp.asarray(new_value).astype(dtype),
                new_grad,
                real_vdot(new_grad, updates).astype(dtype),
            )

        def decrease_error_at(stepsize: Array, value: Array, slope: Array) -> Array:
            # Sufficient decrease (Armijo), Nocedal & Wright eq. (3.7a) ...
            error = value - value_init - slope_rtol * stepsize * slope_init
            if approx_dec_rtol is not None:
                # ... or, close to a minimum where the values can no longer resolve it,
                # Hager & Zhang's approximate condition, eqs. (23), (26)-(27).
                approx = slope - (2 * slope_rtol - 1.0) * slope_init
                gap = value - value_init - approx_dec_rtol * jnp.abs(value_init)
                error = jnp.minimum(jnp.maximum(approx, gap), error)
            error = jnp.maximum(error, 0.0)
            return jnp.where(jnp.isnan(error), jnp.inf, error)

        def curvature_error_at(slope: Array) -> Array:
            # Strong Wolfe curvature condition, Nocedal & Wright eq. (3.7b).
            error = jnp.maximum(jnp.abs(slope) - curv_rtol * jnp.abs(slope_init), 0.0)
            return jnp.where(jnp.isnan(error), jnp.inf, error)

        def search_interval(s: _Search) -> _Search:
            """One step of bracketing: Nocedal & Wright, Algorithm 3.5."""
            new_stepsize = jnp.where(s.count == 0, stepsize_guess, increase_factor * s.stepsize)
            if max_stepsize is not None:
                max_reached = new_stepsize >= max_stepsize
                new_stepsize = jnp.minimum(new_stepsize, max_stepsize)
            else:
                max_reached = jnp.asarray(False)
            new_value, new_grad, new_slope = on_line(new_stepsize)
            decrease_error = decrease_error_at(new_stepsize, new_value, new_slope)
            curvature_error = curvature_error_at(new_slope)
            new_error = jnp.maximum(decrease_error, curvature_error)
            # Keep the point if it decreases enough, in case curvature cannot be met.
            safe = decrease_error <= tol
            safe_point = tree_where(
                safe,
                (new_stepsize, new_value, new_grad, decrease_error, curvature_error),
                _safe_point(s),
            )
            set_high_to_new = (decrease_error > 0.0) | ((new_value >= s.value) & (s.count > 0))
            set_low_to_new = (new_slope >= 0.0) & (~set_high_to_new)
            previous = (s.stepsize, s.value, s.slope)
            new = (new_stepsize, new_value, new_slope)
            (low, value_low, slope_low), (high, value_high, slope_high) = tree_where(
                set_low_to_new, (new, previous), (previous, new)
            )
            interval_found = set_high_to_new | set_low_to_new | (new_error <= tol)
            # At the maximum step size with no bracket, the curvature condition would need
            # a larger step: stop there (the step decreases the objective).
            done = (new_error <= tol) | (max_reached & ~interval_found)
            print_if(
                self.verbose,
                max_reached & ~interval_found,
                "scale_by_zoom_linesearch: no interval satisfies the curvature condition "
                "below max_learning_rate; returning step size {stepsize} (decrease error "
                "{decrease}, curvature error {curvature}).",
                stepsize=new_stepsize,
                decrease=decrease_error,
                curvature=curvature_error,
            )
            return _Search(
                count=safe_increment(s.count),
                stepsize=new_stepsize,
                value=new_value,
                grad=new_grad,
                slope=new_slope,
                decrease_error=decrease_error,
                curvature_error=curvature_error,
                interval_found=interval_found,
                done=done,
                failed=(s.count + 1 >= max_steps) & ~done,
                low=low,
                value_low=value_low,
                slope_low=slope_low,
                high=high,
                value_high=value_high,
                slope_high=slope_high,
                cubic_ref=low,
                value_cubic_ref=value_low,
                **_safe_fields(safe_point),
            )

        def zoom_into_interval(s: _Search) -> _Search:
            """One step of zoom: Nocedal & Wright, Algorithm 3.6."""
            delta = jnp.abs(s.high - s.low)
            left = jnp.minimum(s.high, s.low)
            right = jnp.maximum(s.high, s.low)
            cubic_check = 0.2 * delta
            quad_check = 0.1 * delta
            too_small_interval = delta <= interval_threshold
            # Interpolate: cubic if its minimiser is well inside the interval, else
            # quadratic, else bisect.
            middle_cubic, cubic_exists = cubic_minimizer(
                s.low,
                s.value_low,
                s.slope_low,
                s.high,
                s.value_high,
                s.cubic_ref,
                s.value_cubic_ref,
            )
            use_cubic = (
                cubic_exists
                & (middle_cubic > left + cubic_check)
                & (middle_cubic < right - cubic_check)
            )
            middle_quad, quad_exists = quadratic_minimizer(
                s.low, s.value_low, s.slope_low, s.high, s.value_high
            )
            use_quad = (
                (~use_cubic)
                & quad_exists
                & (middle_quad > left + quad_check)
                & (middle_quad < right - quad_check)
            )
            use_bisection = (~use_cubic) & (~use_quad)
            middle = jnp.where(use_cubic, middle_cubic, s.cubic_ref)
            middle = jnp.where(use_quad, middle_quad, middle)
            middle = jnp.where(use_bisection, (s.low + s.high) / 2.0, middle)

            value_middle, grad_middle, slope_middle = on_line(middle)
            decrease_error = decrease_error_at(middle, value_middle, slope_middle)
            curvature_error = curvature_error_at(slope_middle)
            new_error = jnp.maximum(decrease_error, curvature_error)
            # Keep the best point (smallest value) that decreases enough.
            update_safe = (decrease_error <= tol) & (value_middle < s.safe_value)
            safe_point = tree_where(
                update_safe,
                (middle, value_middle, grad_middle, decrease_error, curvature_error),
                _safe_point(s),
            )
            done = new_error <= tol
            set_high_to_middle = (decrease_error > 0.0) | (value_middle >= s.value_low)
            secant_interval = slope_middle * (s.high - s.low)
            set_high_to_low = (secant_interval >= 0.0) & (~set_high_to_middle)
            set_low_to_middle = ~set_high_to_middle
            middle_point = (middle, value_middle, slope_middle)
            high_point = tree_where(
                set_high_to_middle, middle_point, (s.high, s.value_high, s.slope_high)
            )
            high_point = tree_where(set_high_to_low, (s.low, s.value_low, s.slope_low), high_point)
            low_point = tree_where(
                set_low_to_middle, middle_point, (s.low, s.value_low, s.slope_low)
            )
            # The previous high, if high moved, else the previous low, is the next
            # reference point of the cubic.
            cubic_ref, value_cubic_ref = tree_where(
                set_high_to_middle | set_high_to_low,
                (s.high, s.value_high),
                (s.low, s.value_low),
            )
            # Stop at the step budget, or once the interval is below the precision and a
            # step with sufficient decrease is known (steep objectives may need tiny steps,
            # so without one the search goes on).
            presumably_failed = (s.count + 1 >= max_steps) | (
                too_small_interval & (safe_point[0] > 0.0)
            )
            return _Search(
                count=safe_increment(s.count),
                stepsize=middle,
                value=value_middle,
                grad=grad_middle,
                slope=slope_middle,
                decrease_error=decrease_error,
                curvature_error=curvature_error,
                interval_found=s.interval_found,
                done=done,
                failed=presumably_failed & ~done,
                low=low_point[0],
                value_low=low_point[1],
                slope_low=low_point[2],
                high=high_point[0],
                value_high=high_point[1],
                slope_high=high_point[2],
                cubic_ref=cubic_ref,
                value_cubic_ref=value_cubic_ref,
                **_safe_fields(safe_point),
            )

        def fall_back(s: _Search) -> _Search:
            """After a failure, return the safe point if there is one (or if the last trial
            was not finite: the safe point is then step 0); else the last trial."""
            outside_domain = jnp.isinf(s.decrease_error)
            use_safe = (s.safe_stepsize > 0.0) | outside_domain
            stepsize, value, grad = tree_where(
                use_safe,
                (s.safe_stepsize, s.safe_value, s.safe_grad),
                (s.stepsize, s.value, s.grad),
            )
            # The errors describe the returned step (Optax reports the last trial's).
            decrease_error, curvature_error = tree_where(
                s.safe_stepsize > 0.0,
                (s.safe_decrease_error, s.safe_curvature_error),
                (s.decrease_error, s.curvature_error),
            )
            print_if(
                self.verbose,
                True,
                "scale_by_zoom_linesearch: failed after {count} steps (value {value0}, slope "
                "{slope0}). Returning step size {stepsize}: decrease error {decrease}, "
                "curvature error {curvature}.",
                count=s.count,
                value0=value_init,
                slope0=slope_init,
                stepsize=stepsize,
                decrease=decrease_error,
                curvature=curvature_error,
            )
            return dataclasses.replace(
                s,
                stepsize=stepsize,
                value=value,
                grad=grad,
                decrease_error=decrease_error,
                curvature_error=curvature_error,
            )

        def step(s: _Search) -> _Search:
            s = jax.lax.cond(s.interval_found, zoom_into_interval, search_interval, s)
            return jax.lax.cond(s.failed, fall_back, lambda t: t, s)

        def keep_going(s: _Search) -> Array:
            return ~(s.done | s.failed)

        if self.initial_guess_strategy == "one":
            stepsize_guess = jnp.ones([], dtype)
        else:
            # The last step size; after a search that ended with no step, 1 again
            # (growing 0 would keep every later search at 0).
            previous = state.learning_rate
            stepsize_guess = jnp.where(previous > 0, previous, jnp.ones([], dtype))
        zero, inf = jnp.zeros([], dtype), jnp.full([], jnp.inf, dtype)
        start = _Search(
            count=jnp.zeros([], jnp.int32),
            stepsize=zero,
            value=value_init,
            grad=grad0,
            slope=slope_init,
            decrease_error=inf,
            curvature_error=inf,
            interval_found=jnp.asarray(False),
            done=jnp.asarray(False),
            failed=jnp.asarray(False),
            low=zero,
            value_low=value_init,
            slope_low=slope_init,
            high=zero,
            value_high=value_init,
            slope_high=slope_init,
            cubic_ref=zero,
            value_cubic_ref=value_init,
            safe_stepsize=zero,
            safe_value=value_init,
            safe_grad=grad0,
            safe_decrease_error=inf,
            safe_curvature_error=inf,
        )
        final = line_search_loop(
            keep_going, step, start, max_steps=max_steps, bounded=self.differentiable
        )
        new_state = ScaleByZoomLinesearchState(
            learning_rate=final.stepsize,
            value=final.value,
            grad=final.grad,
            info=ZoomLinesearchInfo(
                num_linesearch_steps=final.count,
                decrease_error=final.decrease_error,
                curvature_error=final.curvature_error,
            ),
        )
        return tree_scale(final.stepsize, updates), new_state


def _safe_point(s: _Search) -> tuple[Any, ...]:
    return (
        s.safe_stepsize,
        s.safe_value,
        s.safe_grad,
        s.safe_decrease_error,
        s.safe_curvature_error,
    )


def _safe_fields(point: tuple[Any, ...]) -> dict[str, Any]:
    names = (
        "safe_stepsize",
        "safe_value",
        "safe_grad",
        "safe_decrease_error",
        "safe_curvature_error",
    )
    return dict(zip(names, point, strict=True))


def scale_by_zoom_linesearch(
    max_linesearch_steps: int,
    max_learning_rate: float | Array | None = None,
    tol: float | Array = 0.0,
    increase_factor: float | Array = 2.0,
    slope_rtol: float | Array = 1e-4,
    curv_rtol: float | Array = 0.9,
    approx_dec_rtol: float | Array | None = 1e-6,
    stepsize_precision: float | Array = 1e-5,
    initial_guess_strategy: str = "keep",
    verbose: bool = False,
    *,
    differentiable: bool = False,
) -> ScaleByZoomLinesearch:
    """Zoom line search: a step size that satisfies the strong Wolfe conditions.

    Scales the updates $u$ by a step size $\\eta$ with sufficient decrease and small
    curvature along $u$, for $\\phi(\\eta) = f(w + \\eta u)$:

    $$\\phi(\\eta) \\le \\phi(0) + c_1\\,\\eta\\,\\phi'(0) + \\epsilon, \\qquad
    |\\phi'(\\eta)| \\le c_2\\,|\\phi'(0)| + \\epsilon,$$

    $c_1$ = ``slope_rtol``, $c_2$ = ``curv_rtol``, $\\epsilon$ = ``tol``,
    $\\phi'(\\eta) = \\operatorname{Re}\\langle\\nabla f(w+\\eta u), u\\rangle$. Near a
    minimum, where $\\phi(\\eta) \\le \\phi(0) + c_3|\\phi(0)|$ ($c_3$ =
    ``approx_dec_rtol``; ``None`` turns this off), the decrease condition may instead be
    Hager & Zhang's approximate one, $\\phi'(\\eta) \\le (2c_1 - 1)\\,\\phi'(0)$, which
    float rounding cannot defeat.

    First a bracketing phase grows the step from the first guess (1 with
    ``initial_guess_strategy="one"``, the last step size with ``"keep"``) by
    ``increase_factor``, up to ``max_learning_rate``, until an interval holding an
    acceptable step is found; then a zoom phase shrinks the interval by cubic or
    quadratic interpolation (bisection as a fallback) until a step satisfies both
    conditions, the interval is shorter than ``stepsize_precision`` (and some step
    decreases the objective enough), or ``max_linesearch_steps`` evaluations are spent.

    ``update(updates, state, params, *, value, grad, value_fn, **fn_kwargs)``; the
    state's ``value`` and ``grad`` are those at the new params, reusable through
    :func:`value_and_grad_from_state`. ``curv_rtol=inf`` drops the curvature condition.
    The constants must satisfy $0 < c_1 < c_2$ with $c_1 < 1$ (Nocedal & Wright, Lemma
    3.1, for a step satisfying both conditions to exist); concrete values that do not
    raise a :class:`~optref.core.HyperparameterError`.

    **Failure** is recorded in the state: ``state.info.decrease_error > tol`` means the
    returned step does not decrease the objective enough (infinite: the objective was not
    finite and no step is taken). The params stay finite either way.

    **Differences from Optax** (``optax.scale_by_zoom_linesearch``): ``info`` describes
    the step that is returned (Optax reports the last trial's errors even when it returns
    an earlier, safe step); with ``"keep"``, a search that ended with step size 0 does
    not make every later search start (and stay) at 0; interpolations that do not exist
    are never evaluated on NaN, so derivatives through the search are finite; scalars
    are kept in at least float32 for float16 and bfloat16 params.

    **Differentiating through it.** ``differentiable=True`` runs the search as a bounded
    loop of ``max_linesearch_steps`` trips (:func:`jax.lax.scan` and
    :func:`jax.lax.cond`) that :func:`jax.grad` can go through; the default is Optax's
    :func:`jax.lax.while_loop`, which only :func:`jax.jvp` can. The derivative is that of
    the algorithm as run, with its branch decisions fixed: the accepted step size's
    dependence on the inputs **is included** (through the interpolation formulas of the
    zoom phase; a step accepted at the first guess is a constant). It is not the
    derivative of an exact line minimiser.

    References: Nocedal & Wright, *Numerical Optimization* (2006), Algorithms 3.5 and
    3.6; Hager & Zhang, *Algorithm 851: CG_DESCENT* (2006). Optax:
    ``optax.scale_by_zoom_linesearch``.
    """
    return ScaleByZoomLinesearch(
        max_linesearch_steps,
        max_learning_rate,
        tol,
        increase_factor,
        slope_rtol,
        curv_rtol,
        approx_dec_rtol,
        stepsize_precision,
        initial_guess_strategy,
        verbose,
        differentiable,
    )
