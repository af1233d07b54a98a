"""AMSGrad: Adam with a non-decreasing second moment."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._adam import check_moment_ranges
from ._alias import alias
from ._base import check_state, params_like
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import (
    abs_sq,
    adaptive_ratio,
    bias_correction_factor,
    compute_dtype,
    debiased_momentum,
    momentum_corrections,
    moving_average,
    safe_increment,
)
from ._scale import scale_by_learning_rate
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = ["ScaleByAmsgrad", "ScaleByAmsgradState", "amsgrad", "scale_by_amsgrad"]


@jaxtyped(typechecker=typechecker)
class ScaleByAmsgradState(eqx.Module):
    """The step count, Adam's moments ``mu`` and ``nu``, and the running maximum ``nu_max``."""

    count: Int[Array, ""]
    mu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like(follows_dtype=False)  # pyright: ignore[reportUndefinedVariable]
    nu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    nu_max: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


class ScaleByAmsgrad(LeafwiseTransformation):
    """Scale by the first moment over the root of the running maximum of the second.

    Built by :func:`scale_by_amsgrad`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=0.999, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-8, converter=as_scalar_hyperparameter)
    eps_root: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    mu_dtype: Any = eqx.field(static=True, default=None)
    bias_correction_mu: bool = eqx.field(static=True, default=True)
    bias_correction_nu: bool = eqx.field(static=True, default=True)
    scalar_hyperparameters = ("b1", "b2", "eps", "eps_root")

    def __check_init__(self) -> None:
        check_moment_ranges(self)

    def init(self, params: PyTree) -> ScaleByAmsgradState:
        return ScaleByAmsgradState(
            count=jnp.zeros([], jnp.int32),
            mu=tree_zeros_like(params, dtype=self.mu_dtype),
            nu=tree_zeros_like(params),
            nu_max=tree_zeros_like(params),
        )

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByAmsgradState, params)
        count = safe_increment(state.count)
        b1, b2, eps, eps_root = self.b1, self.b2, self.eps, self.eps_root
        correction_nu = bias_correction_factor(b2, count)
        corrections_mu = momentum_corrections(b1, count)

        def leaf(g: Array, p: Any, moments: tuple[Array, Array, Array], constants: tuple) -> Any:
            m, v, v_max = moments
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            m_new = moving_average(m.astype(work), g_w, b1)
            v_new = moving_average(jnp.real(v.astype(work)), abs_sq(g_w), b2)
            m_hat = (
                debiased_momentum(m_new, g_w, b1, corrections_mu)
                if self.bias_correction_mu
                else m_new
            )
            v_eff = v_new / correction_nu.astype(real) if self.bias_correction_nu else v_new
            v_max_new = jnp.maximum(jnp.real(v_max.astype(work)), v_eff)
            step = adaptive_ratio(m_hat, v_max_new, eps, eps_root)
            return step.astype(g.dtype), (
                m_new.astype(m.dtype),
                v_new.astype(v.dtype),
                v_max_new.astype(v_max.dtype),
            )

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByAmsgradState(count=count, mu=new[0], nu=new[1], nu_max=new[2]),
            moments=(state.mu, state.nu, state.nu_max),
        )


def scale_by_amsgrad(
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> ScaleByAmsgrad:
    """Rescale updates by AMSGrad: Adam whose second moment never decreases.

    $$\\begin{aligned}
    m_t &= \\beta_1 m_{t-1} + (1-\\beta_1) g_t, \\qquad
    v_t = \\beta_2 v_{t-1} + (1-\\beta_2) |g_t|^2, \\\\
    v^{\\max}_t &= \\max\\big(v^{\\max}_{t-1},\\ \\tilde v_t\\big), \\qquad
    \\text{update}_t = \\frac{\\tilde m_t}{\\sqrt{v^{\\max}_t + \\varepsilon_{\\mathrm{root}}}
    + \\varepsilon},
    \\end{aligned}$$

    where $\\tilde m_t = m_t / (1-\\beta_1^t)$ with ``bias_correction_mu`` (else $m_t$) and
    $\\tilde v_t = v_t / (1-\\beta_2^t)$ with ``bias_correction_nu`` (else $v_t$). With both
    flags ``False`` this is the algorithm of the paper. ``mu_dtype`` stores the first
    moment in another dtype. Reference: Reddi, Kale & Kumar, *On the Convergence of Adam
    and Beyond* (2018); Optax: ``optax.scale_by_amsgrad``.
    """
    return ScaleByAmsgrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu)


@alias
def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> Chain:
    """The AMSGrad optimizer: :func:`scale_by_amsgrad`, then the learning rate.

    $$p_t = p_{t-1} - \\eta_t\\,\\frac{\\tilde m_t}{\\sqrt{v^{\\max}_t +
    \\varepsilon_{\\mathrm{root}}} + \\varepsilon}$$

    Reference: Reddi et al. (2018); ``optax.amsgrad``.
    """
    return chain(
        scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu),
        scale_by_learning_rate(learning_rate),
    )
