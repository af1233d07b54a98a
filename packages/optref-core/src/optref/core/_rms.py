"""RMSProp's scaling: by the root of an exponential moving average of squared gradients."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._base import check_state, params_like
from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import (
    abs_sq,
    adaptive_ratio,
    compute_dtype,
    differentiated_as,
    safe_div,
    safe_increment,
    safe_sqrt,
)
from ._numerics import bias_correction_factor as _bias_correction
from ._tree import tree_full_like
from ._typecheck import typechecker

__all__ = [
    "ScaleByRms",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "rms_normalize",
    "scale_by_rms",
]


@jaxtyped(typechecker=typechecker)
class ScaleByRmsState(eqx.Module):
    """The moving average of the squared gradients (without bias correction)."""

    nu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


@jaxtyped(typechecker=typechecker)
class ScaleByRmsWithCountState(eqx.Module):
    """The step count and the moving average of the squared gradients (bias-corrected)."""

    count: Int[Array, ""]
    nu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


def _over_root_reference(g: Array, radicand: Array) -> Array:
    return safe_div(g, safe_sqrt(radicand), g * 0)


@differentiated_as(_over_root_reference)
def _over_root(g: Array, radicand: Array) -> Array:
    """``g / sqrt(radicand)`` for a nonnegative radicand, ``0 * g`` where the root is zero,
    in one select.

    On nonnegative numbers, NaN and infinities the values are those of the double-where
    form (:func:`safe_div` of :func:`safe_sqrt`), and so are the derivatives. The root is
    tested, not the radicand: XLA:CPU takes the root of a subnormal as zero, while whether
    a comparison reads it as zero depends on the instructions it emits. A negative
    radicand, which no moving average of squares is, has the root NaN here where that form
    takes 0. The root reaches the
    division through the select, so XLA does not rewrite the two into a less accurate
    ``rsqrt`` (see :func:`optref.core.safe_sqrt`).
    """
    root = jnp.sqrt(radicand)
    return g / jnp.where(root == 0, jnp.inf, root)


def rms_normalize(g: Array, second_moment: Array, eps: Array, eps_in_sqrt: bool) -> Array:
    """``g`` over the root of a second-moment estimate, with ``eps`` inside or outside it.

    $$u = \\frac{g}{\\sqrt{v + \\varepsilon}} \\quad\\text{or}\\quad
    u = \\frac{g}{\\sqrt{v} + \\varepsilon}$$

    ``g`` and ``second_moment`` (nonnegative) are in the compute dtype. Where the
    denominator is zero the step is zero (``0 * g``), not 0/0, and the derivatives at
    $v = 0$ are finite: those of :func:`optref.core.safe_div` and
    :func:`optref.core.safe_sqrt`. With ``eps`` inside the root this takes one select
    (``_over_root``); outside it, :func:`optref.core.adaptive_ratio`'s two.
    """
    if eps_in_sqrt:
        return _over_root(g, jnp.real(second_moment) + eps)
    return adaptive_ratio(g, second_moment, eps)


class _ScaleBySecondMoment(LeafwiseTransformation):
    """What :class:`ScaleByRms` and :class:`ScaleByStddev` share: their hyperparameters,
    their validation and the optional bias correction."""

    decay: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-8, converter=as_scalar_hyperparameter)
    initial_scale: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    eps_in_sqrt: bool = eqx.field(static=True, default=True)
    bias_correction: bool = eqx.field(static=True, default=False)
    scalar_hyperparameters = ("decay", "eps", "initial_scale")

    def __check_init__(self) -> None:
        check_range(self, "decay", self.decay, 0.0, 1.0, high_inclusive=not self.bias_correction)
        check_range(self, "eps", self.eps, 0.0)
        check_range(self, "initial_scale", self.initial_scale, 0.0)

    def _count_and_correction(self, state: Any) -> tuple[Array | None, Array | None]:
        """The next step count and the bias correction $1 - \\rho^t$ (``None`` without)."""
        if not self.bias_correction:
            return None, None
        count = safe_increment(state.count)
        return count, _bias_correction(self.decay, count)


class ScaleByRms(_ScaleBySecondMoment):
    """Divide by the root of the moving average of the squared gradients.

    Built by :func:`scale_by_rms`, whose docstring gives the math and the references.
    """

    def init(self, params: PyTree) -> ScaleByRmsState | ScaleByRmsWithCountState:
        nu = tree_full_like(params, self.initial_scale)
        if self.bias_correction:
            return ScaleByRmsWithCountState(jnp.zeros([], jnp.int32), nu)
        return ScaleByRmsState(nu)

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        state_type = ScaleByRmsWithCountState if self.bias_correction else ScaleByRmsState
        check_state(self, updates, state, state_type, params)
        count, correction = self._count_and_correction(state)
        decay, eps = self.decay, self.eps

        def leaf(g: Array, p: Any, moments: tuple[Array], constants: tuple) -> Any:
            v = moments[0]
            work = compute_dtype(jnp.result_type(g.dtype, v.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            d = decay.astype(real)
            nu = (1 - d) * abs_sq(g_w) + d * jnp.real(v.astype(work))
            nu_hat = nu / correction.astype(real) if correction is not None else nu
            scaled = rms_normalize(g_w, nu_hat, eps.astype(real), self.eps_in_sqrt)
            return scaled.astype(g.dtype), (nu.astype(v.dtype),)

        def finish(new: tuple[PyTree, ...]) -> ScaleByRmsState | ScaleByRmsWithCountState:
            if count is not None:  # with bias correction
                return ScaleByRmsWithCountState(count, new[0])
            return ScaleByRmsState(new[0])

        return LeafwiseStep(leaf, finish, moments=(state.nu,))


def scale_by_rms(
    decay: float | Array = 0.9,
    eps: float | Array = 1e-8,
    initial_scale: float | Array = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> ScaleByRms:
    """Rescale by the root of the exponential moving average of the squared gradients.

    $$\\nu_t = \\rho\\,\\nu_{t-1} + (1-\\rho)\\,|g_t|^2, \\quad \\nu_0 = s, \\qquad
    u_t = \\frac{g_t}{\\sqrt{\\hat\\nu_t + \\varepsilon}} \\ \\text{(eps\\_in\\_sqrt)}
    \\quad\\text{or}\\quad u_t = \\frac{g_t}{\\sqrt{\\hat\\nu_t} + \\varepsilon},$$

    with $\\hat\\nu_t = \\nu_t / (1-\\rho^t)$ when ``bias_correction`` (the state then also
    counts the steps) and $\\hat\\nu_t = \\nu_t$ otherwise.

    The moving average, root and division are computed in at least float32 (so ``eps =
    1e-8`` does not flush to zero for float16 params, and a zero gradient gives a zero
    update, not 0/0) and the average is stored in the params' dtype. The bias correction
    is computed without cancellation. ``scale_by_rms(decay=b2, eps_in_sqrt=False,
    bias_correction=True)`` is :func:`scale_by_adam` with ``b1 = 0``.

    References: Tieleman & Hinton, *Lecture 6.5 - RMSProp* (2012). Optax:
    ``optax.scale_by_rms``.
    """
    return ScaleByRms(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
