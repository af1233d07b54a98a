"""DoG: the distance-over-gradients, learning-rate-free step size (layer-wise)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Inexact, PyTree, jaxtyped

from ._base import GradientTransformation, check_state, params_like, require_params
from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._numerics import abs_sq, compute_dtype, safe_div, safe_sqrt
from ._tree import tree_cast, tree_map_unzip
from ._typecheck import typechecker

__all__ = [
    "ScaleByDistanceOverGradients",
    "ScaleByDistanceOverGradientsState",
    "scale_by_distance_over_gradients",
]


def _norm(x: Array) -> Array:
    """The Euclidean norm of all of ``x``'s elements, with a zero derivative at zero."""
    return safe_sqrt(jnp.sum(abs_sq(x)))


@jaxtyped(typechecker=typechecker)
class ScaleByDistanceOverGradientsState(eqx.Module):
    """Per leaf: the largest distance from the initial params so far, the running sum
    of squared gradient norms, and the initial params."""

    max_dist: PyTree[Inexact[Array, ""], " P"]  # pyright: ignore[reportUndefinedVariable]
    grad_sum_of_squares: PyTree[Float[Array, "1"], " P"]  # pyright: ignore[reportUndefinedVariable]
    init_params: PyTree[Inexact[Array, "?*shape"], " P"] = params_like(follows_dtype=False)  # pyright: ignore[reportUndefinedVariable]


class ScaleByDistanceOverGradients(GradientTransformation):
    """``u = s · max_dist / sqrt(Σ‖g‖² + eps) · g``, per leaf.

    Built by :func:`scale_by_distance_over_gradients`, whose docstring gives the math and
    the references.
    """

    reps_rel: Array = eqx.field(default=1e-6, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-8, converter=as_scalar_hyperparameter)
    param_dtype: Any = eqx.field(static=True, default=jnp.float32)
    global_scale: Array = eqx.field(default=1.0, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("reps_rel", "eps", "global_scale")

    def __check_init__(self) -> None:
        check_range(self, "reps_rel", self.reps_rel, 0.0, low_inclusive=False)
        check_range(self, "eps", self.eps, 0.0)

    def init(self, params: PyTree) -> ScaleByDistanceOverGradientsState:
        reps_rel = self.reps_rel

        def leaf(p: Array) -> tuple[Array, Array]:
            work = compute_dtype(p.dtype)
            distance = reps_rel.astype(jnp.finfo(work).dtype) * (1 + _norm(p.astype(work)))
            return distance.astype(jnp.finfo(p.dtype).dtype), jnp.zeros((1,))

        max_dist, sums = tree_map_unzip(leaf, 2, params)
        # init's params are JAX arrays (NumPy ones are converted before init runs).
        init_params = tree_cast(params, self.param_dtype)
        return ScaleByDistanceOverGradientsState(max_dist, sums, init_params)

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, ScaleByDistanceOverGradientsState]:
        check_state(self, updates, state, ScaleByDistanceOverGradientsState)
        require_params(self, params, "the step size is their distance from the initial params")
        eps, global_scale = self.eps, self.global_scale

        def step(
            g: Array, distance: Array, total: Array, p: Array, p0: Array
        ) -> tuple[Array, Array, Array]:
            work = compute_dtype(jnp.result_type(g.dtype, p.dtype, total.dtype))
            real = jnp.finfo(work).dtype
            moved = _norm(p.astype(work) - p0.astype(work))
            new_distance = jnp.maximum(distance.astype(real), moved)
            new_total = total.astype(real) + jnp.sum(abs_sq(g.astype(work)))
            # eps = 0 and no gradient yet: a zero step, not 0/0.
            eta = global_scale.astype(real) * safe_div(
                new_distance, safe_sqrt(new_total + eps.astype(real))
            )
            scaled = (eta[0] * g.astype(work)).astype(g.dtype)
            return scaled, new_distance.astype(distance.dtype), new_total.astype(total.dtype)

        new_updates, max_dist, sums = tree_map_unzip(
            step, 3, updates, state.max_dist, state.grad_sum_of_squares, params, state.init_params
        )
        # The initial params pass through unchanged: as arrays, also where the state came
        # back from the host as NumPy (a checkpoint, jax.device_get).
        init_params = jax.tree.map(jnp.asarray, state.init_params)
        return new_updates, ScaleByDistanceOverGradientsState(max_dist, sums, init_params)


def scale_by_distance_over_gradients(
    reps_rel: float | Array = 1e-6,
    eps: float | Array = 1e-8,
    param_dtype: Any = jnp.float32,
    global_scale: float | Array = 1.0,
) -> ScaleByDistanceOverGradients:
    """Scale by DoG's step size, one per parameter block (layer-wise DoG, "LDoG").

    For each leaf $\\ell$ with initial value $x_0$:

    $$\\begin{aligned}
    \\bar r_t &= \\max\\big(r_\\varepsilon,\\ \\max_{\\tau \\le t} \\lVert x_\\tau - x_0
    \\rVert\\big), \\qquad r_\\varepsilon = r_{\\mathrm{rel}}\\,(1 + \\lVert x_0 \\rVert), \\\\
    G_t &= \\sum_{\\tau \\le t} \\lVert g_\\tau \\rVert^2, \\qquad
    u_t = s\\,\\frac{\\bar r_t}{\\sqrt{G_t + \\varepsilon}}\\,g_t,
    \\end{aligned}$$

    with $s$ = ``global_scale`` (``-1`` for descent). ``update`` needs ``params``. The
    initial params are stored in ``param_dtype`` (``float32`` by default, as in Optax, so
    the distance is to the float32-rounded start; ``None`` keeps the params' dtypes), the
    sums of squares in the default float dtype, the distances in the params' dtypes.
    Norms use $|\\cdot|^2$ and have zero (not NaN) derivatives at zero; ``eps = 0``
    with no gradient yet gives a zero step. The update keeps the gradient's shape and
    dtype (Optax returns shape ``(1,)`` for a scalar leaf, and a wider dtype when the
    sums are wider than the params).

    Reference: Ivgi, Hinder & Carmon, *DoG is SGD's Best Friend: A Parameter-Free Dynamic
    Step Size Schedule* (2023). Optax: ``optax.scale_by_distance_over_gradients``.
    """
    return ScaleByDistanceOverGradients(reps_rel, eps, param_dtype, global_scale)
