"""NovoGrad: layer-wise second moments from gradient norms, and momentum on normalised steps."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._alias import alias
from ._base import check_state, params_like, require_params
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import abs_sq, adaptive_ratio, compute_dtype, moving_average, safe_increment
from ._scale import scale_by_learning_rate
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = ["ScaleByNovograd", "ScaleByNovogradState", "novograd", "scale_by_novograd"]


@jaxtyped(typechecker=typechecker)
class ScaleByNovogradState(eqx.Module):
    """The step count, the momentum ``mu`` and one second moment ``nu`` per leaf (a scalar)."""

    count: Int[Array, ""]
    mu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like(follows_dtype=False)  # pyright: ignore[reportUndefinedVariable]
    nu: PyTree[Inexact[Array, ""], " P"]  # pyright: ignore[reportGeneralTypeIssues, reportUndefinedVariable]


class ScaleByNovograd(LeafwiseTransformation):
    """NovoGrad's scaling: per-leaf normalisation by an EMA of squared gradient norms.

    Built by :func:`scale_by_novograd`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=0.25, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-8, converter=as_scalar_hyperparameter)
    eps_root: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    weight_decay: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    mu_dtype: Any = eqx.field(static=True, default=None)
    scalar_hyperparameters = ("b1", "b2", "eps", "eps_root", "weight_decay")

    def __check_init__(self) -> None:
        check_range(self, "b1", self.b1, 0.0, 1.0, high_inclusive=False)
        check_range(self, "b2", self.b2, 0.0, 1.0, high_inclusive=False)
        check_range(self, "eps", self.eps, 0.0)
        check_range(self, "eps_root", self.eps_root, 0.0)
        check_range(self, "weight_decay", self.weight_decay, 0.0)

    def init(self, params: PyTree) -> ScaleByNovogradState:
        return ScaleByNovogradState(
            count=jnp.zeros([], jnp.int32),
            mu=tree_zeros_like(params, dtype=self.mu_dtype),
            nu=jax.tree.map(lambda p: jnp.zeros([], jnp.asarray(p).dtype), params),
        )

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByNovogradState, params)
        require_params(self, params, "for its weight decay")
        first = state.count == 0
        count = safe_increment(state.count)
        b1, b2, eps, eps_root, weight_decay = (
            self.b1,
            self.b2,
            self.eps,
            self.eps_root,
            self.weight_decay,
        )

        def leaf(g: Array, p: Any, moments: tuple[Array, Array], constants: tuple) -> Any:
            m, v = moments
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            g_w = g.astype(work)
            squared_norm = jnp.sum(abs_sq(g_w))
            # The first step starts the average at the first squared norm (no zero init).
            v_new = jnp.where(
                first, squared_norm, moving_average(jnp.real(v.astype(work)), squared_norm, b2)
            )
            step = adaptive_ratio(g_w, v_new, eps, eps_root)
            step = step + weight_decay.astype(work) * p.astype(work)
            m_new = jnp.where(first, step, b1.astype(work) * m.astype(work) + step)
            return m_new.astype(g.dtype), (m_new.astype(m.dtype), v_new.astype(v.dtype))

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByNovogradState(count=count, mu=new[0], nu=new[1]),
            moments=(state.mu, state.nu),
        )


def scale_by_novograd(
    b1: float | Array = 0.9,
    b2: float | Array = 0.25,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    weight_decay: float | Array = 0.0,
    mu_dtype: Any = None,
) -> ScaleByNovograd:
    """Rescale updates by NovoGrad: one second moment per leaf (layer), from gradient norms.

    For each leaf (layer) $\\ell$, with $v$ a scalar:

    $$\\begin{aligned}
    v_t &= \\begin{cases} \\lVert g_t \\rVert^2 & t = 1 \\\\
    \\beta_2 v_{t-1} + (1-\\beta_2) \\lVert g_t \\rVert^2 & t > 1 \\end{cases}, \\\\
    m_t &= \\beta_1 m_{t-1} + \\frac{g_t}{\\sqrt{v_t + \\varepsilon_{\\mathrm{root}}}
    + \\varepsilon} + \\lambda\\,p_{t-1}, \\qquad m_0 = 0, \\qquad \\text{update}_t = m_t.
    \\end{aligned}$$

    The momentum has no $(1-\\beta_1)$ factor and no bias correction, as in the paper.
    ``update`` needs the params (the weight decay term). The squared norm is a sum of
    squares (no square root), so its gradient is finite where a leaf's gradient is zero.
    ``mu_dtype`` stores the momentum in another dtype. Reference: Ginsburg et al.,
    *Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of Deep
    Networks* (2019), Algorithm 1; Optax: ``optax.scale_by_novograd``.
    """
    return ScaleByNovograd(b1, b2, eps, eps_root, weight_decay, mu_dtype)


@alias
def novograd(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.25,
    eps: float | Array = 1e-6,
    eps_root: float | Array = 0.0,
    weight_decay: float | Array = 0.0,
) -> Chain:
    """The NovoGrad optimizer: :func:`scale_by_novograd`, then the learning rate.

    $$p_t = p_{t-1} - \\eta_t\\,m_t$$

    Note the alias's ``eps`` default (``1e-6``) differs from the transform's (``1e-8``),
    as in Optax. Reference: Ginsburg et al. (2019); ``optax.novograd``.
    """
    return chain(
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay),
        scale_by_learning_rate(learning_rate),
    )
