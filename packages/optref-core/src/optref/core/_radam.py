"""RAdam: Adam whose adaptive step is rectified by the variance of its second moment."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree

from ._adam import ScaleByAdamState, check_moment_ranges
from ._alias import alias
from ._base import check_state
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import (
    abs_sq,
    adaptive_ratio,
    bias_correction_factor,
    compute_dtype,
    computed_once,
    debiased_momentum,
    momentum_corrections,
    moving_average,
    safe_increment,
    safe_sqrt,
    scalar_dtype,
)
from ._scale import scale_by_learning_rate
from ._tree import tree_zeros_like

__all__ = ["ScaleByRadam", "radam", "rectification", "scale_by_radam"]

# Taylor coefficients of the Langevin function coth(x) - 1/x = sum_k c_k x^(2k-1),
# c_k = 2^(2k) B_(2k) / (2k)! (B: Bernoulli numbers). Twelve terms reach double precision
# for x < 1/2, where (x / pi)^2 < 0.026 bounds the ratio of successive terms.
_LANGEVIN_SERIES = (
    1 / 3,
    -1 / 45,
    2 / 945,
    -1 / 4725,
    2 / 93555,
    -1382 / 638512875,
    4 / 18243225,
    -3617 / 162820783125,
    87734 / 38979295480125,
    -349222 / 1531329465290625,
    310732 / 13447856940643125,
    -472728182 / 201919571963756521875,
)
_SERIES_BELOW = 0.5


def _langevin(x: Array) -> tuple[Array, Array]:
    """``(L(x), 1 - L(x))`` for ``x > 0``, ``L(x) = coth(x) - 1/x``, both without cancellation.

    Below 1/2 from the series (``1 - L`` is then near one, so subtracting is exact enough);
    above, ``coth(x) - 1 = 2 / expm1(2x)`` gives ``L = 1 + 2/expm1(2x) - 1/x`` and
    ``1 - L = 1/x - 2/expm1(2x)``, neither of which cancels there. Each branch sees only
    arguments valid for it (double where), so gradients have no NaN.
    """
    small = x < _SERIES_BELOW
    xs = jnp.where(small, x, jnp.zeros_like(x))
    x2 = xs * xs
    series = jnp.zeros_like(x)
    for coefficient in reversed(_LANGEVIN_SERIES):
        series = series * x2 + coefficient
    series = series * xs
    xl = jnp.where(small, jnp.ones_like(x), x)
    coth_minus_one = 2 / jnp.expm1(2 * xl)
    large, one_minus_large = 1 + coth_minus_one - 1 / xl, 1 / xl - coth_minus_one
    return jnp.where(small, series, large), jnp.where(small, 1 - series, one_minus_large)


def rectification(
    b2: ArrayLike, count: ArrayLike, threshold: ArrayLike = 5.0
) -> tuple[Array, Array]:
    """RAdam's rectification factor ``r_t`` and whether it applies (``rho_t >= threshold``).

    $$\\rho_\\infty = \\frac{2}{1-\\beta_2} - 1, \\qquad
    \\rho_t = \\rho_\\infty - \\frac{2t\\beta_2^t}{1-\\beta_2^t}, \\qquad
    r_t = \\sqrt{\\frac{(\\rho_t-4)(\\rho_t-2)\\,\\rho_\\infty}
    {(\\rho_\\infty-4)(\\rho_\\infty-2)\\,\\rho_t}}.$$

    $\\rho_t$ is the difference of two numbers near $\\rho_\\infty$ ($\\rho_1 = 1$ while
    $\\rho_\\infty = 1999$ for $\\beta_2 = 0.999$), so the formula loses
    $\\log_{10}(\\rho_\\infty/\\rho_t)$ digits. With $h = -\\tfrac12\\log\\beta_2$ one has
    $\\rho_\\infty = \\coth h$ and $\\rho_t = t + \\coth h - t\\coth(th)$; writing
    $\\coth x = 1/x + L(x)$ (the Langevin function $L$), the $1/h$ terms cancel exactly:

    $$\\rho_t = t\\,\\big(1 - L(th)\\big) + L(h),$$

    a sum of positive terms that is computed here to full precision. In the hyperparameter
    dtype (at least float32). The factor is computed only where it applies (double where),
    so gradients with respect to ``b2`` are finite on every step. Both results go through
    :func:`computed_once`: every leaf reads them, and XLA would otherwise copy the series
    for $L$ into each leaf's kernel.
    """
    b2 = jnp.asarray(b2)
    dtype = scalar_dtype(b2)
    b2 = b2.astype(dtype)
    t = jnp.asarray(count).astype(dtype)
    h = -0.5 * jnp.log1p(b2 - 1)
    langevin_h, _ = _langevin(h)
    _, one_minus_langevin_th = _langevin(t * h)
    rho = t * one_minus_langevin_th + langevin_h
    rho_inf = 2 / (1 - b2) - 1
    applies = rho >= jnp.asarray(threshold).astype(dtype)
    # Where it does not apply, evaluate at a harmless point (rho = rho_inf = 5).
    rho_s = jnp.where(applies, rho, 5 * jnp.ones_like(rho))
    rho_inf_s = jnp.where(applies, rho_inf, 5 * jnp.ones_like(rho_inf))
    ratio = ((rho_s - 4) * (rho_s - 2) * rho_inf_s) / ((rho_inf_s - 4) * (rho_inf_s - 2) * rho_s)
    # Read by every leaf's kernel: computed once per step, not copied into each of them.
    return computed_once(safe_sqrt(ratio)), computed_once(applies)


class ScaleByRadam(LeafwiseTransformation):
    """Adam's step times the rectification ``r_t`` once ``rho_t >= threshold``; before that,
    the bias-corrected momentum alone.

    Built by :func:`scale_by_radam`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=0.999, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-8, converter=as_scalar_hyperparameter)
    eps_root: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    threshold: Array = eqx.field(default=5.0, converter=as_scalar_hyperparameter)
    nesterov: bool = eqx.field(static=True, default=False)
    scalar_hyperparameters = ("b1", "b2", "eps", "eps_root", "threshold")

    def __check_init__(self) -> None:
        check_moment_ranges(self)
        check_range(self, "threshold", self.threshold, 4.0)

    def init(self, params: PyTree) -> ScaleByAdamState:
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32), mu=tree_zeros_like(params), nu=tree_zeros_like(params)
        )

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByAdamState, params)
        count = safe_increment(state.count)
        b1, b2, eps, eps_root = self.b1, self.b2, self.eps, self.eps_root
        correction_nu = bias_correction_factor(b2, count)
        corrections_mu = momentum_corrections(b1, count, self.nesterov)
        r, applies = rectification(b2, count, self.threshold)

        def leaf(g: Array, p: Any, moments: tuple[Array, Array], constants: tuple) -> Any:
            m, v = moments
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            m_new = moving_average(m.astype(work), g_w, b1)
            v_new = moving_average(jnp.real(v.astype(work)), abs_sq(g_w), b2)
            m_hat = debiased_momentum(m_new, g_w, b1, corrections_mu)
            rectified = r.astype(work) * adaptive_ratio(
                m_hat, v_new / correction_nu.astype(real), eps, eps_root
            )
            step = jnp.where(applies, rectified, m_hat)
            return step.astype(g.dtype), (m_new.astype(m.dtype), v_new.astype(v.dtype))

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByAdamState(count=count, mu=new[0], nu=new[1]),
            moments=(state.mu, state.nu),
        )


def scale_by_radam(
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    threshold: float | Array = 5.0,
    *,
    nesterov: bool = False,
) -> ScaleByRadam:
    """Rescale updates by Rectified Adam.

    $$\\text{update}_t = \\begin{cases}
    r_t\\,\\dfrac{\\hat m_t}{\\sqrt{\\hat v_t + \\varepsilon_{\\mathrm{root}}} + \\varepsilon}
    & \\rho_t \\ge \\text{threshold} \\\\[1ex]
    \\hat m_t & \\text{otherwise} \\end{cases}$$

    with Adam's bias-corrected moments $\\hat m_t$, $\\hat v_t$ (NAdam's look-ahead
    $\\hat m_t$ with ``nesterov=True``) and $\\rho_t$, $r_t$ as in :func:`rectification`,
    computed without the cancellation of the textbook formula. ``threshold`` must be at
    least 4: below, $r_t$ would be the root of a negative number. The paper uses 4, its
    official code and Optax 5. Unlike Optax, the untaken branch is never evaluated at
    invalid points, so gradients through the first steps (where $\\rho_t < 4$) are finite.
    The state is Adam's. Reference: Liu et al., *On the Variance of the Adaptive Learning
    Rate and Beyond* (2020); Optax: ``optax.scale_by_radam``.
    """
    return ScaleByRadam(b1, b2, eps, eps_root, threshold, nesterov)


@alias
def radam(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    threshold: float | Array = 5.0,
    *,
    nesterov: bool = False,
) -> Chain:
    """The RAdam optimizer: :func:`scale_by_radam`, then the learning rate.

    $$p_t = p_{t-1} - \\eta_t\\,\\text{update}_t$$

    Reference: Liu et al. (2020); ``optax.radam``.
    """
    return chain(
        scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )
