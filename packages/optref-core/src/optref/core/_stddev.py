"""Centred RMSProp's scaling: by the root of a moving estimate of the gradients' variance."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._base import check_state, params_like
from ._numerics import abs_sq, compute_dtype
from ._rms import _ScaleBySecondMoment, rms_normalize
from ._tree import tree_full_like, tree_map_unzip, tree_zeros_like
from ._typecheck import typechecker

__all__ = [
    "ScaleByRStdDevState",
    "ScaleByRStdDevWithCountState",
    "ScaleByStddev",
    "scale_by_stddev",
]


@jaxtyped(typechecker=typechecker)
class ScaleByRStdDevState(eqx.Module):
    """The moving averages of the gradients (``mu``) and of their squares (``nu``)."""

    mu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    nu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


@jaxtyped(typechecker=typechecker)
class ScaleByRStdDevWithCountState(eqx.Module):
    """The step count and the moving averages ``mu`` and ``nu`` (bias-corrected)."""

    count: Int[Array, ""]
    mu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    nu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


class ScaleByStddev(_ScaleBySecondMoment):
    """Divide by the root of ``E[|g|²] - |E[g]|²``, a moving estimate of the variance."""

    def init(self, params: PyTree) -> ScaleByRStdDevState | ScaleByRStdDevWithCountState:
        mu = tree_zeros_like(params)
        nu = tree_full_like(params, self.initial_scale)
        if self.bias_correction:
            return ScaleByRStdDevWithCountState(jnp.zeros([], jnp.int32), mu, nu)
        return ScaleByRStdDevState(mu, nu)

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, ScaleByRStdDevState | ScaleByRStdDevWithCountState]:
        state_type = ScaleByRStdDevWithCountState if self.bias_correction else ScaleByRStdDevState
        check_state(self, updates, state, state_type, params)
        count, correction = self._count_and_correction(state)
        decay, eps = self.decay, self.eps

        def step(g: Array, m: Array, v: Array) -> tuple[Array, Array, Array]:
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype, v.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            d = decay.astype(real)
            mu = (1 - d) * g_w + d * m.astype(work)
            nu = (1 - d) * abs_sq(g_w) + d * jnp.real(v.astype(work))
            if correction is not None:
                mu_hat, nu_hat = mu / correction.astype(real), nu / correction.astype(real)
            else:
                mu_hat, nu_hat = mu, nu
            # E[|g|^2] - |E[g]|^2 is a variance, never negative; rounding can make the
            # difference slightly negative when the gradients barely vary (then the root
            # of it plus a small eps is NaN), so it is clamped at zero. Where the squares
            # overflowed (inf - inf), the variance is taken as infinite: a zero step.
            variance = jnp.where(jnp.isinf(nu_hat), nu_hat, jnp.maximum(nu_hat - abs_sq(mu_hat), 0))
            scaled = rms_normalize(g_w, variance, eps.astype(real), self.eps_in_sqrt)
            return scaled.astype(g.dtype), mu.astype(m.dtype), nu.astype(v.dtype)

        new_updates, mu, nu = tree_map_unzip(step, 3, updates, state.mu, state.nu)
        if count is not None:  # with bias correction
            return new_updates, ScaleByRStdDevWithCountState(count, mu, nu)
        return new_updates, ScaleByRStdDevState(mu, nu)


def scale_by_stddev(
    decay: float | Array = 0.9,
    eps: float | Array = 1e-8,
    initial_scale: float | Array = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> ScaleByStddev:
    """Rescale by the root of a centred moving estimate of the gradients' variance.

    $$\\begin{aligned}
    \\mu_t &= \\rho\\,\\mu_{t-1} + (1-\\rho)\\,g_t, \\qquad
    \\nu_t = \\rho\\,\\nu_{t-1} + (1-\\rho)\\,|g_t|^2, \\quad \\nu_0 = s, \\\\
    \\sigma^2_t &= \\max\\big(\\hat\\nu_t - |\\hat\\mu_t|^2,\\ 0\\big), \\qquad
    u_t = \\frac{g_t}{\\sqrt{\\sigma^2_t + \\varepsilon}} \\ \\text{(eps\\_in\\_sqrt)}
    \\quad\\text{or}\\quad \\frac{g_t}{\\sqrt{\\sigma^2_t} + \\varepsilon},
    \\end{aligned}$$

    with $\\hat x_t = x_t / (1-\\rho^t)$ when ``bias_correction`` and $\\hat x_t = x_t$
    otherwise.

    The variance is clamped at zero: the subtraction cancels when the gradients barely
    vary, and its rounding error (of the order of $\\epsilon_{\\mathrm{mach}}|g|^2$) can
    exceed ``eps`` and make it negative, where Optax takes the root of a negative number
    (NaN). Elsewhere the result is Optax's. Computed in at least float32, stored in the
    params' dtype.

    References: Graves, *Generating Sequences With Recurrent Neural Networks* (2013),
    eq. 38-40. Optax: ``optax.scale_by_stddev``.
    """
    return ScaleByStddev(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
