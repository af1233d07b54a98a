"""Centred RMSProp's scaling: by the root of a moving estimate of the gradients' variance."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._base import check_state, params_like
from ._leafwise import LeafwiseStep
from ._numerics import abs_sq, compute_dtype, safe_div
from ._numerics import bias_correction_factor as _bias_correction
from ._rms import _ScaleBySecondMoment, rms_normalize
from ._tree import tree_full_like, tree_zeros_like
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


def _centred_variance(
    g: Array, mu: Array, nu: Array, decay: Array, previous: Array, correction: Array
) -> Array:
    """The (bias-corrected) variance after a step, from the gradient and the moments
    before it, without subtracting the moments after it.

    With $a = 1 - \\rho$, $c_{t-1}$ and $c_t$ the bias corrections before and after the
    step ($c = 1$ without correction) and $\\hat\\mu_{t-1} = \\mu_{t-1} / c_{t-1}$
    ($0$ before the first step),

    $$\\hat\\nu_t - |\\hat\\mu_t|^2 = \\frac{\\rho}{c_t}\\Big(
    \\nu_{t-1} - \\operatorname{Re}\\big(\\bar\\mu_{t-1}\\hat\\mu_{t-1}\\big)
    + \\frac{a\\,c_{t-1}}{c_t}\\,|g_t - \\hat\\mu_{t-1}|^2\\Big),$$

    an identity of the moving averages (with $c_t = \\rho c_{t-1} + a$). The new
    gradient enters through its distance from the previous mean, a square, so it adds no
    cancellation; what is left is the previous step's variance, whose rounding is damped
    by $\\rho\\,c_{t-1}/c_t < 1$. The direct $\\hat\\nu_t - |\\hat\\mu_t|^2$ cancels
    to a rounding residue of order $\\epsilon_{\\mathrm{mach}}|g|^2$ where the variance is
    zero (on the first bias-corrected step with $\\nu_0 = 0$ it is zero exactly, as it
    is computed here), and the square root turns that residue into an error of order
    $\\sqrt{\\epsilon_{\\mathrm{mach}}}\\,|g|$. Clamped at zero (rounding of the previous
    variance can make it slightly negative).
    """
    mean = safe_div(mu, previous.astype(mu.dtype))
    previous_variance = nu - jnp.real(jnp.conj(mu) * mean)
    spread = abs_sq(g - mean)
    variance = (
        decay / correction * (previous_variance + (1 - decay) * previous / correction * spread)
    )
    return jnp.maximum(variance, 0)


class ScaleByStddev(_ScaleBySecondMoment):
    """Divide by the root of ``E[|g|²] - |E[g]|²``, a moving estimate of the variance.

    Built by :func:`scale_by_stddev`, whose docstring gives the math and the references.
    """

    def init(self, params: PyTree) -> ScaleByRStdDevState | ScaleByRStdDevWithCountState:
        mu = tree_zeros_like(params)
        nu = tree_full_like(params, self.initial_scale)
        if self.bias_correction:
            return ScaleByRStdDevWithCountState(jnp.zeros([], jnp.int32), mu, nu)
        return ScaleByRStdDevState(mu, nu)

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        state_type = ScaleByRStdDevWithCountState if self.bias_correction else ScaleByRStdDevState
        check_state(self, updates, state, state_type, params)
        count, correction = self._count_and_correction(state)
        # The bias corrections before (1 - rho^(t-1), zero before the first step) and after.
        corrections = (
            None if correction is None else (_bias_correction(self.decay, state.count), correction)
        )
        decay, eps = self.decay, self.eps

        def leaf(g: Array, p: Any, moments: tuple[Array, Array], constants: tuple) -> Any:
            m, v = moments
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype, v.dtype))
            real = jnp.finfo(work).dtype
            g_w, m_w, v_w = g.astype(work), m.astype(work), jnp.real(v.astype(work))
            d = decay.astype(real)
            mu = (1 - d) * g_w + d * m_w
            nu = (1 - d) * abs_sq(g_w) + d * v_w
            if corrections is not None:
                c_prev, c = (x.astype(real) for x in corrections)
            else:
                c_prev = c = jnp.ones((), real)
            variance = _centred_variance(g_w, m_w, v_w, d, c_prev, c)
            # Where the squares overflowed, the variance is taken as infinite: a zero step.
            variance = jnp.where(jnp.isinf(nu / c), jnp.inf, variance)
            scaled = rms_normalize(g_w, variance, eps.astype(real), self.eps_in_sqrt)
            return scaled.astype(g.dtype), (mu.astype(m.dtype), nu.astype(v.dtype))

        def finish(new: tuple[PyTree, ...]) -> ScaleByRStdDevState | ScaleByRStdDevWithCountState:
            if count is not None:  # with bias correction
                return ScaleByRStdDevWithCountState(count, new[0], new[1])
            return ScaleByRStdDevState(new[0], new[1])

        return LeafwiseStep(leaf, finish, moments=(state.mu, state.nu))


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

    The state is Optax's ($\\mu$, $\\nu$), but $\\sigma^2_t$ is not computed as the
    difference of the new moments, which cancels when the gradients barely vary (to a
    rounding residue of order $\\epsilon_{\\mathrm{mach}}|g|^2$, whose root is of order
    $\\sqrt{\\epsilon_{\\mathrm{mach}}}|g|$; a negative residue makes Optax take the root
    of a negative number, NaN). With $c_t$ the bias correction ($1$ without) and
    $\\hat\\mu_{t-1} = \\mu_{t-1}/c_{t-1}$ ($0$ before the first step), the identity

    $$\\sigma^2_t = \\frac{\\rho}{c_t}\\Big(\\nu_{t-1}
    - \\operatorname{Re}\\big(\\bar\\mu_{t-1}\\hat\\mu_{t-1}\\big)
    + \\frac{(1-\\rho)\\,c_{t-1}}{c_t}\\,|g_t - \\hat\\mu_{t-1}|^2\\Big)$$

    forms it from the previous moments and a square of the new gradient's distance from
    their mean: on the first bias-corrected step it is $\\rho s / (1 - \\rho)$ (zero for
    the default $s = 0$) to rounding, not a residue; it is clamped at zero.
    Elsewhere the result is Optax's to rounding. Computed in at least float32, stored in
    the params' dtype.

    References: Graves, *Generating Sequences With Recurrent Neural Networks* (2013),
    eq. 38-40. Optax: ``optax.scale_by_stddev``.
    """
    return ScaleByStddev(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
